"""The router's price walk: start at mid, concede toward natural in ticks, never past the policy's bounds."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from domain.orders import PricePolicy
from engine.kernel.order_pricing import (
    NetQuote,
    TickClass,
    TickGrid,
    option_tick,
    round_to_tick,
    start_price,
    walked_price,
)


def test_option_tick_follows_penny_program():
    assert option_tick(5.20, "SPY") == 0.01
    assert option_tick(2.99, "AAPL") == 0.01
    assert option_tick(3.00, "AAPL") == 0.05
    assert option_tick(1.00, "XYZ", penny=False) == 0.05
    assert option_tick(7.00, "XYZ", penny=False) == 0.10


def test_round_to_tick_modes_land_on_multiples():
    assert round_to_tick(1.234, 0.05, "down") == 1.20
    assert round_to_tick(1.234, 0.05, "up") == 1.25
    assert round_to_tick(1.226, 0.05) == 1.25
    assert round_to_tick(-1.234, 0.01, "up") == -1.23
    assert round_to_tick(0.30, 0.05, "up") == 0.30  # no float dust pushing an exact multiple up


def test_credit_walk_gives_up_credit_step_by_step_until_the_bound():
    # Iron condor: mid credit 1.50, natural credit 1.20 (net -1.50 and -1.20).
    quote = NetQuote(mid=-1.50, natural=-1.20, oldest_quote_ns=0)
    policy = PricePolicy(walk_step_fraction=0.25, max_concession_fraction=0.5)
    prices = [start_price(quote, 0.01, policy)] + [walked_price(quote, k, 0.01, policy) for k in range(1, 6)]
    assert prices[0] == -1.50
    assert prices[1] == -1.42  # -1.50 + 0.075 rounded toward natural
    assert prices[2] == -1.35
    assert prices[3:] == [-1.35, -1.35, -1.35]  # half of the 0.30 distance, no further


def test_debit_walk_never_exceeds_the_policy_limit():
    quote = NetQuote(mid=2.00, natural=2.40, oldest_quote_ns=0)
    policy = PricePolicy(walk_step_fraction=0.5, max_concession_fraction=1.0, limit_price=2.25)
    assert walked_price(quote, 1, 0.01, policy) == 2.20
    assert walked_price(quote, 2, 0.01, policy) == 2.25
    assert walked_price(quote, 5, 0.01, policy) == 2.25


@given(
    mid=st.floats(-20, 20),
    half_spread=st.floats(0, 3),
    step=st.integers(0, 50),
    frac=st.floats(0.01, 1.0),
    max_frac=st.floats(0.0, 1.0),
)
def test_walk_is_monotone_and_bounded(mid, half_spread, step, frac, max_frac):
    quote = NetQuote(mid=mid, natural=mid + half_spread, oldest_quote_ns=0)
    policy = PricePolicy(walk_step_fraction=frac, max_concession_fraction=max_frac)
    p0 = walked_price(quote, step, 0.01, policy)
    p1 = walked_price(quote, step + 1, 0.01, policy)
    assert p1 >= p0 - 1e-12
    assert p1 <= round_to_tick(mid + max_frac * half_spread, 0.01, "up") + 1e-9
    assert math.isclose(p1 / 0.01, round(p1 / 0.01), abs_tol=1e-6)


# ---- ticks by class, from the price itself ------------------------------------------------------------------


def test_tick_grids_take_the_tick_of_the_price_itself_around_three_dollars() -> None:
    penny, nickel = TickGrid.of_class("penny"), TickGrid.of_class("non_penny")
    assert [penny.round_price(p, "up") for p in (2.991, 2.995, 3.0, 3.001, 3.04)] == [3.00, 3.00, 3.00, 3.05, 3.05]
    assert [penny.round_price(p, "down") for p in (2.999, 3.0, 3.04, 3.06)] == [2.99, 3.00, 3.00, 3.05]
    assert [nickel.round_price(p, "up") for p in (2.96, 3.0, 3.01)] == [3.00, 3.00, 3.10]
    assert [nickel.round_price(p, "down") for p in (2.99, 3.09)] == [2.95, 3.00]
    assert TickGrid.of_class("penny_all").round_price(3.011, "up") == 3.02
    # signed nets (a single-leg sale is a credit): "up" concedes, i.e. a lower sale price
    assert penny.round_net(-3.02, "up") == -3.00 and penny.round_net(-3.02, "down") == -3.05


def test_a_penny_class_buy_walking_past_three_dollars_never_sends_3_01() -> None:
    quote = NetQuote(mid=2.99, natural=3.05, oldest_quote_ns=0)
    policy = PricePolicy(walk_step_fraction=0.25)
    grid = TickGrid.of_class("penny")
    prices = [start_price(quote, grid, policy)] + [walked_price(quote, k, grid, policy) for k in range(1, 5)]
    assert prices == [2.99, 3.05, 3.05, 3.05, 3.05]


def test_a_capped_price_lands_on_the_grid_below_an_off_grid_limit() -> None:
    quote = NetQuote(mid=3.00, natural=3.20, oldest_quote_ns=0)
    policy = PricePolicy(walk_step_fraction=1.0, limit_price=3.07)
    assert walked_price(quote, 1, TickGrid.of_class("penny"), policy) == 3.05  # never 3.07, never above it
    assert walked_price(quote, 1, TickGrid.of_class("non_penny"), policy) == 3.00


@given(mid=st.floats(0.05, 20), half_spread=st.floats(0, 3), step=st.integers(0, 30),
       tick_class=st.sampled_from(["penny", "non_penny", "penny_all"]), sell=st.booleans())
def test_every_walked_single_leg_price_is_on_its_own_tick(
    mid: float, half_spread: float, step: int, tick_class: TickClass, sell: bool
) -> None:
    grid = TickGrid.of_class(tick_class)
    net_mid = -mid if sell else mid
    quote = NetQuote(mid=net_mid, natural=net_mid + half_spread, oldest_quote_ns=0)
    price = abs(walked_price(quote, step, grid, PricePolicy()))
    tick = grid.tick_at(price)
    assert math.isclose(price / tick, round(price / tick), abs_tol=1e-6), (price, tick)
