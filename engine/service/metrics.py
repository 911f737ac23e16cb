"""Prometheus metrics: cheap to update on the hot path, rendered only on scrape.

Updating is a plain attribute operation (``m.feed_messages.inc("options")``,
``m.reprice_seconds.observe(dt)``):
no locks (one loop thread owns them), no string formatting. The text exposition format (version 0.0.4) is
built when ``/metrics`` is scraped. The :class:`MetricsServer` (aiohttp, 127.0.0.1:9464 by default) also
serves ``/healthz`` (200 or 503 from the app's health predicate) and ``/status`` (JSON for
``options-engine status``), and the operator's dashboard (``engine/service/cockpit``).
"""

from __future__ import annotations

import bisect
import collections
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import msgspec
import structlog
from aiohttp import web

from engine.service.background import BackgroundTask, RunsInBackground, lagged_sleep

log = structlog.get_logger(__name__)

LATENCY_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
AGE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return repr(float(v)) if not float(v).is_integer() else str(int(v)) if abs(v) < 1e15 else repr(float(v))


def _escape(label: str) -> str:
    return label.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Counter:
    """A monotonically increasing number."""

    __slots__ = ("help", "name", "value")

    def __init__(self, name: str, help: str) -> None:
        self.name, self.help, self.value = name, help, 0.0

    def inc(self, n: float = 1.0) -> None:
        self.value += n

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} counter\n{self.name} {_fmt(self.value)}\n"


class LabelledCounter:
    """Counters keyed by one label's value (e.g. gate denials by ``reason``)."""

    __slots__ = ("help", "label", "name", "values")

    def __init__(self, name: str, help: str, label: str, initial: Iterable[str] = ()) -> None:
        self.name, self.help, self.label = name, help, label
        self.values: collections.Counter[str] = collections.Counter({k: 0 for k in initial})
        """``initial`` keys are exported at 0 from the start, so alerts using ``increase()`` see their first one."""

    def inc(self, key: str, n: int = 1) -> None:
        self.values[key] += n

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} counter\n"
        for k, v in sorted(self.values.items()):
            yield f'{self.name}{{{self.label}="{_escape(k)}"}} {_fmt(v)}\n'


class Gauge:
    """A value that goes up and down; set directly or computed at scrape time by ``fn``."""

    __slots__ = ("fn", "help", "name", "value")

    def __init__(self, name: str, help: str, fn: Callable[[], float] | None = None) -> None:
        self.name, self.help, self.value, self.fn = name, help, 0.0, fn

    def set(self, v: float) -> None:
        self.value = v

    def render(self) -> Iterable[str]:
        v = self.value
        if self.fn is not None:
            try:
                v = float(self.fn())
            except Exception:
                v = math.nan
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} gauge\n{self.name} {_fmt(v)}\n"


class LabelledGauge:
    """Values keyed by one label, from a function returning ``{label_value: value}`` at scrape time.

    ``kind="counter"`` exposes a running total kept elsewhere (e.g. fills per strategy) as a counter, so that
    ``rate()`` over it is meaningful to Prometheus."""

    __slots__ = ("fn", "help", "kind", "label", "name")

    def __init__(
        self,
        name: str,
        help: str,
        label: str,
        fn: Callable[[], dict[str, float]],
        kind: Literal["gauge", "counter"] = "gauge",
    ) -> None:
        self.name, self.help, self.label, self.fn, self.kind = name, help, label, fn, kind

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        try:
            values = self.fn()
        except Exception:
            values = {}
        for k, v in sorted(values.items()):
            yield f'{self.name}{{{self.label}="{_escape(k)}"}} {_fmt(v)}\n'


class Histogram:
    """Fixed buckets; ``observe`` is a bisect and three additions."""

    __slots__ = ("bounds", "count", "counts", "help", "name", "sum")

    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.name, self.help = name, help
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}\n# TYPE {self.name} histogram\n"
        cumulative = 0
        for bound, c in zip(self.bounds, self.counts, strict=False):
            cumulative += c
            yield f'{self.name}_bucket{{le="{_fmt(bound)}"}} {cumulative}\n'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}\n'
        yield f"{self.name}_sum {_fmt(self.sum)}\n{self.name}_count {self.count}\n"


Metric = Counter | LabelledCounter | Gauge | LabelledGauge | Histogram


