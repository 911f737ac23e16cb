"""The live volatility surface: one calendar-constrained SVI fit per underlying, refitted off the frame path.

What it feeds (all through the option book's ``surface_iv`` column, one surface IV per row):

* the book's rows whose quote is stale, one-sided, crossed or empty get their IV and Greeks from the surface
  (status ``greeks.status.FROM_SURFACE``) instead of none or an old one;
* the portfolio marks a leg from the surface when its quote is not fresh, two-sided and inside the width
  limit (``SurfaceSettings.max_mark_spread_*``), anchored to the leg's last good quote (``MarkPolicy``);
* delta-targeted strike selection reads deltas at surface IVs (``surface_deltas``);
* the gate's stress scenarios shift the surface (parallel and skew shocks) instead of each leg's own IV.

When: every ``refit_seconds`` of event time, and sooner (not more often than ``min_refit_seconds``) once spot has
moved ``spot_move_bp`` or a ``quote_share`` of the chain's rows has new quotes since the last fit. A refit costs
tens of milliseconds for a chain of a few thousand contracts, so live it runs in a worker process
(``ProcessOffload``) on a copy of the book (``BookSnapshot``) and is put in force on the loop when it is done
(a fit the book outgrew meanwhile is dropped); replay runs it inline at the event time that made it due, which
keeps replays deterministic.

Inputs are the out-of-the-money two-sided mids with their bid/ask bands (``greeks.surface.smile_inputs``) in the
book's convention (Black-Scholes on the forward). For American names the early-exercise premium at the
quote's own IV is taken off first, so the surface holds European-equivalent IVs; a surface value adds the premium
back at the surface IV (``theo_price``). Index roots (``EUROPEAN_ROOTS``) are European already.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt
import structlog

from domain.views import FLAG_UNUSABLE, VolStats
from engine.kernel.book import OptionBook
from engine.kernel.clock import EventClock, Timer
from engine.kernel.events import BookUpdated, SurfaceFitted, SurfaceSmile
from engine.kernel.market import Market
from greeks.american import early_exercise_premium
from greeks.black import greeks_row, price_row
from greeks.calendar import NS_PER_SECOND
from greeks.forward import parity_forward
from greeks.status import OK
from greeks.surface import ExpiryQuotes, PublishedSmile, SmileInputs, SurfaceFitter, smile_inputs
from greeks.svi import (
    FIT_STATUS_NAMES,
    early_exercise_premium_of_prices,
    implied_vol_from_svi,
    smile_from_fields,
    wing_fields,
)

log = structlog.get_logger(__name__)


F64 = npt.NDArray[np.float64]
EUROPEAN_ROOTS = frozenset({"SPX", "SPXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "VIX", "VIXW", "DJX", "MRUT", "XND"})
"""Option roots with European exercise (cash-settled indexes): no early-exercise premium to take off."""


class SurfaceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[surface]``: when the surface is refitted and when a leg is marked from it."""

    enabled: bool = True
    """Fit surfaces (off: rows without a usable quote have no IV, legs are marked at their quote mid)."""
    refit_seconds: Annotated[float, msgspec.Meta(gt=0.0)] = 10.0
    """Cadence of the refit, in event time."""
    min_refit_seconds: Annotated[float, msgspec.Meta(ge=0.0)] = 5.0
    """Change-triggered refits come no closer together than this."""
    spot_move_bp: Annotated[float, msgspec.Meta(gt=0.0)] = 10.0
    """A spot move of this many basis points since the last fit makes a refit due."""
    quote_share: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.5
    """New quotes on this share of the chain's rows since the last fit make a refit due."""
    max_mark_spread_pct: Annotated[float, msgspec.Meta(gt=0.0)] = 0.5
    """A quote wider than this share of its mid (and than ``max_mark_spread_usd``) is marked from the surface."""
    max_mark_spread_usd: Annotated[float, msgspec.Meta(ge=0.0)] = 0.10
    """Widths up to this many dollars are always accepted (a one-tick market on a cheap option)."""


