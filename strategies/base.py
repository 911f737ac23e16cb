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
reloadable fields in ``HOT_FIELDS``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import msgspec

from greeks.calendar import NEW_YORK, NS_PER_SECOND, ny_datetime, ny_instant_ns
from risk.model import IntentDenied, OrderFilled, OrderIntent, OrderUpdated, PricePolicy
from risk.params import apply_hot, diff_params
from risk.views import AccountView, ChainView, MarketView, PortfolioView

NS_PER_S = NS_PER_SECOND

__all__ = [
    "NEW_YORK",
    "PolicyConfig",
    "Strategy",
    "StrategyConfig",
    "StrategyContext",
    "diff_params",
    "ny_datetime",
    "ny_instant_ns",
    "parse_hhmm",
]

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Dte = Annotated[int, msgspec.Meta(ge=0, le=800)]
Delta = Annotated[float, msgspec.Meta(gt=0, lt=1)]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
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
    """How the router should work an order (see ``risk.model.PricePolicy``)."""

    walk_every_s: PositiveFloat = 5.0
    walk_step_fraction: Fraction = 0.25
    max_concession_fraction: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    timeout_s: PositiveFloat = 60.0

    def policy(self, limit_price: float | None = None) -> PricePolicy:
        return PricePolicy("limit", self.walk_every_s, self.walk_step_fraction, self.max_concession_fraction,
                           limit_price, self.timeout_s)


class StrategyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fields every strategy has. Subclasses add theirs and extend ``HOT_FIELDS``."""

    HOT_FIELDS: ClassVar[frozenset[str]] = frozenset({"entries_enabled", "max_quote_age_ms"})

    enabled: bool = True
    """Cold: an actor is built (or not) at start."""
    entries_enabled: bool = True
    """Hot: False stops new entries while open structures keep being managed."""
    underlyings: tuple[Symbol, ...] = ("SPY",)
    """Cold: the feeds subscribe per underlying at start."""
    max_quote_age_ms: PositiveInt = 5_000
    """A leg or the underlying older than this (event time) is stale: no entries, exits or hedges on it."""


C = TypeVar("C", bound=StrategyConfig)


class Strategy(Generic[C]):
    """Base actor: holds its id, config and context; subclasses override the ``on_*`` hooks they need."""

    KIND: ClassVar[str] = ""
    CONFIG_TYPE: ClassVar[type[StrategyConfig]] = StrategyConfig

    def __init__(self, strategy_id: str, config: C) -> None:
        self.strategy_id = strategy_id
        self.config: C = config
        self._ctx: StrategyContext | None = None
        self.last_action = ""

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

    def on_book(self, chain: ChainView) -> None:
        """A book update of one of ``underlyings``."""

    def on_fill(self, fill: OrderFilled) -> None:
        """One execution of one leg of this strategy's order."""

    def on_order_update(self, update: OrderUpdated) -> None:
        """An order of this strategy changed state."""

    def on_denied(self, denied: IntentDenied) -> None:
        """The gate (or the broker) refused one of this strategy's intents."""

    def on_timer(self, name: str, now_ns: int) -> None:
        """A timer set through the context fell due."""

    def on_params(self, config: C) -> dict[str, Any]:
        """Apply a reloaded config's hot fields; return the cold changes, which are not applied."""
        merged, cold = apply_hot(self.config, config)
        self.config = merged
        return cold

    def on_stop(self) -> None:
        """The engine is stopping (open structures stay; they are recovered at the next start)."""

    def close_all(self, reason: str) -> int:
        """Close every open structure now (the ``flatten`` command); return how many closes were sent."""
        from strategies.tracking import StructureStatus, StructureTracker

        tracker = getattr(self, "tracker", None)
        close_policy = getattr(self.config, "close_policy", None)
        if not isinstance(tracker, StructureTracker) or not isinstance(close_policy, PolicyConfig):
            return 0
        count = 0
        now = self.ctx.now_ns
        for t in tracker.active():
            if t.status is StructureStatus.OPEN:
                for intent in tracker.close(t, close_policy.policy(None), now, reason):
                    self.ctx.submit(intent)
                count += 1
        if count:
            self.last_action = f"close all ({reason})"
        return count

    # ---- reporting
    def stats(self) -> dict[str, float | int | str]:
        """Counters for the live table and the run summary."""
        return {"last_action": self.last_action}


# ---------------------------------------------------------------------------------------------- time


def parse_hhmm(text: str) -> dt.time:
    """``"15:45"`` -> ``time(15, 45)`` (config fields are validated by pattern first)."""
    hh, mm = text.split(":")
    return dt.time(int(hh), int(mm))
