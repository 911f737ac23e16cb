"""Search strategies over a sweep's parameter space, and the walk-forward day windows.

Every search proposes the same trials in the same order for the same spec and results (seeded, batches of a
fixed size), whatever runs the trials, so a resumed or parallel sweep evaluates exactly the trials a sequential
one would.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, Protocol

from engine.research.spec import Param, Scalar, SweepError, SweepSpec

TPE_BATCH = 4
"""Trials TPE proposes before it hears back (fixed: proposals must not depend on the number of workers)."""


class Search(Protocol):
    def ask(self) -> list[dict[str, Any]]:
        """The next trials to evaluate; empty when the search is over."""

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        """The objective of a trial it proposed (None: infeasible or undefined)."""


def grid_trials(params: dict[str, Param]) -> list[dict[str, Any]]:
    """Every combination, the first parameter varying slowest."""
    names = list(params)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(params[n].grid() for n in names))]


def _draw(p: Param, rng: random.Random) -> Scalar:
    if p.values is not None:
        return p.values[rng.randrange(len(p.values))]
    assert p.low is not None and p.high is not None
    if p.step is not None:
        grid = p.grid()
        return grid[rng.randrange(len(grid))]
    if p.log:
        v = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    else:
        v = rng.uniform(p.low, p.high)
    return round(v) if p.int else round(v, 8)


def random_trials(params: dict[str, Param], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` draws (seeded), duplicates dropped."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(n * 20):
        if len(out) == n:
            break
        trial = {name: _draw(p, rng) for name, p in params.items()}
        key = repr(sorted(trial.items()))
        if key not in seen:
            seen.add(key)
            out.append(trial)
    return out


class FixedSearch:
    """A list of trials decided up front (grid, random): all asked at once, results ignored."""

    def __init__(self, trials: list[dict[str, Any]]) -> None:
        self._trials: list[dict[str, Any]] | None = trials

    def ask(self) -> list[dict[str, Any]]:
        trials, self._trials = self._trials or [], None
        return trials

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        return None


class TpeSearch:
    """Optuna's TPE sampler (seeded), asked ``TPE_BATCH`` trials at a time."""

    def __init__(self, params: dict[str, Param], n: int, seed: int, maximize: bool) -> None:
        try:
            import optuna
        except ModuleNotFoundError:
            raise SweepError([]) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.params = params
        self.remaining = n
        self.maximize = maximize
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=min(8, n))
        self.study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler)
        self._pending: dict[str, Any] = {}

    def _suggest(self, trial: Any, name: str, p: Param) -> Scalar:
        if p.values is not None:
            return trial.suggest_categorical(name, p.values)  # type: ignore[no-any-return]
        assert p.low is not None and p.high is not None
        if p.int:
            return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)  # type: ignore[no-any-return]
        return trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log and p.step is None)  # type: ignore[no-any-return]

    def ask(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(min(TPE_BATCH, self.remaining)):
            trial = self.study.ask()
            params = {name: self._suggest(trial, name, p) for name, p in self.params.items()}
            self._pending[repr(sorted(params.items())) + f"#{trial.number}"] = trial
            out.append(params)
        self.remaining -= len(out)
        return out

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        prefix = repr(sorted(params.items())) + "#"
        key = next(k for k in self._pending if k.startswith(prefix))
        trial = self._pending.pop(key)
        if value is None:
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


def make_search(spec: SweepSpec) -> Search:
    """The spec's search method over its parameters."""
    s = spec.sweep
    if s.method == "grid":
        return FixedSearch(grid_trials(spec.params))
    if s.method == "random":
        return FixedSearch(random_trials(spec.params, s.trials, s.seed))
    try:
        return TpeSearch(spec.params, s.trials, s.seed, spec.objective.direction == "maximize")
    except SweepError:
        from engine.service.config import ConfigIssue

        raise SweepError([ConfigIssue("sweep.method", "'tpe' needs optuna: pip install 'options-engine[research]'")]
                         ) from None


def walk_forward_windows(n_days: int, train: int, test: int, step: int = 0) -> list[tuple[list[int], list[int]]]:
    """(train day indices, test day indices) per window: fit on ``train`` days, test on the ``test`` days right
    after them, then move on by ``step`` (default ``test``). Test days always come after every training day."""
    step = step or test
    out: list[tuple[list[int], list[int]]] = []
    start = 0
    while start + train + test <= n_days:
        out.append((list(range(start, start + train)), list(range(start + train, start + train + test))))
        start += step
    return out
