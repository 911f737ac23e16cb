"""Small inline-SVG charts (no JavaScript, no external files): lines over time, bars, a histogram, a smile."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 760, 260, 70, 20, 20, 40


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice(lo: float, hi: float) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _frame(title: str, y_lo: float, y_hi: float, x_labels: list[tuple[float, str]], width: int = W) -> list[str]:
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" '
           f'viewBox="0 0 {width} {H}" role="img"><title>{_esc(title)}</title>',
           f'<rect x="0" y="0" width="{width}" height="{H}" fill="#fff"/>',
           f'<rect x="{PAD_L}" y="{PAD_T}" width="{width - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" '
           'fill="#fafafa" stroke="#bbb"/>']
    for k in range(5):
        v = y_lo + (y_hi - y_lo) * k / 4
        y = _y(v, y_lo, y_hi)
        out.append(f'<line x1="{PAD_L}" x2="{width - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        label = _fmt(v) if y_hi - y_lo >= 20 else f"{v:.2f}"  # a narrow range needs the decimals
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{label}</text>')
    for x, label in x_labels:
        out.append(f'<text x="{x:.1f}" y="{H - PAD_B + 16}" font-size="11" text-anchor="middle">{_esc(label)}</text>')
    return out


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if a >= 1e3:
        return f"{v / 1e3:.1f}k"
    if a >= 10 or a == 0:
        return f"{v:.0f}"
    return f"{v:.2g}"


def _y(v: float, lo: float, hi: float) -> float:
    return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))


def _x(t: float, lo: float, hi: float) -> float:
    span = hi - lo or 1.0
    return PAD_L + (W - PAD_L - PAD_R) * (t - lo) / span


def _time_labels(t0: int, t1: int) -> list[tuple[float, str]]:
    out = []
    for k in range(5):
        t = t0 + (t1 - t0) * k / 4
        label = dt.datetime.fromtimestamp(t / 1e9, NEW_YORK).strftime("%m-%d %H:%M")
        out.append((_x(t, t0, t1) - 18 * (k == 4), label))  # keep the last label inside the chart
    return out


def line_chart(title: str, series: Mapping[str, Sequence[tuple[int, float]]], unit: str = "") -> str:
    """Lines of (event ns, value) per name, with a legend; an empty chart says so."""
    pts = [(t, v) for s in series.values() for t, v in s if math.isfinite(v)]
    if not pts:
        return empty_chart(title, "no samples")
    t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
    lo, hi = _nice(min(v for _, v in pts), max(v for _, v in pts))
    out = _frame(title, lo, hi, _time_labels(t0, t1))
    for i, (name, s) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{_x(t, t0, t1):.1f},{_y(v, lo, hi):.1f}" for t, v in s if math.isfinite(v))
        if coords:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{coords}"/>')
        out.append(f'<rect x="{PAD_L + 10 + 150 * i}" y="{PAD_T + 6}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{PAD_L + 24 + 150 * i}" y="{PAD_T + 15}" font-size="11">{_esc(name)}</text>')
    if unit:
        out.append(f'<text x="12" y="{PAD_T + 10}" font-size="11">{_esc(unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def scatter_chart(title: str, groups: Mapping[str, Sequence[tuple[int, float, str]]]) -> str:
    """Points of (event ns, price, side) per group: buys as up triangles, sells as down triangles."""
    pts = [(t, v) for g in groups.values() for t, v, _ in g if math.isfinite(v)]
    if not pts:
        return empty_chart(title, "no fills")
    t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
    lo, hi = _nice(min(v for _, v in pts), max(v for _, v in pts))
    out = _frame(title, lo, hi, _time_labels(t0, t1))
    for i, (name, g) in enumerate(groups.items()):
        color = PALETTE[i % len(PALETTE)]
        for t, v, side in g:
            x, y = _x(t, t0, t1), _y(v, lo, hi)
            d = -5 if side == "buy" else 5
            top, tip = y - d / 2, y + d / 2
            out.append(f'<path d="M{x - 4:.1f},{top:.1f} L{x + 4:.1f},{top:.1f} L{x:.1f},{tip:.1f} Z" '
                       f'fill="{color}" opacity="0.8"/>')
        out.append(f'<rect x="{PAD_L + 10 + 150 * i}" y="{PAD_T + 6}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{PAD_L + 24 + 150 * i}" y="{PAD_T + 15}" font-size="11">{_esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, bars: dict[str, float]) -> str:
    if not bars:
        return empty_chart(title, "none")
    items = sorted(bars.items(), key=lambda kv: -kv[1])
    top = max(v for _, v in items) or 1.0
    row = 22
    height = PAD_T + row * len(items) + 10
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
           f'viewBox="0 0 {W} {height}" role="img"><title>{_esc(title)}</title>',
           f'<rect x="0" y="0" width="{W}" height="{height}" fill="#fff"/>']
    for i, (name, v) in enumerate(items):
        y = PAD_T + row * i
        w = (W - 260) * v / top
        out.append(f'<text x="210" y="{y + 14}" font-size="12" text-anchor="end">{_esc(name)}</text>')
        out.append(f'<rect x="220" y="{y + 3}" width="{max(w, 1):.1f}" height="14" fill="{PALETTE[1]}"/>')
        out.append(f'<text x="{226 + w:.1f}" y="{y + 14}" font-size="12">{_fmt(v)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(title: str, values: Sequence[float], bins: int = 30, unit: str = "") -> str:
    vals = sorted(v for v in values if math.isfinite(v))
    if not vals:
        return empty_chart(title, "no samples")
    lo, hi = vals[0], vals[-1]
    if hi <= lo:
        hi = lo + 1.0
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    top = max(counts)
    y_lo, y_hi = 0.0, top * 1.05
    labels = [(_x(lo + (hi - lo) * k / 4, lo, hi), _fmt(lo + (hi - lo) * k / 4) + unit) for k in range(5)]
    out = _frame(title, y_lo, y_hi, labels)
    bw = (W - PAD_L - PAD_R) / bins
    for i, c in enumerate(counts):
        if c:
            y = _y(c, y_lo, y_hi)
            out.append(f'<rect x="{PAD_L + i * bw + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" '
                       f'height="{H - PAD_B - y:.1f}" fill="{PALETTE[0]}"/>')
    out.append("</svg>")
    return "".join(out)


def empty_chart(title: str, note: str) -> str:
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="60" viewBox="0 0 {W} 60">'
            f'<title>{_esc(title)}</title><rect x="0" y="0" width="{W}" height="60" fill="#fafafa" stroke="#ddd"/>'
            f'<text x="{W / 2}" y="35" font-size="13" text-anchor="middle" fill="#777">{_esc(note)}</text></svg>')


def smile_chart(title: str, points: Sequence[tuple[float, float, float, float]],
                curve: Sequence[tuple[float, float]], marks: Sequence[float] = (), width: int = W) -> str:
    """A smile against strike: market points (strike, mid IV, bid IV, ask IV) as dots with bid/ask error bars
    (a NaN side is drawn open-ended to the frame), the fitted (strike, IV) curve, traded strikes as dashed lines."""
    ivs = [v for p in points for v in p[1:] if math.isfinite(v)] + [v for _, v in curve if math.isfinite(v)]
    xs = [p[0] for p in points] + [x for x, _ in curve]
    if not ivs or not xs:
        return empty_chart(title, "no smile")
    x0, x1 = min([*xs, *marks]), max([*xs, *marks])
    lo, hi = _nice(min(ivs), max(ivs))

    def px(x: float) -> float:
        return PAD_L + (width - PAD_L - PAD_R) * (x - x0) / ((x1 - x0) or 1.0)

    labels = [(px(x0 + (x1 - x0) * k / 4), _fmt(x0 + (x1 - x0) * k / 4)) for k in range(5)]
    out = _frame(title, lo, hi, labels, width)
    top, bottom = PAD_T, H - PAD_B
    for k in marks:
        out.append(f'<line x1="{px(k):.1f}" x2="{px(k):.1f}" y1="{top}" y2="{bottom}" stroke="{PALETTE[2]}" '
                   'stroke-dasharray="4,3"/>')
    for k, mid, bid, ask in points:
        x = px(k)
        y_bid = _y(bid, lo, hi) if math.isfinite(bid) else bottom
        y_ask = _y(ask, lo, hi) if math.isfinite(ask) else top
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_bid:.1f}" y2="{y_ask:.1f}" stroke="#888"/>')
        if math.isfinite(mid):
            out.append(f'<circle cx="{x:.1f}" cy="{_y(mid, lo, hi):.1f}" r="2.5" fill="{PALETTE[0]}"/>')
    coords = " ".join(f"{px(x):.1f},{_y(v, lo, hi):.1f}" for x, v in curve if math.isfinite(v))
    if coords:
        out.append(f'<polyline fill="none" stroke="{PALETTE[1]}" stroke-width="1.8" points="{coords}"/>')
    legend = (("market mid, bid-ask", PALETTE[0]), ("fitted SVI", PALETTE[1]), ("traded strikes", PALETTE[2]))
    for i, (name, color) in enumerate(legend):
        out.append(f'<rect x="{PAD_L + 10 + 130 * i}" y="{PAD_T + 6}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{PAD_L + 24 + 130 * i}" y="{PAD_T + 15}" font-size="11">{_esc(name)}</text>')
    out.append(f'<text x="12" y="{PAD_T + 10}" font-size="11">IV %</text>')
    out.append(f'<text x="{width - PAD_R}" y="{H - 6}" font-size="11" text-anchor="end">strike</text>')
    out.append("</svg>")
    return "".join(out)
