"""Read-only views the gate and the strategies see; engine/ implements them.

``ChainView`` is the option book of one underlying as a struct of arrays (one row per contract).
Greeks in the book are per share in the kernel's units: delta per 1.00 of spot, gamma per 1.00 of
spot, vega per 1.00 of sigma, theta per year (calendar), rho per 1.00 of rate. ``PortfolioGreeks``
are in trader units: delta in shares, gamma in shares per $1, vega in $ per vol point, theta in $
per calendar day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Row flags (bit mask in ChainView.flags).
FLAG_CROSSED = 1
FLAG_LOCKED = 2
FLAG_ONE_SIDED = 4
FLAG_NO_QUOTE = 8
FLAG_STALE = 16
"""No quote update for longer than the engine's staleness limit."""
FLAG_UNUSABLE = FLAG_CROSSED | FLAG_ONE_SIDED | FLAG_NO_QUOTE | FLAG_STALE
"""A quote whose own IV, Greeks and mid are not trusted (the volatility surface's stand in, where there is one)."""


class ChainView(Protocol):
    """An option chain of one underlying, one row per contract; arrays are views, never copy them per tick.

    Members are read-only properties so that any object holding these attributes (plain or computed) conforms.
    """

    @property
    def underlying(self) -> str: ...

    @property
    def spot(self) -> float: ...

    @property
    def spot_ts_ns(self) -> int: ...

    @property
    def ts_ns(self) -> int:
        """Event time of the last update applied."""
        ...

    @property
    def symbols(self) -> Sequence[str]: ...

    @property
    def strike(self) -> F64: ...

    @property
    def expiry(self) -> npt.NDArray[np.datetime64]:
        """Expiry date per row (numpy datetime64[D])."""
        ...

    @property
    def t_years(self) -> F64:
        """Year fraction to expiry (to the close of the expiry date) as of the last reprice."""
        ...

    @property
    def is_call(self) -> npt.NDArray[np.bool_]: ...

    @property
    def bid(self) -> F64: ...

    @property
    def ask(self) -> F64: ...

    @property
    def bid_size(self) -> I64: ...

    @property
    def ask_size(self) -> I64: ...

    @property
    def quote_ts_ns(self) -> I64: ...

    @property
    def last_price(self) -> F64: ...

    @property
    def open_interest(self) -> I64: ...

    @property
    def volume(self) -> I64: ...

    @property
    def forward(self) -> F64:
        """Forward per row (the forward of its expiry)."""
        ...

    @property
    def iv(self) -> F64: ...

    @property
    def surface_iv(self) -> F64:
        """Each row's IV on the fitted volatility surface (NaN where the underlying has none yet)."""
        ...

    @property
    def surface_fwd(self) -> F64:
        """The forward each row's ``surface_iv`` is measured against (its log-moneyness is ln(K / surface_fwd))."""
        ...

    @property
    def delta(self) -> F64: ...

    @property
    def gamma(self) -> F64: ...

    @property
    def vega(self) -> F64: ...

    @property
    def theta(self) -> F64: ...

    @property
    def rho(self) -> F64: ...

    @property
    def status(self) -> npt.NDArray[np.int8]: ...

    @property
    def flags(self) -> npt.NDArray[np.int8]: ...

    def row_of(self, symbol: str) -> int:
        """Row of ``symbol``, or -1 when the book does not hold it."""
        ...

    def __len__(self) -> int: ...


class MarketView(Protocol):
    """All chains, by underlying, plus underlying quotes."""

    def chain(self, underlying: str) -> ChainView | None: ...

    def spot(self, underlying: str) -> float:
        """Last underlying mid (NaN when unknown)."""
        ...

    def spot_ts_ns(self, underlying: str) -> int: ...

    def vol_stats(self, underlying: str) -> VolStats | None:
        """The underlying's volatility term structure, skew and IV rank from its surface (None before a fit)."""
        ...


class VolStats(msgspec.Struct, frozen=True):
    """One underlying's implied-volatility summary from its fitted surface (vols as fractions, 0.20 = 20 %).

    ``iv_rank`` (0-100: where today's 30-day ATM IV sits between the look-back's low and high) and
    ``iv_percentile`` (0-100: share of look-back days with a lower value) are NaN while ``history_days`` is
    below the configured minimum (``rank_ready`` False: "insufficient history").
    """

    underlying: str
    ts_ns: int
    atm_iv_30d: float
    """30-day constant-maturity ATM (forward) implied vol, interpolated in total variance."""
    rr25: float
    """25-delta risk reversal at 30 days: IV(25-delta call) - IV(25-delta put)."""
    bf25: float
    """25-delta butterfly at 30 days: mean of the 25-delta wings' IV less the ATM IV."""
    term_slope: float
    """ATM IV at 90 days less ATM IV at 30 days (positive: contango)."""
    iv_rank: float = float("nan")
    iv_percentile: float = float("nan")
    history_days: int = 0
    rank_ready: bool = False


class PortfolioGreeks(msgspec.Struct, frozen=True):
    """Greeks of a set of positions in trader units (see module docstring)."""

    delta_shares: float = 0.0
    gamma_shares_per_usd: float = 0.0
    vega_usd_per_vol_pt: float = 0.0
    theta_usd_per_day: float = 0.0

    def __add__(self, other: PortfolioGreeks) -> PortfolioGreeks:
        return PortfolioGreeks(
            self.delta_shares + other.delta_shares,
            self.gamma_shares_per_usd + other.gamma_shares_per_usd,
            self.vega_usd_per_vol_pt + other.vega_usd_per_vol_pt,
            self.theta_usd_per_day + other.theta_usd_per_day,
        )


class AccountView(msgspec.Struct, frozen=True):
    """The broker account as last fetched."""

    equity: float
    cash: float
    buying_power: float
    options_buying_power: float
    options_trading_level: int = 3


class PortfolioView(Protocol):
    """Positions per leg and per structure, P&L and Greeks, as the gate and strategies read them."""

    def position(self, symbol: str) -> float:
        """Signed quantity held (contracts or shares); 0 when flat."""
        ...

    def positions(self) -> Mapping[str, float]: ...

    def greeks(self, underlying: str | None = None) -> PortfolioGreeks:
        """Greeks per underlying, or the total when ``underlying`` is None."""
        ...

    def open_structures(self, strategy_id: str | None = None, underlying: str | None = None) -> int: ...

    def daily_pnl_usd(self) -> float:
        """Realized plus unrealized P&L since the start of the trading day (marked at mid)."""
        ...


class RiskCapitalView(Protocol):
    """What the gate needs beyond ``PortfolioView``: positions and capital at risk per underlying.

    ``engine.kernel.portfolio.Portfolio`` implements both protocols.
    """

    def positions_of(self, underlying: str) -> Mapping[str, float]:
        """Signed quantities held on one underlying: option symbols in contracts, the underlying in shares."""
        ...

    def risk_capital_usd(self, underlying: str | None = None) -> float:
        """Sum of the exact max losses of the open structures (on one underlying, or all)."""
        ...


class GatePortfolioView(PortfolioView, RiskCapitalView, Protocol):
    """The portfolio as the gate reads it."""
