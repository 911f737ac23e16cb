"""What the gate learns about a structure or a held book once and reuses until its inputs change.

``GateCache`` keeps two things between checks:

- per structure (an intent's legs on its underlying): the shape checks that read only the legs and the
  book's row map (ratios, duplicates, asset classes, every leg's row), valid while the same book object
  has the same ``generation`` (rows are only renumbered by ``drop_rows``, which bumps it). Only a
  structure that passed them is kept: a failing one is checked in full each time, so its denial reads
  exactly as before.
- per underlying, the held book's naked short contracts before the trade (``risk.gate._naked``),
  valid while the portfolio's ``revision`` (bumped on every applied fill), the book object and its
  ``generation`` are those it was computed for, and every held row's time to expiry (the key that
  orders expiries for coverage) reads as it did.

Every key is checked on every read, so a cached value is never served after its inputs moved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from domain.orders import AssetClass, OrderIntent
from domain.views import ChainView

MAX_STRUCTURES = 512
"""Structures kept; past this the cache starts over (a day's distinct structures are a few hundred)."""


class StructureShape:
    """An intent's legs resolved against one book: per leg (symbol, is stock, side sign, ratio, row)."""

    __slots__ = ("chain", "generation", "legs")

    def __init__(self, chain: ChainView | None, generation: int,
                 legs: tuple[tuple[str, bool, int, int, int], ...]) -> None:
        self.chain, self.generation, self.legs = chain, generation, legs


class _Naked:
    __slots__ = ("chain", "generation", "revision", "rows", "t_years", "value")

    def __init__(self, revision: int, chain: ChainView, generation: int, rows: list[int], t_years: list[float],
                 value: float) -> None:
        self.revision, self.chain, self.generation = revision, chain, generation
        self.rows, self.t_years, self.value = rows, t_years, value


class GateCache:
    """Structure shapes and held-book coverage kept between gate checks (see the module docstring)."""

    def __init__(self) -> None:
        self._shapes: dict[tuple[object, ...], StructureShape] = {}
        self._naked: dict[str, _Naked] = {}
        self.hits = 0
        self.misses = 0

    def shape(self, intent: OrderIntent, chain: ChainView | None, max_legs: int) -> StructureShape | None:
        """The cached shape of ``intent``'s legs on ``chain``, or None (not seen, or its book changed)."""
        e = self._shapes.get((intent.legs, intent.underlying, max_legs))
        if e is not None and e.chain is chain and e.generation == getattr(chain, "generation", 0):
            self.hits += 1
            return e
        self.misses += 1
        return None

    def keep_shape(self, intent: OrderIntent, chain: ChainView | None, max_legs: int, rows: list[int]) -> None:
        """Remember that ``intent``'s legs passed the static shape checks on ``chain``, at ``rows`` (-1: stock)."""
        if len(self._shapes) >= MAX_STRUCTURES:
            self._shapes.clear()
        legs = tuple((leg.symbol, leg.asset_class is AssetClass.EQUITY, leg.side.sign, leg.ratio, row)
                     for leg, row in zip(intent.legs, rows, strict=True))
        self._shapes[(intent.legs, intent.underlying, max_legs)] = StructureShape(
            chain, getattr(chain, "generation", 0), legs)

    def naked_before(self, chain: ChainView, held: Mapping[str, float], u: str, revision: int | None,
                     compute: Callable[[ChainView, Mapping[str, float], str], float]) -> float:
        """``compute(chain, held, u)`` (naked contracts of the held book), from the cache while its inputs hold;
        without a ``revision`` nothing is cached."""
        if revision is None:
            return compute(chain, held, u)
        e = self._naked.get(u)
        generation = getattr(chain, "generation", 0)
        if e is not None and e.revision == revision and e.chain is chain and e.generation == generation:
            t = chain.t_years
            if all(t.item(r) == v for r, v in zip(e.rows, e.t_years, strict=True)):
                self.hits += 1
                return e.value
        self.misses += 1
        value = compute(chain, held, u)
        rows = [r for sym, q in held.items() if sym != u and q != 0 and (r := chain.row_of(sym)) >= 0]
        self._naked[u] = _Naked(revision, chain, generation, rows, [chain.t_years.item(r) for r in rows], value)
        return value
