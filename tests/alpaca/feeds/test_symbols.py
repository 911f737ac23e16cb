"""The symbol index: ids stay unique and resolvable from raw bytes through adds and forgets (ids reused)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.kernel.symbols import SymbolIndex, lookup

SYMBOLS = [f"SPY2612{d:02d}{cp}00{k:03d}000" for d in (4, 11, 18) for cp in "CP" for k in range(580, 600)]


def _resolve(index: SymbolIndex, symbol: str) -> int:
    raw = np.frombuffer(symbol.encode(), dtype=np.uint8)
    return lookup(raw, 0, raw.shape[0], index.keys, index.key_len, index.values)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=40)),
                min_size=1, max_size=12))
def test_adds_and_forgets_keep_every_live_symbol_resolvable_and_reuse_ids(
    steps: list[tuple[bool, list[str]]],
) -> None:
    index = SymbolIndex(capacity=4)  # small: the table grows (and rebuilds) along the way
    model: dict[str, int] = {}
    for add, symbols in steps:
        if add:
            for s in symbols:
                gid = index.add(s)
                assert model.setdefault(s, gid) == gid  # stable while live
        else:
            gone = {s for s in symbols if s in model}
            assert index.forget(symbols) == len(gone)
            for s in gone:
                del model[s]
        assert index.live == len(model)
        assert len(set(model.values())) == len(model)  # no id shared by two live symbols
        assert len(index) <= max(len(SYMBOLS), 1)  # ids are reused: the space never exceeds the distinct symbols
        for s in SYMBOLS:
            want = model.get(s, -1)
            assert index.id_of(s) == want and _resolve(index, s) == want
            if want >= 0:
                assert index.symbol(want) == s and want < len(index)


def test_a_forgotten_id_goes_to_the_next_new_symbol() -> None:
    index = SymbolIndex()
    a, b, c = (index.add(s) for s in SYMBOLS[:3])
    assert index.forget([SYMBOLS[1], "NOT-INDEXED"]) == 1
    assert index.add(SYMBOLS[10]) == b and len(index) == 3
    assert _resolve(index, SYMBOLS[1]) == -1 and _resolve(index, SYMBOLS[10]) == b
    assert (_resolve(index, SYMBOLS[0]), _resolve(index, SYMBOLS[2])) == (a, c)
