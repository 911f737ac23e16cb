"""The live volatility surface: one calendar-constrained SVI fit per underlying, refitted off the frame path.

What it feeds (all through the option book's ``surface_iv`` column, one surface IV per row):

* the book's rows whose quote is stale, one-sided, crossed or empty get their IV and Greeks from the surface
  (status ``greeks.status.FROM_SURFACE``) instead of none or an old one;
* the portfolio marks a leg from the surface when its quote is not fresh, two-sided and inside the width
  limit (``SurfaceSettings.max_mark_spread_*``), anchored to the leg's last good quote (``MarkPolicy``);
* delta-targeted strike selection reads deltas at surface IVs (``surface_deltas``);
* the gate's stress scenarios shift the surface (parallel and skew shocks) instead of each leg's own IV.

When: every ``refit_seconds`` of event time, and sooner (not more often than ``min_refit_seconds``) once spot has
moved ``spot_move_bp`` or a ``quote_share`` of the chain's rows has new quotes since the last fit. A refit is
a few milliseconds per underlying, so live it is deferred to run after the frame that made it due (``defer``,
the event loop's ``call_soon``); replay runs it inline at the same event time, which keeps replays deterministic.

Inputs are the out-of-the-money two-sided mids with their bid/ask bands (``greeks.surface.smile_inputs``) in the
book's convention (Black-Scholes on the forward). For American names the early-exercise premium at the
quote's own IV is taken off first, so the surface holds European-equivalent IVs; a surface value adds the premium
back at the surface IV (``theo_price``). Index roots (``EUROPEAN_ROOTS``) are European already.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt
import structlog
from numba import njit

from domain.views import FLAG_CROSSED, FLAG_NO_QUOTE, FLAG_ONE_SIDED, FLAG_STALE, VolStats
from engine.kernel.book import OptionBook
from engine.kernel.clock import EventClock, Timer
from engine.kernel.events import BookUpdated, SurfaceFitted, SurfaceSmile
from engine.kernel.market import Market
from greeks.american import early_exercise_premium
from greeks.black import greeks_row, price_row
from greeks.calendar import NS_PER_SECOND
from greeks.status import FROM_SURFACE, OK
from greeks.surface import ExpiryQuotes, PublishedSmile, SmileInputs, SurfaceFitter, smile_inputs
from greeks.svi import FIT_STATUS_NAMES, implied_vol_from_svi

log = structlog.get_logger(__name__)

F64 = npt.NDArray[np.float64]
BAD_QUOTE = FLAG_STALE | FLAG_ONE_SIDED | FLAG_CROSSED | FLAG_NO_QUOTE
"""Row flags under which a quote's own IV is not trusted and the surface's is used."""
EUROPEAN_ROOTS = frozenset({"SPX", "SPXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "VIX", "VIXW", "DJX", "MRUT", "XND"})
"""Option roots with European exercise (cash-settled indexes): no early-exercise premium to take off."""


class SurfaceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[surface]``: when the surface is refitted and when a leg is marked from it."""

    enabled: bool = True
    refit_seconds: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    """Cadence of the refit, in event time."""
    min_refit_seconds: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    """Change-triggered refits come no closer together than this."""
    spot_move_bp: Annotated[float, msgspec.Meta(gt=0.0)] = 10.0
    """A spot move of this many basis points since the last fit makes a refit due."""
    quote_share: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.25
    """New quotes on this share of the chain's rows since the last fit make a refit due."""
    max_mark_spread_pct: Annotated[float, msgspec.Meta(gt=0.0)] = 0.5
    """A quote wider than this share of its mid (and than ``max_mark_spread_usd``) is marked from the surface."""
    max_mark_spread_usd: Annotated[float, msgspec.Meta(ge=0.0)] = 0.10
    """Widths up to this many dollars are always accepted (a one-tick market on a cheap option)."""


def _is_european(underlying: str) -> bool:
    return underlying in EUROPEAN_ROOTS