def _is_european(underlying: str) -> bool:
    return underlying in EUROPEAN_ROOTS


class FittedExpiry(NamedTuple):
    """``ExpiryQuotes`` plus the forward its log-moneyness is measured against (put-call parity near the money)."""

    expiry: str
    t: float
    inputs: SmileInputs
    forward: float


class FitKey(NamedTuple):
    """Which book state a fit was made from (a fit is put in force only on the same rows)."""

    underlying: str
    spot: float
    ts_ns: int
    rows: int
    generation: int


class BookSnapshot(NamedTuple):
    """What a refit reads of a book, copied on the loop so the fit can run on another thread."""

    underlying: str
    spot: float
    ts_ns: int
    generation: int
    rows: int
    expiry: npt.NDArray[np.datetime64]
    strike: F64
    is_call: npt.NDArray[np.bool_]
    bid: F64
    ask: F64
    flags: npt.NDArray[np.int8]
    t_years: F64
    rate_arr: F64
    div_arr: F64
    forward: F64

    @property
    def key(self) -> FitKey:
        return FitKey(self.underlying, self.spot, self.ts_ns, self.rows, self.generation)

    @classmethod
    def of(cls, book: OptionBook) -> BookSnapshot:
        return cls(book.underlying, book.spot, book.ts_ns, book.generation, len(book), book.expiry.copy(),
                   book.strike.copy(), book.is_call.copy(), book.bid.copy(), book.ask.copy(), book.flags.copy(),
                   book.t_years.copy(), book.rate_arr.copy(), book.div_arr.copy(), book.forward.copy())


def expiry_quotes(book: OptionBook | BookSnapshot, premiums: PremiumCache | None = None) -> list[FittedExpiry]:
    """Fit inputs of every expiry of ``book`` with a time to expiry: OTM two-sided quotes not stale or crossed,
    against each expiry's put-call-parity forward for an index (the book's own forwards carry an assumed rate and
    yield), the carry forward for an American name."""
    snap = book if isinstance(book, BookSnapshot) else BookSnapshot.of(book)
    return [e for e in _iter_expiry_quotes(snap, premiums) if e is not None]


def _iter_expiry_quotes(book: BookSnapshot, premiums: PremiumCache | None) -> Iterator[FittedExpiry | None]:
    if book.rows == 0 or not (book.spot > 0.0):
        return
    american = not _is_european(book.underlying)
    expiries, inverse = np.unique(book.expiry, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(expiries.shape[0] + 1))
    for e_no, expiry in enumerate(expiries):
        rows = order[bounds[e_no]:bounds[e_no + 1]]
        yield _expiry_inputs(book, str(expiry), rows, american, premiums)


def _expiry_inputs(book: BookSnapshot, expiry: str, rows: npt.NDArray[np.intp], american: bool,
                   premiums: PremiumCache | None) -> FittedExpiry | None:
    t = float(np.max(book.t_years[rows]))
    if not (t > 0.0):
        return None
    r, q = float(book.rate_arr[rows[0]]), float(book.div_arr[rows[0]])
    usable = ((book.flags[rows] & FLAG_UNUSABLE) == 0)
    bid = np.where(usable, book.bid[rows], np.nan)
    ask = np.where(usable, book.ask[rows], np.nan)
    strikes, pos = np.unique(book.strike[rows], return_inverse=True)
    m = strikes.shape[0]
    cb, ca, pb, pa = (np.full(m, np.nan) for _ in range(4))
    calls = book.is_call[rows]
    cb[pos[calls]], ca[pos[calls]] = bid[calls], ask[calls]
    pb[pos[~calls]], pa[pos[~calls]] = bid[~calls], ask[~calls]
    # Parity holds for European prices only: an American put's early-exercise premium would bias C - P, so an
    # American name keeps its carry forward (spot, rate and the configured yield).
    fwd = float(book.forward[rows[0]]) if american else parity_forward(strikes, cb, ca, pb, pa, book.spot, t, r,
                                                                         q).forward
    if not (fwd > 0.0):
        return None
    if american:
        cb, ca, pb, pa = _take_off_premium(strikes, cb, ca, pb, pa, fwd, book.spot, t, r, q, expiry, premiums)
    inputs = smile_inputs(strikes, cb, ca, pb, pa, fwd, math.exp(-r * t), t)
    return FittedExpiry(expiry, t, inputs, fwd) if inputs.k.shape[0] else None


