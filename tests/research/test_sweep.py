"""The sweep over real replays: same fills whoever runs it, resume after an interruption, walk-forward windows,
errors that name the field, and a trial applied to a copy of the config."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.research.executors import PoolExecutor, SequentialExecutor
from engine.research.runner import SweepRunner
from engine.research.search import walk_forward_windows
from engine.research.spec import SweepError, load_sweep
from engine.service.cli import main as cli_main
from engine.service.config import load_config
from research.conftest import REPO, unit_hashes, write_sweep


def test_two_local_workers_give_every_trial_the_sequential_fills_hash(
        library: Path, sequential_hashes: dict[tuple[str, str], str]) -> None:
    assert len(sequential_hashes) == 16  # 8 trials x 2 days
    assert len(set(sequential_hashes.values())) >= 4, "the parameters must change the fills for this to mean much"
    sweep = load_sweep(write_sweep(library, "pool"))
    executor = PoolExecutor(2)
    try:
        outcome = SweepRunner(sweep, executor).run()
    finally:
        executor.close()
    assert outcome.units_run == 16
    assert unit_hashes(sweep.results) == sequential_hashes


def _units_by_run(results: Path) -> dict[str, int]:
    with sqlite3.connect(results) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'units'").fetchone() is None:
            return {}  # the sweep has created the file, not yet its tables (CI: "no such table: units")
        return dict(db.execute("SELECT unit_key, run FROM units"))


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(
        library: Path, sequential_hashes: dict[tuple[str, str], str]) -> None:
    path = write_sweep(library, "interrupted")
    results = path.with_suffix(".sqlite")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "engine.service.cli", "sweep", str(path), "--workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and len(_units_by_run(results)) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = _units_by_run(results)
    assert 3 <= len(first) < 16
    outcome = SweepRunner(load_sweep(path), SequentialExecutor()).run()
    after = _units_by_run(results)
    assert outcome.units_run == 16 - len(first)
    assert outcome.units_reused == len(first)
    assert {k: after[k] for k in first} == first, "a finished unit was run again"
    assert unit_hashes(results) == sequential_hashes


def test_walk_forward_windows_never_put_a_test_day_in_their_training_window() -> None:
    for n in range(1, 12):
        for train in range(1, 5):
            for test in range(1, 4):
                for step in range(0, 3):
                    windows = walk_forward_windows(n, train, test, step)
                    for train_idx, test_idx in windows:
                        assert len(train_idx) == train and len(test_idx) == test
                        assert max(train_idx) < min(test_idx) and max(test_idx) < n
                    assert [w[0][0] for w in windows] == list(range(0, len(windows) * (step or test), step or test))


def test_a_walk_forward_sweep_tests_the_in_sample_best_on_the_next_day(
        library: Path, sequential_hashes: dict[tuple[str, str], str]) -> None:
    sweep = load_sweep(write_sweep(library, "walk", extra="[walk_forward]\ntrain_days = 1\ntest_days = 1\n"))
    outcome = SweepRunner(sweep, SequentialExecutor()).run()
    (window,) = outcome.windows
    assert [Path(d).name for d in window.train_days] == ["sim_0_calm.oerec"]
    assert [Path(d).name for d in window.test_days] == ["sim_1_gap_open.oerec"]
    assert window.best is not None and window.out_of_sample is not None
    assert window.out_of_sample.params == window.best.params
    assert all(s.metrics.days == 1 for s in window.trials)
    with sqlite3.connect(sweep.results) as db:
        train, test, ins, oos = db.execute(
            "SELECT train_days, test_days, in_sample, out_of_sample FROM windows").fetchone()
    assert not set(json.loads(train)) & set(json.loads(test))
    assert (ins, oos) == (window.best.objective, window.out_of_sample.objective)
    assert unit_hashes(sweep.results).items() <= sequential_hashes.items()


@pytest.mark.parametrize(("text", "field"), [
    ('[sweep]\ndays = ["days/*.oerec"]\ntrails = 3\n[params]\n"risk.max_spread_pct" = { values = [0.3] }\n',
     "sweep.trails"),
    ('[sweep]\ndays = ["days/*.oerec"]\n[params]\n"risk.max_sprd_pct" = { values = [0.3] }\n',
     'params."risk.max_sprd_pct"'),
    ('[sweep]\ndays = ["days/*.oerec"]\n[params]\n"risk.max_spread_pct" = { low = -1.0, high = 0.5, step = 0.5 }\n',
     'params."risk.max_spread_pct"'),
    ('[sweep]\ndays = ["days/*.oerec"]\n[params]\n"strategies.wheel.qty" = { values = [1] }\n',
     'params."strategies.wheel.qty"'),
    ('[sweep]\ndays = ["days/*.oerec"]\nmethod = "annealing"\n[params]\n"risk.max_spread_pct" = { values = [0.3] }\n',
     "sweep.method"),
    ('[sweep]\ndays = ["nowhere/*.oerec"]\n[params]\n"risk.max_spread_pct" = { values = [0.3] }\n',
     "sweep.days[0]"),
    ('[sweep]\ndays = ["days/*.oerec"]\n[params]\n"risk.max_spread_pct" = { values = [0.3] }\n'
     "[walk_forward]\ntrain_days = 2\n", "walk_forward.train_days"),
    ('[sweep]\ndays = ["days/*.oerec"]\n[objective]\nmetric = "sortino"\n'
     '[params]\n"risk.max_spread_pct" = { values = [0.3] }\n', "objective.metric"),
])
def test_a_bad_sweep_file_gets_an_error_naming_the_field(library: Path, text: str, field: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = library / "bad.toml"
    path.write_text(text)
    with pytest.raises(SweepError) as info:
        load_sweep(path)
    assert field in [i.path for i in info.value.issues]
    assert cli_main(["sweep", str(path)]) == 2
    assert field in capsys.readouterr().err


def test_apply_writes_the_trial_into_a_checked_copy_of_the_config(
        library: Path, sequential_hashes: dict[tuple[str, str], str], capsys: pytest.CaptureFixture[str]) -> None:
    path = library / "sequential.toml"
    with sqlite3.connect(path.with_suffix(".sqlite")) as db:
        trial, params = db.execute("SELECT trial, params FROM trials ORDER BY trial DESC LIMIT 1").fetchone()
    out = library / "applied.toml"
    assert cli_main(["sweep", str(path), "--apply", str(trial), "-o", str(out)]) == 0
    assert "check-config passed" in capsys.readouterr().out
    cfg = load_config(out)
    chosen = json.loads(params)
    assert cfg.risk.max_spread_pct == chosen["risk.max_spread_pct"]
    zero_dte = cfg.strategies.zero_dte
    assert zero_dte is not None
    assert zero_dte.wing_width_pct == chosen["strategies.zero_dte.wing_width_pct"]
    assert zero_dte.take_profit_pct == chosen["strategies.zero_dte.take_profit_pct"]
    text = out.read_text()
    assert text.startswith("# engine.toml - the options engine's configuration")  # comments kept
    assert cli_main(["sweep", str(path), "--apply", "999", "-o", str(out)]) == 2


def test_the_report_shows_best_trials_heat_map_and_walk_forward_curve(
        library: Path, sequential_hashes: dict[tuple[str, str], str]) -> None:
    from engine.research.report import render_sweep_report

    walk = library / "walk.toml"
    if not walk.with_suffix(".sqlite").exists():
        SweepRunner(load_sweep(walk if walk.exists() else write_sweep(
            library, "walk", extra="[walk_forward]\ntrain_days = 1\ntest_days = 1\n")), SequentialExecutor()).run()
    page = render_sweep_report(load_sweep(walk))
    assert "Best trials" in page and "class=heat" in page and "<polyline" in page
    assert page.count("<tr><td>") >= 8 + 1  # 8 trials and one walk-forward window


def test_the_shipped_sweep_file_is_valid_over_a_day_library(library: Path) -> None:
    shipped = library / "shipped.toml"
    shipped.write_text((REPO / "sweep.toml").read_text().replace("train_days = 3", "train_days = 1"))
    sweep = load_sweep(shipped)
    assert [p.name for p in sweep.days] == ["sim_0_calm.oerec", "sim_1_gap_open.oerec"]
    assert sweep.spec.walk_forward is not None and sweep.spec.objective.metric == "sharpe"


def test_the_docs_goog_example_trades_with_the_shipped_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    from support.shared_data import shared_data

    from engine.replay.importers.__main__ import main as import_main

    tidy = shared_data() / "lean_minute_options" / "tidy"
    if not tidy.exists():
        pytest.skip(f"real market data not found at {tidy}")
    recording = tmp_path / "goog.oerec"
    assert import_main(["lean", str(tidy), "goog", "20151224", str(recording),
                        "--set", "risk.max_loss_per_structure_usd=20000"]) == 0
    config = tmp_path / "engine.toml"  # shipped, surface fit off for speed
    config.write_text((REPO / "engine.toml").read_text().replace("\n[surface]\n", "\n[surface]\nenabled = false\n", 1))
    assert cli_main(["replay", str(recording), "-c", str(config), "--no-manifest"]) == 0
    assert "0 intents approved, 0 fills" in capsys.readouterr().out  # the config as written knows SPY and QQQ only
    assert cli_main(["replay", str(recording), "-c", str(config)]) == 0
    found = re.search(r"(\d+) intents approved, (\d+) fills", capsys.readouterr().out)
    assert found is not None and int(found[1]) > 0 and int(found[2]) > 0
