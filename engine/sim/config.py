"""The simulator's configuration: the ``[sim]`` section of ``engine.toml``.

Frozen msgspec Structs that reject unknown fields, so a typo fails at load with the field's path.
Times in the simulated market are event time: the clock starts at ``start`` (America/New_York when
naive) and runs ``speed`` times faster than the wall clock (0 = paused; only ``Simulator.advance``
or the control API move it).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


class Dividend(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One cash dividend of an underlying: the spot gaps down by ``amount`` at the ex-date's open."""

    ex_date: dt.date
    """Ex-dividend date (a session): holders of record the evening before receive the dividend."""
    amount: Positive
    """Dividend per share in dollars."""


class UnderlyingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One underlying: its starting level, volatility process and the shape of its listed chain."""

    symbol: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{1,5}$")]
    """Ticker; also the option root."""
    spot: Positive
    """Starting price in dollars."""
    atm_vol: Annotated[float, msgspec.Meta(gt=0, le=3)]
    """Long-run at-the-money implied volatility (annualised fraction, 0.16 = 16 %)."""
    dividend_yield: NonNegative = 0.013
    """Continuous dividend yield used to price its options."""
    vol_of_vol: NonNegative = 0.8
    """Volatility of the variance process (Heston xi)."""
    vol_mean_reversion: NonNegative = 3.0
    """Speed at which variance reverts to ``atm_vol**2`` (per year)."""
    spot_vol_correlation: Annotated[float, msgspec.Meta(ge=-1, le=1)] = -0.7
    """Correlation between spot and variance shocks (negative: vol rises when the market falls)."""
    jumps_per_day: NonNegative = 0.2
    """Expected number of price jumps per trading day."""
    jump_mean: float = -0.004
    """Mean log size of a jump."""
    jump_std: NonNegative = 0.008
    """Standard deviation of the log size of a jump."""
    skew: float = -1.6
    """Smile slope: relative vol change per unit of ln(K/F)/sqrt(T) (negative = put skew)."""
    smile_curvature: NonNegative = 2.5
    """Smile convexity: relative vol change per unit of (ln(K/F)/sqrt(T))**2."""
    term_slope: float = 0.04
    """Additive vol difference between 1-year and very short expiries (positive = upward term structure)."""
    daily_expiries: bool = True
    """List an expiry every session (SPY/QQQ style); otherwise Fridays only."""
    daily_expiry_sessions: Annotated[int, msgspec.Meta(ge=0, le=30)] = 10
    """How many sessions ahead daily expiries are listed."""
    weekly_expiry_weeks: Annotated[int, msgspec.Meta(ge=0, le=20)] = 8
    """How many Friday expiries are listed."""
    monthly_expiry_months: Annotated[int, msgspec.Meta(ge=0, le=24)] = 12
    """How many third-Friday monthlies are listed (about a year by default)."""
    penny_all_prices: bool = True
    """Penny ticks at every price (penny-pilot names like SPY/QQQ); otherwise $0.05 ticks at $3 and above."""
    dividends: tuple[Dividend, ...] = ()
    """Cash dividends (ex-date, amount): the spot gaps down at the ex-date's open, stock holders are paid (short
    holders charged), and short in-the-money calls worth less than the dividend in time value are assigned the
    evening before (``[sim.assignment]``)."""


SPY_DIVIDENDS = tuple(
    Dividend(ex_date=d, amount=1.95)
    for d in (dt.date(2026, 12, 18), dt.date(2027, 3, 19), dt.date(2027, 6, 18), dt.date(2027, 9, 17))
)
"""Quarterly, on the third Friday of the quarter's last month (SPY's pattern); about its 1.3 % yield at $600."""
QQQ_DIVIDENDS = tuple(
    Dividend(ex_date=d, amount=0.78)
    for d in (dt.date(2026, 12, 21), dt.date(2027, 3, 22), dt.date(2027, 6, 21), dt.date(2027, 9, 20))
)
"""Quarterly, on the Monday after the third Friday (QQQ's pattern); about its 0.6 % yield at $520."""

DEFAULT_UNDERLYINGS = (
    UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16, dividends=SPY_DIVIDENDS),
    UnderlyingConfig(symbol="QQQ", spot=520.0, atm_vol=0.20, dividend_yield=0.006, dividends=QQQ_DIVIDENDS),
)


class ExpirationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Alpaca's expiration process (docs/simulator.md, "Alpaca's expiration process"): each rule can be switched off."""

    liquidate: bool = True
    """On an expiry day, close (broker-originated market orders) the expiring positions the account cannot carry."""
    liquidation_minutes_before_close: Annotated[float, msgspec.Meta(ge=0, le=390)] = 45.0
    """When the liquidation starts: 45 minutes before the close is Alpaca's 3:15 PM on a regular day (12:15 PM on a
    13:00 half day, the same offset: Alpaca publishes no half-day time)."""
    near_money_fraction: Annotated[float, msgspec.Meta(ge=0, le=0.5)] = 0.005
    """An expiring contract this close to the money (|spot - strike| / spot) counts as possibly in the money: the
    carry check assumes it may be exercised or assigned when the underlying moves this much either way."""
    exercise_threshold_usd: Annotated[float, msgspec.Meta(ge=0)] = 0.01
    """Automatic exercise (and assignment) at the close when the contract is at least this much in the money on the
    underlying's closing price."""
    long_puts_need_shares: bool = True
    """An in-the-money long put is exercised only against available long shares (shares securing a covered call are
    not available); the rest is closed from the liquidation time (``liquidate``) or left to expire."""


class AssignmentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Early assignment of American short options, decided at the close and booked at the next open (OCC assigns
    overnight). Seeded: the same seed and the same positions give the same assignments."""

    dividend_probability: Probability = 0.8
    """Chance per contract that a short in-the-money call whose time value at the close is below the next
    session's dividend is assigned that night (the count assigned is binomial: often a part of the position)."""
    probability: Probability = 0.05
    """Chance per contract per night that any other short in-the-money option with little time value is assigned."""
    max_time_value_usd: NonNegative = 0.05
    """Time value (per share) at or below which a short in-the-money option is exposed to ``probability``."""


class SimConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the simulator needs; each field's docstring says what it changes."""

    seed: int = 1
    """Seed of every random process in the market and the matching engine (same seed, same market)."""
    speed: Annotated[float, msgspec.Meta(ge=0, le=100_000)] = 1.0
    """Simulated seconds per wall second; 0 pauses the clock (move it with ``advance``)."""
    start: dt.datetime = dt.datetime(2026, 11, 23, 9, 30)
    """Start of simulated time; naive values are America/New_York. Rolled forward to the next open."""
    underlyings: tuple[UnderlyingConfig, ...] = DEFAULT_UNDERLYINGS
    """Underlyings with listed options."""
    risk_free_rate: Annotated[float, msgspec.Meta(ge=-0.05, le=0.5)] = 0.04
    """Continuously compounded rate used to price options."""
    tick_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 100
    """Simulated milliseconds per step of the underlying process."""
    publish_interval_ms: Annotated[float, msgspec.Meta(ge=0, le=10_000)] = 50.0
    """Wall milliseconds between market updates (0 = as fast as the clients read)."""
    option_quote_rate: NonNegative = 1.0
    """Mean option quote updates per contract per simulated second."""
    option_trade_rate: NonNegative = 0.01
    """Mean option trades per contract per simulated second."""
    stock_quote_rate: NonNegative = 20.0
    """Mean stock quote updates per underlying per simulated second."""
    stock_trade_rate: NonNegative = 10.0
    """Mean stock trades per underlying per simulated second."""
    option_symbol_cap: Annotated[int, msgspec.Meta(ge=1)] = 200
    """Most option symbols one stream may subscribe per channel (error 405 above it)."""
    stock_symbol_cap: Annotated[int, msgspec.Meta(ge=1)] = 30
    """Most stock symbols one stream may subscribe per channel (error 405 above it)."""
    max_frame_messages: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 1000
    """Most messages batched in one websocket frame (1000 option quotes are about 110 KiB)."""
    key: Annotated[str, msgspec.Meta(min_length=1)] = "SIMKEY0000000000000000"
    """API key id accepted by REST and streams."""
    secret: Annotated[str, msgspec.Meta(min_length=1)] = "simsecret0000000000000000000000000000000"
    """API secret accepted by REST and streams."""
    connection_limit: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Authenticated connections allowed per stream endpoint (error 406 above it)."""
    auth_timeout_s: Positive = 10.0
    """Seconds a data stream waits for authentication before error 404 and close."""
    initial_cash: NonNegative = 100_000.0
    """Starting cash of the paper account."""
    options_approved_level: Annotated[int, msgspec.Meta(ge=0, le=3)] = 3
    """Options level (0 disabled, 1 covered, 2 long, 3 spreads)."""
    partial_fill_probability: Probability = 0.1
    """Chance that an eligible fill is partial (the rest is re-evaluated later), like Alpaca paper."""
    fill_latency_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Simulated milliseconds between a fill decision and its report (opens cancel/replace races)."""
    rate_limit_per_min: Annotated[int, msgspec.Meta(ge=0)] = 200
    """REST requests per minute per API (trading, data); 0 disables the limit."""
    host: str = "127.0.0.1"
    """Address the servers bind to."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    """HTTP port for trading and market-data REST (0 = a free port)."""
    stream_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    """Websocket port for all streams (0 = a free port)."""
    allow_remote: bool = False
    """Allow binding to a non-loopback address."""
    expiration: ExpirationConfig = ExpirationConfig()
    """Alpaca's expiration process: expiry-day liquidation, automatic exercise, long puts against shares."""
    assignment: AssignmentConfig = AssignmentConfig()
    """Early assignment of short options (dividend-driven and otherwise)."""