class PremiumCache:
    """Early-exercise premiums per expiry, reused while spot and time to expiry have barely moved.

    The premium is a small correction that changes slowly with spot and time; computing it is about half of an
    American name's refit, so it is recomputed only when spot moved ``SPOT_TOL`` or time to expiry ``T_TOL``
    (relative), or the strikes changed.
    """

    SPOT_TOL = 0.005
    T_TOL = 0.02

    def __init__(self) -> None:
        self._by_expiry: dict[str, tuple[float, float, F64, F64]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, expiry: str, spot: float, t: float, strikes: F64) -> F64 | None:
        got = self._by_expiry.get(expiry)
        if got is None:
            return None
        spot0, t0, strikes0, eep = got
        if (abs(spot / spot0 - 1.0) > self.SPOT_TOL or abs(t / t0 - 1.0) > self.T_TOL
                or strikes0.shape != strikes.shape or not np.array_equal(strikes0, strikes)):
            return None
        self.hits += 1
        return eep

    def put(self, expiry: str, spot: float, t: float, strikes: F64, eep: F64) -> None:
        self.misses += 1
        self._by_expiry[expiry] = (spot, t, strikes, eep)


def _take_off_premium(strikes: F64, cb: F64, ca: F64, pb: F64, pa: F64, fwd: float, spot: float, t: float, r: float,
                      q: float, expiry: str = "", cache: PremiumCache | None = None) -> tuple[F64, F64, F64, F64]:
    """OTM quotes less the early-exercise premium at each mid's own IV (the same premium off bid and ask)."""
    eep = None if cache is None else cache.get(expiry, spot, t, strikes)
    if eep is None:
        eep = _premiums(strikes, cb, ca, pb, pa, fwd, spot, t, r, q)
        if cache is not None:
            cache.put(expiry, spot, t, strikes, eep)
    return cb - eep, ca - eep, pb - eep, pa - eep


def _premiums(strikes: F64, cb: F64, ca: F64, pb: F64, pa: F64, fwd: float, spot: float, t: float, r: float,
              q: float) -> F64:
    """The early-exercise premium of each OTM mid (one pass of ``early_exercise_premium_of_prices``: the premium
    is a small correction, and the cache reuses it across refits)."""
    use_call = strikes >= fwd
    mid = np.where(use_call, 0.5 * (cb + ca), 0.5 * (pb + pa))
    ok = np.isfinite(mid) & (mid > 0.0)
    if q <= 0.0:  # a call on a name paying nothing is never exercised early: its premium is zero
        ok &= ~use_call
    eep = np.zeros_like(mid)
    if ok.any():
        eep[ok] = early_exercise_premium_of_prices(mid[ok], spot, strikes[ok], t, r, q, use_call[ok], passes=1)[0]
    return eep


def needs_surface(book: OptionBook) -> npt.NDArray[np.int64]:
    """Rows whose own quote gives no trustworthy IV: flagged stale/one-sided/crossed/empty, or unsolved."""
    rows: npt.NDArray[np.int64] = np.flatnonzero(((book.flags & FLAG_UNUSABLE) != 0) | (book.status != OK))
    return rows


