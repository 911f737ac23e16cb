"""The strategy actor API: hooks the engine calls, the context through which an actor acts, its config.

An actor is a plain object the engine drives from its event loop, on event time:

- ``on_start(ctx)`` once, before any other hook; ``ctx`` (a ``StrategyContext``, implemented by the
  engine) is how the actor reads the market, portfolio and account, emits ``OrderIntent``s and sets
  timers. The actor never talks to the broker and never blocks: ``ctx.submit`` queues the intent for
  the risk gate and the router and returns at once.
- ``on_book(chain)`` on every (conflated) book update of an underlying it trades.
- ``on_fill(fill)``, ``on_order_update(update)``, ``on_denied(denied)`` for its own intents' outcomes
  (the engine routes them by ``strategy_id``).
- ``on_timer(name, now_ns)`` when a timer set with ``ctx.set_timer`` falls due in event time.
- ``on_params(config)`` on a config reload: hot fields are applied, cold ones reported and kept.
- ``on_stop()`` once at shutdown.

Every strategy has a frozen config struct (unknown fields rejected, constrained types) listing its
reloadable fields in ``HOT_FIELDS`` and its times of day in ``TIME_FIELDS`` (session times, see
``strategies.session_time``, resolved once per New York date by ``Strategy.schedule``).

Shared here so the actors do not each carry a copy: closing a tracked structure (``close_structure``,
which leaves out long legs bid at zero), and the expiry-day rule (``expiry_flat_reason``,
``flatten_expiring``, the ``expiry_flat:<day>`` timer): structures holding legs that expire today are
closed from ``expiry_flat_by`` unless ``carry_expiring`` and the account can carry them
(``strategies.expiry_flat``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import msgspec
import structlog

from domain.orders import IntentDenied, OrderFilled, OrderIntent, OrderUpdated, PricePolicy
from domain.params import apply_hot, diff_params
from domain.views import AccountView, ChainView, MarketView, PortfolioView
from greeks.calendar import NEW_YORK, NS_PER_MS, ny_date, ny_datetime, ny_instant_ns
from strategies.exit_watch import ExitWatch
from strategies.expiry_flat import carry_shortfall, expiring_legs, expiry_day
from strategies.iv_gate import iv_block_reason
from strategies.session_time import DaySchedule, Op, SessionTimeText, session_on, validate_times
from strategies.tracking import RecoveredStructure, StructureStatus, StructureTracker, Tracked

EXPIRY_FLAT_TIMER = "expiry_flat:"

log = structlog.get_logger(__name__)

__all__ = [
    "NEW_YORK",
    "PolicyConfig",
    "SessionTimeText",
    "Strategy",
    "StrategyConfig",
    "StrategyContext",
    "StructureConfig",
    "StructureStrategy",
    "TermConfig",
    "diff_params",
    "ny_datetime",
    "ny_instant_ns",
]

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
IvRankBound = Annotated[float, msgspec.Meta(ge=0, le=100)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Dte = Annotated[int, msgspec.Meta(ge=0, le=800)]
Delta = Annotated[float, msgspec.Meta(gt=0, lt=1)]
Symbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9.]{0,9}$")]


class StrategyContext(Protocol):
    """What the engine gives an actor. Every method returns at once; none raises on a trading outcome."""

    @property
    def now_ns(self) -> int:
        """Event time (the feed's clock), epoch nanoseconds."""
        ...

    @property
    def market(self) -> MarketView: ...

    @property
    def portfolio(self) -> PortfolioView: ...

    def account(self) -> AccountView:
        """The account as last fetched (equity and buying power for sizing)."""
        ...

    def submit(self, intent: OrderIntent) -> None:
        """Queue ``intent`` for the gate and the router; its outcome arrives as on_fill/on_order_update/on_denied."""
        ...

    def cancel(self, intent_id: str) -> None:
        """Cancel the working order of ``intent_id`` (no-op when it is not working)."""
        ...

    def set_timer(self, name: str, at_ns: int) -> None:
        """Call ``on_timer(name, now_ns)`` when event time reaches ``at_ns`` (replaces a timer of that name)."""
        ...

    def cancel_timer(self, name: str) -> None: ...


class PolicyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the router should work an order (see ``domain.orders.PricePolicy``)."""

    walk_every_s: PositiveFloat = 5.0
    walk_step_fraction: Fraction = 0.25
    max_concession_fraction: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    timeout_s: PositiveFloat = 60.0

    def policy(self, limit_price: float | None = None) -> PricePolicy:
        return PricePolicy("limit", self.walk_every_s, self.walk_step_fraction, self.max_concession_fraction,
                           limit_price, self.timeout_s)


class StrategyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fields every strategy has. Subclasses add theirs and extend ``HOT_FIELDS``."""

    HOT_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"entries_enabled", "max_quote_age_ms", "expiry_flat_by", "carry_expiring", "min_iv_rank", "max_iv_rank"})
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("expiry_flat_by",)
    """The fields holding session times (``strategies.session_time``), resolved each trading day."""
    TIME_RULES: ClassVar[tuple[tuple[str, Op, str], ...]] = ()
    """Ordering rules between time fields, checked at load on a regular day and on a half day."""

    enabled: bool = True
    """Cold: an actor is built (or not) at start."""
    entries_enabled: bool = True
    """Hot: False stops new entries while open structures keep being managed."""
    underlyings: tuple[Symbol, ...] = ("SPY",)
    """Cold: the feeds subscribe per underlying at start."""
    max_quote_age_ms: PositiveInt = 5_000
    """A leg or the underlying older than this (event time) is stale: no entries, exits or hedges on it."""
    expiry_flat_by: SessionTimeText = "close-60m"
    """Structures holding a leg that expires today are closed from this time (retried until flat) unless
    carry_expiring keeps them. Default: 15 min before Alpaca liquidates what an account cannot carry (15:15, i.e.
    close-45m); the same offset on a half day, not scaled: working the closes takes as long on a short day."""
    carry_expiring: bool = False
    """Keep same-day legs past expiry_flat_by while the account can carry them as if all ended in the money: cash
    and buying power cover the strikes of short puts and long calls, shares held cover short calls and long puts
    (portfolio-wide, no leg offsetting another)."""
    min_iv_rank: IvRankBound | None = None
    """Hot: open only while the underlying's IV rank (0-100, ``VolStats.iv_rank``) is at least this; None: no
    floor. With either bound set, an underlying without a fitted surface or with too little IV history gets no
    entries (``strategies.iv_gate``); exits are never gated."""
    max_iv_rank: IvRankBound | None = None
    """Hot: open only while the underlying's IV rank is at most this; None: no ceiling."""

    def __post_init__(self) -> None:
        validate_times({name: getattr(self, name) for name in self.TIME_FIELDS}, self.TIME_RULES)
        if self.min_iv_rank is not None and self.max_iv_rank is not None and self.min_iv_rank > self.max_iv_rank:
            raise ValueError(f"min_iv_rank ({self.min_iv_rank:g}) must not exceed max_iv_rank ({self.max_iv_rank:g})")

    @property
    def max_quote_age_ns(self) -> int:
        return self.max_quote_age_ms * NS_PER_MS


