"""Trading REST under ``/v2``: orders, positions, exercise, account, activities, contracts, clock, calendar."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
from typing import Any

import numpy as np
from aiohttp import web

from engine.sim import errors
from engine.sim.clock import NY, from_ns
from engine.sim.orders import Order, dec
from engine.sim.rest import SIM_KEY, json_body, query_bool, query_float, query_int, query_list
from engine.sim.ticks import NON_PENNY
from engine.sim.universe import contract_id
from greeks.calendar import CalendarRangeError
from greeks.occ import OccSymbolError, parse_occ


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _parse_time(value: str, name: str) -> int:
    try:
        if len(value) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), NY)
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError:
        raise errors.invalid(f"invalid {name}: {value!r} is not an RFC-3339 time") from None
    return int(moment.timestamp() * 1e9)


def _parse_date(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise errors.invalid(f"invalid {name}: {value!r} is not a date (YYYY-MM-DD)") from None


# ---- account ---------------------------------------------------------------------------------------
async def get_account(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    ex = sim.exchange
    prices = {s: ex.mark(s) for s in ex.account.positions}
    return _ok(ex.account.account_json(prices, sim.now_ns))


async def get_activities(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    kinds = set(query_list(request, "activity_types"))
    if "activity_type" in request.match_info:
        kinds = {request.match_info["activity_type"].upper()}
    after = request.query.get("after")
    until = request.query.get("until")
    day = _parse_date(request.query.get("date"), "date")
    direction = request.query.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise errors.invalid("invalid direction: must be asc or desc")
    size = query_int(request, "page_size", 100, 1, 100)
    items = [a for a in sim.exchange.account.activities if not kinds or a["activity_type"] in kinds]
    if after:
        items = [a for a in items if a["_ns"] > _parse_time(after, "after")]
    if until:
        items = [a for a in items if a["_ns"] < _parse_time(until, "until")]
    if day:
        items = [a for a in items if from_ns(a["_ns"]).astimezone(NY).date() == day]
    if direction == "desc":
        items = items[::-1]
    token = request.query.get("page_token")
    if token:
        ids = [a["id"] for a in items]
        if token not in ids:
            raise errors.invalid("invalid page_token")
        items = items[ids.index(token) + 1 :]
    return _ok([{k: v for k, v in a.items() if k != "_ns"} for a in items[:size]])


# ---- orders ------------------------------------------------------------------------------------------
async def post_order(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await json_body(request)
    return _ok(sim.exchange.submit(body))


def _order_matches_symbols(order: Order, symbols: set[str]) -> bool:
    names = {o.symbol for o in (order.legs or [order])}
    for name in list(names):
        with contextlib.suppress(OccSymbolError):
            names.add(parse_occ(name).root)
    return bool(names & symbols)


async def list_orders(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    status = request.query.get("status", "open")
    if status not in ("open", "closed", "all"):
        raise errors.invalid("invalid status: must be open, closed or all")
    limit = query_int(request, "limit", 50, 1, 500)
    direction = request.query.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise errors.invalid("invalid direction: must be asc or desc")
    nested = query_bool(request, "nested")
    symbols = set(query_list(request, "symbols"))
    side = request.query.get("side")
    asset_classes = {s.lower() for s in query_list(request, "asset_class")}
    after = request.query.get("after")
    until = request.query.get("until")
    after_ns = _parse_time(after, "after") if after else None
    until_ns = _parse_time(until, "until") if until else None
    out: list[tuple[int, int, Order]] = []  # (submitted_ns, arrival sequence, order)
    # nested=true rolls mleg legs up under their parent; otherwise parent and legs are separate rows
    for seq, order in enumerate(sim.exchange.orders.values()):
        if order.parent is not None and nested:
            continue
        if (status == "open" and not order.is_open) or (status == "closed" and order.is_open):
            continue
        if symbols and not _order_matches_symbols(order, symbols):
            continue
        if side and order.side != side:
            continue
        if asset_classes and (order.asset_class or "us_option") not in asset_classes:
            continue
        if after_ns is not None and order.submitted_ns <= after_ns:
            continue
        if until_ns is not None and order.submitted_ns >= until_ns:
            continue
        out.append((order.submitted_ns, seq, order))
    out.sort(key=lambda row: row[:2], reverse=direction == "desc")
    return _ok([o.to_json(nested=nested) for _, _, o in out[:limit]])


async def get_order(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    order = sim.exchange.get(request.match_info["order_id"])
    return _ok(order.to_json(nested=query_bool(request, "nested", True)))


async def get_order_by_client_id(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    coid = request.query.get("client_order_id", "")
    order = sim.exchange.by_client_id.get(coid)
    if order is None:
        raise errors.not_found("order not found")
    return _ok(order.to_json())


async def patch_order(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await json_body(request)
    return _ok(sim.exchange.replace(request.match_info["order_id"], body))


async def delete_order(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.exchange.cancel(request.match_info["order_id"])
    return web.Response(status=204)


async def delete_orders(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return _ok(sim.exchange.cancel_all(), status=207)


# ---- positions ----------------------------------------------------------------------------------------
async def list_positions(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    ex = sim.exchange
    return _ok([ex.account.position_json(p, ex.mark(s)) for s, p in sorted(ex.account.positions.items())])


def _find_position(sim: Any, key: str) -> Any:
    ex = sim.exchange
    pos = ex.account.positions.get(key.upper()) or ex._position_by_id(key)
    if pos is None:
        raise errors.not_found("position does not exist")
    return pos


async def get_position(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    pos = _find_position(sim, request.match_info["symbol"])
    return _ok(sim.exchange.account.position_json(pos, sim.exchange.mark(pos.instrument.symbol)))


async def delete_position(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    pos = _find_position(sim, request.match_info["symbol"])
    qty = query_float(request, "qty")
    percentage = query_float(request, "percentage")
    if qty is not None and percentage is not None:
        raise errors.invalid("only one of qty and percentage may be given")
    if percentage is not None and not 0 < percentage <= 100:
        raise errors.invalid("percentage must be in (0, 100]")
    return _ok(sim.exchange.close_position(pos.instrument.symbol, qty, percentage))


async def delete_positions(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return _ok(sim.exchange.close_all(query_bool(request, "cancel_orders")), status=207)


async def exercise(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.exchange.exercise(request.match_info["symbol"].upper())
    return web.Response(status=200)


async def do_not_exercise(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.exchange.do_not_exercise(request.match_info["symbol"].upper())
    return web.Response(status=200)


# ---- option contracts ----------------------------------------------------------------------------------
def contract_json(sim: Any, row: int, deliverables: bool) -> dict[str, Any]:
    uni = sim.market.universe
    symbol = uni.symbols[row]
    und = uni.underlyings[uni.und[row]].symbol
    expiry = uni.expiry_dates[row]
    strike = float(uni.strike[row])
    kind = "call" if uni.is_call[row] else "put"
    today = sim.market.clock.today()
    oi_seed = int.from_bytes(symbol.encode()[-6:], "big") % 997
    out: dict[str, Any] = {
        "id": uni.ids[row],
        "symbol": symbol,
        "name": f"{und} {expiry:%b %d %Y} {dec(strike)} {kind.title()}",
        "status": "active" if uni.active[row] else "inactive",
        "tradable": bool(uni.active[row]),
        "expiration_date": expiry.isoformat(),
        "root_symbol": und,
        "underlying_symbol": und,
        "underlying_asset_id": contract_id(und),
        "type": kind,
        "style": "american",
        "strike_price": dec(strike),
        "multiplier": "100",
        "size": "100",
        "open_interest": str(oi_seed * 7),
        "open_interest_date": today.isoformat(),
        "close_price": None,
        "close_price_date": None,
        "ppind": bool(sim.market.tick_class[uni.und[row]] != NON_PENNY),
    }
    if deliverables:
        out["deliverables"] = [
            {
                "type": "equity",
                "symbol": und,
                "asset_id": contract_id(und),
                "amount": "100",
                "allocation_percentage": "100",
                "settlement_type": "T+1",
                "settlement_method": "CCC",
                "delayed_settlement": False,
            }
        ]
    return out


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("o:"):
            raise ValueError
        return int(text[2:])
    except ValueError:
        raise errors.invalid("invalid page_token") from None


def filter_contracts(sim: Any, request: web.Request, default_window: bool) -> np.ndarray:
    """Rows matching Alpaca's contract/chain filters, sorted by (underlying, expiry, type, strike)."""
    uni = sim.market.universe
    n = len(uni)
    mask = np.ones(n, dtype=bool)
    unds = query_list(request, "underlying_symbols")
    if "underlying" in request.match_info:
        unds = [request.match_info["underlying"].upper()]
    if unds:
        known = [uni.und_index[u] for u in unds if u in uni.und_index]
        mask &= np.isin(uni.und, known)
    root = request.query.get("root_symbol")
    if root:
        mask &= uni.und == uni.und_index.get(root.upper(), -1)
    status = request.query.get("status", "active")
    if status not in ("active", "inactive"):
        raise errors.invalid("invalid status: must be active or inactive")
    if "underlying" not in request.match_info:
        mask &= uni.active if status == "active" else ~uni.active
    else:
        mask &= uni.active
    kind = request.query.get("type")
    if kind:
        if kind not in ("call", "put"):
            raise errors.invalid("invalid type: must be call or put")
        mask &= uni.is_call == (kind == "call")
    style = request.query.get("style")
    if style and style not in ("american", "european"):
        raise errors.invalid("invalid style: must be american or european")
    if style == "european":
        mask &= False
    lo = query_float(request, "strike_price_gte")
    hi = query_float(request, "strike_price_lte")
    if lo is not None:
        mask &= uni.strike >= lo - 1e-9
    if hi is not None:
        mask &= uni.strike <= hi + 1e-9
    exact = _parse_date(request.query.get("expiration_date"), "expiration_date")
    gte = _parse_date(request.query.get("expiration_date_gte"), "expiration_date_gte")
    lte = _parse_date(request.query.get("expiration_date_lte"), "expiration_date_lte")
    if default_window and exact is None and gte is None and lte is None:
        today = sim.market.clock.today()
        lte = today + dt.timedelta(days=6 - today.weekday())  # Alpaca's default: up to the next weekend
    if exact or gte or lte:
        dates = uni.expiry_day
        if exact:
            mask &= dates == np.datetime64(exact)
        if gte:
            mask &= dates >= np.datetime64(gte)
        if lte:
            mask &= dates <= np.datetime64(lte)
    rows = np.flatnonzero(mask)
    order = np.lexsort((uni.strike[rows], ~uni.is_call[rows], uni.expiry_ns[rows], uni.und[rows]))
    return rows[order]


