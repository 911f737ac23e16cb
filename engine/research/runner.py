"""Run a sweep: propose trials, evaluate their units (skipping those already stored), score, pick, walk forward.

Without ``[walk_forward]`` there is one window: every day is in-sample. With it, each window runs the search on
its training days only, picks the best feasible trial there and replays that trial on the window's test days
(out of sample); units are shared between windows, so a grid sweep replays each (trial, day) once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import msgspec

from engine.replay.manifest import day_config
from engine.research.evaluate import DayResult, Metrics, file_digest, metrics, params_json, unit_key
from engine.research.executors import Unit
from engine.research.search import make_search, walk_forward_windows
from engine.research.spec import Sweep
from engine.research.store import ResultStore

Progress = Callable[[int, int], None]
"""Called with (units done, units planned) after each unit."""


class TrialScore(msgspec.Struct, frozen=True):
    trial: int
    params: dict[str, Any]
    metrics: Metrics
    objective: float | None
    feasible: bool


class WindowResult(msgspec.Struct, frozen=True):
    window: int
    train_days: list[str]
    test_days: list[str]
    trials: list[TrialScore]
    best: TrialScore | None
    out_of_sample: TrialScore | None


class SweepOutcome(msgspec.Struct, frozen=True):
    run: int
    windows: list[WindowResult]
    units_run: int
    units_reused: int
    wall_s: float


def _objective(sweep: Sweep, m: Metrics) -> tuple[float | None, bool]:
    value = getattr(m, sweep.spec.objective.metric)
    feasible = value is not None
    for name, bound in sweep.spec.constraints.items():
        v = getattr(m, name)
        if v is None or (bound.min is not None and v < bound.min) or (bound.max is not None and v > bound.max):
            feasible = False
    return (None if value is None else float(value)), feasible


def _best(sweep: Sweep, scores: list[TrialScore]) -> TrialScore | None:
    sign = 1.0 if sweep.spec.objective.direction == "maximize" else -1.0
    feasible = [s for s in scores if s.feasible and s.objective is not None]
    return min(feasible, key=lambda s: (-sign * (s.objective or 0.0), s.trial)) if feasible else None


class SweepRunner:
    """One invocation of a sweep against its results file."""

    def __init__(self, sweep: Sweep, executor: Any, *, progress: Progress | None = None) -> None:
        self.sweep = sweep
        self.executor = executor
        self.progress = progress
        self.store = ResultStore(sweep.results)
        self.digests = {str(d): file_digest(d) for d in sweep.days}
        mapped = list(sweep.spec.sweep.underlyings) or None
        self.bases = {str(d): day_config(sweep.base, d, mapped) for d in sweep.days}
        """Per day: the base config mapped onto the day's underlyings and cadence (its manifest, or [sweep])."""
        self.sample_s = sweep.spec.sweep.sample_every_s
        self.run_id = 0
        self.units_run = 0
        self.units_reused = 0
        self._done = 0
        self._planned = 0

    def _unit(self, params: dict[str, Any], day: str) -> Unit:
        digest, base = self.digests[day], self.bases[day]
        return Unit(unit_key(base, params, digest, self.sample_s), base, params, day, digest)

    def evaluate(self, trials: list[dict[str, Any]], days: list[str]) -> dict[str, DayResult]:
        """Every (trial, day) result by unit key: stored ones read back, the others run and stored as they end."""
        units = [self._unit(p, d) for p in trials for d in days]
        done = self.store.done_keys()
        todo = list({u.key: u for u in units if u.key not in done}.values())
        self.units_reused += len({u.key for u in units} - {u.key for u in todo})
        self._planned += len(todo)
        for unit, result in self.executor.run(todo, self.sample_s):
            self.store.put_unit(unit.key, params_json(unit.params), unit.day, result, self.run_id)
            self.units_run += 1
            self._done += 1
            if self.progress is not None:
                self.progress(self._done, self._planned)
        return {u.key: r for u in units if (r := self.store.unit(u.key)) is not None}

    def score(self, window: int, phase: str, trials: list[dict[str, Any]], days: list[str]) -> list[TrialScore]:
        results = self.evaluate(trials, days)
        out = []
        for params in trials:
            m = metrics([results[self._unit(params, d).key] for d in days], self.sample_s)
            objective, feasible = _objective(self.sweep, m)
            trial = self.store.put_trial(window, phase, params_json(params), days, objective, feasible,
                                         msgspec.to_builtins(m))
            out.append(TrialScore(trial, params, m, objective, feasible))
        return out

    def run(self) -> SweepOutcome:
        """Every window: search on its training days, best feasible trial, then its test days."""
        t0 = time.perf_counter()
        self.run_id = self.store.start_run(getattr(self.executor, "name", "?"), time.time_ns())
        days = [str(d) for d in self.sweep.days]
        wf = self.sweep.spec.walk_forward
        splits = ([(list(range(len(days))), [])] if wf is None
                  else walk_forward_windows(len(days), wf.train_days, wf.test_days, wf.step_days))
        windows = []
        try:
            for w, (train_idx, test_idx) in enumerate(splits):
                train, test = [days[i] for i in train_idx], [days[i] for i in test_idx]
                assert not set(train) & set(test), "a test day inside its training window"
                search = make_search(self.sweep.spec)
                scores: list[TrialScore] = []
                while batch := search.ask():
                    batch_scores = self.score(w, "search", batch, train)
                    for s in batch_scores:
                        search.tell(s.params, s.objective if s.feasible else None)
                    scores.extend(batch_scores)
                best = _best(self.sweep, scores)
                oos = self.score(w, "test", [best.params], test)[0] if best is not None and test else None
                self.store.put_window(w, train, test, None if best is None else best.trial,
                                      None if best is None else best.objective, None if oos is None else oos.objective,
                                      None if best is None else msgspec.to_builtins(best.metrics),
                                      None if oos is None else msgspec.to_builtins(oos.metrics))
                windows.append(WindowResult(w, train, test, scores, best, oos))
        finally:
            self.store.close()
        return SweepOutcome(self.run_id, windows, self.units_run, self.units_reused,
                            round(time.perf_counter() - t0, 3))


def describe(outcome: SweepOutcome) -> str:
    """A few lines for the terminal: the best trial per window and, walking forward, in vs out of sample."""
    lines = [f"run {outcome.run}: {outcome.units_run} units run, {outcome.units_reused} reused, {outcome.wall_s:.1f} s"]
    for w in outcome.windows:
        best = w.best
        head = f"window {w.window}" if w.test_days else "best"
        if best is None:
            lines.append(f"{head}: no feasible trial")
            continue
        lines.append(f"{head}: trial {best.trial} objective {best.objective} params {json.dumps(best.params)}")
        if w.out_of_sample is not None:
            lines.append(f"  in-sample {best.objective}  out-of-sample {w.out_of_sample.objective}")
    return "\n".join(lines)
