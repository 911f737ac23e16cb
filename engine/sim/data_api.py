"""Market-data REST: ``/v1beta1/options/...`` (snapshots, chain, latest quotes/trades) and ``/v2/stocks/...``.

Snapshots carry Alpaca's implied volatility and Greeks: Black-Scholes at the quote's mid, inverted
with the ``greeks`` kernels (absent when the mid has no time value, as on Alpaca).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiohttp import web

import greeks
from engine.sim import errors
from engine.sim.clock import rfc3339
from engine.sim.pricing import MIN_T_YEARS, years_to
from engine.sim.rest import SIM_KEY, query_int, query_list
from engine.sim.streams import stock_quote_fields
from engine.sim.trading_api import decode_token, encode_token, filter_contracts
from greeks.calendar import NS_PER_DAY, NS_PER_MINUTE

MAX_SYMBOLS = 100


def _feed(request: web.Request, choices: tuple[str, ...]) -> None:
    feed = request.query.get("feed")
    if feed and feed not in choices:
        raise errors.invalid(f"invalid feed: {feed!r} (expected one of {', '.join(choices)})")


def _option_rows(sim: Any, request: web.Request) -> np.ndarray:
    symbols = query_list(request, "symbols")
    if not symbols:
        raise errors.invalid("symbols is required")
    if len(symbols) > MAX_SYMBOLS:
        raise errors.invalid(f"too many symbols: at most {MAX_SYMBOLS}")
    index = sim.market.universe.index
    return np.array([index[s] for s in symbols if s in index], dtype=np.intp)


def option_snapshots(sim: Any, rows: np.ndarray) -> dict[str, dict[str, Any]]:
    """Alpaca snapshot objects for contract rows, priced in one batch."""
    market = sim.market
    uni = market.universe
    if len(rows) == 0:
        return {}
    q = market.option_quotes(rows)
    now = market.now_ns
    mid = (q.bid + q.ask) / 2
    und = uni.und[rows]
    spot = market.spots[und]
    t = np.maximum(years_to(uni.expiry_ns[rows], now), MIN_T_YEARS)
    iv = greeks.implied_vol_and_greeks(
        mid,
        spot,
        uni.strike[rows],
        t,
        np.full(len(rows), market.r),
        market.q[und],
        uni.is_call[rows],
        min_time_value=0.005,
    )
    out: dict[str, dict[str, Any]] = {}
    ts = rfc3339(now)
    for i, row in enumerate(rows.tolist()):
        snap: dict[str, Any] = {
            "latestQuote": {
                "t": ts,
                "bx": q.bid_exchange[i].decode(),
                "bp": float(q.bid[i]),
                "bs": int(q.bid_size[i]),
                "ax": q.ask_exchange[i].decode(),
                "ap": float(q.ask[i]),
                "as": int(q.ask_size[i]),
                "c": " ",
            }
        }
        trade = market.last_option_trade.get(row)
        if trade is not None:
            snap["latestTrade"] = {"t": rfc3339(trade[2]), "x": trade[3], "p": trade[0], "s": trade[1], "c": "I"}
        if iv.status[i] == greeks.OK and np.isfinite(iv.sigma[i]):
            snap["impliedVolatility"] = round(float(iv.sigma[i]), 6)
            snap["greeks"] = {
                "delta": round(float(iv.delta[i]), 6),
                "gamma": round(float(iv.gamma[i]), 6),
                "rho": round(float(iv.rho[i]) / 100, 6),
                "theta": round(float(iv.theta[i]) / 365, 6),
                "vega": round(float(iv.vega[i]) / 100, 6),
            }
        out[uni.symbols[row]] = snap
    return out


async def chain(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _feed(request, ("opra", "indicative"))
    underlying = request.match_info["underlying"].upper()
    if underlying not in sim.market.universe.und_index:
        return web.json_response({"snapshots": {}, "next_page_token": None})
    limit = query_int(request, "limit", 100, 1, 1000)
    rows = filter_contracts(sim, request, default_window=False)
    since = request.query.get("updated_since")
    if since and since > rfc3339(sim.now_ns):
        rows = rows[:0]
    offset = decode_token(request.query.get("page_token"))
    page = rows[offset : offset + limit]
    token = encode_token(offset + limit) if offset + limit < len(rows) else None
    return web.json_response({"snapshots": option_snapshots(sim, page), "next_page_token": token})


async def snapshots(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _feed(request, ("opra", "indicative"))
    return web.json_response({"snapshots": option_snapshots(sim, _option_rows(sim, request)), "next_page_token": None})


async def latest_option_quotes(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _feed(request, ("opra", "indicative"))
    snaps = option_snapshots(sim, _option_rows(sim, request))
    return web.json_response({"quotes": {s: v["latestQuote"] for s, v in snaps.items()}})


async def latest_option_trades(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _feed(request, ("opra", "indicative"))
    market = sim.market
    out: dict[str, Any] = {}
    for row in _option_rows(sim, request).tolist():
        trade = market.last_option_trade.get(row)
        if trade is not None:
            out[market.universe.symbols[row]] = {
                "t": rfc3339(trade[2]),
                "x": trade[3],
                "p": trade[0],
                "s": trade[1],
                "c": "I",
            }
    return web.json_response({"trades": out})


# ---- stocks -----------------------------------------------------------------------------------------
def _stock_symbols(sim: Any, request: web.Request) -> list[tuple[str, int]]:
    symbols = query_list(request, "symbols")
    if "symbol" in request.match_info:
        symbols = [request.match_info["symbol"].upper()]
    if not symbols:
        raise errors.invalid("symbols is required")
    index = sim.market.universe.und_index
    return [(s, index[s]) for s in symbols if s in index]


def stock_quote_json(sim: Any, ui: int) -> dict[str, Any]:
    return {"t": rfc3339(sim.now_ns), **stock_quote_fields(sim.market, ui)}


def stock_trade_json(sim: Any, ui: int) -> dict[str, Any] | None:
    trade = sim.market.last_stock_trade.get(ui)
    if trade is None:
        return None
    price, size, ts, ex, tid = trade
    return {"t": rfc3339(ts), "x": ex, "p": price, "s": size, "c": ["@"], "i": tid, "z": "B"}


async def latest_stock_quotes(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _feed(request, ("iex", "sip", "delayed_sip", "boats", "overnight", "otc"))
    pairs = _stock_symbols(sim, request)
    if "symbol" in request.match_info:
        if not pairs:
            raise errors.not_found("symbol not found")
        return web.json_response({"symbol": pairs[0][0], "quote": stock_quote_json(sim, pairs[0][1])})
    return web.json_response({"quotes": {s: stock_quote_json(sim, ui) for s, ui in pairs}})


async def latest_stock_trades(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _feed(request, ("iex", "sip", "delayed_sip", "boats", "overnight", "otc"))
    out = {s: t for s, ui in _stock_symbols(sim, request) if (t := stock_trade_json(sim, ui)) is not None}
    return web.json_response({"trades": out})


async def stock_snapshots(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    _feed(request, ("iex", "sip", "delayed_sip", "boats", "overnight", "otc"))
    out: dict[str, Any] = {}
    for symbol, ui in _stock_symbols(sim, request):
        u = sim.market.unds[ui]
        bar = u.bar or [u.spot] * 4 + [0.0, 0.0, 0.0]
        minute_t = rfc3339(int(max(u.bar_minute, 0)) * NS_PER_MINUTE)
        out[symbol] = {
            "latestQuote": stock_quote_json(sim, ui),
            "latestTrade": stock_trade_json(sim, ui),
            "minuteBar": {
                "t": minute_t,
                "o": bar[0],
                "h": bar[1],
                "l": bar[2],
                "c": bar[3],
                "v": int(bar[4]),
                "n": int(bar[5]),
                "vw": bar[6] / bar[4] if bar[4] else bar[3],
            },
            "dailyBar": {
                "t": rfc3339(sim.market.clock.open_ns),
                "o": u.day_open,
                "h": max(u.day_open, u.spot),
                "l": min(u.day_open, u.spot),
                "c": u.spot,
                "v": 0,
                "n": 0,
                "vw": u.spot,
            },
            "prevDailyBar": {
                "t": rfc3339(sim.market.clock.open_ns - NS_PER_DAY),
                "o": u.prev_close,
                "h": u.prev_close,
                "l": u.prev_close,
                "c": u.prev_close,
                "v": 0,
                "n": 0,
                "vw": u.prev_close,
            },
        }
    return web.json_response(out)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1beta1/options/snapshots", snapshots)
    r.add_get("/v1beta1/options/snapshots/{underlying}", chain)
    r.add_get("/v1beta1/options/quotes/latest", latest_option_quotes)
    r.add_get("/v1beta1/options/trades/latest", latest_option_trades)
    r.add_get("/v2/stocks/quotes/latest", latest_stock_quotes)
    r.add_get("/v2/stocks/trades/latest", latest_stock_trades)
    r.add_get("/v2/stocks/snapshots", stock_snapshots)
    r.add_get("/v2/stocks/{symbol}/quotes/latest", latest_stock_quotes)
