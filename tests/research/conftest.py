"""Shared fixtures: two simulated days (calm, gap open) recorded once, and a small sweep over them.

The base config is the shipped ``engine.toml`` with ``[surface] enabled = false``: the inline surface fit makes
each replay several times slower, and these tests are about the sweep machinery, not the marks.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from engine.research.library import record_sim_day

REPO = Path(__file__).resolve().parents[2]

SWEEP = """
[sweep]
config = "engine.toml"
days = ["days/*.oerec"]
method = "grid"
{extra_sweep}

[objective]
metric = "pnl_usd"

[constraints]
trades = {{ min = 1 }}

[params]
"strategies.zero_dte.wing_width_pct" = {{ values = [0.002, 0.004] }}
"strategies.zero_dte.take_profit_pct" = {{ values = [0.3, 0.6] }}
"risk.max_spread_pct" = {{ low = 0.3, high = 0.6, step = 0.3 }}
{extra}
"""
"""8 trials (2 x 2 x 2) over the 2 days."""


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``engine.toml`` (shipped, surface off) and ``days/``: two small simulated sessions."""
    root = tmp_path_factory.mktemp("library")
    (root / "days").mkdir()
    for i, regime in enumerate(("calm", "gap_open")):
        record_sim_day(root / "days" / f"sim_{i}_{regime}.oerec", day=dt.date(2026, 11, 2 + 3 * i), seed=11 + i,
                       regime=regime, moneyness=0.03, max_dte=45)
    text = (REPO / "engine.toml").read_text().replace("\n[surface]\n", "\n[surface]\nenabled = false\n", 1)
    (root / "engine.toml").write_text(text)
    return root


def write_sweep(folder: Path, name: str, *, extra: str = "", extra_sweep: str = "") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(SWEEP.format(extra=extra, extra_sweep=extra_sweep))
    return path


def unit_hashes(results: Path) -> dict[tuple[str, str], str]:
    """(trial parameters, day) -> fills_hash, from a results file."""
    with sqlite3.connect(results) as db:
        return {(p, Path(d).name): h for p, d, h in db.execute("SELECT params, day, fills_hash FROM units")}


@pytest.fixture(scope="session")
def sequential_hashes(library: Path) -> dict[tuple[str, str], str]:
    """The small sweep run in this process, one unit after another: the reference every executor must match."""
    from engine.research.executors import SequentialExecutor
    from engine.research.runner import SweepRunner
    from engine.research.spec import load_sweep

    sweep = load_sweep(write_sweep(library, "sequential"))
    SweepRunner(sweep, SequentialExecutor()).run()
    return unit_hashes(sweep.results)
