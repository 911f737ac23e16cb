"""An in-process event bus: typed events, one task per subscriber, conflation for market data.

``publish`` is synchronous and never awaits, so the hot path (decode -> apply -> reprice -> publish)
stays await-free. Each subscriber owns a mailbox and a task:

* lossless topics (orders, fills, alerts, ...) queue every event in publish order;
* conflated topics (book, stock quotes) keep only the newest event per key (underlying/symbol), so a
  busy subscriber sees the latest book when it comes back, never a backlog.

A subscriber may take some topics ``inline``: ``publish`` calls its handler for those at once, on the
publisher's stack, instead of queueing (no conflation, no loop iteration in between). The trading core
takes book updates that way: the hop to its task cost the tick-to-order path a loop iteration (0.1-0.2 ms
behind a burst of frames). An inline handler must be synchronous and must not publish its own topic.

A subscriber that raises is isolated: the error is logged, a ``SubscriberFailed`` alert goes to the
other subscribers, and the subscriber keeps receiving (a fresh call per event is its restart); after
``max_consecutive_failures`` failures in a row it is disabled and removed. Lossless events are
handed out before conflated ones, so a fill is never starved by book traffic.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from engine.kernel.events import Delivery, SubscriberFailed, Topic, conflation_key, topic_of

log = structlog.get_logger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]

DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
BACKLOG_WARNING = 10_000


class Subscriber:
    """One subscriber's mailbox and bookkeeping (owned by the bus; read-only for others)."""

    __slots__ = (
        "_conflated",
        "_lossless",
        "_wakeup",
        "busy",
        "consecutive_failures",
        "delivered",
        "disabled",
        "handler",
        "inline",
        "max_consecutive_failures",
        "name",
        "skipped",
        "task",
        "topics",
        "warned_backlog",
    )

    def __init__(self, name: str, handler: Handler, topics: frozenset[Topic], max_failures: int,
                 inline: frozenset[Topic] = frozenset()) -> None:
        self.name = name
        self.handler = handler
        self.topics = topics
        self.inline = inline
        self.max_consecutive_failures = max_failures
        self._lossless: deque[Any] = deque()
        self._conflated: dict[tuple[Topic, str], Any] = {}
        self._wakeup = asyncio.Event()
        self.consecutive_failures = 0
        self.delivered = 0
        self.skipped = 0
        """Conflated events replaced before the subscriber saw them."""
        self.disabled = False
        self.busy = False
        self.warned_backlog = False
        self.task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._lossless) + len(self._conflated)

    def put(self, topic: Topic, event: Any) -> None:
        if topic.delivery is Delivery.CONFLATED:
            key = (topic, conflation_key(event))
            if key in self._conflated:
                self.skipped += 1
            self._conflated[key] = event
        else:
            self._lossless.append(event)
            if len(self._lossless) > BACKLOG_WARNING and not self.warned_backlog:
                self.warned_backlog = True
                log.warning("subscriber_backlog", subscriber=self.name, pending=len(self._lossless))
        self._wakeup.set()

    def pop(self) -> Any | None:
        if self._lossless:
            return self._lossless.popleft()
        if self._conflated:
            key = next(iter(self._conflated))
            return self._conflated.pop(key)
        return None


