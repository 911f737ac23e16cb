"""What the kernel writes to the outside: the journal, the publisher and the metrics it reports to.

The service shell plugs in its SQLite journal, Redis publisher and Prometheus metrics; replay and tests
plug in nothing (each is optional) or their own. The kernel only knows these protocols.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

from domain.orders import OrderFilled, OrderUpdated
from domain.views import PortfolioGreeks
from engine.kernel.alerts import Alert
from engine.kernel.ports import IntentJournal


class StructureRecord(msgspec.Struct, frozen=True):
    """A structure as the journal keeps it: what a restart needs to hand it back to its strategy."""

    structure_id: str
    strategy_id: str
    underlying: str
    state: Literal["pending", "open", "closing", "closed"]
    legs: dict[str, float]
    """Signed target quantity per symbol when open (contracts or shares)."""
    ts_event_ns: int
    extra: dict[str, Any] = {}


class TradeJournal(IntentJournal, Protocol):
    """Where intents (the router writes them before sending), order states, fills and structures are written
    (durably, in the service)."""

    def record_order(self, update: OrderUpdated) -> None: ...

    def record_fill(self, fill: OrderFilled, greeks_before: PortfolioGreeks | None = None,
                    greeks_after: PortfolioGreeks | None = None, source: str = "stream") -> int | None:
        """The fill's sequence number, or None when its execution is already journaled."""
        ...

    def record_structure(self, structure: StructureRecord) -> None: ...


class OutcomePublisher(Protocol):
    """Where journaled fills, order updates and alerts are published (Redis in the service)."""

    def publish_fill(self, seq: int, fill: OrderFilled, before: PortfolioGreeks | None = None,
                     after: PortfolioGreeks | None = None) -> None: ...

    def publish_order(self, update: OrderUpdated) -> None: ...

    def publish_alert(self, alert: Alert) -> None: ...


class Count(Protocol):
    def inc(self, n: float = 1.0, /) -> None: ...


class CountBy(Protocol):
    def inc(self, key: str, /) -> None: ...


class Observe(Protocol):
    def observe(self, v: float, /) -> None: ...


class KernelMetrics(Protocol):
    """The counters the kernel reports to."""

    @property
    def fills(self) -> Count: ...

    @property
    def orders(self) -> CountBy: ...

    @property
    def gate_denials(self) -> CountBy: ...

    @property
    def alerts(self) -> CountBy: ...

    @property
    def tick_to_order_seconds(self) -> Observe: ...
