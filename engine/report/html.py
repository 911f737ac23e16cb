"""Render a ``SessionData`` as one self-contained HTML page (inline CSS and SVG, one tiny script).

The script only checks, after load, that every chart rendered with a size, and then sets
``document.title`` to ``ok``, so a headless browser can tell a complete page from a broken one.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from zoneinfo import ZoneInfo

import numpy as np

from engine.report import svg
from engine.report.data import SessionData, SmileShot
from engine.report.stats import StrategyStats, mark_check, strategy_stats
from greeks.svi import implied_vol_from_svi, smile_from_fields

NEW_YORK = ZoneInfo("America/New_York")

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right} th{background:#f2f2f2} td.l,th.l{text-align:left}
.chart{display:block;margin:6px 0} h3{font-size:14px;margin:16px 0 2px} .pair{display:flex;gap:12px;flex-wrap:wrap}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var charts = document.querySelectorAll('svg.chart');
  var ok = charts.length >= 5;
  charts.forEach(function (c) { var r = c.getBoundingClientRect(); if (!(r.width > 0 && r.height > 0)) ok = false; });
  document.title = ok ? 'ok' : 'broken: ' + charts.length + ' charts';
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:,.{digits}f}"


def compute_stats(data: SessionData) -> dict[str, StrategyStats]:
    return {sid: strategy_stats(data.trades.get(sid, []), [v for _, v in data.pnl.get(sid, [])],
                                data.sample_interval_s, raw_curve=[v for _, v in data.pnl_raw.get(sid, [])],
                                realized_curve=[v for _, v in data.realized.get(sid, [])])
            for sid in data.strategies}


def _clock(ts_ns: int) -> str:
    return f"{dt.datetime.fromtimestamp(ts_ns / 1e9, NEW_YORK):%H:%M:%S}"


def _smile_svg(shot: SmileShot, width: int) -> str:
    """One shot's smile against strike (strike = forward * exp(k)), IVs in percent, around the traded strikes:
    k within their range widened by that range's width, at least 0.05, on each side."""
    fwd = shot.forward if shot.forward > 0 else shot.spot
    traded = [math.log(x / fwd) for x in shot.strikes if x > 0] or [0.0]
    widen = max(0.05, max(traded) - min(traded))
    lo, hi = min(traded) - widen, max(traded) + widen
    points = [(fwd * math.exp(k), 100 * m, 100 * b, 100 * a)
              for k, m, b, a in zip(shot.k, shot.iv_mid, shot.iv_bid, shot.iv_ask, strict=True) if lo <= k <= hi]
    curve: list[tuple[float, float]] = []
    if shot.params and shot.t > 0:
        grid = np.linspace(lo, hi, 121)
        ivs = implied_vol_from_svi(smile_from_fields(shot.params, shot.wings), grid, shot.t)
        curve = [(fwd * math.exp(float(k)), 100 * float(v)) for k, v in zip(grid, ivs, strict=True)]
    name = {"entry": "entry", "exit": "exit", "end": "session end (open)"}[shot.moment]
    title = (f"{shot.underlying} {shot.expiry} at {name} {_clock(shot.ts_ns)} ET: spot {shot.spot:.2f}, "
             f"fit {shot.status} at {_clock(shot.fit_ts_ns)}")
    return svg.smile_chart(title, points, curve, shot.strikes, width=width)


def _smile_section(shots: list[SmileShot]) -> str:
    if not shots:
        return "<p class='meta'>no surface was fitted at the traded structures' fills</p>"
    groups: dict[tuple[str, str], list[SmileShot]] = {}
    for shot in shots:
        groups.setdefault((shot.structure_id, shot.expiry), []).append(shot)
    parts = []
    for (structure_id, expiry), group in groups.items():
        parts.append(f"<h3>{_e(structure_id)} &middot; expiry {_e(expiry)}</h3><div class='pair'>")
        parts.extend(f"<div><p class='meta'>{_e(s.moment)}</p>{_smile_svg(s, 600)}</div>" for s in group)
        parts.append("</div>")
    return "".join(parts)


def _marks_note(data: SessionData, stats: dict[str, StrategyStats]) -> str:
    check = mark_check(list(stats.values()))
    raw = f"{_num(check.largest_jump_raw_usd)}" if check.largest_jump_raw_usd is not None else "-"
    share = (f"{data.surface_leg_samples} of {data.leg_samples} held-leg samples "
             f"({100 * data.surface_leg_samples / data.leg_samples:.1f} %)" if data.leg_samples else "no held legs")
    surface = data.summary.get("surface", {}) if isinstance(data.summary, dict) else {}
    re_marks = f"; {surface['surface_marks']} re-marks from the surface in all" if "surface_marks" in surface else ""
    verdict = "within" if check.ok else "<b>beyond</b>"
    return (f"<p id='marks'>Largest jump of the surface-marked P&amp;L between two samples: "
            f"<b>{_num(check.largest_jump_usd)}</b> USD (raw quote mids: {raw} USD); the day's largest true fill "
            f"P&amp;L change (largest change of a strategy's realized P&amp;L in one sample interval: a closing "
            f"fill's round trip at executed prices): <b>{_num(check.largest_fill_change_usd)}</b> USD, so the "
            f"surface-marked curve stays {verdict} what fills prove. Marked from the surface (the quote stale, "
            f"one-sided, crossed or too wide): {share}{re_marks}.</p>")


