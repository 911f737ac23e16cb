"""Option book: frames applied to arrays, exactly the changed rows repriced, matching a direct greeks/ call."""

from __future__ import annotations

import datetime as dt

import msgpack
import numpy as np

from domain.views import FLAG_CROSSED, FLAG_LOCKED, FLAG_ONE_SIDED, FLAG_STALE, ChainView, MarketView
from engine.alpaca.feeds.options.protocol import OptionProtocol
from engine.kernel.book import C_DUPLICATES, C_OUT_OF_ORDER
from engine.kernel.events import BookUpdated
from engine.kernel.market import Market
from engine.kernel.market_data import DataBatch
from greeks import black_scholes_greeks, black_scholes_price, implied_vol
from greeks.calendar import expiry_close_ns, year_fraction
from greeks.occ import format_occ
from greeks.status import NOT_COMPUTED

EXPIRY = dt.date(2026, 12, 18)
NOW_S = int(dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC).timestamp())
NOW_NS = NOW_S * 1_000_000_000
STRIKES = [560.0, 580.0, 600.0, 620.0, 640.0]
SYMS = [format_occ("SPY", EXPIRY, c, k) for c in (True, False) for k in STRIKES]


def setup() -> tuple[Market, OptionProtocol, list[BookUpdated]]:
    events: list[BookUpdated] = []
    market = Market(publish=events.append, rate=0.04)
    market.add_contracts("SPY", SYMS)
    market.on_underlying_quote("SPY", 599.95, 600.05, NOW_NS)
    return market, OptionProtocol("k", "s", market.option_index), events


def quote(sym: str, bid: float, ask: float, t_ns: int, bs: int = 10, as_: int = 10) -> dict[str, object]:
    return {
        "T": "q",
        "S": sym,
        "t": msgpack.Timestamp.from_unix_nano(t_ns),
        "bx": "C",
        "bp": bid,
        "bs": bs,
        "ax": "C",
        "ap": ask,
        "as": as_,
        "c": "A",
    }


def feed(market: Market, proto: OptionProtocol, msgs: list[dict[str, object]]) -> int:
    (batch,) = proto.receive(msgpack.packb(msgs))
    assert isinstance(batch, DataBatch)
    return market.apply(batch)


def fair_quotes(sigma: float = 0.2, t_ns: int = NOW_NS + 1) -> list[dict[str, object]]:
    t = year_fraction(t_ns, expiry_close_ns(EXPIRY))
    out = []
    for sym in SYMS:
        row_call = sym[-9] == "C"
        k = float(sym[-8:]) / 1000
        p = float(black_scholes_price(600.0, k, t, 0.04, 0.0, sigma, row_call))
        out.append(quote(sym, round(p - 0.05, 2), round(p + 0.05, 2), t_ns))
    return out


def test_book_and_market_satisfy_the_views_protocols() -> None:
    market, _, _ = setup()
    chain = market.chain("SPY")
    assert chain is not None
    view: ChainView = chain
    mview: MarketView = market
    assert len(view) == 10 and view.row_of(SYMS[3]) == 3 and view.row_of("NOPE") == -1
    assert view.expiry.dtype == np.dtype("datetime64[D]") and view.status.dtype == np.int8
    assert view.bid_size.dtype == np.int64 and view.flags.dtype == np.int8 and view.is_call.dtype == np.bool_
    assert mview.spot("SPY") == 600.0 and mview.chain("QQQ") is None


