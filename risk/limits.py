"""Risk limits: the numbers the pre-trade gate and the breakers enforce (``[risk]`` in engine.toml).

One frozen struct, rejecting unknown fields, with constrained types so a bad value fails at load
with its field name. Every field is hot (a reload applies it at once) except the structural ones
listed outside ``HOT_FIELDS``. Units are in the names: ``_usd`` dollars, ``_shares`` delta shares,
``_ms`` milliseconds, ``_pct`` fractions (0.25 = 25 %), ``_vol_pts`` volatility points.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from domain.orders import TradingState
from domain.params import check_hot_fields

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
BreakerAction = Literal["reduce_only", "halted"]


class GreekLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Absolute caps on post-trade Greeks in trader units (per underlying or in total)."""

    max_abs_delta_shares: PositiveFloat = 2_000.0
    max_abs_gamma_shares_per_usd: PositiveFloat = 500.0
    max_abs_vega_usd_per_vol_pt: PositiveFloat = 5_000.0
    max_theta_burn_usd_per_day: PositiveFloat = 2_000.0
    """The most negative theta allowed, as a positive number of dollars per day."""


class StressLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Scenario grid for the post-trade stress test and the loss it may show."""

    spot_shock_pct: Fraction = 0.05
    """Spot moves +-this (and half of it) are combined with each vol shock."""
    vol_shock_vol_pts: NonNegFloat = 5.0
    """Parallel shift of the whole volatility surface, both ways."""
    skew_shock_vol_pts: NonNegFloat = 2.0
    """Skew shock, both ways: vol points added per 10 % of log-moneyness below the forward and taken off above
    (a steeper, then a flatter put skew); 0 turns the two skew scenarios off."""
    to_close_spot_shock_pct: Fraction = 0.01
    """For books holding same-day expiries: spot +-this at today's close, same-day legs at intrinsic."""
    max_loss_usd: PositiveFloat = 25_000.0
    rate: Annotated[float, msgspec.Meta(ge=-0.05, le=0.25)] = 0.04
    """Discount rate used to reprice (the book's per-row forward carries the rest of the carry)."""


class BreakerLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When the breakers trip and what they do."""

    max_daily_loss_usd: PositiveFloat = 10_000.0
    daily_loss_action: BreakerAction = "reduce_only"
    max_consecutive_losses: PositiveInt = 5
    consecutive_losses_action: BreakerAction = "reduce_only"
    stale_data_after_ms: PositiveInt = 10_000
    """A watched feed silent longer than this (event time) trips the stale-data breaker."""
    stale_data_action: BreakerAction = "halted"


class RiskLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the gate checks, in one place."""

    HOT_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "max_quote_age_ms", "max_spread_pct", "spread_floor_usd", "min_open_interest", "min_volume",
            "collar_pct_of_spread",
            "collar_min_usd", "per_underlying", "total", "max_loss_per_structure_usd", "max_open_structures",
            "max_open_structures_per_underlying", "max_underlying_risk_pct", "max_options_allocation_pct",
            "max_orders_per_minute", "max_orders_per_second", "stress", "breakers", "allow_naked_short",
        }
    )

    max_quote_age_ms: PositiveInt = 5_000
    """Every leg's quote (and the underlying's, for stock legs) must be at most this old in event time."""
    max_spread_pct: PositiveFloat = 0.30
    """Bid-ask spread over mid, per opening leg (a spread of at most ``spread_floor_usd`` always passes)."""
    spread_floor_usd: NonNegFloat = 0.05
    min_open_interest: NonNegInt = 0
    min_volume: NonNegInt = 0
    collar_pct_of_spread: NonNegFloat = 0.10
    """A limit may be worse than natural by at most this fraction of the net spread (plus ``collar_min_usd``)."""
    collar_min_usd: NonNegFloat = 0.02
    per_underlying: GreekLimits = GreekLimits()
    total: GreekLimits = GreekLimits(
        max_abs_delta_shares=5_000.0, max_abs_gamma_shares_per_usd=1_000.0,
        max_abs_vega_usd_per_vol_pt=10_000.0, max_theta_burn_usd_per_day=4_000.0,
    )
    max_loss_per_structure_usd: PositiveFloat = 5_000.0
    max_open_structures: PositiveInt = 20
    max_open_structures_per_underlying: PositiveInt = 10
    max_underlying_risk_pct: Fraction = 0.25
    """Capital at risk (sum of structures' max losses) on one underlying over account equity."""
    max_options_allocation_pct: Fraction = 0.50
    """Capital at risk over all underlyings over account equity."""
    max_orders_per_minute: PositiveInt = 150
    """Under Alpaca's 200 requests per minute, leaving room for cancels, replaces and polling."""
    max_orders_per_second: PositiveInt = 10
    stress: StressLimits = StressLimits()
    breakers: BreakerLimits = BreakerLimits()
    allow_naked_short: bool = False
    max_legs: Annotated[int, msgspec.Meta(ge=1, le=4)] = 4
    """Alpaca's mleg orders take at most 4 legs (cold: a structural limit)."""


check_hot_fields(RiskLimits)


def action_state(action: BreakerAction) -> TradingState:
    """The trading state a breaker action moves to."""
    return TradingState.HALTED if action == "halted" else TradingState.REDUCE_ONLY