def render_report(data: SessionData) -> str:
    stats = compute_stats(data)
    raw_pnl = {sid: c[-1][1] for sid, c in data.pnl_raw.items() if c}
    rows = "".join(
        f"<tr><td class='l'>{_e(sid)}</td><td>{s.trades}</td>"
        f"<td>{_num(s.win_rate * 100 if s.win_rate is not None else None, 1)}</td>"
        f"<td>{_num(s.profit_factor)}</td><td>{_num(s.sharpe)}</td><td>{_num(s.max_drawdown_usd)}</td>"
        f"<td>{_num(s.max_drawdown_raw_usd)}</td><td>{_num(s.largest_jump_usd)}</td>"
        f"<td>{_num(s.largest_jump_raw_usd)}</td><td>{_num(s.largest_fill_change_usd)}</td>"
        f"<td>{_num(s.pnl_usd)}</td><td>{_num(raw_pnl.get(sid))}</td></tr>"
        for sid, s in stats.items())
    pnl_pairs = "".join(
        svg.line_chart(f"{sid}: P&L, surface marks vs raw quote mids (USD)",
                       {"surface marks": data.pnl.get(sid, []), "raw quote mids": data.pnl_raw[sid]}, "USD")
        for sid in data.strategies if data.pnl_raw.get(sid))
    option_fills: dict[str, list[tuple[int, float, str]]] = {}
    stock_fills: dict[str, list[tuple[int, float, str]]] = {}
    for t, sid, sym, side, _qty, price in data.fills:
        target = option_fills if len(sym) > 12 else stock_fills  # OCC option symbols are 15-21 characters
        target.setdefault(sid or "engine", []).append((t, price, side))
    greeks = data.greeks
    span = ""
    all_t = [t for s in data.pnl.values() for t, _ in s]
    if all_t:
        a = dt.datetime.fromtimestamp(min(all_t) / 1e9, NEW_YORK)
        b = dt.datetime.fromtimestamp(max(all_t) / 1e9, NEW_YORK)
        span = f"{a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M} ET"
    lat_us = [v / 1e3 for v in data.latency_ns]
    lat_note = ""
    if lat_us:
        srt = sorted(lat_us)
        lat_note = (f"<p class='meta'>{len(srt)} orders: p50 {srt[len(srt) // 2]:.0f} us, "
                    f"p99 {srt[min(len(srt) - 1, int(len(srt) * 0.99))]:.0f} us</p>")
    fill_rows = "".join(
        f"<tr><td class='l'>{dt.datetime.fromtimestamp(t / 1e9, NEW_YORK):%H:%M:%S}</td><td class='l'>{_e(sid)}</td>"
        f"<td class='l'>{_e(sym)}</td><td class='l'>{_e(side)}</td><td>{qty:g}</td><td>{price:.2f}</td></tr>"
        for t, sid, sym, side, qty, price in data.fills[:500])
    more = f"<p class='meta'>... and {len(data.fills) - 500} more</p>" if len(data.fills) > 500 else ""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(data.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(data.title)}</h1><p class='meta'>{_e(data.source)}<br>{_e(span)} &middot; "
        f"{len(data.fills)} fills &middot; {sum(data.denials.values())} gate denials</p>",
        "<h2>Statistics per strategy</h2><table id='stats'><tr><th class='l'>strategy</th><th>trades</th>"
        "<th>win rate %</th><th>profit factor</th><th>Sharpe</th><th>max drawdown $<br>surface marks</th>"
        "<th>max drawdown $<br>raw mids</th><th>largest jump $<br>surface marks</th><th>largest jump $<br>raw mids"
        "</th><th>largest true<br>fill change $</th><th>P&amp;L $<br>surface marks</th><th>P&amp;L $<br>raw mids</th>"
        "</tr>", rows, "</table>", _marks_note(data, stats),
        "<h2>P&amp;L over time per strategy</h2>",
        svg.line_chart("P&L per strategy (USD, surface marks)", {sid: data.pnl.get(sid, []) for sid in data.strategies},
                       "USD"),
        pnl_pairs,
        "<h2>Smiles of the traded expiries at entry and exit</h2>", _smile_section(data.smiles),
        "<h2>Portfolio Greeks over time</h2>",
        svg.line_chart("delta (shares)", {"delta": [(g[0], g[1]) for g in greeks]}, "shares"),
        svg.line_chart("gamma, vega, theta", {"gamma (sh/$)": [(g[0], g[2]) for g in greeks],
                                              "vega ($/vol pt)": [(g[0], g[3]) for g in greeks],
                                              "theta ($/day)": [(g[0], g[4]) for g in greeks]}),
        "<h2>Fills</h2>", svg.scatter_chart("option fills (price per leg)", option_fills),
        svg.scatter_chart("stock fills (hedges)", stock_fills) if stock_fills else "",
        "<h2>Gate denials by reason</h2>",
        svg.bar_chart("gate denials", {k: float(v) for k, v in data.denials.items()}),
        "<h2>Tick-to-order latency</h2>", svg.histogram("tick-to-order latency", lat_us, unit=" us"), lat_note,
        "<h2>Fill log</h2><table><tr><th class='l'>time ET</th><th class='l'>strategy</th><th class='l'>symbol</th>"
        "<th class='l'>side</th><th>qty</th><th>price</th></tr>", fill_rows, "</table>", more,
        f"<script>{_SCRIPT}</script></body></html>",
    ]
    return "".join(parts)