class StructureConfig(StrategyConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fields of a strategy that opens and closes tracked structures (:class:`StructureStrategy`)."""

    HOT_FIELDS: ClassVar[frozenset[str]] = StrategyConfig.HOT_FIELDS | {"open_policy", "close_policy", "close_retry_s"}

    close_retry_s: PositiveFloat = 10.0
    """Seconds before a close that failed (cancelled, timed out, refused) is sent again."""
    open_policy: PolicyConfig = PolicyConfig()
    """How the router works an opening order."""
    close_policy: PolicyConfig = PolicyConfig(walk_every_s=3.0, walk_step_fraction=0.34,
                                              max_concession_fraction=1.0, timeout_s=30.0)
    """How the router works a closing order."""


class TermConfig(StructureConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A structure strategy that opens expiries in a days-to-expiry window and leaves them at ``exit_dte``."""

    HOT_FIELDS: ClassVar[frozenset[str]] = StructureConfig.HOT_FIELDS | {"dte_min", "dte_max", "exit_dte"}

    dte_min: Dte = 30
    dte_max: Dte = 45
    exit_dte: Dte = 7
    """Close at this many days to expiry; 0: on the expiry day itself, from expiry_flat_by (or carried)."""


C = TypeVar("C", bound=StrategyConfig)
SC = TypeVar("SC", bound=StructureConfig)


class Strategy(Generic[C]):
    """Base actor: holds its id, config and context; subclasses override the ``on_*`` hooks they need."""

    KIND: ClassVar[str] = ""
    CONFIG_TYPE: ClassVar[type[StrategyConfig]] = StrategyConfig

    def __init__(self, strategy_id: str, config: C) -> None:
        self.strategy_id = strategy_id
        self.config: C = config
        self._ctx: StrategyContext | None = None
        self.last_action = ""
        self._schedule: DaySchedule | None = None
        self._time_reported: set[tuple[dt.date, str, str]] = set()
        self.time_notes = 0
        """Session times moved or clamped on some day (each reported once per field and day)."""
        self.last_time_note = ""
        self.iv_skips: dict[str, int] = {}
        """Entry attempts the IV-rank bounds blocked, by reason (``strategies.iv_gate``)."""

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise RuntimeError(f"strategy {self.strategy_id} used before on_start")
        return self._ctx

    @property
    def underlyings(self) -> tuple[str, ...]:
        return self.config.underlyings

    def dte_range(self) -> tuple[int, int]:
        """The (min, max) days to expiry this actor may open; held contracts are streamed regardless."""
        return 0, 0

    # ---- hooks (engine -> actor)
    def on_start(self, ctx: StrategyContext) -> None:
        self._ctx = ctx
        if ctx.now_ns > 0:
            self.schedule(ctx.now_ns)

    def on_book(self, chain: ChainView) -> None:
        """A book update of one of ``underlyings``."""

    def on_fill(self, fill: OrderFilled) -> None:
        """One execution of one leg of this strategy's order."""

    def on_order_update(self, update: OrderUpdated) -> None:
        """An order of this strategy changed state."""

    def on_denied(self, denied: IntentDenied) -> None:
        """The gate (or the broker) refused one of this strategy's intents."""

    def on_timer(self, name: str, now_ns: int) -> None:
        """A timer set through the context fell due (subclasses call this for the timers set here)."""
        if name.startswith(EXPIRY_FLAT_TIMER):
            self.flatten_expiring(now_ns)

    def check_params(self, config: C) -> C:
        """The config ``on_params(config)`` would run on: ``config``'s hot fields over the running cold ones,
        validated as a whole (raises ``msgspec.ValidationError`` naming the field). Nothing is applied."""
        merged, _ = apply_hot(self.config, config)
        return msgspec.convert(msgspec.to_builtins(merged), type(merged))

    def on_params(self, config: C) -> dict[str, Any]:
        """Apply a reloaded config's hot fields (validated by ``check_params``); return the cold changes, which
        are not applied.

        Today's session times are resolved again and the day's timers set anew."""
        self.config = self.check_params(config)
        cold = diff_params(self.config, config)[1]
        if self._schedule is not None and self._ctx is not None:
            self._resolve_day(self._schedule.day, new_day=False)
        return cold

    def on_stop(self) -> None:
        """The engine is stopping (open structures stay; ``on_recover`` hands them back at the next start)."""

    def on_recover(self, structures: Sequence[RecoveredStructure]) -> None:
        """Take back the structures this strategy held when the engine stopped (none here: see
        :class:`StructureStrategy`)."""

    def structure_record(self, structure_id: str) -> dict[str, Any]:
        """What taking ``structure_id`` back after a restart needs beyond its intents and fills (none here)."""
        return {}

    def close_all(self, reason: str) -> int:
        """Close every open structure now (the ``flatten`` command); how many closes were sent (none here)."""
        return 0

    def flatten_expiring(self, now_ns: int, underlying: str | None = None) -> int:
        """Close the structures holding a leg that expires today once ``expiry_flat_by`` passed (none here)."""
        return 0

    # ---- the trading day: session times and expiry_flat_by
    def schedule(self, now_ns: int) -> DaySchedule:
        """Today's resolved session times; the first call of a New York date resolves them, reports any
        moved or clamped value once, calls ``on_new_day`` and sets the day's timers."""
        s = self._schedule
        if s is None or not s.contains(now_ns):
            s = self._resolve_day(ny_date(now_ns), new_day=True)
        return s

    def on_new_day(self, schedule: DaySchedule) -> None:
        """A new New York date began (in event time)."""

    def day_timers(self, schedule: DaySchedule) -> dict[str, int]:
        """Timers to set for the day, by name (subclasses add theirs to these)."""
        at = schedule.at.get("expiry_flat_by")
        return {} if at is None else {f"{EXPIRY_FLAT_TIMER}{schedule.day.isoformat()}": at}

    def _resolve_day(self, day: dt.date, new_day: bool) -> DaySchedule:
        cfg = self.config
        values = {name: getattr(cfg, name) for name in cfg.TIME_FIELDS}
        s = DaySchedule.build(day, session_on(day), values, cfg.TIME_RULES)
        self._schedule = s
        for name, note in s.notes.items():
            key = (day, name, values[name])
            if key not in self._time_reported:
                self._time_reported.add(key)
                self.time_notes += 1
                self.last_time_note = f"{day.isoformat()} {name}: {note}"
                self.last_action = f"time {self.last_time_note}"
                log.warning("strategy_time_adjusted", strategy=self.strategy_id, day=day.isoformat(), field=name,
                            value=values[name], detail=note)
        if new_day:
            self.on_new_day(s)
        for name, at in self.day_timers(s).items():
            self.ctx.set_timer(name, at)
        return s

    def dte_exit_due(self, expiry: dt.date, now_ns: int, exit_dte: int) -> bool:
        """True at ``exit_dte`` days to ``expiry`` or fewer; with ``exit_dte`` 0 the expiry day itself is left to
        ``expiry_flat_by`` (a close from that time, or a carry)."""
        days = (expiry - self.schedule(now_ns).day).days
        return days <= exit_dte and not (exit_dte == 0 and days == 0)

    def may_open_expiry(self, expiry: dt.date, now_ns: int) -> bool:
        """False for an expiry that trades out today once ``expiry_flat_by`` has passed (it would be closed at
        once) unless the strategy carries expiring legs."""
        s = self.schedule(now_ns)
        at = s.at.get("expiry_flat_by")
        return at is None or now_ns < at or expiry_day(expiry) != s.day or self.config.carry_expiring

    def iv_allows_entry(self, underlying: str) -> bool:
        """True when the IV-rank bounds let an entry on ``underlying`` go ahead; a block is counted by reason."""
        cfg = self.config
        if cfg.min_iv_rank is None and cfg.max_iv_rank is None:
            return True
        reason = iv_block_reason(self.ctx.market.vol_stats(underlying), cfg.min_iv_rank, cfg.max_iv_rank)
        if not reason:
            return True
        self.iv_skips[reason] = self.iv_skips.get(reason, 0) + 1
        self.last_action = f"skip {underlying}: iv {reason}"
        return False

    # ---- reporting
    def stats(self) -> dict[str, float | int | str]:
        """Counters for the live table and the run summary."""
        return {"last_action": self.last_action, **self.time_stats(), **self.iv_stats()}

    def iv_stats(self) -> dict[str, float | int | str]:
        """Entries the IV-rank bounds blocked, one ``iv_skip_<reason>`` counter per reason seen."""
        return {f"iv_skip_{k}": v for k, v in self.iv_skips.items()}

    def time_stats(self) -> dict[str, float | int | str]:
        """The session-time adjustments reported (none: empty)."""
        if not self.time_notes:
            return {}
        return {"time_notes": self.time_notes, "last_time_note": self.last_time_note}


class StructureStrategy(Strategy[SC]):
    """An actor that trades tracked structures: its tracker, exit counts, outcome routing, closes, the
    expiry-day rule, recovery after a restart and the common stats. A subclass writes ``on_chain`` (what it does
    on a book update of one of its underlyings) and what else is its own."""

    def __init__(self, strategy_id: str, config: SC) -> None:
        super().__init__(strategy_id, config)
        self.tracker = StructureTracker(strategy_id)
        self.exits: dict[str, int] = {}
        """Structures closed, by first close reason."""
        self._carried: set[tuple[dt.date, str]] = set()

    # ---- hooks
    def on_book(self, chain: ChainView) -> None:
        """Retire expired structures, then ``on_chain`` (books of other underlyings are ignored)."""
        if chain.underlying not in self.config.underlyings:
            return
        now = self.ctx.now_ns
        self.tracker.expire(self.trading_day(now), now)
        self.on_chain(chain, now)

    def dte_range(self) -> tuple[int, int]:
        """Expiries this actor may open (the engine's subscription budget streams them): ``dte_min..dte_max`` of a
        :class:`TermConfig`, else today's only."""
        cfg = self.config
        return (cfg.dte_min, cfg.dte_max) if isinstance(cfg, TermConfig) else (0, 0)

    def trading_day(self, now_ns: int) -> dt.date:
        """The New York date of ``now_ns`` (structures expiring before it are retired)."""
        return ny_datetime(now_ns).date()

    def on_chain(self, chain: ChainView, now_ns: int) -> None:
        """A book update of one of ``underlyings``, expired structures already retired."""

    def on_fill(self, fill: OrderFilled) -> None:
        self.tracker.on_fill(fill)

    def on_order_update(self, update: OrderUpdated) -> None:
        self.on_outcome(self.tracker.on_order_update(update))

    def on_denied(self, denied: IntentDenied) -> None:
        self.on_outcome(self.tracker.on_denied(denied))
        self.last_action = f"denied {','.join(denied.reasons)}"

    def on_outcome(self, t: Tracked | None) -> None:
        """The structure an order update or a denial was about, after the tracker booked it."""

    def on_recover(self, structures: Sequence[RecoveredStructure]) -> None:
        """Take back the structures this strategy held when the engine stopped. The engine calls it once, after
        ``on_start`` and before any book update, so they are managed from the first book on (exits, cut-offs and
        the expiry-day rules included) and count against the strategy's limits."""
        for rec in structures:
            self.tracker.recover(rec)

    def structure_record(self, structure_id: str) -> dict[str, Any]:
        """What taking ``structure_id`` back after a restart needs beyond its intents and fills (the engine journals
        it when the structure's opening intent is approved): its kind, the spot and IV it was entered at."""
        t = self.tracker.structures.get(structure_id)
        if t is None:
            return {}
        return {"kind": t.structure.kind.value,
                **{k: v for k, v in (("entry_spot", t.entry_spot), ("entry_iv", t.entry_iv)) if math.isfinite(v)}}

    def close_all(self, reason: str) -> int:
        """Close every open structure now (the ``flatten`` command); return how many closes were sent."""
        count = 0
        now = self.ctx.now_ns
        for t in self.tracker.active():
            if t.status is StructureStatus.OPEN:
                count += self.close_structure(t, reason, now, retry=False)
        if count:
            self.last_action = f"close all ({reason})"
        return count

    def close_structure(self, t: Tracked, reason: str, now_ns: int, retry: bool = True) -> int:
        """Send the closes of ``t`` (1) unless a failed close's back-off has not run out (0, with ``retry``)."""
        if retry and not t.close_retry_due(now_ns, self.config.close_retry_s):
            return 0
        intents = self.tracker.close(t, self.config.close_policy.policy(None), now_ns, reason, self._unsellable(t))
        if not intents:
            return 0
        for intent in intents:
            self.ctx.submit(intent)
        if t.close_attempts == 1:
            self.exits[reason] = self.exits.get(reason, 0) + 1
        self.last_action = f"close {t.structure.underlying} {t.structure.kind} ({reason})"
        return 1

    def _unsellable(self, t: Tracked) -> frozenset[str]:
        """Long legs of ``t`` bid at zero in the book: no order can sell them, so a close leaves them out."""
        chain = self.ctx.market.chain(t.structure.underlying)
        if chain is None:
            return frozenset()
        out = set()
        for leg in t.structure.legs:
            r = chain.row_of(leg.symbol)
            if leg.ratio > 0 and r >= 0 and not chain.bid.item(r) > 0:
                out.add(leg.symbol)
        return frozenset(out)

    def expiry_flat_reason(self, t: Tracked, now_ns: int) -> str:
        """``"expiry_flat"`` when ``t`` must be closed now: it holds a leg expiring today, ``expiry_flat_by`` has
        passed, and carrying it is not both configured and affordable (``strategies.expiry_flat``)."""
        s = self.schedule(now_ns)
        at = s.at.get("expiry_flat_by")
        if at is None or now_ns < at or not expiring_legs(t, s.day):
            return ""
        if self.config.carry_expiring:
            why = carry_shortfall(self.ctx.portfolio, self.ctx.account(), s.day)
            if not why:
                if (s.day, t.structure_id) not in self._carried:
                    self._carried.add((s.day, t.structure_id))
                    self.last_action = f"carry {t.structure.underlying} {t.structure.kind} into expiry"
                return ""
            self.last_action = f"cannot carry {t.structure.underlying}: {why}"
        return "expiry_flat"

    def flatten_expiring(self, now_ns: int, underlying: str | None = None) -> int:
        """Close every open structure (of ``underlying``) that ``expiry_flat_reason`` names; closes sent."""
        count = 0
        for t in self.tracker.active(underlying):
            if t.status is StructureStatus.OPEN and self.expiry_flat_reason(t, now_ns):
                count += self.close_structure(t, "expiry_flat", now_ns)
        return count

    # ---- reporting
    def stats(self) -> dict[str, float | int | str]:
        return {"open": len(self.tracker.active()), "opened": self.tracker.opened, "closed": self.tracker.closed,
                **self.own_stats(), "realized_usd": round(self.tracker.realized_usd, 2),
                "last_action": self.last_action, **{f"exit_{k}": v for k, v in self.exits.items()},
                **self.time_stats(), **self.iv_stats()}

    def own_stats(self) -> dict[str, float | int | str]:
        """The subclass's counters, listed after the structure counts."""
        return {}

    def exit_watch(self, chain: ChainView, t: Tracked, now_ns: int) -> list[ExitWatch]:
        """How near each of ``t``'s exit rules is to firing (``strategies.exit_watch``; none here)."""
        return []
