"""The operator's cockpit on the metrics server: the page, its event stream, ``/whatif`` and the controls.

Routes (added to the ``MetricsServer``'s application, same host and port as ``/metrics`` and ``/status``):

* ``GET /`` the dashboard (one HTML file, everything inline: no build step, nothing fetched from elsewhere);
* ``GET /events`` server-sent events: the snapshot (``snapshot.py``) at once on connect, then one per second
  (snapshots are built only while a page watches, or when ``/status`` or ``/snapshot`` asks);
* ``GET /snapshot`` the newest snapshot as JSON; ``GET /whatif`` the what-if grid now (``whatif.py``);
* ``GET /control/csrf`` and ``POST /control/{pause,resume,flatten,halt}`` (``control.py``).

Off loopback (``[engine] metrics_host``) every request must carry the token (a browser asks for it through
HTTP Basic), and without a configured token nothing is served. Every control request, done or refused, is
journaled (``operator_actions``) and alerted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import structlog
from aiohttp import web

from engine.kernel.alerts import Alert
from engine.kernel.events import Topic
from engine.service.cockpit.control import ACTIONS, Control, cross_site, presented_token
from engine.service.cockpit.snapshot import CockpitState, build_snapshot, sample_pnl, status_copy
from engine.service.cockpit.whatif import build_whatif
from engine.service.journal import OperatorAction
from engine.service.secrets import Secret

if TYPE_CHECKING:
    from engine.service.app import Engine

log = structlog.get_logger(__name__)

PUSH_INTERVAL_S = 1.0
KEEPALIVE_S = 15.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise NotImplementedError(type(obj))


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (the server is then reachable from this machine only)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encoder.encode(body), content_type="application/json")


class Cockpit:
    """Builds the snapshots, serves the dashboard and carries out the controls (see the module docstring)."""

    def __init__(self, engine: Engine, token: Secret | None, host: str) -> None:
        self.engine = engine
        self.control = Control(token)
        self.open_host = not is_loopback(host)
        self.state = CockpitState()
        self.latest: dict[str, Any] = {}
        self._encoded = b""
        self._seq = 0
        self._built_mono = 0.0
        self._watchers = 0
        self._fresh = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._page = resources.files(__package__).joinpath("dashboard.html").read_bytes()
        if self.open_host and not self.control.enabled:
            log.error("dashboard_locked", reason="metrics_host is not loopback and no dashboard token is configured")

    # ------------------------------------------------------------------------------------ wiring

    def install(self, app: web.Application) -> None:
        """Add the routes, the token check (off loopback) and the snapshot task to the metrics server's app."""
        app.middlewares.append(self._guard)
        app.router.add_get("/", self._on_page)
        app.router.add_get("/events", self._on_events)
        app.router.add_get("/snapshot", self._on_snapshot)
        app.router.add_get("/whatif", self._on_whatif)
        app.router.add_get("/control/csrf", self._on_csrf)
        app.router.add_post("/control/{action}", self._on_control)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_startup(self, app: web.Application) -> None:
        self.engine.bus.subscribe("cockpit", self.state.on_event, (Topic.SURFACE, Topic.FILLS, Topic.ORDERS))
        self._task = asyncio.create_task(self._run(), name="cockpit")

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing = True
        self._fresh.set()  # event streams return, so the server's shutdown does not wait for them
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.engine.bus.unsubscribe("cockpit")

    async def _run(self) -> None:
        """Each second a point of the P&L curve, and a snapshot when a page is watching (a snapshot costs the loop
        about a millisecond; nobody watching, ``/status`` and ``/snapshot`` build one when asked)."""
        while True:
            try:
                sample_pnl(self.engine, self.state)
                if self._watchers:
                    self.refresh()
            except Exception:
                log.exception("cockpit_snapshot_failed")
            await asyncio.sleep(PUSH_INTERVAL_S)

    def refresh(self) -> dict[str, Any]:
        """Build the next snapshot and wake the event streams."""
        self._seq += 1
        self.latest = build_snapshot(self.engine, self.state, self._seq, self.control.enabled)
        self._encoded = _encoder.encode(self.latest)
        self._built_mono = time.monotonic()
        self._fresh.set()
        self._fresh = asyncio.Event()
        return self.latest

    def _current(self) -> None:
        """Build a snapshot now unless the newest is under a push interval old."""
        if not self.latest or time.monotonic() - self._built_mono >= PUSH_INTERVAL_S:
            self.refresh()

    def status_part(self) -> dict[str, Any] | None:
        """What ``/status`` repeats of the newest snapshot (the one the pages were last sent)."""
        if not self._task:
            return None
        self._current()
        return status_copy(self.latest)

    # ------------------------------------------------------------------------------------ handlers

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Off loopback, nothing without the token (a browser is asked for it by HTTP Basic)."""
        if self.open_host and not self.control.token_ok(presented_token(request.headers)):
            if not self.control.enabled:
                return web.Response(status=403, text="dashboard token not configured\n")
            return web.Response(status=401, text="token required\n",
                                headers={"WWW-Authenticate": 'Basic realm="options-engine"'})
        return await handler(request)

    async def _on_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                     "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                     "style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"})

    async def _on_snapshot(self, request: web.Request) -> web.Response:
        self._current()
        return web.Response(body=self._encoded, content_type="application/json")

    async def _on_whatif(self, request: web.Request) -> web.Response:
        kernel = self.engine.kernel
        if kernel is None:
            return _json({"error": "starting"}, 503)
        return _json({"ts_ns": time.time_ns(), "event_ns": self.engine.clock.now_ns(), **build_whatif(kernel)})

    async def _on_events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        sent = -1
        self._watchers += 1
        if self._watchers == 1:
            self.refresh()  # the first watcher gets a fresh snapshot at once, not one up to a second old
        try:
            await self._stream(resp, sent)
        finally:
            self._watchers -= 1
        return resp

    async def _stream(self, resp: web.StreamResponse, sent: int) -> None:
        with contextlib.suppress(ConnectionResetError):  # the page went away
            while not self._closing:
                if self.latest and self._seq != sent:
                    sent = self._seq
                    await resp.write(b"id: %d\ndata: %s\n\n" % (sent, self._encoded))
                fresh = self._fresh
                try:
                    await asyncio.wait_for(fresh.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")

    async def _on_csrf(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request, csrf=False)
        if refusal:
            return self._refuse(request, "csrf", refusal)
        return _json({"csrf": self.control.issue_csrf()})

    async def _on_control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in ACTIONS:
            return _json({"error": f"unknown action {action!r}", "actions": list(ACTIONS)}, 404)
        refusal = self._refusal(request, csrf=True)
        if refusal:
            return self._refuse(request, action, refusal)
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = {}
        cid = body.get("confirm") if isinstance(body, dict) else None
        if not cid:
            return _json({"confirm": self.control.request(action), "action": action,
                          "expires_s": 30, "message": f"confirm {action}"})
        if not self.control.confirm(action, str(cid)):
            return self._refuse(request, action, "confirmation unknown, expired or for another action", 409)
        kernel = self.engine.kernel
        if kernel is None:
            return self._refuse(request, action, "engine starting", 503)
        {"pause": lambda: kernel.set_paused(True), "resume": kernel.resume, "flatten": kernel.flatten,
         "halt": kernel.halt}[action]()
        self._journal(request, action, "done")
        self.engine.alert(Alert("operator_action", "warning", f"dashboard: {action}",
                                {"action": action, "source": self._source(request)}))
        self.refresh()
        return _json({"done": action, "trading_state": kernel.core.breakers.state.name,
                      "paused": kernel.core.paused})

    # ------------------------------------------------------------------------------------ refusals

    def _refusal(self, request: web.Request, csrf: bool) -> str:
        """Why a control request is refused ("" to go ahead)."""
        if not self.control.enabled:
            return "read-only: no dashboard token configured"
        if cross_site(request.headers, request.host):
            return "cross-site request"
        if not self.control.token_ok(presented_token(request.headers)):
            return "missing or wrong token"
        if csrf and not self.control.csrf_ok(request.headers.get("X-CSRF-Token")):
            return "missing or expired CSRF token"
        return ""

    def _refuse(self, request: web.Request, action: str, reason: str, status: int = 403) -> web.Response:
        self._journal(request, action, f"refused: {reason}")
        self.engine.alert(Alert("control_rejected", "warning", f"dashboard {action} refused: {reason}",
                                {"action": action, "reason": reason, "source": self._source(request)}))
        return _json({"error": reason}, status)

    @staticmethod
    def _source(request: web.Request) -> str:
        return f"dashboard {request.remote or '?'}"

    def _journal(self, request: web.Request, action: str, outcome: str) -> None:
        if self.engine.journal is not None:
            self.engine.journal.record_operator_action(
                OperatorAction(time.time_ns(), action, self._source(request), outcome))