def expiry_quotes(book: OptionBook) -> list[ExpiryQuotes]:
    """Fit inputs of every expiry of ``book`` with a time to expiry: OTM two-sided quotes not stale or crossed."""
    n = len(book)
    if n == 0 or not (book.spot > 0.0):
        return []
    usable = ((book.flags & BAD_QUOTE) == 0) & (book.t_years > 0.0)
    bid = np.where(usable, book.bid, np.nan)
    ask = np.where(usable, book.ask, np.nan)
    american = not _is_european(book.underlying)
    out: list[ExpiryQuotes] = []
    expiries, inverse = np.unique(book.expiry, return_inverse=True)
    for e_no, expiry in enumerate(expiries):
        rows = np.flatnonzero(inverse == e_no)
        t = float(np.max(book.t_years[rows]))
        if not (t > 0.0):
            continue
        fwd = float(book.forward[rows[0]])
        r = float(book.rate_arr[rows[0]])
        q = float(book.div_arr[rows[0]])
        if not (fwd > 0.0):
            continue
        strikes, pos = np.unique(book.strike[rows], return_inverse=True)
        m = strikes.shape[0]
        cb, ca, pb, pa = (np.full(m, np.nan) for _ in range(4))
        calls = book.is_call[rows]
        cb[pos[calls]], ca[pos[calls]] = bid[rows[calls]], ask[rows[calls]]
        pb[pos[~calls]], pa[pos[~calls]] = bid[rows[~calls]], ask[rows[~calls]]
        if american:
            cb, ca, pb, pa = _take_off_premium(strikes, cb, ca, pb, pa, fwd, book.spot, t, r, q)
        inputs = smile_inputs(strikes, cb, ca, pb, pa, fwd, math.exp(-r * t), t)
        if inputs.k.shape[0]:
            out.append(ExpiryQuotes(str(expiry), t, inputs))
    return out


def _take_off_premium(strikes: F64, cb: F64, ca: F64, pb: F64, pa: F64, fwd: float, spot: float, t: float, r: float,
                      q: float) -> tuple[F64, F64, F64, F64]:
    """OTM quotes less the early-exercise premium at each mid's own IV (the same premium off bid and ask)."""
    from greeks.black import implied_vol

    use_call = strikes >= fwd
    mid = np.where(use_call, 0.5 * (cb + ca), 0.5 * (pb + pa))
    ok = np.isfinite(mid) & (mid > 0.0)
    if not ok.any():
        return cb, ca, pb, pa
    sig = implied_vol(mid[ok], spot, strikes[ok], t, r, q, use_call[ok])[0]
    eep = np.zeros_like(mid)
    eep[ok] = np.nan_to_num(early_exercise_premium(spot, strikes[ok], t, r, q,
                                                   np.where(np.isfinite(sig), sig, 0.2), use_call[ok]))
    return cb - eep, ca - eep, pb - eep, pa - eep


@njit(cache=True, nogil=True)
def _surface_greeks_kernel(mask: npt.NDArray[np.bool_], surface_iv: F64, spot: F64, strike: F64, t: F64, r: F64,
                           q: F64, is_call: npt.NDArray[np.bool_], iv: F64, status: npt.NDArray[np.int8], delta: F64,
                           gamma: F64, vega: F64, theta: F64, rho: F64) -> int:
    n = 0
    for i in range(mask.shape[0]):
        if not mask[i]:
            continue
        s = surface_iv[i]
        if not (s > 0.0) or not (t[i] > 0.0):
            continue
        d, g, v, th, rh = greeks_row(spot[i], strike[i], t[i], r[i], q[i], s, is_call[i])
        if not math.isfinite(d):
            continue
        iv[i], delta[i], gamma[i], vega[i], theta[i], rho[i] = s, d, g, v, th, rh
        status[i] = FROM_SURFACE
        n += 1
    return n


def apply_surface_greeks(book: OptionBook, mask: npt.NDArray[np.bool_]) -> int:
    """Give the rows of ``mask`` IV and Greeks at their surface IV (status ``FROM_SURFACE``); rows repriced."""
    return int(_surface_greeks_kernel(mask, book.surface_iv, book.spot_arr, book.strike, book.t_years, book.rate_arr,
                                      book.div_arr, book.is_call, book.iv, book.status, book.delta, book.gamma,
                                      book.vega, book.theta, book.rho))


def needs_surface(book: OptionBook) -> npt.NDArray[np.bool_]:
    """Rows whose own quote gives no trustworthy IV: flagged stale/one-sided/crossed/empty, or unsolved."""
    bad: npt.NDArray[np.bool_] = ((book.flags & BAD_QUOTE) != 0) | ((book.status != OK) & (book.status != FROM_SURFACE))
    return bad