class Bus:
    """Routes events by type to subscribers, each in its own task."""

    def __init__(
        self,
        *,
        now_ns: Callable[[], int] = time.time_ns,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        self._now_ns = now_ns
        self._max_failures = max_consecutive_failures
        self._subscribers: dict[str, Subscriber] = {}
        self._by_topic: dict[Topic, list[Subscriber]] = {t: [] for t in Topic}
        self._running = False
        self.published = 0

    # --- subscription ------------------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        handler: Handler,
        topics: Iterable[Topic],
        *,
        max_consecutive_failures: int | None = None,
        inline: Iterable[Topic] = (),
    ) -> Subscriber:
        """Register ``handler`` (sync or async, one event per call) for ``topics`` under a unique name.

        Events of the ``inline`` topics (a subset of ``topics``; the handler must then be synchronous) are
        handed over inside ``publish`` rather than through the subscriber's task.
        """
        if name in self._subscribers:
            raise ValueError(f"subscriber {name!r} already registered")
        inline_set = frozenset(inline)
        if not inline_set <= frozenset(topics):
            raise ValueError(f"inline topics {sorted(inline_set - frozenset(topics))} are not among the topics")
        if inline_set and inspect.iscoroutinefunction(handler):
            raise ValueError("an inline subscriber's handler must be synchronous")
        sub = Subscriber(
            name,
            handler,
            frozenset(topics),
            self._max_failures if max_consecutive_failures is None else max_consecutive_failures,
            inline_set,
        )
        self._subscribers[name] = sub
        for topic in sub.topics:
            self._by_topic[topic].append(sub)
        if self._running:
            self._start(sub)
        return sub

    def unsubscribe(self, name: str) -> None:
        """Remove a subscriber and cancel its task (pending events are dropped)."""
        sub = self._subscribers.pop(name, None)
        if sub is None:
            return
        for topic in sub.topics:
            self._by_topic[topic].remove(sub)
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()

    def subscriber(self, name: str) -> Subscriber | None:
        return self._subscribers.get(name)

    # --- publishing --------------------------------------------------------------------------

    def publish(self, event: Any) -> None:
        """Hand ``event`` to every subscriber of its topic; never blocks, never awaits."""
        topic = topic_of(event)
        self.published += 1
        for sub in self._by_topic[topic]:
            if topic in sub.inline and self._running and not sub.busy:
                self._deliver_inline(sub, event)
            else:
                sub.put(topic, event)

    def _deliver_inline(self, sub: Subscriber, event: Any) -> None:
        sub.busy = True
        try:
            sub.handler(event)
        except Exception as exc:
            self._on_failure(sub, event, exc)
        else:
            sub.consecutive_failures = 0
            sub.delivered += 1
        finally:
            sub.busy = False

    # --- life-cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start one task per subscriber (later subscribers start on registration)."""
        self._running = True
        for sub in self._subscribers.values():
            if sub.task is None:
                self._start(sub)

    async def stop(self, drain_timeout_s: float = 1.0) -> None:
        """Let subscribers drain their mailboxes for up to ``drain_timeout_s``, then cancel their tasks."""
        if drain_timeout_s > 0:
            try:
                await asyncio.wait_for(self.drain(), drain_timeout_s)
            except TimeoutError:
                log.warning("bus_drain_timeout", pending={s.name: s.pending for s in self._subscribers.values()})
        self._running = False
        tasks = [s.task for s in self._subscribers.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in self._subscribers.values():
            sub.task = None

    async def drain(self) -> None:
        """Wait until every enabled subscriber has handled everything published so far."""
        # Polling on purpose: the condition spans every subscriber's mailbox and task.
        while any((s.pending or s.busy) and not s.disabled for s in self._subscribers.values()):  # noqa: ASYNC110
            await asyncio.sleep(0)

    # --- internals ---------------------------------------------------------------------------

    def _start(self, sub: Subscriber) -> None:
        sub.task = asyncio.get_running_loop().create_task(self._run(sub), name=f"bus:{sub.name}")

    async def _run(self, sub: Subscriber) -> None:
        while not sub.disabled:
            await sub._wakeup.wait()
            sub._wakeup.clear()
            while (event := sub.pop()) is not None:
                sub.busy = True
                try:
                    result = sub.handler(event)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._on_failure(sub, event, exc)
                    if sub.disabled:
                        return
                else:
                    sub.consecutive_failures = 0
                    sub.delivered += 1
                finally:
                    sub.busy = False

    def _on_failure(self, sub: Subscriber, event: Any, exc: Exception) -> None:
        sub.consecutive_failures += 1
        disabled = sub.consecutive_failures >= sub.max_consecutive_failures
        log.error(
            "subscriber_failed",
            subscriber=sub.name,
            event_type=type(event).__name__,
            consecutive_failures=sub.consecutive_failures,
            disabled=disabled,
            exc_info=exc,
        )
        if disabled:
            sub.disabled = True
            self.unsubscribe(sub.name)
        now = self._now_ns()
        alert = SubscriberFailed(
            subscriber=sub.name,
            error=f"{type(exc).__name__}: {exc}",
            consecutive_failures=sub.consecutive_failures,
            disabled=disabled,
            ts_event_ns=now,
            ts_init_ns=now,
        )
        # Never feed a subscriber the alert about itself: a handler failing on alerts would loop.
        for other in self._by_topic[topic_of(alert)]:
            if other is not sub:
                other.put(topic_of(alert), alert)