def theo_price(book: OptionBook, row: int) -> float:
    """The surface value of one row at the current spot (NaN without a surface IV): ``option_value`` at the
    surface IV on the surface's forward moved with spot."""
    return option_value(book.underlying, book.spot, float(book.surface_fwd[row]) * book.surface_spot_move(),
                        float(book.strike[row]), float(book.t_years[row]), float(book.rate_arr[row]),
                        float(book.surface_iv[row]), bool(book.is_call[row]))


def option_value(underlying: str, spot: float, forward: float, strike: float, t: float, r: float, sigma: float,
                 is_call: bool) -> float:
    """Black's price on ``forward`` at ``sigma``, plus the early-exercise premium at ``sigma`` (and the yield the
    forward implies) for an American name; NaN on bad input."""
    if not (sigma > 0.0) or not (t > 0.0) or not (forward > 0.0) or not (spot > 0.0):
        return math.nan
    price = float(price_row(forward * math.exp(-r * t), strike, t, r, 0.0, sigma, is_call))
    if not _is_european(underlying):
        q = r - math.log(forward / spot) / t
        price += float(np.nan_to_num(early_exercise_premium(spot, strike, t, r, q, sigma, is_call))[()])
    return price


def surface_deltas(book: OptionBook, rows: npt.NDArray[np.int64]) -> F64:
    """Deltas of ``rows`` at their surface IV on the surface's forward; the row's own delta where the surface has
    no value."""
    out = np.array(book.delta[rows], dtype=np.float64)
    move = book.surface_spot_move()
    for j, r in enumerate(rows.tolist()):
        s, f, t = book.surface_iv.item(r), book.surface_fwd.item(r) * move, book.t_years.item(r)
        if s > 0.0 and f > 0.0 and t > 0.0:
            rate = book.rate_arr.item(r)
            d = greeks_row(f * math.exp(-rate * t), book.strike.item(r), t, rate, 0.0, s, bool(book.is_call.item(r)))[0]
            if math.isfinite(d):
                out[j] = d
    return out


class _State:
    """One underlying's fitter and refit bookkeeping."""

    __slots__ = ("changed", "fit_spot", "fit_ts_ns", "fitter", "generation", "history", "pending", "premiums",
                 "published", "rows_at_fit")

    def __init__(self) -> None:
        self.fitter = SurfaceFitter()
        self.premiums = PremiumCache()
        self.published: list[PublishedSmile] = []
        self.fit_ts_ns = 0
        self.fit_spot = math.nan
        self.changed = 0
        self.pending = False
        self.generation = -1
        self.rows_at_fit = -1
        self.history: list[float] = []


Done = Callable[["_RoundResult | BaseException"], None]
Offload = Callable[["BookSnapshot", Done], None]
"""``offload(snapshot, done)``: fit the snapshot off the loop (``compute_in_worker``), then ``done(result or the
exception)`` on the loop."""


