"""Render a ``SessionData`` as one self-contained HTML page (inline CSS and SVG, one tiny script).

The script only checks, after load, that every chart rendered with a size, and then sets
``document.title`` to ``ok``, so a headless browser can tell a complete page from a broken one.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from zoneinfo import ZoneInfo

from engine.report import svg
from engine.report.data import SessionData
from engine.report.stats import StrategyStats, strategy_stats

NEW_YORK = ZoneInfo("America/New_York")

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right} th{background:#f2f2f2} td.l,th.l{text-align:left}
.chart{display:block;margin:6px 0}
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
                                data.sample_interval_s) for sid in data.strategies}


def render_report(data: SessionData) -> str:
    stats = compute_stats(data)
    rows = "".join(
        f"<tr><td class='l'>{_e(sid)}</td><td>{s.trades}</td>"
        f"<td>{_num(s.win_rate * 100 if s.win_rate is not None else None, 1)}</td>"
        f"<td>{_num(s.profit_factor)}</td><td>{_num(s.sharpe)}</td><td>{_num(s.max_drawdown_usd)}</td>"
        f"<td>{_num(s.pnl_usd)}</td></tr>"
        for sid, s in stats.items())
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
        "<th>win rate %</th><th>profit factor</th><th>Sharpe</th><th>max drawdown $</th><th>P&amp;L $</th></tr>",
        rows, "</table>",
        "<h2>P&amp;L over time per strategy</h2>",
        svg.line_chart("P&L per strategy (USD, mid)", {sid: data.pnl.get(sid, []) for sid in data.strategies}, "USD"),
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
