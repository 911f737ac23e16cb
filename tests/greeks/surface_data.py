"""Loaders of real chains as SVI fit inputs (shared by the SVI acceptance tests and bench/surface.py).

SPX May 2019 (one snapshot a day): per expiry date the root (SPX or SPXW) with more usable strikes; T = calendar
days / 365 (the snapshot time is not recorded), same-day expiries left out; forward and discount from a
regression of C - P = D (F - K) on the 20 two-sided strikes nearest spot. SPXW 2022-11-02 (1-minute): the
vendor's implied underlying as the forward, r = 0, T to 16:00 ET.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from greeks.surface import ExpiryQuotes, smile_inputs

_REPO = Path(__file__).resolve().parents[2]
DATA = next((d / "shared" / "data" for d in _REPO.parents if (d / "shared" / "data").is_dir()),
            _REPO.parent / "shared" / "data")  # fmt: skip
"""The shared data: ``shared/data`` in the nearest folder above the repository (a git worktree sits deeper)."""
SPX_DIR = DATA / "cboe_spx_eod_2019"
SPXW_MIN = DATA / "cboe_spxw_intraday_1min" / "spxw_20221102_1min_calcs.csv.gz"
NY = ZoneInfo("America/New_York")


def spx_days() -> list[Path]:
    return sorted(SPX_DIR.glob("SPX_2019*.csv.gz"))


def load_spx_day(path: Path, min_points: int = 8) -> list[ExpiryQuotes]:
    with gzip.open(path, "rt") as fh:
        rows = list(csv.DictReader(fh))
    spot = float(rows[0]["underlying_last"])
    qd = dt.datetime.strptime(rows[0]["quotedate"], "%m/%d/%Y").date()
    by: dict[tuple[str, str], dict[float, list[float]]] = {}
    for r in rows:
        root = "SPXW" if r["optionroot"].startswith("SPXW") else "SPX"
        e = by.setdefault((r["expiration"], root), {}).setdefault(float(r["strike"]), [math.nan] * 4)
        off = 0 if r["type"] == "call" else 2
        e[off] = float(r["bid"])
        e[off + 1] = float(r["ask"])
    best: dict[str, ExpiryQuotes] = {}
    for (exp, root), d in by.items():
        days = (dt.datetime.strptime(exp, "%m/%d/%Y").date() - qd).days
        if days < 1:
            continue
        t = days / 365.0
        ks = np.array(sorted(d))
        cb, ca, pb, pa = np.array([d[k] for k in ks]).T
        both = (cb > 0) & (pb > 0) & (ca >= cb) & (pa >= pb)
        if both.sum() < 5:
            continue
        idx = np.where(both)[0]
        near = idx[np.argsort(np.abs(ks[idx] - spot))[:20]]
        slope, icpt = np.polyfit(ks[near], 0.5 * (cb[near] + ca[near] - pb[near] - pa[near]), 1)
        disc = -slope
        if not 0.5 < disc <= 1.01:
            continue
        inp = smile_inputs(ks, cb, ca, pb, pa, icpt / disc, disc, t)
        if inp.k.shape[0] < min_points:
            continue
        if exp not in best or inp.k.shape[0] > best[exp].inputs.k.shape[0]:
            best[exp] = ExpiryQuotes(f"{exp} {root}", t, inp)
    return list(best.values())


def load_spxw_minutes(every: int = 30) -> list[list[ExpiryQuotes]]:
    """One surface (three expiries) every ``every`` minutes of 2022-11-02."""
    with gzip.open(SPXW_MIN, "rt") as fh:
        rows = list(csv.DictReader(fh))
    minutes = sorted({r["quote_datetime"] for r in rows}, key=lambda s: dt.datetime.strptime(s, "%m/%d/%Y %H:%M"))
    keep = set(minutes[::every])
    groups: dict[str, dict[str, list[dict[str, str]]]] = {}
    for r in rows:
        if r["quote_datetime"] in keep:
            groups.setdefault(r["quote_datetime"], {}).setdefault(r["expiration"], []).append(r)
    out = []
    for stamp, exps in groups.items():
        now = dt.datetime.strptime(stamp, "%m/%d/%Y %H:%M").replace(tzinfo=NY)
        surface = []
        for exp, rs in exps.items():
            close = dt.datetime.strptime(exp, "%m/%d/%Y").replace(hour=16, tzinfo=NY)
            t = (close - now).total_seconds() / (365.0 * 86400.0)
            d: dict[float, list[float]] = {}
            for r in rs:
                e = d.setdefault(float(r["strike"]), [math.nan] * 4)
                off = 0 if r["option_type"] == "C" else 2
                e[off] = float(r["bid"])
                e[off + 1] = float(r["ask"])
            ks = np.array(sorted(d))
            cb, ca, pb, pa = np.array([d[k] for k in ks]).T
            fwd = float(rs[0]["implied_underlying_price"])
            inp = smile_inputs(ks, cb, ca, pb, pa, fwd, 1.0, t)
            if inp.k.shape[0] >= 5:
                surface.append(ExpiryQuotes(exp, t, inp))
        out.append(surface)
    return out