class ProcessOffload:
    """Refits in one worker process, results back on the event loop.

    A process, not a thread: the fit's Python glue between its compiled kernels would hold the GIL the loop
    needs for every frame, and each hand-over costs the loop up to the interpreter's switch interval. The worker
    keeps each underlying's last good fits and premium cache (``compute_in_worker``), is started on the first
    refit ("spawn": safe beside the engine's threads) and runs at a low priority (``WORKER_NICE``). One fit at a
    time; after a fit of F seconds the next waits
    F * (1 / DUTY - 1), so fitting takes at most DUTY of a core however fast event time runs (an accelerated
    simulator makes refits due far faster than wall time).
    """

    DUTY = 0.25

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._queue: collections.deque[tuple[BookSnapshot, Done]] = collections.deque()
        self._busy = False
        self._closed = False

    def __call__(self, snap: BookSnapshot, done: Done) -> None:
        self._queue.append((snap, done))
        if not self._busy:
            self._next(asyncio.get_running_loop())

    def _next(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._queue or self._closed:
            self._busy = False
            return
        self._busy = True
        snap, done = self._queue.popleft()
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                                initializer=_lower_priority)
        started = time.perf_counter()

        def finish(result: _RoundResult | BaseException) -> None:
            if self._closed:
                return  # close() terminated the worker: no fit failed, and nothing more is to be put in force
            try:
                done(result)
            finally:
                busy_s = result.elapsed_ns / 1e9 if isinstance(result, _RoundResult) else time.perf_counter() - started
                loop.call_later(busy_s * (1.0 / self.DUTY - 1.0), self._next, loop)

        def returned(future: concurrent.futures.Future[_RoundResult]) -> None:
            exc = future.exception() if not future.cancelled() else concurrent.futures.CancelledError()
            if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
                self._pool = None  # the worker died: the next fit starts a new one
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(finish, exc if exc is not None else future.result())

        try:
            self._pool.submit(compute_in_worker, snap).add_done_callback(returned)
        except RuntimeError as exc:  # the pool was shut down or broke
            self._pool = None
            finish(exc)

    def close(self) -> None:
        """Stop at once: queued fits are dropped and the worker is terminated (it holds nothing worth keeping; an
        exit that waited for it, mid-import or mid-fit, could outlast a service manager's stop timeout)."""
        self._closed = True
        self._queue.clear()
        pool, self._pool = self._pool, None
        if pool is not None:
            # before Python 3.14 the executor has no public way to stop its workers
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.terminate()


def _lower_priority() -> None:
    """The worker yields the cores to the engine's loop (and anything else at normal priority): a fit a few
    seconds late costs nothing, a frame a few milliseconds late does."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)


WORKER_NICE = 15

_WORKER_STATE: dict[str, tuple[SurfaceFitter, PremiumCache]] = {}
"""In the worker process: each underlying's fitter (its last good fits) and premium cache."""


def compute_in_worker(snap: BookSnapshot) -> _RoundResult:
    """A refit's heavy part in the worker process, with that process's state for the underlying."""
    state = _WORKER_STATE.get(snap.underlying)
    if state is None:
        state = _WORKER_STATE[snap.underlying] = (SurfaceFitter(), PremiumCache())
    return _compute(snap, *state)


StatsFn = Callable[[str, Sequence[PublishedSmile], Sequence[float], int], VolStats | None]


