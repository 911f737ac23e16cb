"""Fault injection state: what the next requests, frames and connections should suffer.

The control API (``/sim/faults/...``) and the Python API (``Simulator.faults``) both write here;
the REST middleware, the stream sessions and the exchange read it. Every fault is explicit and
counted (the next N calls/frames/connections), so a test knows exactly what it caused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StreamKind = Literal["options", "stocks", "trading"]
STREAM_KINDS: tuple[StreamKind, ...] = ("options", "stocks", "trading")
RestFaultKind = Literal["429", "500", "504", "timeout", "timeout_after", "500_after"]
REST_FAULT_KINDS: tuple[RestFaultKind, ...] = ("429", "500", "504", "timeout", "timeout_after", "500_after")
"""``timeout_after`` and ``500_after`` run the request first (an order reaches the book), then hang
``hold_s`` and answer 504, or answer 500 at once: the client cannot tell whether it happened."""
RestScope = Literal["all", "trading", "data", "orders"]
"""``orders``: only order writes (POST/PATCH/DELETE under /v2/orders)."""


@dataclass(slots=True)
class StreamFaults:
    """Faults of one stream kind."""

    mute: bool = False
    """Connected and authenticated, but no data frames are sent."""
    delay_ms: float = 0.0
    """Wall milliseconds slept before every data frame (a slow or lagging feed)."""
    malformed_frames: int = 0
    """The next N data frames are replaced by bytes that are not valid msgpack/JSON."""
    reject_connections: int = 0
    """The next N authentications get error 406 (connection limit exceeded)."""
    duplicate_updates: int = 0
    """Trading stream: the next N trade updates are sent twice."""
    reorder_updates: int = 0
    """Trading stream: the next N trade updates are each held back and sent after the one that follows."""


@dataclass(slots=True)
class RestFault:
    kind: RestFaultKind
    remaining: int
    scope: RestScope = "all"
    hold_s: float = 30.0
    """For ``timeout``: how long the request hangs before the server answers 504."""


@dataclass(slots=True)
class Faults:
    """All injected faults (mutable; owned by the simulator's event loop)."""

    streams: dict[str, StreamFaults] = field(default_factory=lambda: {k: StreamFaults() for k in STREAM_KINDS})
    rest: list[RestFault] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)
    """How many faults of each kind actually hit (for tests and ``/sim/state``)."""

    def count(self, name: str) -> None:
        self.injected[name] = self.injected.get(name, 0) + 1

    def take_rest_fault(
        self, scope: Literal["trading", "data", "control"], order_write: bool = False
    ) -> RestFault | None:
        """The fault the next REST call in ``scope`` suffers (consumes one), if any."""
        if scope == "control":
            return None
        for fault in self.rest:
            if fault.remaining > 0 and (fault.scope in ("all", scope) or (fault.scope == "orders" and order_write)):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.rest.remove(fault)
                self.count(f"rest_{fault.kind}")
                return fault
        return None

    def clear(self) -> None:
        """Remove every pending fault."""
        self.streams = {k: StreamFaults() for k in STREAM_KINDS}
        self.rest.clear()
