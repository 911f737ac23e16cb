"""The session report: statistics checked by hand on a small case, and the page renders in headless Chromium."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Literal

import msgspec
import pytest

from engine.report.data import SessionData, SmileShot
from engine.report.html import compute_stats, render_report
from engine.report.stats import largest_jump, mark_check, max_drawdown, sharpe, strategy_stats

T0 = 1_700_000_000_000_000_000
MIN = 60_000_000_000


def small_session() -> SessionData:
    curve = [0.0, 100.0, 50.0, 150.0, 120.0]
    return SessionData(
        title="hand-checked session", source="unit test", strategies=["alpha", "beta"],
        pnl={"alpha": [(T0 + i * MIN, v) for i, v in enumerate(curve)],
             "beta": [(T0 + i * MIN, -10.0 * i) for i in range(5)]},
        greeks=[(T0 + i * MIN, 10.0 * i, 0.5, -20.0 + i, -3.0) for i in range(5)],
        fills=[(T0 + MIN, "alpha", "SPY261231C00600000", "buy", 1.0, 2.5),
               (T0 + 3 * MIN, "alpha", "SPY261231C00600000", "sell", 1.0, 3.1),
               (T0 + 2 * MIN, "beta", "SPY", "buy", 10.0, 600.0)],
        denials={"delta_limit_total": 3, "stale_quote": 1},
        latency_ns=[50_000, 80_000, 120_000, 90_000],
        trades={"alpha": [100.0, -50.0, 30.0], "beta": []},
        sample_interval_s=60.0,
    )


def test_statistics_match_the_hand_computed_values() -> None:
    s = compute_stats(small_session())["alpha"]
    assert s.trades == 3 and s.wins == 2
    assert s.win_rate == pytest.approx(2 / 3)
    assert s.profit_factor == pytest.approx(130 / 50)  # (100 + 30) / 50
    assert s.max_drawdown_usd == pytest.approx(50.0)  # 100 -> 50
    # increments 100, -50, 100, -30: mean 30, sample sd sqrt(19800/3) = 81.240; per-minute samples annualized
    per_year = 252 * 6.5 * 60
    assert s.sharpe == pytest.approx(30 / math.sqrt(6600) * math.sqrt(per_year))
    assert s.pnl_usd == 120.0
    beta = compute_stats(small_session())["beta"]
    assert beta.trades == 0 and beta.win_rate is None and beta.profit_factor is None
    assert beta.max_drawdown_usd == pytest.approx(40.0)


def test_statistics_edge_cases() -> None:
    assert max_drawdown([]) == 0.0
    assert max_drawdown([5.0, 6.0, 7.0]) == 0.0
    assert sharpe([1.0, 2.0], 1.0) is None  # one increment
    assert sharpe([1.0, 2.0, 3.0], 1.0) is None  # no variation
    only_wins = strategy_stats([10.0, 5.0], [0.0, 15.0], 60.0)
    assert only_wins.profit_factor == math.inf and only_wins.win_rate == 1.0


def test_page_is_self_contained_and_shows_the_statistics() -> None:
    page = render_report(small_session())
    assert "<script src" not in page and "<link" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<svg") == 7  # P&L, delta, other Greeks, option fills, stock fills, denials, latency
    assert "2.60" in page and "66.7" in page and "50.00" in page  # profit factor, win rate, drawdown of alpha


def test_largest_jump_and_true_fill_change_on_hand_made_curves() -> None:
    assert largest_jump([]) == largest_jump([5.0]) == 0.0
    assert largest_jump([0.0, 100.0, 50.0, 150.0, 120.0]) == 100.0
    assert largest_jump([0.0, -30.0, 40.0]) == 70.0  # a fall counts as much as a rise
    # an iron condor: entered (its crossing cost shows at the first mark), a bad ask swings the raw mids, closed
    # at a 315 loss at the fourth sample
    marked = strategy_stats([-315.0], [0.0, -225.0, -200.0, -315.0, -315.0], 60.0,
                            raw_curve=[0.0, -225.0, 900.0, -315.0, -315.0],
                            realized_curve=[0.0, 0.0, 0.0, -315.0, -315.0])
    assert marked.largest_jump_usd == 225.0 and marked.largest_jump_raw_usd == 1215.0
    assert marked.largest_fill_change_usd == 315.0
    assert marked.max_drawdown_usd == 315.0 and marked.max_drawdown_raw_usd == 1215.0
    quiet = strategy_stats([], [0.0, 10.0, -390.0], 60.0, raw_curve=[0.0, 10.0, -390.0],
                           realized_curve=[0.0, 0.0, 0.0])
    assert quiet.largest_fill_change_usd == 0.0 and quiet.max_drawdown_raw_usd == 400.0
    assert mark_check([marked]).ok  # 225 <= 315
    check = mark_check([marked, quiet])  # the quiet strategy's 400 jump is more than any fill proves
    assert (check.largest_jump_usd, check.largest_jump_raw_usd, check.largest_fill_change_usd) == (400.0, 1215.0, 315.0)
    assert not check.ok


def _shot(moment: Literal["entry", "exit"], ts: int) -> SmileShot:
    """A hand-made smile (the widest ask has no bid IV: its error bar runs open to the frame's bottom)."""
    k = (-0.06, -0.03, 0.0, 0.03, 0.06)
    mid = (0.24, 0.21, 0.19, 0.18, 0.185)
    return SmileShot(strategy="alpha", structure_id="alpha-1", moment=moment, ts_ns=ts, fit_ts_ns=ts - 2_000_000_000,
                     underlying="SPY", spot=600.0, expiry="2026-12-18", t=0.08, forward=601.0, status="ok",
                     params=(0.0025, 0.01, -0.5, 0.01, 0.05), k=k, iv_mid=mid,
                     iv_bid=(*(v - 0.01 for v in mid[:-1]), math.nan), iv_ask=tuple(v + 0.01 for v in mid),
                     strikes=(590.0, 610.0))


def test_page_shows_both_curves_both_drawdowns_the_jump_check_and_the_smiles() -> None:
    base = small_session()
    data = msgspec.structs.replace(
        base, pnl_raw={"alpha": [(t, v + (900.0 if i == 2 else 0.0)) for i, (t, v) in enumerate(base.pnl["alpha"])],
                       "beta": base.pnl["beta"]},
        realized={"alpha": [(T0 + i * MIN, 0.0 if i < 3 else 100.0) for i in range(5)],
                  "beta": [(T0 + i * MIN, 0.0) for i in range(5)]},
        smiles=[_shot("entry", T0 + MIN), _shot("exit", T0 + 3 * MIN)], leg_samples=10, surface_leg_samples=3)
    page = render_report(data)
    assert page.count("<svg") == 7 + 2 + 2  # + raw vs surface per strategy, + the smile at entry and at exit
    assert page.count("SPY 2026-12-18 at entry") == 1 and page.count("SPY 2026-12-18 at exit") == 1
    s = compute_stats(data)["alpha"]
    assert (s.max_drawdown_usd, s.max_drawdown_raw_usd) == (50.0, 830.0)  # 100 -> 50; raw 950 -> 120
    assert "<td>50.00</td><td>830.00</td>" in page
    assert "3 of 10 held-leg samples" in page
    assert "Largest jump of the surface-marked P&amp;L between two samples: <b>100.00</b>" in page
    assert "true fill P&amp;L change" in page and "<b>100.00</b> USD, so the surface-marked curve stays within" in page


def _png_pixels(png: bytes) -> tuple[int, int, bytes, int]:
    """(width, height, raw scanlines, bytes per pixel) of an 8-bit RGB/RGBA PNG (enough for Chromium's)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = bpp = 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            bpp = {2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat), bpp


def _variance_of_rows(raw: bytes, width: int, height: int, bpp: int) -> float:
    """Variance of the bytes of a sample of scanlines (filter byte skipped; filters keep a blank page near 0)."""
    stride = 1 + width * bpp
    values: list[int] = []
    for y in range(0, height, max(1, height // 60)):
        values.extend(raw[y * stride + 1 : (y + 1) * stride : 7])
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = tmp_path / "report.html"
    page.write_text(render_report(small_session()))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"]
    dom = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>ok</title>" in dom.stdout, "the page's own check failed: " + dom.stdout[:300]
    console_errors = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln and ("Error" in ln or "error" in ln)]
    assert not console_errors, console_errors
    shot = tmp_path / "shot.png"
    run = subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    width, height, raw, bpp = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body style='background:#fff'></body></html>")
    shot_blank = tmp_path / "blank.png"
    subprocess.run([*flags, f"--screenshot={shot_blank}", blank.as_uri()], capture_output=True, timeout=60, check=True)
    bw, bh, braw, bbpp = _png_pixels(shot_blank.read_bytes())
    assert _variance_of_rows(raw, width, height, bpp) > 100 * max(1.0, _variance_of_rows(braw, bw, bh, bbpp))