class VolSurfaces:
    """The surfaces of every book of ``market``: refit scheduling, the book's ``surface_iv`` and the events."""

    def __init__(self, market: Market, clock: EventClock, publish: Callable[[Any], None],
                 settings: SurfaceSettings | None = None, *,
                 offload: Offload | None = None, vol_stats: StatsFn | None = None) -> None:
        self.market = market
        self.clock = clock
        self.publish = publish
        self.settings = settings or SurfaceSettings()
        self.offload = offload
        """Runs a refit's fit off the loop and its result back on it (live: a worker process); None: inline, at
        the event time that made it due (replay, tests)."""
        self.vol_stats = vol_stats
        """Turns a published surface (and the look-back history) into ``VolStats``; None: no stats."""
        self._states: dict[str, _State] = {}
        self._timer: Timer | None = None
        self.refits = 0
        self.fit_ns_total = 0
        """Compute time of the fits put in force (wall ns; off the loop when offloaded)."""
        self.apply_ns_total = 0
        """Loop time spent putting fits in force (surface IVs, surface Greeks, stats, the event)."""
        self.dropped = 0
        """Fits that finished after the book's rows had changed, and were dropped."""
        self.failures = 0
        self.on_applied: Callable[[FitKey, _RoundResult], None] | None = None
        """Told every fit put in force (the recorder writes it, so a replay can apply the same fits)."""
        self.recorded = False
        """Replay of a recording that holds the live fits (``apply_recorded``): fit nothing here."""
        self.last_event: SurfaceFitted | None = None

    def start(self) -> None:
        if self.settings.enabled and self._timer is None:
            self._timer = self.clock.every(int(self.settings.refit_seconds * NS_PER_SECOND), self._on_timer,
                                           name="surface_refit")

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if isinstance(self.offload, ProcessOffload):
            self.offload.close()

    def state(self, underlying: str) -> _State:
        st = self._states.get(underlying)
        if st is None:
            st = self._states[underlying] = _State()
        return st

    def published(self, underlying: str) -> list[PublishedSmile]:
        """The smiles in force for ``underlying`` (shortest first; ``params`` None where none passed yet)."""
        st = self._states.get(underlying)
        return [] if st is None else list(st.published)

    def pending_fits(self) -> list[str]:
        """Underlyings with a fit scheduled and not yet put in force (or dropped)."""
        return [u for u, st in self._states.items() if st.pending]

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
        if self.recorded:
            return
        st = self.state(underlying)
        book = self.market.books.get(underlying)
        if book is None or not (book.spot > 0.0):
            return
        st.pending = True
        snap = BookSnapshot.of(book)
        if self.offload is None:
            self._apply(snap.key, _compute(snap, st.fitter, st.premiums))
        else:
            self.offload(snap, lambda result: self._apply(snap.key, result))

    def _failed(self, key: FitKey, error: BaseException) -> None:
        self.state(key.underlying).pending = False
        self.failures += 1
        log.error("surface_fit_failed", underlying=key.underlying, error=repr(error))

    def apply_recorded(self, data: bytes) -> None:
        """Put in force a fit a live session recorded (``encode_fit``), where it did (replay of a recording)."""
        key, result = decode_fit(data)
        self.state(key.underlying).pending = True
        self._apply(key, result)

    # ------------------------------------------------------------------------------ the refit

    def refit(self, underlying: str) -> SurfaceFitted | None:
        """Fit ``underlying``'s surface now, inline: write the book's surface IVs and Greeks, publish the event."""
        self.last_event = None
        book = self.market.books.get(underlying)
        if book is not None and book.spot > 0.0:
            snap = BookSnapshot.of(book)
            self.state(underlying).pending = True
            self._apply(snap.key, _compute(snap, self.state(underlying).fitter, self.state(underlying).premiums))
        return self.last_event

    def _apply(self, snap: FitKey, result: _RoundResult | BaseException) -> None:
        """Put a finished fit in force (on the loop). A fit of rows the book no longer has (contracts added or
        dropped meanwhile) is dropped; the next book update makes a new one due."""
        if isinstance(result, BaseException):
            self._failed(snap, result)
            return
        underlying = snap.underlying
        st = self.state(underlying)
        st.pending = False
        book = self.market.books.get(underlying)
        if book is None or len(book) != snap.rows or book.generation != snap.generation:
            self.dropped += 1
            return
        started = time.perf_counter_ns()
        st.published = result.published
        self._write_surface_iv(book, result.published, {e.expiry: e.forward for e in result.quotes})
        book.has_surface = bool(np.isfinite(book.surface_iv).any())
        book.take_surface(needs_surface(book))
        st.fit_ts_ns, st.fit_spot, st.changed = snap.ts_ns, snap.spot, 0
        st.generation, st.rows_at_fit = snap.generation, snap.rows
        stats = self.vol_stats(underlying, result.published, st.history, snap.ts_ns) if self.vol_stats else None
        if stats is not None:
            self.market.vol[underlying] = stats
        self.refits += 1
        self.fit_ns_total += result.elapsed_ns
        self.apply_ns_total += time.perf_counter_ns() - started
        if self.on_applied is not None:
            self.on_applied(snap, result)
        self.last_event = SurfaceFitted(
            underlying=underlying, spot=snap.spot,
            smiles=tuple(_smile_record(p, result.quotes) for p in result.published), stats=stats,
            fit_us=result.elapsed_ns // 1000, ts_event_ns=snap.ts_ns, ts_init_ns=time.time_ns())
        self.publish(self.last_event)

    @staticmethod
    def _write_surface_iv(book: OptionBook, published: list[PublishedSmile], forwards: dict[str, float]) -> None:
        book.surface_iv.fill(np.nan)
        book.surface_fwd.fill(np.nan)
        book.surface_spot = book.spot
        for p in published:
            fwd = forwards.get(p.expiry, math.nan)
            if p.params is None or not (fwd > 0.0):
                continue
            rows = np.flatnonzero(book.expiry == np.datetime64(p.expiry, "D"))
            book.surface_fwd[rows] = fwd
            book.surface_iv[rows] = implied_vol_from_svi(p.params, np.log(book.strike[rows] / fwd), p.t)


class _RoundResult(NamedTuple):
    quotes: list[FittedExpiry]
    published: list[PublishedSmile]
    elapsed_ns: int


def encode_fit(key: FitKey, result: _RoundResult) -> bytes:
    """A fit put in force, as bytes (msgpack: floats, NaN and infinities exact) for a recording."""
    quotes = [(e.expiry, e.t, e.forward, *(a.tolist() for a in e.inputs)) for e in result.quotes]
    published = [(p.expiry, p.t, tuple(p.params) if p.params is not None else (),
                  wing_fields(p.params) if p.params is not None else (), p.status, p.fitted_at, p.age)
                 for p in result.published]
    return msgspec.msgpack.encode((tuple(key), result.elapsed_ns, quotes, published))


def decode_fit(data: bytes) -> tuple[FitKey, _RoundResult]:
    """The fit ``encode_fit`` wrote."""
    key, elapsed, quotes, published = msgspec.msgpack.decode(data)
    fitted = [FittedExpiry(e, t, SmileInputs(*(np.asarray(a, dtype=np.float64) for a in arrays)), fwd)
              for e, t, fwd, *arrays in quotes]
    smiles = [PublishedSmile(e, t, smile_from_fields(raw, wings) if raw else None, status, fitted_at, age)
              for e, t, raw, wings, status, fitted_at, age in published]
    return FitKey(*key), _RoundResult(fitted, smiles, elapsed)


def _compute(snap: BookSnapshot, fitter: SurfaceFitter, premiums: PremiumCache) -> _RoundResult:
    """The heavy part of a refit, on a snapshot: fit inputs, the calendar-constrained fits and their checks. Touches
    nothing but ``fitter`` and ``premiums`` (one round per underlying at a time), so it may run in a worker."""
    started = time.perf_counter_ns()
    quotes = expiry_quotes(snap, premiums)
    published = fitter.fit([ExpiryQuotes(e.expiry, e.t, e.inputs) for e in quotes], snap.ts_ns / NS_PER_SECOND)
    return _RoundResult(quotes, published, time.perf_counter_ns() - started)


def _smile_record(p: PublishedSmile, quotes: list[FittedExpiry]) -> SurfaceSmile:
    """One published smile as the event carries it, with this round's market points for plotting."""
    inputs: SmileInputs | None = next((q.inputs for q in quotes if q.expiry == p.expiry), None)
    prm = p.params
    return SurfaceSmile(
        expiry=p.expiry, t=p.t, status=FIT_STATUS_NAMES.get(p.status, str(p.status)),
        age_s=p.age if math.isfinite(p.age) else -1.0,
        params=() if prm is None else (prm.a, prm.b, prm.rho, prm.m, prm.sigma),
        wings=() if prm is None else wing_fields(prm),
        k=() if inputs is None else tuple(inputs.k.tolist()),
        iv_mid=() if inputs is None else tuple(inputs.iv_mid.tolist()),
        iv_bid=() if inputs is None else tuple(inputs.iv_bid.tolist()),
        iv_ask=() if inputs is None else tuple(inputs.iv_ask.tolist()),
    )