def theo_price(book: OptionBook, row: int) -> float:
    """The surface value of one row at the current spot (NaN without a surface IV): Black-Scholes at the surface
    IV, plus the early-exercise premium at that IV for an American name."""
    return option_value(book.underlying, book.spot, float(book.strike[row]), float(book.t_years[row]),
                        float(book.rate_arr[row]), float(book.div_arr[row]), float(book.surface_iv[row]),
                        bool(book.is_call[row]))


def option_value(underlying: str, spot: float, strike: float, t: float, r: float, q: float, sigma: float,
                 is_call: bool) -> float:
    """Black-Scholes at ``sigma`` plus the early-exercise premium at ``sigma`` for an American name (NaN on bad
    input): ``theo_price`` at given inputs."""
    if not (sigma > 0.0) or not (t > 0.0) or not (spot > 0.0):
        return math.nan
    args = (spot, strike, t, r, q, sigma, is_call)
    price = float(price_row(*args))
    if not _is_european(underlying):
        price += float(np.nan_to_num(early_exercise_premium(*args))[()])
    return price


def surface_deltas(book: OptionBook, rows: npt.NDArray[np.int64]) -> F64:
    """Call/put deltas of ``rows`` at their surface IV and the current spot; the row's own delta where the
    surface has no value."""
    out = np.array(book.delta[rows], dtype=np.float64)
    for j, r in enumerate(rows.tolist()):
        s = book.surface_iv.item(r)
        if s > 0.0:
            d = greeks_row(book.spot, book.strike.item(r), book.t_years.item(r), book.rate_arr.item(r),
                           book.div_arr.item(r), s, bool(book.is_call.item(r)))[0]
            if math.isfinite(d):
                out[j] = d
    return out


class _State:
    """One underlying's fitter and refit bookkeeping."""

    __slots__ = ("changed", "fit_spot", "fit_ts_ns", "fitter", "generation", "history", "pending", "published",
                 "rows_at_fit")

    def __init__(self) -> None:
        self.fitter = SurfaceFitter()
        self.published: list[PublishedSmile] = []
        self.fit_ts_ns = 0
        self.fit_spot = math.nan
        self.changed = 0
        self.pending = False
        self.generation = -1
        self.rows_at_fit = -1
        self.history: list[float] = []


StatsFn = Callable[[str, Sequence[PublishedSmile], Sequence[float], int], VolStats | None]