class Metrics:
    """The engine's metrics, as attributes for the hot path; :meth:`render` for the scrape."""

    def __init__(self, namespace: str = "options_engine") -> None:
        ns = namespace
        self.feed_messages = LabelledCounter(f"{ns}_feed_messages_total", "Frames decoded per feed.", "feed")
        self.feed_reconnects = LabelledCounter(f"{ns}_feed_reconnects_total", "Reconnects per feed.", "feed")
        self.quote_age_seconds = Histogram(
            f"{ns}_quote_age_seconds",
            "Age of the quote behind a repriced row at reprice time.",
            AGE_BUCKETS_S,
        )
        self.reprice_seconds = Histogram(f"{ns}_reprice_seconds", "Time to apply a batch and reprice its rows.")
        self.tick_to_order_seconds = Histogram(
            f"{ns}_tick_to_order_seconds", "From the frame that triggered an intent to the order leaving."
        )
        self.gate_denials = LabelledCounter(f"{ns}_gate_denials_total", "Intents denied, by reason.", "reason")
        self.orders = LabelledCounter(
            f"{ns}_order_updates_total", "Order updates, by resulting state.", "state", initial=("filled", "rejected")
        )
        self.fills = Counter(f"{ns}_fills_total", "Fills journaled.")
        self.alerts = LabelledCounter(f"{ns}_alerts_total", "Alerts raised, by code.", "code")
        self.loop_lag_seconds = Gauge(f"{ns}_event_loop_lag_seconds", "Last measured event-loop lag.")
        self.loop_lag_hist = Histogram(f"{ns}_event_loop_lag_hist_seconds", "Event-loop lag samples.")
        self.config_reloads = LabelledCounter(f"{ns}_config_reloads_total", "Reloads, by outcome.", "outcome")
        self.started_s = time.time()
        self._extra: list[Metric] = []

    def add(self, metric: Metric) -> Metric:
        """Register a metric owned elsewhere (e.g. a Gauge whose ``fn`` reads the Redis queue depth)."""
        self._extra.append(metric)
        return metric

    def gauge(self, name: str, help: str, fn: Callable[[], float]) -> Gauge:
        g = Gauge(name, help, fn)
        self._extra.append(g)
        return g

    def labelled_gauge(
        self,
        name: str,
        help: str,
        label: str,
        fn: Callable[[], dict[str, float]],
        kind: Literal["gauge", "counter"] = "gauge",
    ) -> LabelledGauge:
        g = LabelledGauge(name, help, label, fn, kind)
        self._extra.append(g)
        return g

    def all(self) -> list[Metric]:
        own = [v for v in vars(self).values() if isinstance(v, Metric)]
        return own + self._extra

    def render(self) -> str:
        return "".join(line for m in self.all() for line in m.render())


class LoopLagMonitor(RunsInBackground):
    """Samples event-loop lag every ``interval_s`` into the metrics (and for health checks)."""

    def __init__(self, metrics: Metrics, interval_s: float = 0.25) -> None:
        self.metrics = metrics
        self.interval_s = interval_s
        self.last_lag_s = 0.0
        self._loop = BackgroundTask("loop-lag", self._run)

    async def _run(self) -> None:
        while True:
            self.last_lag_s = await lagged_sleep(self.interval_s)
            self.metrics.loop_lag_seconds.set(self.last_lag_s)
            self.metrics.loop_lag_hist.observe(self.last_lag_s)


class MetricsServer:
    """aiohttp server for ``/metrics``, ``/healthz`` and ``/status`` on loopback."""

    def __init__(
        self,
        metrics: Metrics,
        host: str = "127.0.0.1",
        port: int = 9464,
        health: Callable[[], tuple[bool, str]] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        extend: Callable[[web.Application], None] | None = None,
    ) -> None:
        """``extend`` adds routes, middlewares and start/stop hooks to the application (the cockpit)."""
        self.metrics = metrics
        self._extend = extend
        self.host = host
        self.port = port
        self._health = health or (lambda: (True, "ok"))
        self._status = status or (lambda: {})
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Bind and serve; the bound port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._on_metrics)
        app.router.add_get("/healthz", self._on_healthz)
        app.router.add_get("/status", self._on_status)
        if self._extend is not None:
            self._extend(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("metrics_listening", host=self.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render().encode(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def _on_healthz(self, request: web.Request) -> web.Response:
        try:
            ok, detail = self._health()
        except Exception as exc:
            ok, detail = False, f"health check failed: {exc}"
        return web.Response(status=200 if ok else 503, text=detail + "\n")

    async def _on_status(self, request: web.Request) -> web.Response:
        body = {"uptime_s": round(time.time() - self.metrics.started_s, 3), **self._status()}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")
