"""The simulator-only control API under ``/sim``: fault injection, clock, inspection.

Bodies are JSON objects validated by msgspec (unknown fields are refused with 422), so a typo in a
rehearsal script fails loudly instead of silently injecting nothing. See docs/simulator.md.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import msgspec
from aiohttp import web

from engine.sim import errors
from engine.sim.faults import STREAM_KINDS
from engine.sim.rest import SIM_KEY, json_body

T = TypeVar("T")
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class StreamFaultsBody(msgspec.Struct, forbid_unknown_fields=True):
    mute: bool | None = None
    delay_ms: Annotated[float, msgspec.Meta(ge=0, le=600_000)] | None = None
    malformed_frames: Count | None = None
    reject_connections: Count | None = None
    duplicate_updates: Count | None = None
    reorder_updates: Count | None = None


class RestFaultBody(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["429", "500", "504", "timeout", "timeout_after", "500_after"]
    count: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    scope: Literal["all", "trading", "data", "orders"] = "all"
    hold_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 30.0


class RejectBody(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal[403, 422] = 403
    count: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    message: str | None = None


class DelayFillsBody(msgspec.Struct, forbid_unknown_fields=True):
    ms: Annotated[int, msgspec.Meta(ge=0, le=86_400_000)]


class AdvanceBody(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=30 * 86_400)]


class OrderRulesBody(msgspec.Struct, forbid_unknown_fields=True):
    closing_qty_held: bool | None = None
    tick_classes: bool | None = None
    closed_market: bool | None = None
    wash_trades: bool | None = None
    wash_trade_mleg_legs: bool | None = None
    limit_price_away_fraction: Annotated[float, msgspec.Meta(ge=0)] | None = None
    limit_price_away_min_usd: Annotated[float, msgspec.Meta(ge=0)] | None = None
    closing_only_ratio: Annotated[float, msgspec.Meta(ge=0)] | None = None


class HoldBody(msgspec.Struct, forbid_unknown_fields=True):
    at_close: bool


class PauseBody(msgspec.Struct, forbid_unknown_fields=True):
    paused: bool


class MoveBody(msgspec.Struct, forbid_unknown_fields=True):
    symbol: str
    relative: Annotated[float, msgspec.Meta(gt=-0.9, lt=10)]


class AssignBody(msgspec.Struct, forbid_unknown_fields=True):
    symbol: str
    contracts: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    at: Literal["now", "next_open"] = "now"


async def _body(request: web.Request, kind: type[T]) -> T:
    raw = await json_body(request)
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise errors.invalid(str(exc)) from None


def _kind(request: web.Request) -> str:
    kind = request.match_info["kind"]
    if kind not in STREAM_KINDS:
        raise errors.not_found(f"unknown stream kind {kind!r} (expected one of {', '.join(STREAM_KINDS)})")
    return kind


async def drop_stream(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response({"dropped": sim.drop_streams(_kind(request))})


async def stream_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    kind = _kind(request)
    body = await _body(request, StreamFaultsBody)
    state = sim.faults.streams[kind]
    for field in StreamFaultsBody.__struct_fields__:
        value = getattr(body, field)
        if value is not None:
            setattr(state, field, value)
    return web.json_response(msgspec.to_builtins(state))


async def rest_fault(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, RestFaultBody)
    sim.fail_rest(body.kind, body.count, body.scope, body.hold_s)
    return web.json_response({"pending": [msgspec.to_builtins(f) for f in sim.faults.rest]})


async def reject_orders(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, RejectBody)
    sim.reject_next_orders(body.status, body.count, body.message)
    return web.json_response({"pending_rejections": len(sim.exchange.reject_next)})


async def delay_fills(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, DelayFillsBody)
    sim.delay_fills(body.ms)
    return web.json_response({"fill_delay_ms": body.ms})


async def advance(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, AdvanceBody)
    sim.advance(body.seconds)
    return web.json_response(sim.state())


async def move(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, MoveBody)
    if body.symbol.upper() not in sim.market.universe.und_index:
        raise errors.not_found(f"unknown underlying {body.symbol!r}")
    sim.move_underlying(body.symbol.upper(), body.relative)
    return web.json_response(sim.state())


async def assign(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, AssignBody)
    sim.assign(body.symbol.upper(), body.contracts, body.at)
    return web.json_response(sim.expiry())


async def expiry(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].expiry())
async def order_rules(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    if request.method == "POST":
        body = await _body(request, OrderRulesBody)
        changes = {f: v for f in OrderRulesBody.__struct_fields__ if (v := getattr(body, f)) is not None}
        sim.set_order_rules(**changes)
    return web.json_response(msgspec.to_builtins(sim.exchange.rules))


async def hold(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, HoldBody)
    sim.hold_at_close(body.at_close)
    return web.json_response(sim.state())


async def pause(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await _body(request, PauseBody)
    sim.pause(body.paused)
    return web.json_response(sim.state())


async def clear(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.clear_faults()
    return web.json_response(sim.state())


async def state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].state())


async def inspect(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    view = sim.inspect()
    part = request.match_info.get("part")
    if part is not None:
        if part not in view:
            raise errors.not_found(f"unknown inspection part {part!r}")
        return web.json_response(view[part])
    return web.json_response(view)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/sim/streams/{kind}/drop", drop_stream)
    r.add_post("/sim/streams/{kind}/faults", stream_faults)
    r.add_post("/sim/rest/faults", rest_fault)
    r.add_post("/sim/orders/reject", reject_orders)
    r.add_post("/sim/fills/delay", delay_fills)
    r.add_post("/sim/clock/advance", advance)
    r.add_post("/sim/market/move", move)
    r.add_post("/sim/options/assign", assign)
    r.add_get("/sim/expiry", expiry)
    r.add_get("/sim/rules", order_rules)
    r.add_post("/sim/rules", order_rules)
    r.add_post("/sim/clock/hold", hold)
    r.add_post("/sim/clock/pause", pause)
    r.add_delete("/sim/faults", clear)
    r.add_get("/sim/state", state)
    r.add_get("/sim/inspect", inspect)
    r.add_get("/sim/inspect/{part}", inspect)
