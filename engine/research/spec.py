"""``sweep.toml``: what a parameter sweep searches, over which days, for what.

Every table is a frozen msgspec Struct that rejects unknown fields; :func:`load_sweep` collects every problem
with its dotted path (``params."risk.max_spread_pct".low``) and also checks each parameter against the base
``engine.toml``: the path must name a field of the config (HOT or COLD), and every value the search can try
(grid values, range ends) must pass the config's own validation there.

.. code-block:: toml

    [sweep]
    config = "engine.toml"                  # base config, relative to this file
    days = ["days/*.oerec"]                 # recordings (globs), one day each, in date order
    method = "grid"                         # grid | random | tpe
    trials = 16                             # random / tpe: trials per search
    seed = 7

    [objective]
    metric = "sharpe"                       # sharpe | pnl_usd | max_drawdown_usd | trades | fills | pnl_per_trade_usd
    direction = "maximize"

    [constraints]                           # a trial that breaks one is infeasible (never "best")
    max_drawdown_usd = { max = 2000.0 }
    trades = { min = 2 }

    [walk_forward]                          # optional: fit on train_days, test on the next test_days, roll
    train_days = 2
    test_days = 1

    [params]
    "strategies.iron_condor.wing_width_pct" = { values = [0.005, 0.01] }
    "risk.max_spread_pct" = { low = 0.2, high = 1.0, step = 0.4 }
"""

from __future__ import annotations

import copy
import glob
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine.service.config import ConfigIssue, EngineConfig, decode_config

Metric = Literal["sharpe", "pnl_usd", "max_drawdown_usd", "trades", "fills", "pnl_per_trade_usd"]
Method = Literal["grid", "random", "tpe"]
Scalar = bool | int | float | str


class SweepError(Exception):
    """A ``sweep.toml`` that cannot be used; ``issues`` names every bad field."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


class SweepSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[sweep]``: base config, days, search method and budget."""

    days: list[str]
    """Recordings (files, directories of rotated files, or globs), one trading day each, in date order."""
    config: str = "engine.toml"
    method: Method = "grid"
    trials: Annotated[int, Meta(ge=1, le=100_000)] = 20
    """random / tpe: trials per search (grid: every combination)."""
    seed: int = 0
    results: str = ""
    """SQLite file of the results; "" = ``<sweep file stem>.sqlite`` beside the sweep file."""
    underlyings: list[str] = []
    """Map every configured strategy onto these underlyings (empty: the days' manifests, else the config's)."""
    sample_every_s: Annotated[float, Meta(gt=0)] = 60.0
    """P&L curve sampling (event time) for Sharpe and drawdown."""


