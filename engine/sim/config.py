"""The simulator's configuration: the ``[sim]`` section of ``engine.toml``.

Frozen msgspec Structs that reject unknown fields, so a typo fails at load with the field's path.
Times in the simulated market are event time: the clock starts at ``start`` (America/New_York when
naive) and runs ``speed`` times faster than the wall clock (0 = paused; only ``Simulator.advance``
or the control API move it).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
TickClass = Literal["penny_all", "penny", "non_penny"]
"""Minimum price increment class of an underlying's options: ``penny_all`` $0.01 at every price (SPY, QQQ,
IWM), ``penny`` (Penny Interval Program) $0.01 below $3.00 and $0.05 at or above, ``non_penny`` $0.05 below
$3.00 and $0.10 at or above."""
PENNY_ALL_SYMBOLS = frozenset({"SPY", "QQQ", "IWM"})
"""Names quoted in pennies at every price; the default class of any other name is ``penny``."""


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
    tick_class: TickClass | None = None
    """Tick class of its options: "penny_all", "penny" or "non_penny" (unset: "penny_all" for SPY, QQQ and
    IWM, "penny" otherwise). The contract listing's ppind is true for the penny classes."""
    penny_all_prices: bool | None = None
    """Older spelling, still read: true = tick_class "penny_all", false = "penny"."""
    dividends: tuple[Dividend, ...] = ()
    """Cash dividends (ex-date, amount): the spot gaps down at the ex-date's open, stock holders are paid (short
    holders charged), and short in-the-money calls worth less than the dividend in time value are assigned the
    evening before (``[sim.assignment]``)."""

    def __post_init__(self) -> None:
        legacy = None if self.penny_all_prices is None else ("penny_all" if self.penny_all_prices else "penny")
        if legacy is not None and self.tick_class is not None and legacy != self.tick_class:
            raise ValueError(
                f"{self.symbol}: penny_all_prices = {str(self.penny_all_prices).lower()} contradicts "
                f"tick_class = {self.tick_class!r} (set tick_class only)"
            )

    @property
    def resolved_tick_class(self) -> TickClass:
        """The effective tick class (``tick_class``, else the legacy flag, else by symbol)."""
        if self.tick_class is not None:
            return self.tick_class
        if self.penny_all_prices is not None:
            return "penny_all" if self.penny_all_prices else "penny"
        return "penny_all" if self.symbol in PENNY_ALL_SYMBOLS else "penny"


class OrderRulesConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Alpaca's harsher order rules (docs/simulator.md, "Alpaca's order rules"); every one on by default.

    Tests switch them at run time with ``Simulator.set_order_rules`` or ``POST /sim/rules``.
    """

    closing_qty_held: bool = True
    """Open closing option orders hold their contracts: a new closing order beyond what is not held, and a
    replace (PATCH) of a closing order (its own legs are held), are refused with 403 "insufficient qty available
    for order" (Alpaca-API #282)."""
    tick_classes: bool = True
    """Option limit/stop prices must sit on their class's tick at that price (422 "sub-penny increment");
    off: any whole-cent price is accepted. mleg net prices are whole cents either way."""
    closed_market: bool = True
    """Orders and replaces arriving at or after the session close (before the next session) are refused (403)."""
    wash_trades: bool = True
    """A single-leg order that could execute against the account's own working order on the same symbol
    (opposite side; prices crossing, or either a market order) is refused with 403 "potential wash trade
    detected. use complex orders". mleg orders are never refused for it."""
    wash_trade_mleg_legs: bool = True
    """Working mleg legs count against a new single-leg order as market-priced orders (a leg has no price of
    its own, only the package's net)."""
    limit_price_away_fraction: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """Refuse (403) a limit that is through the far side of the market (buy above the ask, sell below the bid,
    mleg net above the natural) by more than this fraction of the mid's magnitude, or by more than
    ``limit_price_away_min_usd`` when that is larger. 0 turns the check off. Alpaca publishes no threshold."""
    limit_price_away_min_usd: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """Smallest distance (dollars per share, or net per unit for mleg) the price-away check tolerates."""
    closing_only_ratio: Annotated[float, msgspec.Meta(ge=0)] = 6.0
    """While any position's market value exceeds this multiple of equity (6 = 600 %), opening orders are refused
    (403) and only closing ones accepted. 0 turns the restriction off."""


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
    listing_history_days: Annotated[int, msgspec.Meta(ge=0, le=1_000)] = 0
    """List the first session's chain as it would stand had listing run this many days before the start: each
    expiry with the strikes of its own first listing day (wider and coarser the further out it was listed), as
    a real chain and this simulator after months have them. 0 lists every expiry fresh at the start
    (``engine.sim.universe``). About 400 covers the monthlies a year out."""
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
    order_rules: OrderRulesConfig = OrderRulesConfig()
    """Alpaca's harsher order rules, each switchable (all on: as harsh as Alpaca)."""
