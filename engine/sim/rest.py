"""The simulator's HTTP server: Alpaca-shaped errors, key auth, rate limit and REST faults.

Trading (``/v2/...``), stock data (``/v2/stocks/...``), option data (``/v1beta1/...``) and the
simulator's own control API (``/sim/...``) share one aiohttp app; their paths never clash.
Every error, including unknown routes, bad JSON and crashes, leaves as ``{"code", "message"}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import structlog
from aiohttp import web

from engine.sim import errors
from engine.sim.errors import AlpacaError

if TYPE_CHECKING:
    from engine.sim.server import Simulator

log = structlog.get_logger("engine.sim.rest")
SIM_KEY: web.AppKey[Simulator] = web.AppKey("sim")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def scope_of(path: str) -> Literal["trading", "data", "control"]:
    if path.startswith("/sim/"):
        return "control"
    if path.startswith(("/v1beta1/", "/v2/stocks/")):
        return "data"
    return "trading"


def error_response(error: AlpacaError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


class RateLimiter:
    """Fixed one-minute windows per API (trading, data), on wall time: it limits the client's load."""

    def __init__(self, per_minute: int) -> None:
        self.limit = per_minute
        self.windows: dict[str, tuple[int, int]] = {}

    def take(self, scope: str) -> tuple[bool, dict[str, str]]:
        now = int(time.time())
        start, used = self.windows.get(scope, (now, 0))
        if now - start >= 60:
            start, used = now, 0
        allowed = used < self.limit
        if allowed:
            used += 1
        self.windows[scope] = (start, used)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - used, 0)),
            "X-RateLimit-Reset": str(start + 60),
        }
        return allowed, headers


def authorized(request: web.Request, key: str, secret: str) -> bool:
    if request.headers.get("APCA-API-KEY-ID") == key and request.headers.get("APCA-API-SECRET-KEY") == secret:
        return True
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Basic "):
        try:
            return base64.b64decode(auth[6:]).decode() == f"{key}:{secret}"
        except ValueError:
            return False
    return False


@web.middleware
async def alpaca_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into Alpaca's error shape; the server keeps serving."""
    try:
        return await handler(request)
    except AlpacaError as exc:
        return error_response(exc)
    except web.HTTPNotFound:
        return error_response(AlpacaError(404, errors.NOT_FOUND, "endpoint not found"))
    except web.HTTPMethodNotAllowed:
        return error_response(AlpacaError(405, errors.METHOD_NOT_ALLOWED, "method not allowed"))
    except web.HTTPException as exc:
        return error_response(AlpacaError(exc.status, exc.status * 100_000, exc.reason))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("sim_request_failed", method=request.method, path=request.path)
        return error_response(AlpacaError(500, errors.INTERNAL, "internal server error"))


def make_gate(sim: Simulator) -> Any:
    limiter = RateLimiter(sim.config.rate_limit_per_min)

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Faults first (they model the network/gateway), then auth, then the rate limit."""
        scope = scope_of(request.path)
        sim.rest_log.append((request.method, request.path, dict(request.query)))
        order_write = request.method != "GET" and request.path.startswith("/v2/orders")
        fault = sim.faults.take_rest_fault(scope, order_write)
        if fault is not None and fault.kind in ("timeout_after", "500_after"):
            if authorized(request, sim.config.key, sim.config.secret):
                with contextlib.suppress(AlpacaError):
                    await handler(request)  # the request takes effect; only its answer is lost
            if fault.kind == "timeout_after":
                await asyncio.sleep(fault.hold_s)
                raise AlpacaError(504, errors.GATEWAY_TIMEOUT, "gateway timeout")
            raise AlpacaError(500, errors.INTERNAL, "internal server error")
        if fault is not None:
            if fault.kind == "timeout":
                await asyncio.sleep(fault.hold_s)
                raise AlpacaError(504, errors.GATEWAY_TIMEOUT, "gateway timeout")
            status = int(fault.kind)
            message = {429: "too many requests", 500: "internal server error", 504: "gateway timeout"}[status]
            raise AlpacaError(status, status * 100_000 + 10_000, message)
        if not authorized(request, sim.config.key, sim.config.secret):
            raise AlpacaError(401, errors.UNAUTHORIZED, "request is not authorized")
        if scope == "control" or sim.config.rate_limit_per_min == 0:
            return await handler(request)
        allowed, headers = limiter.take(scope)
        response: web.StreamResponse
        if not allowed:
            response = error_response(AlpacaError(429, errors.RATE_LIMITED, "rate limit exceeded"))
        else:
            try:
                response = await handler(request)
            except AlpacaError as exc:
                response = error_response(exc)
        response.headers.update(headers)
        return response

    return gate


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or 400 ``failed to decode request body``."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AlpacaError(400, errors.DECODE_FAILED, "failed to decode request body") from None


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter; requests sends ``True``/``False``, curl users ``true``."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    low = value.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise errors.invalid(f"invalid {name}: {value!r} is not a boolean")


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise errors.invalid(f"invalid {name}: {value!r} is not an integer") from None
    if not lo <= n <= hi:
        raise errors.invalid(f"invalid {name}: must be between {lo} and {hi}")
    return n


def query_float(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise errors.invalid(f"invalid {name}: {value!r} is not a number") from None


def query_list(request: web.Request, name: str) -> list[str]:
    value = request.query.get(name, "")
    return [s.strip().upper() for s in value.split(",") if s.strip()]


def build_app(sim: Simulator) -> web.Application:
    from engine.sim import control_api, data_api, trading_api

    app = web.Application(middlewares=[alpaca_errors, make_gate(sim)], client_max_size=1 << 20)
    app[SIM_KEY] = sim
    trading_api.add_routes(app)
    data_api.add_routes(app)
    control_api.add_routes(app)
    return app
