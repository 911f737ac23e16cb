"""From a sweep's trial to a config: its parameters written into a copy of the base ``engine.toml``.

The copy keeps the file's comments and layout (``tomlkit``); only the swept fields change (tables created where
the file had none). It is validated like ``options-engine check-config`` does before it is written, so what
lands on disk can be hot-reloaded (swept HOT fields) or needs a restart (COLD ones, listed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomlkit

from engine.research.spec import Sweep, SweepError
from engine.research.store import ResultStore
from engine.service.config import ConfigIssue, is_hot, parse_config_text


def edited_config(text: str, params: dict[str, Any]) -> str:
    """``text`` (TOML) with every ``a.b.c = value`` of ``params`` set, comments kept."""
    doc = tomlkit.parse(text)
    for path, value in params.items():
        *parents, leaf = path.split(".")
        node: Any = doc
        for p in parents:
            if p not in node:
                node[p] = tomlkit.table()
            node = node[p]
        node[leaf] = value
    return tomlkit.dumps(doc)


def apply_trial(sweep: Sweep, trial: int, out: Path) -> list[str]:
    """Write the trial's parameters into a copy of the sweep's base config at ``out``; the COLD fields it sets."""
    store = ResultStore(sweep.results)
    try:
        params = store.trial_params(trial)
    finally:
        store.close()
    if params is None:
        raise SweepError([ConfigIssue("--apply", f"no trial {trial} in {sweep.results}")])
    text = sweep.config_path.read_text(encoding="utf-8")
    if sweep.spec.sweep.underlyings:
        params = {**{f"strategies.{k}.underlyings": list(sweep.spec.sweep.underlyings)
                     for k, v in sweep.base.get("strategies", {}).items() if isinstance(v, dict)}, **params}
    edited = edited_config(text, params)
    parse_config_text(edited)  # raises ConfigError naming the field
    out.write_text(edited, encoding="utf-8")
    return [p for p in params if not is_hot(tuple(p.split(".")))]


def trial_table(sweep: Sweep, limit: int = 10) -> str:
    """The best trials (search phase) as text lines: trial, objective, feasible, parameters."""
    store = ResultStore(sweep.results)
    try:
        order = "DESC" if sweep.spec.objective.direction == "maximize" else "ASC"
        rows = store.rows(f"SELECT trial, window, objective, feasible, params FROM trials WHERE phase = 'search' "
                          f"ORDER BY feasible DESC, objective IS NULL, objective {order}, trial LIMIT ?", (limit,))
    finally:
        store.close()
    return "\n".join(f"trial {r['trial']:4d}  window {r['window']}  objective {r['objective']}  "
                     f"{'feasible' if r['feasible'] else 'infeasible'}  {json.dumps(json.loads(r['params']))}"
                     for r in rows)
