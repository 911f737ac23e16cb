"""Portfolio: positions per leg and structure, exact under duplicate fills, P&L at mid and natural, Greeks."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import AssetClass, OrderFilled, Side
from domain.views import FLAG_ONE_SIDED
from engine.kernel.book import OptionBook
from engine.kernel.portfolio import Portfolio, underlying_of
from engine.kernel.vol_surface import option_value

DAY = dt.date(2026, 11, 16)
T0 = ny_ns(2026, 11, 16, 10, 0)
EXPIRY = dt.date(2026, 12, 18)
_ids = itertools.count()


def fill(symbol: str, side: Side, qty: float, price: float, *, structure: str = "", exec_id: str | None = None,
         ts: int = T0, asset: AssetClass = AssetClass.OPTION, strategy: str = "st") -> OrderFilled:
    return OrderFilled(exec_id or f"x{next(_ids)}", "o1", "c1", symbol, side, qty, price, ts, ts, asset, strategy,
                       structure)


@pytest.fixture
def chain() -> SyntheticChain:
    return SyntheticChain("SPY", 600.0, T0, standard_expiries(DAY, (32,)), strike_ladder(600.0, 5.0, 8))


def sym(chain: SyntheticChain, k: float, right: str) -> str:
    return chain.symbol_at(EXPIRY, k, right == "C")


def test_duplicate_execution_ids_are_applied_once(chain: SyntheticChain) -> None:
    p = Portfolio()
    f = fill(sym(chain, 600, "C"), Side.BUY, 2, 10.0, exec_id="dup")
    assert p.on_fill(f).applied
    again = p.on_fill(f)
    assert not again.applied and again.position_qty == 2
    assert p.position(f.symbol) == 2 and p.duplicate_fills == 1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 5)), min_size=1, max_size=12),
       st.randoms())
def test_positions_are_exact_under_duplicates_and_reordering(trades: list[tuple[Side, int]], rnd) -> None:  # type: ignore[no-untyped-def]
    fills = [fill("SPY261218C00600000", side, q, 5.0, exec_id=f"e{i}") for i, (side, q) in enumerate(trades)]
    stream = fills + [rnd.choice(fills) for _ in range(len(fills))]
    rnd.shuffle(stream)
    p = Portfolio()
    for f in stream:
        p.on_fill(f)
    assert p.position("SPY261218C00600000") == sum(f.signed_qty for f in fills)
    assert p.fills_applied == len(fills)


def test_realized_pnl_uses_average_cost_and_handles_a_flip(chain: SyntheticChain) -> None:
    p = Portfolio()
    s = sym(chain, 600, "C")
    p.on_fill(fill(s, Side.BUY, 2, 1.00))
    p.on_fill(fill(s, Side.BUY, 1, 1.30))
    p.on_fill(fill(s, Side.SELL, 2, 1.50))
    assert p.realized_usd() == pytest.approx((1.50 - 1.10) * 2 * 100)
    p.on_fill(fill(s, Side.SELL, 3, 1.00))  # closes 1 at a 0.10 loss, opens 2 short at 1.00
    assert p.realized_usd() == pytest.approx(80.0 - 10.0)
    assert p.position(s) == -2
    p.on_fill(fill(s, Side.BUY, 2, 0.40))
    assert p.realized_usd() == pytest.approx(70.0 + 0.60 * 2 * 100)


def test_condor_is_tracked_as_one_structure_and_reports_its_realized_pnl(chain: SyntheticChain) -> None:
    p = Portfolio()
    legs = [(570, "P", Side.BUY, 0.50), (580, "P", Side.SELL, 1.00), (620, "C", Side.SELL, 0.90),
            (630, "C", Side.BUY, 0.40)]
    for k, r, side, px in legs:
        p.on_fill(fill(sym(chain, k, r), side, 2, px, structure="ic1"))
    assert p.open_structures() == 1 and p.open_structures(strategy_id="st", underlying="SPY") == 1
    # Credit 1.00 a unit on 10-wide wings: max loss (10 - 1) x 100 x 2.
    assert p.risk_capital_usd("SPY") == pytest.approx(1_800.0)
    assert p.risk_capital_usd("QQQ") == 0.0
    closed = None
    for k, r, side, px in legs:
        res = p.on_fill(fill(sym(chain, k, r), Side.SELL if side is Side.BUY else Side.BUY, 2, px / 2,
                             structure="ic1"))
        closed = res.structure_closed or closed
    assert closed is not None and closed.structure_id == "ic1"
    assert closed.realized_pnl_usd == pytest.approx(0.50 * 2 * 100)
    assert p.open_structures() == 0 and p.risk_capital_usd() == 0.0
    snap = p.structure("ic1")
    assert snap is not None and not snap.is_open and snap.realized_usd == pytest.approx(100.0)


def test_unrealized_pnl_at_mid_and_at_natural(chain: SyntheticChain) -> None:
    p = Portfolio()
    long_c, short_p = sym(chain, 600, "C"), sym(chain, 580, "P")
    p.on_fill(fill(long_c, Side.BUY, 1, 10.0))
    p.on_fill(fill(short_p, Side.SELL, 1, 3.0))
    p.on_book(chain)
    rc, rp = chain.row_of(long_c), chain.row_of(short_p)
    mid_c, mid_p = (chain.bid[rc] + chain.ask[rc]) / 2, (chain.bid[rp] + chain.ask[rp]) / 2
    assert p.unrealized_usd() == pytest.approx((mid_c - 10.0) * 100 + (3.0 - mid_p) * 100)
    assert p.unrealized_usd(natural=True) == pytest.approx((chain.bid[rc] - 10.0) * 100 + (3.0 - chain.ask[rp]) * 100)
    assert p.unrealized_usd(natural=True) < p.unrealized_usd()


def test_greeks_are_in_trader_units_and_include_stock_hedges(chain: SyntheticChain) -> None:
    p = Portfolio()
    c, put = sym(chain, 600, "C"), sym(chain, 600, "P")
    p.on_fill(fill(c, Side.BUY, 3, 10.0, structure="gs"))
    p.on_fill(fill(put, Side.BUY, 3, 9.0, structure="gs"))
    p.on_fill(fill("SPY", Side.SELL, 40, 600.0, structure="gs", asset=AssetClass.EQUITY))
    p.on_book(chain)
    rc, rp = chain.row_of(c), chain.row_of(put)
    g = p.greeks("SPY")
    assert g.delta_shares == pytest.approx(300 * (chain.delta[rc] + chain.delta[rp]) - 40)
    assert g.gamma_shares_per_usd == pytest.approx(300 * (chain.gamma[rc] + chain.gamma[rp]))
    assert g.vega_usd_per_vol_pt == pytest.approx(3 * (chain.vega[rc] + chain.vega[rp]))
    assert g.theta_usd_per_day == pytest.approx(300 * (chain.theta[rc] + chain.theta[rp]) / 365)
    assert p.greeks() == g and p.greeks("QQQ").delta_shares == 0.0
    assert p.positions_of("SPY") == {c: 3, put: 3, "SPY": -40}
    # Greeks follow the book: a spot move changes delta on the next update.
    chain.reprice(610.0, T0 + 1_000_000_000)
    p.on_book(chain)
    assert p.greeks("SPY").delta_shares > g.delta_shares
    snap = p.structure("gs")
    assert snap is not None and snap.greeks.delta_shares == pytest.approx(p.greeks("SPY").delta_shares)


def test_daily_pnl_restarts_at_the_new_york_day_boundary(chain: SyntheticChain) -> None:
    p = Portfolio()
    s = sym(chain, 600, "C")
    p.on_fill(fill(s, Side.BUY, 1, 10.0))
    p.on_fill(fill(s, Side.SELL, 1, 11.0))
    assert p.daily_pnl_usd() == pytest.approx(100.0)
    next_day = ny_ns(2026, 11, 17, 9, 30)
    p.on_fill(fill(s, Side.BUY, 1, 10.0, ts=next_day))
    p.on_fill(fill(s, Side.SELL, 1, 9.5, ts=next_day))
    assert p.realized_usd() == pytest.approx(50.0)
    assert p.daily_pnl_usd() == pytest.approx(-50.0)


def test_underlying_of_maps_roots_and_stock() -> None:
    assert underlying_of("SPXW261218C06000000") == "SPX"
    assert underlying_of("QQQ261218C00500000") == "QQQ"
    assert underlying_of("SPY", AssetClass.EQUITY) == "SPY"


def test_a_fill_without_a_price_is_costed_at_the_mark(chain: SyntheticChain) -> None:
    p = Portfolio()
    s = sym(chain, 600, "C")
    p.on_fill(fill(s, Side.BUY, 1, 10.0))
    p.on_book(chain)
    p.on_fill(fill(s, Side.BUY, 1, float("nan"), structure="x"))
    r = chain.row_of(s)
    mid = (chain.bid[r] + chain.ask[r]) / 2
    assert p.unpriced_fills == 1 and p.position(s) == 2
    assert p.unrealized_usd() == pytest.approx((mid - 10.0) * 100)


def test_strategy_summary_counts_structures_fills_and_pnl(chain: SyntheticChain) -> None:
    p = Portfolio()
    c = sym(chain, 600, "C")
    p.on_fill(fill(c, Side.BUY, 1, 10.0, structure="a", strategy="gs"))
    p.on_fill(fill(c, Side.SELL, 1, 12.0, structure="a", strategy="gs"))
    p.on_fill(fill(c, Side.BUY, 2, 11.0, structure="b", strategy="gs"))
    p.on_fill(fill(sym(chain, 580, "P"), Side.BUY, 1, 3.0, structure="z", strategy="other"))
    p.on_book(chain)
    s = p.strategy_summary("gs")
    r = chain.row_of(c)
    mid = (chain.bid[r] + chain.ask[r]) / 2
    assert (s.structures_opened, s.structures_closed, s.fills) == (2, 1, 3)
    assert s.realized_usd == pytest.approx(200.0)
    assert s.pnl_usd == pytest.approx(200.0 + (mid - 11.0) * 200)
    assert s.greeks.delta_shares == pytest.approx(200 * chain.delta[r])


def test_open_delta_counts_only_the_strategys_open_structures(chain: SyntheticChain) -> None:
    p = Portfolio()
    c, put = sym(chain, 600, "C"), sym(chain, 580, "P")
    p.on_fill(fill(c, Side.BUY, 3, 10.0, structure="closed", strategy="gs"))
    p.on_fill(fill(c, Side.SELL, 3, 12.0, structure="closed", strategy="gs"))
    p.on_fill(fill(c, Side.BUY, 2, 11.0, structure="open", strategy="gs"))
    p.on_fill(fill(put, Side.SELL, 1, 3.0, structure="open", strategy="gs"))
    p.on_fill(fill("SPY", Side.SELL, 40, 600.0, structure="open", asset=AssetClass.EQUITY, strategy="gs"))
    p.on_fill(fill(put, Side.BUY, 5, 3.0, structure="theirs", strategy="other"))
    p.on_book(chain)
    rc, rp = chain.row_of(c), chain.row_of(put)
    assert p.open_delta_shares("gs") == pytest.approx(200 * chain.delta[rc] - 100 * chain.delta[rp] - 40)
    assert p.open_delta_shares("other") == pytest.approx(500 * chain.delta[rp])
    assert p.open_delta_shares("nobody") == 0.0


def test_a_contract_whose_iv_fails_keeps_its_last_good_greeks(chain: SyntheticChain) -> None:
    """A frame where a held row has NaN Greeks (IV unsolvable, e.g. a quote below intrinsic) must not zero its
    exposure: the gate and the hedger would see a flat book that is not flat."""
    p = Portfolio()
    c = sym(chain, 600, "C")
    p.on_fill(fill(c, Side.BUY, 2, 10.0, structure="gs"))
    p.on_book(chain)
    before = p.greeks("SPY")
    assert before.delta_shares > 50
    r = chain.row_of(c)
    for name in ("delta", "gamma", "vega", "theta", "iv"):
        getattr(chain, name)[r] = float("nan")
    p.on_book(chain)
    assert p.greeks("SPY") == before


def _one_contract_book(symbol: str, spot: float) -> OptionBook:
    """A real option book with one contract, quotes written by hand (the test sets bid, ask, flags, surface IV)."""
    book = OptionBook("SPY")
    book.add_contracts([symbol])
    book.set_spot(spot, T0)
    book.surface_fwd[0], book.surface_spot = book.forward[0], spot  # a surface fitted at this spot
    return book


def _quote(book: OptionBook, bid: float, ask: float, flags: int, surface_iv: float, delta: float = 0.55) -> None:
    book.bid[0], book.ask[0], book.flags[0], book.surface_iv[0], book.delta[0] = bid, ask, flags, surface_iv, delta


def test_raw_and_marked_pnl_differ_exactly_when_a_leg_is_surface_marked(chain: SyntheticChain) -> None:
    s = sym(chain, 600, "C")
    book = _one_contract_book(s, 600.0)
    p = Portfolio()
    p.on_fill(fill(s, Side.BUY, 1, 10.0, structure="a", strategy="gs"))

    def both() -> tuple[float, float]:
        summary = p.strategy_summary("gs")
        return summary.pnl_usd, summary.pnl_quote_mid_usd

    _quote(book, 9.9, 10.3, 0, 0.20)
    p.on_book(book)
    assert p.surface_marked() == [] and both() == pytest.approx((10.0, 10.0))  # at mid 10.10 either way
    _quote(book, 9.9, 0.0, FLAG_ONE_SIDED, 0.20)  # the ask vanished: the raw mid halves
    p.on_book(book)
    marked, raw = both()
    assert p.surface_marked() == [s] and p.surface_marks == 1
    assert raw == pytest.approx((4.95 - 10.0) * 100)
    # Same spot, time and surface IV as at the last good quote: the surface mark is that quote's mid.
    assert marked == pytest.approx(10.0)
    snap = p.structure("a")
    assert snap is not None and snap.pnl_mid_usd == pytest.approx(marked) and snap.pnl_quote_mid_usd == raw
    _quote(book, 9.95, 10.25, 0, 0.20)
    p.on_book(book)
    assert p.surface_marked() == [] and both() == pytest.approx((10.0, 10.0))


def test_a_surface_mark_follows_spot_from_the_last_good_quote_and_ignores_a_refit_jump(chain: SyntheticChain) -> None:
    s = sym(chain, 600, "C")
    book = _one_contract_book(s, 600.0)
    p = Portfolio()
    p.on_fill(fill(s, Side.BUY, 1, 10.0, structure="a", strategy="gs"))
    _quote(book, 9.9, 10.3, 0, 0.20)
    p.on_book(book)
    # A refit on a thinned chain doubles the surface IV while the quote is one-sided: the mark stays inside the
    # last two-sided market (9.90-10.30, spot unchanged), not at the surface's 0.40 vol value.
    _quote(book, 9.9, 0.0, FLAG_ONE_SIDED, 0.40)
    p.on_book(book)
    assert p.strategy_summary("gs").pnl_usd == pytest.approx((10.3 - 10.0) * 100)
    # Spot up 1 at an unchanged surface: the mark moves by the surface's value change (about delta), from 10.10.
    book.set_spot(601.0, T0)
    _quote(book, 9.9, 0.0, FLAG_ONE_SIDED, 0.20)
    p.on_book(book)
    t, r, f0 = float(book.t_years[0]), float(book.rate_arr[0]), float(book.surface_fwd[0])
    move = (option_value("SPY", 601.0, f0 * 601.0 / 600.0, 600.0, t, r, 0.20, True)
            - option_value("SPY", 600.0, f0, 600.0, t, r, 0.20, True))
    assert 0.4 < move < 0.7
    assert p.strategy_summary("gs").pnl_usd == pytest.approx((10.1 + move - 10.0) * 100)
    # A live bid above that value wins: nobody marks a leg under the price it can be sold at.
    _quote(book, 11.0, 0.0, FLAG_ONE_SIDED, 0.20)
    p.on_book(book)
    assert p.strategy_summary("gs").pnl_usd == pytest.approx(100.0)


def test_a_leg_filled_after_its_last_mark_is_carried_at_cost(chain: SyntheticChain) -> None:
    """Fills land between book updates: until the next one the new legs are worth what was paid, not 0."""
    p = Portfolio()
    p.on_fill(fill(sym(chain, 600, "C"), Side.BUY, 1, 14.1, structure="gs1", strategy="gs"))
    p.on_fill(fill(sym(chain, 600, "P"), Side.BUY, 1, 14.2, structure="gs1", strategy="gs"))
    p.on_fill(fill("SPY", Side.SELL, 6, 600.0, structure="gs1", asset=AssetClass.EQUITY, strategy="gs"))
    s = p.strategy_summary("gs")
    assert s.pnl_usd == pytest.approx(0.0) and s.pnl_quote_mid_usd == pytest.approx(0.0)