class VolSurfaces:
    """The surfaces of every book of ``market``: refit scheduling, the book's ``surface_iv`` and the events."""

    def __init__(self, market: Market, clock: EventClock, publish: Callable[[Any], None],
                 settings: SurfaceSettings | None = None, *,
                 defer: Callable[[Callable[[], None]], object] | None = None,
                 vol_stats: StatsFn | None = None) -> None:
        self.market = market
        self.clock = clock
        self.publish = publish
        self.settings = settings or SurfaceSettings()
        self.defer = defer
        """Runs a due refit after the current frame (live: the loop's ``call_soon``); None: inline (replay)."""
        self.vol_stats = vol_stats
        """Turns a published surface (and the look-back history) into ``VolStats``; None: no stats."""
        self._states: dict[str, _State] = {}
        self._timer: Timer | None = None
        self.refits = 0
        self.fit_ns_total = 0

    def start(self) -> None:
        if self.settings.enabled and self._timer is None:
            self._timer = self.clock.every(int(self.settings.refit_seconds * NS_PER_SECOND), self._on_timer,
                                           name="surface_refit")

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def state(self, underlying: str) -> _State:
        st = self._states.get(underlying)
        if st is None:
            st = self._states[underlying] = _State()
        return st

    def published(self, underlying: str) -> list[PublishedSmile]:
        """The smiles in force for ``underlying`` (shortest first; ``params`` None where none passed yet)."""
        st = self._states.get(underlying)
        return [] if st is None else list(st.published)

    def set_history(self, underlying: str, daily_atm_iv_30d: Sequence[float]) -> None:
        """The look-back of daily 30-day ATM IVs (oldest first) that IV rank and percentile are measured on."""
        self.state(underlying).history = [float(x) for x in daily_atm_iv_30d if math.isfinite(x)]

    # ------------------------------------------------------------------------------ triggers

    def on_book(self, update: BookUpdated) -> None:
        """Count what changed since the last fit; make a refit due on enough change."""
        if not self.settings.enabled:
            return
        st = self.state(update.underlying)
        st.changed += update.rows_changed
        if st.pending:
            return
        book = self.market.books.get(update.underlying)
        if book is None or len(book) == 0:
            return
        s = self.settings
        moved = (math.isfinite(st.fit_spot) and book.spot > 0
                 and abs(book.spot / st.fit_spot - 1.0) * 1e4 >= s.spot_move_bp)
        due = (st.fit_ts_ns == 0 or moved or st.changed >= s.quote_share * len(book)
               or st.generation != book.generation or st.rows_at_fit != len(book))
        if due and update.ts_event_ns - st.fit_ts_ns >= s.min_refit_seconds * NS_PER_SECOND:
            self._schedule(update.underlying)

    def _on_timer(self, now_ns: int) -> None:
        for u, book in self.market.books.items():
            if len(book) and not self.state(u).pending:
                self._schedule(u)

    def _schedule(self, underlying: str) -> None:
        st = self.state(underlying)
        st.pending = True
        if self.defer is None:
            self.refit(underlying)
        else:
            self.defer(lambda: self._deferred_refit(underlying))

    def _deferred_refit(self, underlying: str) -> None:
        self.refit(underlying)

    # ------------------------------------------------------------------------------ the refit

    def refit(self, underlying: str) -> SurfaceFitted | None:
        """Fit ``underlying``'s surface now, write the book's surface IVs and surface Greeks, publish the event."""
        st = self.state(underlying)
        st.pending = False
        book = self.market.books.get(underlying)
        if book is None or not (book.spot > 0.0):
            return None
        started = time.perf_counter_ns()
        now_ns = book.ts_ns
        quotes = expiry_quotes(book)
        st.published = st.fitter.fit(quotes, now_ns / NS_PER_SECOND) if quotes else []
        self._write_surface_iv(book, st.published)
        book.has_surface = bool(np.isfinite(book.surface_iv).any())
        apply_surface_greeks(book, needs_surface(book))
        st.fit_ts_ns, st.fit_spot, st.changed = now_ns, book.spot, 0
        st.generation, st.rows_at_fit = book.generation, len(book)
        stats = self.vol_stats(underlying, st.published, st.history, now_ns) if self.vol_stats else None
        if stats is not None:
            self.market.vol[underlying] = stats
        elapsed = time.perf_counter_ns() - started
        self.refits += 1
        self.fit_ns_total += elapsed
        event = SurfaceFitted(
            underlying=underlying, spot=book.spot, smiles=tuple(_smile_record(p, quotes) for p in st.published),
            stats=stats, fit_us=elapsed // 1000, ts_event_ns=now_ns, ts_init_ns=time.time_ns())
        self.publish(event)
        return event

    @staticmethod
    def _write_surface_iv(book: OptionBook, published: list[PublishedSmile]) -> None:
        book.surface_iv.fill(np.nan)
        if not published:
            return
        by_expiry = {p.expiry: p for p in published if p.params is not None}
        if not by_expiry:
            return
        expiry_str = book.expiry.astype(str)
        for expiry, p in by_expiry.items():
            rows = np.flatnonzero(expiry_str == expiry)
            fwd = book.forward[rows]
            ok = fwd > 0.0
            rows, fwd = rows[ok], fwd[ok]
            assert p.params is not None
            book.surface_iv[rows] = implied_vol_from_svi(p.params, np.log(book.strike[rows] / fwd), p.t)


def _smile_record(p: PublishedSmile, quotes: list[ExpiryQuotes]) -> SurfaceSmile:
    """One published smile as the event carries it, with this round's market points for plotting."""
    inputs: SmileInputs | None = next((q.inputs for q in quotes if q.expiry == p.expiry), None)
    prm = p.params
    return SurfaceSmile(
        expiry=p.expiry, t=p.t, status=FIT_STATUS_NAMES.get(p.status, str(p.status)),
        age_s=p.age if math.isfinite(p.age) else -1.0,
        params=() if prm is None else (prm.a, prm.b, prm.rho, prm.m, prm.sigma),
        k=() if inputs is None else tuple(inputs.k.tolist()),
        iv_mid=() if inputs is None else tuple(inputs.iv_mid.tolist()),
        iv_bid=() if inputs is None else tuple(inputs.iv_bid.tolist()),
        iv_ask=() if inputs is None else tuple(inputs.iv_ask.tolist()),
    )
