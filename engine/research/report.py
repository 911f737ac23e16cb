"""The sweep's HTML report: the best trials, a heat-map of the objective over two parameters, and the walk-forward
curve (in-sample vs out-of-sample objective per window). One self-contained file, no scripts, no external resources.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from typing import Any

from engine.research.spec import Sweep
from engine.research.store import ResultStore


def _fmt(v: Any) -> str:
    return "" if v is None else (f"{v:,.4g}" if isinstance(v, float) else html.escape(str(v)))


def _colour(v: float | None, lo: float, hi: float) -> str:
    """Red (worst) to green (best) on the objective's range; grey for no value."""
    if v is None:
        return "#ddd"
    t = 0.5 if hi <= lo else (v - lo) / (hi - lo)
    return f"hsl({int(120 * t)}, 65%, 55%)"


def _best_table(rows: list[Any], names: list[str]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    out = [f"<table><tr><th>trial</th><th>window</th><th>objective</th><th>feasible</th>{head}"
           "<th>pnl_usd</th><th>trades</th><th>max_drawdown_usd</th><th>sharpe</th></tr>"]
    for r in rows:
        params, m = json.loads(r["params"]), json.loads(r["metrics"])
        cells = "".join(f"<td>{_fmt(params.get(n))}</td>" for n in names)
        out.append(f"<tr><td>{r['trial']}</td><td>{r['window']}</td><td>{_fmt(r['objective'])}</td>"
                   f"<td>{'yes' if r['feasible'] else 'no'}</td>{cells}<td>{_fmt(m['pnl_usd'])}</td>"
                   f"<td>{m['trades']}</td><td>{_fmt(m['max_drawdown_usd'])}</td><td>{_fmt(m['sharpe'])}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _heat_map(rows: list[Any], x: str, y: str, maximize: bool) -> str:
    """Best objective per (x, y) cell over the other parameters and windows."""
    cells: dict[tuple[str, str], float | None] = defaultdict(lambda: None)
    for r in rows:
        p = json.loads(r["params"])
        key = (json.dumps(p.get(x)), json.dumps(p.get(y)))
        v = r["objective"] if r["feasible"] else None
        if v is not None:
            old = cells[key]
            cells[key] = v if old is None else (max(old, v) if maximize else min(old, v))
    xs = sorted({k[0] for k in cells} | {json.dumps(json.loads(r["params"]).get(x)) for r in rows}, key=json.loads)
    ys = sorted({json.dumps(json.loads(r["params"]).get(y)) for r in rows}, key=json.loads)
    values = [v for v in cells.values() if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    if not maximize:
        lo, hi = hi, lo
    out = [f"<h3>{html.escape(y)} (rows) x {html.escape(x)} (columns)</h3><table class=heat><tr><th></th>"]
    out += [f"<th>{html.escape(v)}</th>" for v in xs]
    out.append("</tr>")
    for yv in ys:
        out.append(f"<tr><th>{html.escape(yv)}</th>")
        for xv in xs:
            v = cells[(xv, yv)]
            out.append(f"<td style='background:{_colour(v, lo, hi)}'>{_fmt(v)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _walk_forward_svg(windows: list[Any]) -> str:
    """In-sample and out-of-sample objective per window as two polylines."""
    pts = [(w["window"], w["in_sample"], w["out_of_sample"]) for w in windows]
    values = [v for _, a, b in pts for v in (a, b) if v is not None]
    if not values:
        return "<p>No feasible trial in any window.</p>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    width, height, pad = 640, 240, 30
    n = max(len(pts) - 1, 1)

    def xy(i: int, v: float) -> str:
        return f"{pad + i * (width - 2 * pad) / n:.1f},{height - pad - (v - lo) / span * (height - 2 * pad):.1f}"

    def line(col: int, colour: str) -> str:
        coords = " ".join(xy(i, p[col]) for i, p in enumerate(pts) if p[col] is not None)
        dots = "".join(f"<circle cx={xy(i, p[col]).split(',')[0]} cy={xy(i, p[col]).split(',')[1]} r=3 "
                       f"fill='{colour}'/>" for i, p in enumerate(pts) if p[col] is not None)
        return f"<polyline fill=none stroke='{colour}' stroke-width=2 points='{coords}'/>{dots}"

    return (f"<svg width={width} height={height} xmlns='http://www.w3.org/2000/svg'>"
            f"<rect width={width} height={height} fill='#fafafa'/>{line(1, '#1f77b4')}{line(2, '#d62728')}"
            f"<text x={pad} y=16 font-size=12 fill='#1f77b4'>in-sample (best trial on its training days)</text>"
            f"<text x={pad + 300} y=16 font-size=12 fill='#d62728'>out-of-sample (next days)</text>"
            f"<text x=2 y={height - pad} font-size=10>{lo:.4g}</text><text x=2 y={pad} font-size=10>{hi:.4g}</text>"
            "</svg>")


def render_sweep_report(sweep: Sweep, *, top: int = 15) -> str:
    """The report of everything stored for ``sweep`` so far."""
    spec = sweep.spec
    maximize = spec.objective.direction == "maximize"
    store = ResultStore(sweep.results)
    try:
        order = "DESC" if maximize else "ASC"
        search = store.rows("SELECT * FROM trials WHERE phase = 'search'")
        best = store.rows(f"SELECT * FROM trials WHERE phase = 'search' ORDER BY feasible DESC, objective IS NULL, "
                          f"objective {order}, trial LIMIT ?", (top,))
        windows = store.rows("SELECT * FROM windows ORDER BY window")
        units = store.rows("SELECT COUNT(*) AS n, COUNT(DISTINCT fills_hash) AS h FROM units")[0]
    finally:
        store.close()
    names = list(spec.params)
    parts = [f"<h1>Sweep {html.escape(sweep.path.name)}</h1>",
             f"<p>{len(search)} trials, {units['n']} replays ({units['h']} distinct fills_hash) over "
             f"{len(sweep.days)} days; objective: {spec.objective.direction} {spec.objective.metric}"
             f"{'; constraints: ' + html.escape(', '.join(spec.constraints)) if spec.constraints else ''}.</p>",
             "<h2>Best trials</h2>", _best_table(best, names)]
    if len(names) >= 2:
        parts += ["<h2>Objective by parameter pair</h2>", _heat_map(search, names[0], names[1], maximize)]
    if spec.walk_forward is not None:
        rows = "".join(f"<tr><td>{w['window']}</td><td>{html.escape(', '.join(json.loads(w['train_days'])))}</td>"
                       f"<td>{html.escape(', '.join(json.loads(w['test_days'])))}</td><td>{w['best_trial']}</td>"
                       f"<td>{_fmt(w['in_sample'])}</td><td>{_fmt(w['out_of_sample'])}</td></tr>" for w in windows)
        parts += ["<h2>Walk-forward: in-sample vs out-of-sample</h2>", _walk_forward_svg(windows),
                  "<table><tr><th>window</th><th>train days</th><th>test days</th><th>best trial</th>"
                  f"<th>in-sample</th><th>out-of-sample</th></tr>{rows}</table>"]
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>sweep report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>")
