"""The session report: statistics checked by hand on a small case, and the page renders in headless Chromium."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from engine.report.data import SessionData
from engine.report.html import compute_stats, render_report
from engine.report.stats import max_drawdown, sharpe, strategy_stats

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