def test_book_matches_a_direct_greeks_computation_on_the_same_inputs() -> None:
    market, proto, events = setup()
    msgs = fair_quotes()
    assert feed(market, proto, msgs) == 10
    book = market.chain("SPY")
    assert book is not None
    mids = np.array([(m["bp"] + m["ap"]) / 2 for m in msgs])  # type: ignore[operator]
    t = year_fraction(NOW_NS + 1, np.full(10, expiry_close_ns(EXPIRY)))
    is_call = np.array([s[-9] == "C" for s in SYMS])
    strikes = np.array([float(s[-8:]) / 1000 for s in SYMS])
    sigma, status = implied_vol(mids, 600.0, strikes, t, 0.04, 0.0, is_call, min_time_value=0.005)
    g = black_scholes_greeks(600.0, strikes, t, 0.04, 0.0, sigma, is_call)
    np.testing.assert_array_equal(book.status, status)
    np.testing.assert_allclose(book.iv, sigma, rtol=1e-12, equal_nan=True)
    for name in ("delta", "gamma", "vega", "theta", "rho"):
        np.testing.assert_allclose(getattr(book, name), getattr(g, name), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(book.t_years, t)
    np.testing.assert_allclose(book.forward, 600.0 * np.exp(0.04 * t))
    assert abs(np.nanmedian(book.iv) - 0.2) < 0.02
    assert events[-1].rows_changed == 10 and events[-1].reason == "quotes"


def test_only_rows_whose_quotes_changed_are_repriced() -> None:
    market, proto, events = setup()
    feed(market, proto, fair_quotes())
    book = market.chain("SPY")
    assert book is not None
    before = book.iv.copy()
    book.iv[5] = -1.0  # a sentinel the next frame must not touch
    msg = fair_quotes(sigma=0.3, t_ns=NOW_NS + 2)[2]
    assert feed(market, proto, [msg]) == 1
    assert book.iv[2] > before[2] + 0.05  # row 2 repriced at the higher vol
    assert book.iv[5] == -1.0
    assert events[-1].rows_changed == 1


def test_late_and_repeated_quotes_are_not_applied_twice() -> None:
    market, proto, _ = setup()
    book = market.chain("SPY")
    assert book is not None
    feed(market, proto, [quote(SYMS[0], 40.0, 41.0, NOW_NS + 10)])
    assert feed(market, proto, [quote(SYMS[0], 40.0, 41.0, NOW_NS + 10)]) == 0  # exact repeat
    assert feed(market, proto, [quote(SYMS[0], 30.0, 31.0, NOW_NS + 5)]) == 0  # older than the row
    assert (book.bid[0], book.ask[0]) == (40.0, 41.0)
    assert book.counters[C_DUPLICATES] == 1 and book.counters[C_OUT_OF_ORDER] == 1


def test_size_only_change_updates_sizes_without_a_reprice() -> None:
    market, proto, _ = setup()
    book = market.chain("SPY")
    assert book is not None
    feed(market, proto, [quote(SYMS[0], 40.0, 41.0, NOW_NS + 10)])
    assert feed(market, proto, [quote(SYMS[0], 40.0, 41.0, NOW_NS + 11, bs=99)]) == 0
    assert book.bid_size[0] == 99


def test_crossed_locked_and_one_sided_quotes_are_flagged() -> None:
    market, proto, _ = setup()
    book = market.chain("SPY")
    assert book is not None
    feed(
        market,
        proto,
        [
            quote(SYMS[0], 41.0, 40.0, NOW_NS + 1),
            quote(SYMS[1], 30.0, 30.0, NOW_NS + 1),
            quote(SYMS[2], 0.0, 20.0, NOW_NS + 1),
        ],
    )
    assert book.flags[0] == FLAG_CROSSED and book.flags[1] == FLAG_LOCKED and book.flags[2] == FLAG_ONE_SIDED
    assert np.isnan(book.iv[2])  # no IV from a one-sided quote


def test_stale_rows_are_flagged_until_their_next_quote() -> None:
    market, proto, _ = setup()
    book = market.chain("SPY")
    assert book is not None
    feed(market, proto, fair_quotes())
    assert book.mark_stale(NOW_NS + 60 * 10**9, 30 * 10**9) == 10
    assert book.flags[0] & FLAG_STALE
    feed(market, proto, [fair_quotes(t_ns=NOW_NS + 61 * 10**9)[0]])
    assert not book.flags[0] & FLAG_STALE and book.flags[1] & FLAG_STALE


def test_underlying_move_reprices_greeks_of_the_whole_chain_at_held_iv() -> None:
    market, proto, events = setup()
    feed(market, proto, fair_quotes())
    book = market.chain("SPY")
    assert book is not None
    iv = book.iv.copy()
    assert market.on_underlying_quote("SPY", 609.95, 610.05, NOW_NS + 5) == 10
    np.testing.assert_array_equal(book.iv, iv)  # held
    t = year_fraction(NOW_NS + 5, np.full(10, expiry_close_ns(EXPIRY)))
    g = black_scholes_greeks(610.0, book.strike, t, 0.04, 0.0, iv, book.is_call)
    np.testing.assert_allclose(book.delta, g.delta, rtol=1e-12, equal_nan=True)
    assert events[-1].reason == "spot" and events[-1].rows_repriced == 10 and events[-1].spot == 610.0


def test_frame_with_two_underlyings_updates_both_books() -> None:
    market, proto, events = setup()
    qqq = format_occ("QQQ", EXPIRY, True, 500.0)
    market.add_contracts("QQQ", [qqq])
    market.on_underlying_quote("QQQ", 499.9, 500.1, NOW_NS)
    feed(market, proto, [quote(SYMS[0], 40.0, 41.0, NOW_NS + 1), quote(qqq, 12.0, 12.2, NOW_NS + 1)])
    assert {e.underlying for e in events[-2:]} == {"SPY", "QQQ"}
    qbook = market.chain("QQQ")
    assert qbook is not None and qbook.bid[0] == 12.0


def test_expired_contracts_are_evicted_and_the_rest_keep_their_rows_data_and_stream_ids() -> None:
    """Found by the soak: the book kept (and repriced on every spot move) every contract it ever streamed,
    growing by a day's worth of expiries per session. Eviction at the day roll drops rows that expired before
    today, except held ones; what stays keeps its quotes and Greeks and still receives its stream."""
    market, proto, _ = setup()
    old_exp = dt.date(2026, 11, 13)  # expired before NOW (2026-11-20)
    expired = [format_occ("SPY", old_exp, c, k) for c in (True, False) for k in STRIKES]
    market.add_contracts("SPY", expired)
    feed(market, proto, fair_quotes())
    book = market.chain("SPY")
    assert book is not None and len(book) == 20
    before = {s: (book.bid[book.row_of(s)], book.iv[book.row_of(s)], book.delta[book.row_of(s)]) for s in SYMS}
    generation = book.generation

    held = expired[2]
    dropped = market.evict_expired(dt.date(2026, 11, 20), keep={held})
    assert dropped == 9 and len(book) == 11 and book.generation == generation + 1
    assert book.row_of(expired[0]) == -1 and book.row_of(held) >= 0
    assert all(len(getattr(book, name)) == 11 for name in ("bid", "iv", "delta", "expiry", "flags", "dirty"))
    for s, (bid, iv, delta) in before.items():
        r = book.row_of(s)
        assert book.symbols[r] == s and book.bid[r] == bid and book.delta[r] == delta
        np.testing.assert_equal(book.iv[r], iv)

    t = NOW_NS + 2_000_000_000
    assert feed(market, proto, [quote(SYMS[4], 1.11, 1.19, t)]) == 1  # a kept contract's stream still lands
    assert book.bid[book.row_of(SYMS[4])] == 1.11
    assert feed(market, proto, [quote(expired[0], 5.0, 5.2, t)]) == 0  # an evicted one's is ignored
    assert market.evict_expired(dt.date(2026, 11, 20), keep={held}) == 0 and book.generation == generation + 1

    # the evicted contracts' stream ids go to the next day's contracts: the id space does not grow
    id_space = len(market.option_index)
    fresh = [format_occ("SPY", dt.date(2026, 11, 27), c, k) for c in (True, False) for k in STRIKES[:4]]
    market.add_contracts("SPY", fresh)
    assert len(market.option_index) == id_space and market.option_index.live == 11 + 8
    feed(market, proto, [quote(fresh[5], 2.5, 2.6, t + 1), quote(SYMS[4], 1.12, 1.18, t + 1)])
    assert book.bid[book.row_of(fresh[5])] == 2.5 and book.bid[book.row_of(SYMS[4])] == 1.12
    assert feed(market, proto, [quote(expired[1], 5.0, 5.2, t + 2)]) == 0  # a reused id no longer means it


def test_a_snapshot_load_repriced_in_steps_matches_a_direct_greeks_computation() -> None:
    """The subscription manager reprices a snapshot load a few hundred rows per loop step: the result must be
    the one-pass answer, row for row, and the book is announced once, after the last step."""
    market, _, events = setup()
    book = market.chain("SPY")
    assert book is not None
    t = year_fraction(NOW_NS + 1, np.full(10, expiry_close_ns(EXPIRY)))
    is_call = np.array([s[-9] == "C" for s in SYMS])
    strikes = np.array([float(s[-8:]) / 1000 for s in SYMS])
    prices = black_scholes_price(600.0, strikes, t, 0.04, 0.0, 0.25, is_call)
    for sym, p in zip(SYMS, prices, strict=True):
        book.load_snapshot(sym, round(float(p) - 0.05, 2), round(float(p) + 0.05, 2), 5, 5, NOW_NS + 1)
    before = len(events)
    steps = list(market.snapshot_loaded_steps("SPY", 3))
    assert steps == [3, 3, 3, 1] and len(events) == before + 1 and events[-1].reason == "snapshot"
    mids = np.round(prices - 0.05, 2) / 2 + np.round(prices + 0.05, 2) / 2
    sigma, status = implied_vol(mids, 600.0, strikes, t, 0.04, 0.0, is_call, min_time_value=0.005)
    np.testing.assert_array_equal(book.status, status)
    np.testing.assert_allclose(book.iv, sigma, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(book.delta, black_scholes_greeks(600.0, strikes, t, 0.04, 0.0, sigma, is_call).delta,
                               rtol=1e-12, equal_nan=True)


def test_rows_added_between_reprice_steps_leave_no_row_unpriced() -> None:
    market, _, _ = setup()
    book = market.chain("SPY")
    assert book is not None
    for sym in SYMS:
        book.load_snapshot(sym, 9.0, 9.2, 5, 5, NOW_NS + 1)
    steps = book.reprice_all_steps(4)
    next(steps)
    market.add_contracts("SPY", [format_occ("SPY", EXPIRY, True, 650.0)])  # the arrays are laid out again
    assert list(steps) == []  # the rest went in one pass
    assert not book.dirty.any() and (book.status[:10] != NOT_COMPUTED).all()