class Objective(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    metric: Metric = "sharpe"
    direction: Literal["maximize", "minimize"] = "maximize"


class Bound(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise msgspec.ValidationError("a constraint needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise msgspec.ValidationError("min is above max")


class WalkForward(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    train_days: Annotated[int, Meta(ge=1)]
    test_days: Annotated[int, Meta(ge=1)] = 1
    step_days: Annotated[int, Meta(ge=0)] = 0
    """Days the window moves each time; 0: by test_days."""


class Param(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Either ``values`` (a list to choose from) or a range ``low``..``high`` (``step`` for a grid, ``log``
    for a log-uniform draw, ``int`` for whole numbers)."""

    values: list[Scalar] | None = None
    low: float | None = None
    high: float | None = None
    step: Annotated[float, Meta(gt=0)] | None = None
    log: bool = False
    int: bool = False

    def __post_init__(self) -> None:
        if self.values is not None:
            if self.low is not None or self.high is not None or self.step is not None:
                raise msgspec.ValidationError("give either values or low/high, not both")
            if not self.values:
                raise msgspec.ValidationError("values is empty")
            return
        if self.low is None or self.high is None:
            raise msgspec.ValidationError("needs values, or low and high")
        if self.low > self.high:
            raise msgspec.ValidationError("low is above high")
        if self.log and self.low <= 0:
            raise msgspec.ValidationError("log needs low > 0")

    def grid(self) -> list[Scalar]:
        """The values a grid search tries (a range needs ``step``)."""
        if self.values is not None:
            return list(self.values)
        assert self.low is not None and self.high is not None and self.step is not None
        n = int((self.high - self.low) / self.step + 1e-9) + 1
        out: list[Scalar] = [round(self.low + i * self.step, 10) for i in range(n)]
        return [int(v) for v in out] if self.int else out

    def ends(self) -> list[Scalar]:
        """Values that bound what a search can try (validated against the config up front)."""
        if self.values is not None:
            return list(self.values)
        assert self.low is not None and self.high is not None
        ends: list[Scalar] = [self.low, self.high]
        return [int(v) for v in ends] if self.int else ends


class SweepSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole ``sweep.toml``."""

    sweep: SweepSection
    params: dict[str, Param]
    objective: Objective = Objective()
    constraints: dict[Metric, Bound] = {}
    walk_forward: WalkForward | None = None


class Sweep(msgspec.Struct, frozen=True):
    """A validated sweep with its paths resolved."""

    spec: SweepSpec
    path: Path
    base: dict[str, Any]
    """The base ``engine.toml`` as TOML data (each day maps it onto its underlyings: ``engine.replay.manifest``)."""
    config_path: Path
    days: list[Path]
    results: Path


def _issues_of(data: dict[str, Any]) -> list[ConfigIssue]:
    from engine.service.config import _collect  # the engine config's own collector, reused for the same messages

    issues: list[ConfigIssue] = []
    _collect(data, SweepSpec, "", issues)
    return issues


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in nested TOML data, creating tables on the way."""
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def with_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the base config data with the trial's parameters set."""
    data = copy.deepcopy(base)
    for path, value in params.items():
        set_path(data, path, value)
    return data


def _check_params(spec: SweepSpec, base: dict[str, Any]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for path, param in spec.params.items():
        where = f'params."{path}"'
        parts = path.split(".")
        if parts[0] == "strategies" and len(parts) >= 3 and parts[1] not in base.get("strategies", {}):
            issues.append(ConfigIssue(where, f"strategy {parts[1]!r} is not configured in the base config"))
            continue
        if spec.sweep.method == "grid" and param.values is None and param.step is None:
            issues.append(ConfigIssue(where, "a grid needs values, or a range with step"))
            continue
        for value in param.ends():
            _, found = decode_config(with_params(base, {path: value}))
            if found:
                issues.extend(ConfigIssue(where, f"value {value!r}: {i.path}: {i.reason}") for i in found)
                break
    return issues


def _days(patterns: list[str], root: Path) -> tuple[list[Path], list[ConfigIssue]]:
    days: list[Path] = []
    issues: list[ConfigIssue] = []
    for i, pattern in enumerate(patterns):
        full = pattern if Path(pattern).is_absolute() else str(root / pattern)
        found = sorted(Path(p) for p in glob.glob(full)) if glob.has_magic(full) else [Path(full)]
        found = [p for p in found if p.exists()]
        if not found:
            issues.append(ConfigIssue(f"sweep.days[{i}]", f"no recording matches {pattern!r}"))
        days.extend(found)
    return days, issues


def load_sweep(path: str | Path, *, base_text: str | None = None) -> Sweep:
    """Read and validate a sweep file and its base config; raise :class:`SweepError` naming every bad field."""
    path = Path(path).resolve()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError([ConfigIssue("", f"cannot read {path}: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError([ConfigIssue("", f"TOML syntax error: {exc}")]) from None
    issues = _issues_of(data)
    if issues:
        raise SweepError(issues)
    spec = msgspec.convert(data, SweepSpec)
    root = path.parent
    config_path = Path(spec.sweep.config) if Path(spec.sweep.config).is_absolute() else root / spec.sweep.config
    try:
        text = base_text if base_text is not None else config_path.read_text(encoding="utf-8")
        base = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SweepError([ConfigIssue("sweep.config", f"cannot use {config_path}: {exc}")]) from None
    days, issues = _days(spec.sweep.days, root)
    cfg, found = decode_config(base)
    issues += [ConfigIssue("sweep.config", f"{config_path.name}: {i}") for i in found]
    if cfg is not None:
        issues += _check_params(spec, base)
    if spec.walk_forward is not None and len(days) < spec.walk_forward.train_days + spec.walk_forward.test_days:
        issues.append(ConfigIssue("walk_forward.train_days",
                                  f"train_days + test_days exceeds the {len(days)} days in sweep.days"))
    if issues:
        raise SweepError(issues)
    results = Path(spec.sweep.results) if spec.sweep.results else path.with_suffix(".sqlite")
    if not results.is_absolute():
        results = root / results
    return Sweep(spec, path, base, config_path, days, results)


def config_of(base: dict[str, Any], params: dict[str, Any]) -> EngineConfig:
    """The engine config of one trial (validated: the sweep's checks already passed for the range ends)."""
    cfg, issues = decode_config(with_params(base, params))
    if cfg is None:
        raise SweepError(issues)
    return cfg
