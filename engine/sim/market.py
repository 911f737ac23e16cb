"""The simulated market: underlyings on a seeded stochastic-vol jump process, quotes for every contract.

* Underlyings: Heston-style variance (full-truncation Euler) with spot/vol correlation and
  Poisson jumps, stepped every ``tick_ms`` of simulated trading time. Each underlying has its own
  seeded generators, so the path depends only on the seed and the number of ticks, however the
  ticks are batched.
* Options: a quote is a pure function of the market state and a counter-based hash of
  (seed, tick, contract row), so which contracts update, their sizes and exchanges never depend on
  who is subscribed. Spreads widen away from the money and for cheap options; each side sits on its
  own price's tick in the underlying's class (``engine.sim.ticks``); values come from ``engine.sim.pricing``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from engine.sim.clock import SimClock
from engine.sim.config import SimConfig
from engine.sim.pricing import PriceCache, VolSurface, years_to
from engine.sim.ticks import CODE, ceil_grid, floor_grid
from engine.sim.universe import Universe
from greeks.calendar import NS_PER_MINUTE

OPTION_EXCHANGES = np.frombuffer(b"ABCDEHIJMNOPQSTUWXZ", dtype="S1")
STOCK_EXCHANGES = ("V", "Q", "N", "P", "Z", "K")
TRADING_YEAR_S = 252 * 6.5 * 3600
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
_NORMAL = NormalDist()


def hash_uniform(seed: int, tick: int, stream: int, rows: np.ndarray) -> np.ndarray:
    """Counter-based uniforms in [0, 1): splitmix64 of (seed, tick, stream, row)."""
    base = (seed * _GOLDEN + tick * 0xD1B54A32D192ED03 + stream * 0x8CB92BA72F3D8DD7) & _MASK64
    x = rows.astype(np.uint64) * np.uint64(_GOLDEN) + np.uint64(base)
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(slots=True)
class OptionQuotes:
    """Quotes for a batch of contract rows (parallel arrays)."""

    rows: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    bid_exchange: np.ndarray
    ask_exchange: np.ndarray
    theo: np.ndarray
    sigma: np.ndarray


@dataclass(slots=True)
class StockBar:
    """A completed one-minute bar of an underlying."""

    symbol: str
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    trades: int
    vwap: float


@dataclass(slots=True)
class _Underlying:
    symbol: str
    spot: float
    var: float
    long_var: float
    kappa: float
    xi: float
    rho: float
    jump_rate_per_tick: float
    jump_mean: float
    jump_std: float
    q: float
    normals: np.random.Generator
    jumps: np.random.Generator
    prev_close: float
    day_open: float
    day_high: float = 0.0
    day_low: float = 0.0
    day_volume: float = 0.0
    day_trades: int = 0
    day_pv: float = 0.0
    bar: list[float] = field(default_factory=list)  # [o, h, l, c, volume, trades, pv]
    bar_minute: int = -1


class Market:
    """Market state over simulated time."""

    def __init__(self, config: SimConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self.seed = config.seed
        self.r = config.risk_free_rate
        self.tick_ns = config.tick_ms * 1_000_000
        self.tick_years = config.tick_ms / 1000.0 / TRADING_YEAR_S
        self.unds: list[_Underlying] = []
        for i, u in enumerate(config.underlyings):
            ticks_per_day = 6.5 * 3600 * 1000 / config.tick_ms
            self.unds.append(
                _Underlying(
                    symbol=u.symbol,
                    spot=u.spot,
                    var=u.atm_vol**2,
                    long_var=u.atm_vol**2,
                    kappa=u.vol_mean_reversion,
                    xi=u.vol_of_vol,
                    rho=u.spot_vol_correlation,
                    jump_rate_per_tick=u.jumps_per_day / ticks_per_day,
                    jump_mean=u.jump_mean,
                    jump_std=u.jump_std,
                    q=u.dividend_yield,
                    normals=np.random.default_rng([config.seed, i, 1]),
                    jumps=np.random.default_rng([config.seed, i, 2]),
                    prev_close=u.spot,
                    day_open=u.spot,
                    day_high=u.spot,
                    day_low=u.spot,
                )
            )
        self.surfaces = [VolSurface(u) for u in config.underlyings]
        self.tick_class = np.array([CODE[u.resolved_tick_class] for u in config.underlyings], dtype=np.intp)
        """Tick class code per underlying (``engine.sim.ticks``)."""
        self.q = np.array([u.dividend_yield for u in config.underlyings])
        self.universe = Universe(config.underlyings, clock.calendar, config.listing_history_days)
        self.cache = PriceCache()
        self.last_publish_ns = clock.now_ns
        self.stock_trade_id = 0
        self.last_option_trade: dict[int, tuple[float, int, int, str]] = {}
        """row -> (price, size, ts_ns, exchange) of the latest trade."""
        self.last_stock_trade: dict[int, tuple[float, int, int, str, int]] = {}
        self._list_new_contracts()

    # ---- state -------------------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        return self.clock.now_ns

    @property
    def tick(self) -> int:
        """Index of the current tick since the epoch (the hash counter)."""
        return self.clock.now_ns // self.tick_ns

    @property
    def spots(self) -> np.ndarray:
        return np.array([u.spot for u in self.unds])

    def spot(self, symbol: str) -> float:
        return self.unds[self.universe.und_index[symbol]].spot

    def inst_vol(self, ui: int) -> float:
        return math.sqrt(self.unds[ui].var)

    def _list_new_contracts(self) -> None:
        self.universe.list_session(self.clock.today(), self.spots, self.clock.now_ns)
        self.cache.grow(len(self.universe))

    # ---- time --------------------------------------------------------------------------------
    def advance_to(self, target_ns: int) -> list[StockBar]:
        """Step the underlyings up to ``target_ns`` (never past the session close); return finished bars."""
        target_ns = min(target_ns, self.clock.close_ns)
        n = (target_ns - self.clock.now_ns) // self.tick_ns
        if target_ns == self.clock.close_ns and target_ns > self.clock.now_ns:
            n = max(n, 1)
        bars: list[StockBar] = []
        if n <= 0:
            return bars
        start_ns = self.clock.now_ns
        sqdt = math.sqrt(self.tick_years)
        for u in self.unds:
            z = u.normals.standard_normal((n, 2))
            jumps = u.jumps.random((n, 2))
            spot, var = u.spot, u.var
            rc = math.sqrt(1 - u.rho * u.rho)
            for k in range(n):
                z1, z2 = z[k, 0], z[k, 1]
                sv = math.sqrt(var)
                log_ret = -0.5 * var * self.tick_years + sv * sqdt * z1
                if jumps[k, 0] < u.jump_rate_per_tick:
                    u2 = min(max(float(jumps[k, 1]), 1e-12), 1 - 1e-12)
                    log_ret += u.jump_mean + u.jump_std * _NORMAL.inv_cdf(u2)
                    var *= 1.3
                var = max(
                    var + u.kappa * (u.long_var - var) * self.tick_years + u.xi * sv * sqdt * (u.rho * z1 + rc * z2),
                    1e-4,
                )
                spot *= math.exp(log_ret)
                if spot > u.day_high:
                    u.day_high = spot
                elif spot < u.day_low:
                    u.day_low = spot
                t_ns = start_ns + (k + 1) * self.tick_ns
                minute = t_ns // NS_PER_MINUTE
                if minute != u.bar_minute:
                    if u.bar:
                        bars.append(self._close_bar(u))
                    u.bar_minute = minute
                    u.bar = [spot, spot, spot, spot, 0.0, 0.0, 0.0]
                else:
                    b = u.bar
                    b[1] = max(b[1], spot)
                    b[2] = min(b[2], spot)
                    b[3] = spot
            u.spot, u.var = spot, var
        self.clock.now_ns = min(start_ns + n * self.tick_ns, self.clock.close_ns)
        return bars

    def _close_bar(self, u: _Underlying) -> StockBar:
        o, h, low, c, v, n, pv = u.bar
        return StockBar(u.symbol, u.bar_minute * NS_PER_MINUTE, o, h, low, c, int(v), int(n), pv / v if v else c)

    def at_close(self) -> bool:
        return self.clock.now_ns >= self.clock.close_ns

    def flush_bars(self) -> list[StockBar]:
        """Close the current minute bars (at the session close)."""
        bars = [self._close_bar(u) for u in self.unds if u.bar]
        for u in self.unds:
            u.bar = []
        return bars

    def open_next_session(self) -> None:
        """Roll to the next session: overnight gap, new listings."""
        for u in self.unds:
            u.prev_close = u.spot
            gap = u.normals.standard_normal() * math.sqrt(u.var) * math.sqrt(0.3 / 252)
            u.spot *= math.exp(gap)
            u.day_open = u.day_high = u.day_low = u.spot
            u.day_volume = u.day_pv = 0.0
            u.day_trades = 0
            u.bar = []
        self.clock.roll_to_next_session()
        self._pay_dividends()
        self.last_publish_ns = self.clock.now_ns
        self._list_new_contracts()

    def dividend_on(self, symbol: str, day: dt.date) -> float:
        """Cash dividend per share of ``symbol`` going ex on ``day`` (0 when none)."""
        und = self.config.underlyings[self.universe.und_index[symbol]]
        return sum(d.amount for d in und.dividends if d.ex_date == day)

    def _pay_dividends(self) -> None:
        """At an ex-date's open the spot gaps down by the dividend (before the session's listings are centred)."""
        for u in self.unds:
            amount = self.dividend_on(u.symbol, self.clock.today())
            if amount > 0:
                u.spot = max(u.spot - amount, 0.01)
                u.day_open = u.day_high = u.day_low = u.spot

    def jump_spot(self, symbol: str, relative_move: float) -> None:
        """Move an underlying instantly (fault injection / scenario tests)."""
        u = self.unds[self.universe.und_index[symbol]]
        u.spot *= 1.0 + relative_move

    # ---- option quotes ----------------------------------------------------------------------
    def sigma(self, rows: np.ndarray) -> np.ndarray:
        """Implied vol of each row at the current state."""
        uni = self.universe
        und = uni.und[rows]
        t = years_to(uni.expiry_ns[rows], self.clock.now_ns)
        out = np.empty(len(rows))
        for ui in np.unique(und):
            m = und == ui
            out[m] = self.surfaces[ui].sigma(
                self.inst_vol(int(ui)), self.unds[ui].spot, uni.strike[rows[m]], t[m], self.r, self.unds[ui].q
            )
        return out

    def option_quotes(self, rows: np.ndarray) -> OptionQuotes:
        """Current quotes of ``rows`` (deterministic for the same state and tick)."""
        uni = self.universe
        und = uni.und[rows]
        strike = uni.strike[rows]
        is_call = uni.is_call[rows]
        spot = self.spots[und]
        t = years_to(uni.expiry_ns[rows], self.clock.now_ns)
        sigma = self.sigma(rows)
        q = self.q[und]
        theo = self.cache.theo(rows, spot, sigma, t, self.clock.now_ns, strike, is_call, self.r, q)
        codes = self.tick_class[und]
        x = np.abs(np.log(strike / spot)) / np.sqrt(np.maximum(t, 1 / 365))
        half = 0.5 * (0.01 + 0.004 * theo * (1.0 + x) + 0.02 * np.minimum(x, 3.0))
        # each side on its own price's tick: a penny-class ask of 3.02 would be an invalid price
        bid = floor_grid(codes, np.maximum(theo - half, 0.0))
        ask = ceil_grid(codes, theo + half)
        ask = np.maximum(ask, ceil_grid(codes, bid + 1e-6))
        h1 = hash_uniform(self.seed, self.tick, 3, rows)
        h2 = hash_uniform(self.seed, self.tick, 4, rows)
        depth = np.where(x < 1.0, 400.0, 80.0)
        bid_size = (1 + np.floor(h1 * h1 * depth)).astype(np.uint32)
        ask_size = (1 + np.floor(h2 * h2 * depth)).astype(np.uint32)
        n_ex = len(OPTION_EXCHANGES)
        bid_ex = (h1 * 7919 % 1 * n_ex).astype(np.intp)
        ask_ex = (h2 * 7919 % 1 * n_ex).astype(np.intp)
        return OptionQuotes(
            rows,
            np.round(bid, 2),
            np.round(ask, 2),
            bid_size,
            ask_size,
            OPTION_EXCHANGES[bid_ex],
            OPTION_EXCHANGES[ask_ex],
            theo,
            sigma,
        )

    def updating(self, rows: np.ndarray, dt_s: float) -> np.ndarray:
        """The subset of ``rows`` whose quote changes this step (Poisson rate ``option_quote_rate``)."""
        p = 1.0 - math.exp(-self.config.option_quote_rate * dt_s)
        if p >= 1.0:
            return rows
        return rows[hash_uniform(self.seed, self.tick, 1, rows) < p]

    def option_trades(self, dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Trades printed this step on active contracts: (rows, price, size, exchange)."""
        uni = self.universe
        p = 1.0 - math.exp(-self.config.option_trade_rate * dt_s)
        active = np.flatnonzero(uni.active)
        if p <= 0 or len(active) == 0:
            empty = np.empty(0)
            return active[:0], empty, empty.astype(np.uint32), OPTION_EXCHANGES[:0]
        rows = active[hash_uniform(self.seed, self.tick, 5, active) < p]
        if len(rows) == 0:
            return rows, np.empty(0), np.empty(0, np.uint32), OPTION_EXCHANGES[:0]
        quotes = self.option_quotes(rows)
        h = hash_uniform(self.seed, self.tick, 6, rows)
        price = np.where(
            h < 0.45, quotes.bid, np.where(h > 0.55, quotes.ask, np.round((quotes.bid + quotes.ask) / 2, 2))
        )
        price = np.maximum(price, 0.01)
        size = (1 + np.floor(h * 997 % 1 * 20)).astype(np.uint32)
        exch = OPTION_EXCHANGES[(h * 131 % 1 * len(OPTION_EXCHANGES)).astype(np.intp)]
        now = self.clock.now_ns
        for r, pr, sz, ex in zip(rows.tolist(), price.tolist(), size.tolist(), exch.tolist(), strict=True):
            self.last_option_trade[r] = (pr, sz, now, ex.decode())
        return rows, price, size, exch

    # ---- stock quotes -----------------------------------------------------------------------
    def stock_quote(self, ui: int) -> tuple[float, float, int, int, str, str]:
        """(bid, ask, bid_size, ask_size, bid_exchange, ask_exchange) of an underlying now."""
        spot = self.unds[ui].spot
        h = hash_uniform(self.seed, self.tick, 7 + ui, np.arange(4))
        bid = math.floor(spot * 100) / 100
        ask = round(bid + (0.01 if h[0] < 0.8 else 0.02), 2)
        return (
            bid,
            ask,
            int(1 + h[1] * 8) * 100,
            int(1 + h[2] * 8) * 100,
            STOCK_EXCHANGES[int(h[3] * 6)],
            STOCK_EXCHANGES[int(h[1] * 6)],
        )

    def stock_trades(self, dt_s: float) -> list[tuple[int, float, int, int, str]]:
        """Stock trades this step: (underlying, price, size, id, exchange); feeds minute bars."""
        out: list[tuple[int, float, int, int, str]] = []
        p = 1.0 - math.exp(-self.config.stock_trade_rate * dt_s)
        for ui, u in enumerate(self.unds):
            h = hash_uniform(self.seed, self.tick, 20 + ui, np.arange(3))
            if h[0] >= p:
                continue
            bid, ask, *_ = self.stock_quote(ui)
            price = bid if h[1] < 0.5 else ask
            size = int(1 + h[2] * 300)
            self.stock_trade_id += 1
            ex = STOCK_EXCHANGES[int(h[2] * 6)]
            out.append((ui, price, size, self.stock_trade_id, ex))
            self.last_stock_trade[ui] = (price, size, self.clock.now_ns, ex, self.stock_trade_id)
            u.day_volume += size
            u.day_trades += 1
            u.day_pv += price * size
            if u.bar:
                u.bar[4] += size
                u.bar[5] += 1
                u.bar[6] += price * size
        return out