async def list_contracts(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    limit = query_int(request, "limit", 100, 1, 10_000)
    deliverables = query_bool(request, "show_deliverables")
    rows = filter_contracts(sim, request, default_window=True)
    if "ppind" in request.query:  # penny program indicator: contracts of that tick class only
        ppind = query_bool(request, "ppind")
        rows = rows[(sim.market.tick_class[sim.market.universe.und[rows]] != NON_PENNY) == ppind]
    offset = decode_token(request.query.get("page_token"))
    page = rows[offset : offset + limit]
    token = encode_token(offset + limit) if offset + limit < len(rows) else None
    return _ok({"option_contracts": [contract_json(sim, int(r), deliverables) for r in page], "next_page_token": token})


async def get_contract(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    key = request.match_info["symbol_or_id"]
    uni = sim.market.universe
    row = uni.index.get(key.upper())
    if row is None:
        row = next((i for i, cid in enumerate(uni.ids) if cid == key), None)
    if row is None:
        raise errors.not_found(f"option contract {key} not found")
    return _ok(contract_json(sim, row, True))


# ---- assets, clock, calendar ------------------------------------------------------------------------
def asset_json(symbol: str) -> dict[str, Any]:
    return {
        "id": contract_id(symbol),
        "class": "us_equity",
        "exchange": "ARCA",
        "symbol": symbol,
        "name": f"{symbol} (simulated)",
        "status": "active",
        "tradable": True,
        "marginable": True,
        "shortable": True,
        "easy_to_borrow": True,
        "fractionable": True,
        "attributes": ["options_enabled"],
    }


async def list_assets(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return _ok([asset_json(u.symbol) for u in sim.config.underlyings])


async def get_asset(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    key = request.match_info["symbol"]
    for u in sim.config.underlyings:
        if key.upper() == u.symbol or key == contract_id(u.symbol):
            return _ok(asset_json(u.symbol))
    raise errors.not_found("asset not found")


def _et(ns: int) -> str:
    return from_ns(ns).astimezone(NY).isoformat()


async def get_clock(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    clock = sim.market.clock
    now = clock.now_ns
    is_open = clock.open_ns <= now < clock.close_ns
    nxt = clock.calendar.next_session(clock.session_date)
    return _ok(
        {
            "timestamp": _et(now),
            "is_open": is_open,
            "next_open": _et(nxt.open_ns if now >= clock.open_ns else clock.open_ns),
            "next_close": _et(clock.close_ns if now < clock.close_ns else nxt.close_ns),
        }
    )


async def get_calendar(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    cal = sim.market.clock.calendar
    today = sim.market.clock.today()
    start = _parse_date(request.query.get("start"), "start") or today
    end = _parse_date(request.query.get("end"), "end") or start + dt.timedelta(days=30)
    if end < start:
        raise errors.invalid("end must not be before start")
    if (end - start).days > 3660:
        raise errors.invalid("date range too large (at most 10 years)")
    out: list[dict[str, Any]] = []
    try:
        sessions = cal.sessions_between(start, end)
    except CalendarRangeError as exc:
        raise errors.invalid(str(exc)) from exc
    for session in sessions:
        out.append(
            {
                "date": session.day.isoformat(),
                "open": from_ns(session.open_ns).astimezone(NY).strftime("%H:%M"),
                "close": from_ns(session.close_ns).astimezone(NY).strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": cal.next_session(session.day).day.isoformat(),
            }
        )
    return _ok(out)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/account", get_account)
    r.add_get("/v2/account/activities", get_activities)
    r.add_get("/v2/account/activities/{activity_type}", get_activities)
    r.add_post("/v2/orders", post_order)
    r.add_get("/v2/orders", list_orders)
    r.add_delete("/v2/orders", delete_orders)
    r.add_get("/v2/orders:by_client_order_id", get_order_by_client_id)
    r.add_get("/v2/orders/{order_id}", get_order)
    r.add_patch("/v2/orders/{order_id}", patch_order)
    r.add_delete("/v2/orders/{order_id}", delete_order)
    r.add_get("/v2/positions", list_positions)
    r.add_delete("/v2/positions", delete_positions)
    r.add_get("/v2/positions/{symbol}", get_position)
    r.add_delete("/v2/positions/{symbol}", delete_position)
    r.add_post("/v2/positions/{symbol}/exercise", exercise)
    r.add_post("/v2/positions/{symbol}/do-not-exercise", do_not_exercise)
    r.add_get("/v2/options/contracts", list_contracts)
    r.add_get("/v2/options/contracts/{symbol_or_id}", get_contract)
    r.add_get("/v2/assets", list_assets)
    r.add_get("/v2/assets/{symbol}", get_asset)
    r.add_get("/v2/clock", get_clock)
    r.add_get("/v2/calendar", get_calendar)
