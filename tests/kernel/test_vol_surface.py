"""The live surface on the engine's own book: refit triggers, surface IVs and Greeks for rows without a usable
quote, marks, deferred (sliced) refits equal to inline ones, and European-equivalent fits for American names.

The books are filled with prices from a known smile (Black-Scholes for the index, the American pricer for SPY), so
every expected IV, Greek and price below is computed independently of the fit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable

import numpy as np
import pytest

import engine.kernel.vol_surface as vs
from domain.orders import AssetClass, OrderFilled, Side
from engine.kernel.clock import EventClock
from engine.kernel.events import BookUpdated, SurfaceFitted
from engine.kernel.market import Market
from engine.kernel.portfolio import MarkPolicy, Portfolio
from engine.kernel.vol_surface import SurfaceSettings, VolSurfaces, surface_deltas, theo_price
from greeks import american_price, black_scholes_greeks, black_scholes_price
from greeks.calendar import NS_PER_SECOND, expiry_close_ns, ny_instant_ns, year_fraction
from greeks.occ import format_occ
from greeks.status import FROM_SURFACE, OK
from greeks.surface import SurfaceFitter

DAY = dt.date(2026, 11, 16)
NOW = ny_instant_ns(DAY, dt.time(11, 0))
EXPIRIES = (dt.date(2026, 11, 20), dt.date(2026, 12, 18), dt.date(2027, 1, 15))
RATE = 0.04


def true_iv(k: np.ndarray) -> np.ndarray:
    """The smile every expiry is priced on: skewed, convex, the same in log-moneyness (so calendar-free)."""
    return 0.18 - 0.25 * k + 0.6 * k * k


def build(underlying: str = "SPX", spot: float = 5000.0, *, american: bool = False, n_strikes: int = 41,
          step: float = 0.01) -> tuple[Market, list[object]]:
    """A market with one book of calls and puts on a strike ladder, quoted around the true smile's prices."""
    published: list[object] = []
    market = Market(publish=published.append, rate=RATE)
    strikes = [round(spot * (1.0 + step * (i - n_strikes // 2)), 0) for i in range(n_strikes)]
    symbols = [format_occ(underlying, e, c, k) for e in EXPIRIES for c in (True, False) for k in strikes]
    market.add_contracts(underlying, symbols)
    market.on_underlying_quote(underlying, spot - 0.05, spot + 0.05, NOW)
    book = market.books[underlying]
    t = np.array([year_fraction(NOW, expiry_close_ns(e)) for e in book.expiry.astype(object)])
    fwd = spot * np.exp(RATE * t)
    sigma = true_iv(np.log(book.strike / fwd))
    pricer = american_price if american else black_scholes_price
    price = np.asarray(pricer(spot, book.strike, t, RATE, 0.0, sigma, book.is_call), dtype=np.float64)
    half = np.maximum(0.05, 0.02 * price)
    for i, sym in enumerate(book.symbols):
        book.load_snapshot(sym, max(price[i] - half[i], 0.01), price[i] + half[i], 10, 10, NOW)
    market.snapshot_loaded(underlying, NOW)
    return market, published


def surfaces(market: Market, published: list[object], **settings: float) -> VolSurfaces:
    return VolSurfaces(market, EventClock(NOW), published.append, SurfaceSettings(**settings))  # type: ignore[arg-type]


def fitted(published: list[object]) -> list[SurfaceFitted]:
    return [e for e in published if isinstance(e, SurfaceFitted)]


def wanted(book: object) -> np.ndarray:
    """Rows whose delta lies in the fitted range (the far wings are left out of the fit by design)."""
    d = np.abs(book.delta)  # type: ignore[attr-defined]
    return np.isfinite(d) & (d > 0.07) & (d < 0.93)


def test_a_refit_puts_every_row_on_the_surface_and_publishes_it() -> None:
    market, published = build()
    book = market.books["SPX"]
    assert not book.has_surface and np.isnan(book.surface_iv).all()
    event = surfaces(market, published).refit("SPX")
    assert event is not None and fitted(published) == [event]
    assert [s.status for s in event.smiles] == ["ok", "ok", "ok"]
    assert all(len(s.params) == 5 and len(s.k) == len(s.iv_mid) > 10 for s in event.smiles)
    assert book.has_surface
    rows = wanted(book)
    k = np.log(book.strike[rows] / book.forward[rows])
    assert np.abs(book.surface_iv[rows] - true_iv(k)).max() < 0.004  # within 0.4 vol points of the true smile


def test_rows_without_a_usable_quote_take_surface_iv_and_greeks_and_give_them_back() -> None:
    market, published = build()
    book = market.books["SPX"]
    surfaces(market, published).refit("SPX")
    r = int(np.flatnonzero(wanted(book) & ~book.is_call)[3])
    sym = book.symbols[r]
    bid, ask = float(book.bid[r]), float(book.ask[r])
    book.load_snapshot(sym, 0.0, ask, 0, 10, NOW + 1)  # one-sided: no mid, no IV of its own
    book.reprice_all(NOW + 1)
    assert book.status[r] == FROM_SURFACE
    assert book.iv[r] == book.surface_iv[r]
    k = math.log(book.strike[r] / book.forward[r])
    expected = black_scholes_greeks(book.spot, book.strike[r], book.t_years[r], RATE, 0.0, float(true_iv(np.array(k))),
                                    False)
    assert book.delta[r] == pytest.approx(float(expected.delta), abs=0.01)
    assert book.vega[r] == pytest.approx(float(expected.vega), rel=0.03)
    book.load_snapshot(sym, bid, ask, 10, 10, NOW + 2)  # two-sided again: its own IV
    book.reprice_all(NOW + 2)
    assert book.status[r] == OK


def test_a_leg_with_a_bad_quote_is_marked_at_the_surface_value() -> None:
    market, published = build()
    book = market.books["SPX"]
    surfaces(market, published).refit("SPX")
    r = int(np.flatnonzero(wanted(book) & book.is_call)[2])
    sym = book.symbols[r]
    k = math.log(book.strike[r] / book.forward[r])
    fair = float(black_scholes_price(book.spot, book.strike[r], book.t_years[r], RATE, 0.0,
                                     float(true_iv(np.array(k))), True))
    pf = Portfolio(marks=MarkPolicy(max_spread_pct=0.5, max_spread_usd=0.10))
    pf.on_fill(OrderFilled("x1", "o1", "c1", sym, Side.BUY, 1.0, fair, NOW, NOW, AssetClass.OPTION, "st", "s1"))
    pf.on_book(book)
    assert pf.surface_marked() == [] and pf.unrealized_usd() == pytest.approx(0.0, abs=100 * 0.02 * fair + 5)
    anchor = 0.5 * (float(book.bid[r]) + float(book.ask[r]))
    # the quote turns absurdly wide (a 10 bid, 5 x fair ask): the mid would book a gain of about 2 x fair
    book.load_snapshot(sym, 0.10, 5 * fair, 1, 1, NOW + 1)
    book.reprice_all(NOW + 1)
    pf.on_book(book)
    assert pf.surface_marked() == [sym] and pf.surface_marks == 1
    assert theo_price(book, r) == pytest.approx(fair, rel=0.02)
    # spot, time and surface as at the last good quote: the surface moves the mark by nothing, from that mid
    assert pf.unrealized_usd() == pytest.approx(100 * (anchor - fair), abs=1e-6)
    # a tight quote again, but stale: still the surface
    book.load_snapshot(sym, fair - 0.05, fair + 0.05, 10, 10, NOW + 2)
    book.reprice_all(NOW + 2)
    pf.on_book(book)
    assert pf.surface_marked() == []
    book.mark_stale(NOW + 10 * NS_PER_SECOND, 5 * NS_PER_SECOND)
    pf.on_book(book)
    assert pf.surface_marked() == [sym]


def test_strike_selection_reads_deltas_on_the_surface() -> None:
    market, published = build()
    book = market.books["SPX"]
    surfaces(market, published).refit("SPX")
    rows = np.flatnonzero(wanted(book))
    own = book.delta[rows].copy()
    np.testing.assert_allclose(surface_deltas(book, rows), own, atol=0.02)
    r = int(rows[5])
    book.iv[r] = book.iv[r] * 1.8  # one noisy quote's own IV (and so its own delta) is far off
    book.delta[r] = 0.9 if book.is_call[r] else -0.9
    assert abs(surface_deltas(book, np.array([r]))[0] - own[5]) < 0.02


def test_refits_come_on_spot_moves_and_quote_churn_but_not_closer_than_the_minimum() -> None:
    market, published = build()
    book = market.books["SPX"]
    surf = surfaces(market, published, spot_move_bp=10.0, quote_share=0.25, min_refit_seconds=1.0)

    def update(ts: int, changed: int = 0) -> None:
        surf.on_book(BookUpdated("SPX", 1, changed, 0, book.spot, "quotes", ts, ts))

    update(NOW)  # never fitted: due
    assert surf.refits == 1
    update(NOW + 2 * NS_PER_SECOND, changed=len(book) // 10)
    assert surf.refits == 1  # 10 % of the rows: not enough
    market.on_underlying_quote("SPX", 5005.45, 5005.55, NOW + 3 * NS_PER_SECOND)  # 11 bp
    update(NOW + 3 * NS_PER_SECOND)
    assert surf.refits == 2
    market.on_underlying_quote("SPX", 5019.95, 5020.05, NOW + 3 * NS_PER_SECOND + NS_PER_SECOND // 2)
    update(NOW + 3 * NS_PER_SECOND + NS_PER_SECOND // 2)
    assert surf.refits == 2  # moved 30 bp, but only half a second after the last fit
    update(NOW + 5 * NS_PER_SECOND, changed=len(book) // 3)
    assert surf.refits == 3


def test_the_cadence_timer_refits_on_event_time() -> None:
    market, published = build()
    clock = EventClock(NOW)
    surf = VolSurfaces(market, clock, published.append, SurfaceSettings(refit_seconds=5.0))
    surf.start()
    clock.advance(NOW + 4 * NS_PER_SECOND)
    assert surf.refits == 0
    clock.advance(NOW + 5 * NS_PER_SECOND)
    assert surf.refits == 1
    surf.stop()
    clock.advance(NOW + 60 * NS_PER_SECOND)
    assert surf.refits == 1


def offloader(jobs: list[Callable[[], None]]) -> Callable[..., None]:
    """An offload that fits nothing until the test says so (as a worker finishing later would), with fresh state."""

    def offload(snap: vs.BookSnapshot, done: Callable[[object], None]) -> None:
        jobs.append(lambda: done(vs._compute(snap, SurfaceFitter(), vs.PremiumCache())))

    return offload


def test_an_offloaded_refit_reads_a_snapshot_and_ends_where_an_inline_one_does() -> None:
    market_a, pub_a = build()
    surfaces(market_a, pub_a).refit("SPX")
    market_b, pub_b = build()
    jobs: list[Callable[[], None]] = []
    surf = VolSurfaces(market_b, EventClock(NOW), pub_b.append, SurfaceSettings(), offload=offloader(jobs))
    surf.on_book(BookUpdated("SPX", 1, 0, 0, 5000.0, "quotes", NOW, NOW))
    assert len(jobs) == 1 and fitted(pub_b) == [] and not market_b.books["SPX"].has_surface
    surf.on_book(BookUpdated("SPX", 2, 0, 0, 5000.0, "quotes", NOW + 5 * NS_PER_SECOND, NOW))
    assert len(jobs) == 1  # one round per underlying at a time
    jobs.pop()()
    np.testing.assert_array_equal(market_b.books["SPX"].surface_iv, market_a.books["SPX"].surface_iv)
    assert len(fitted(pub_b)) == 1 and not surf.state("SPX").pending


def test_a_fit_the_book_outgrew_is_dropped_and_made_due_again() -> None:
    market, published = build()
    jobs: list[Callable[[], None]] = []
    surf = VolSurfaces(market, EventClock(NOW), published.append, SurfaceSettings(), offload=offloader(jobs))
    surf.on_book(BookUpdated("SPX", 1, 0, 0, 5000.0, "quotes", NOW, NOW))
    market.add_contracts("SPX", [format_occ("SPX", EXPIRIES[0], True, 5555.0)])  # rows grow while it fits
    jobs.pop()()
    assert fitted(published) == [] and surf.dropped == 1 and not surf.state("SPX").pending
    assert not market.books["SPX"].has_surface
    surf.on_book(BookUpdated("SPX", 2, 0, 0, 5000.0, "quotes", NOW + 2 * NS_PER_SECOND, NOW))  # due again
    jobs.pop()()
    assert len(fitted(published)) == 1


def test_a_failed_fit_is_reported_and_the_next_one_runs() -> None:
    market, published = build()
    jobs: list[Callable[[], None]] = []

    def offload(snap: vs.BookSnapshot, done: Callable[[object], None]) -> None:
        jobs.append(lambda: done(RuntimeError("worker died")))

    surf = VolSurfaces(market, EventClock(NOW), published.append, SurfaceSettings(), offload=offload)
    surf.on_book(BookUpdated("SPX", 1, 0, 0, 5000.0, "quotes", NOW, NOW))
    jobs.pop()()
    assert surf.failures == 1 and not surf.state("SPX").pending
    surf.on_book(BookUpdated("SPX", 2, 0, 0, 5000.0, "quotes", NOW + 2 * NS_PER_SECOND, NOW))
    assert len(jobs) == 1


async def test_the_worker_process_fits_beside_the_loop() -> None:
    market, published = build()
    surf = VolSurfaces(market, EventClock(NOW), published.append, SurfaceSettings(), offload=vs.ProcessOffload())
    surf.on_book(BookUpdated("SPX", 1, 0, 0, 5000.0, "quotes", NOW, NOW))
    assert surf.state("SPX").pending and fitted(published) == []
    try:
        for _ in range(6000):  # the worker imports the fitting code first
            await asyncio.sleep(0.01)
            if fitted(published):
                break
        assert len(fitted(published)) == 1 and market.books["SPX"].has_surface
        reference, _ = build()
        surfaces(reference, []).refit("SPX")
        np.testing.assert_array_equal(market.books["SPX"].surface_iv, reference.books["SPX"].surface_iv)
    finally:
        surf.stop()


def test_an_american_name_is_fitted_on_european_equivalent_ivs() -> None:
    market, published = build("SPY", 600.0, american=True, step=0.01)
    book = market.books["SPY"]
    surfaces(market, published).refit("SPY")
    rows = wanted(book) & ~book.is_call & (book.strike < book.forward) & (book.t_years > 0.05)
    k = np.log(book.strike[rows] / book.forward[rows])
    # Black-Scholes on American put prices reads too high a vol; the surface holds the European-equivalent one
    assert (book.iv[rows] - true_iv(k)).mean() > 0.001
    assert np.abs(book.surface_iv[rows] - true_iv(k)).max() < 0.0003
    r = int(np.flatnonzero(rows)[2])
    fair = float(american_price(book.spot, book.strike[r], book.t_years[r], RATE, 0.0,
                                float(true_iv(np.log(book.strike[r:r + 1] / book.forward[r:r + 1]))[0]), False))
    assert theo_price(book, r) == pytest.approx(fair, rel=0.02)


def test_a_recorded_fit_applies_exactly_as_the_live_one_did() -> None:
    """Live fits come from a worker, at moments a replay cannot know: the recorder writes each fit put in force and
    a replay applies it (fitting nothing itself), so both end on the same surface IVs and the same event."""
    market_a, pub_a = build()
    live = surfaces(market_a, pub_a)
    recorded: list[bytes] = []
    live.on_applied = lambda key, result: recorded.append(vs.encode_fit(key, result))
    live.refit("SPX")
    market_b, pub_b = build()
    replay = surfaces(market_b, pub_b)
    replay.recorded = True
    replay.on_book(BookUpdated("SPX", 1, 0, 0, 5000.0, "quotes", NOW, NOW))
    assert replay.refits == 0  # a replay of recorded fits never fits on its own
    replay.apply_recorded(recorded[0])
    np.testing.assert_array_equal(market_b.books["SPX"].surface_iv, market_a.books["SPX"].surface_iv)
    np.testing.assert_array_equal(market_b.books["SPX"].iv, market_a.books["SPX"].iv)
    a, b = fitted(pub_a)[0], fitted(pub_b)[0]
    assert a.smiles == b.smiles and a.stats == b.stats
