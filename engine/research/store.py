"""The results table of a sweep (SQLite): every unit (trial x day) with its statistics and ``fills_hash``, every
trial with its parameters and objective, every walk-forward window.

A unit is stored under its ``unit_key`` (what its result depends on, hashed), so a sweep run again after an
interruption finds the units already done and does not rerun them; ``run`` says which invocation computed each.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from engine.research.evaluate import DayResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run INTEGER PRIMARY KEY, started_ns INTEGER, executor TEXT);
CREATE TABLE IF NOT EXISTS units (
  unit_key TEXT PRIMARY KEY, params TEXT NOT NULL, day TEXT NOT NULL, fills_hash TEXT NOT NULL,
  pnl_usd REAL, trades INTEGER, fills INTEGER, max_drawdown_usd REAL, result TEXT NOT NULL, run INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
  trial INTEGER PRIMARY KEY, window INTEGER NOT NULL, phase TEXT NOT NULL, params TEXT NOT NULL,
  days TEXT NOT NULL, objective REAL, feasible INTEGER NOT NULL, metrics TEXT NOT NULL,
  UNIQUE (window, phase, params));
CREATE TABLE IF NOT EXISTS windows (
  window INTEGER PRIMARY KEY, train_days TEXT NOT NULL, test_days TEXT NOT NULL, best_trial INTEGER,
  in_sample REAL, out_of_sample REAL, in_metrics TEXT, out_metrics TEXT);
"""


class ResultStore:
    """The sweep's SQLite file; one writer (the process that runs the sweep)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def start_run(self, executor: str, now_ns: int) -> int:
        cur = self.db.execute("INSERT INTO runs (started_ns, executor) VALUES (?, ?)", (now_ns, executor))
        self.db.commit()
        return int(cur.lastrowid or 0)

    def unit(self, key: str) -> DayResult | None:
        row = self.db.execute("SELECT result FROM units WHERE unit_key = ?", (key,)).fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=DayResult)

    def done_keys(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT unit_key FROM units")}

    def put_unit(self, key: str, params: str, day: str, result: DayResult, run: int) -> None:
        """Store a finished unit at once (committed: an interruption keeps it)."""
        self.db.execute(
            "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, params, day, result.fills_hash, result.pnl_usd, result.trades, result.fills,
             result.max_drawdown_usd, msgspec.json.encode(result).decode(), run))
        self.db.commit()

    def put_trial(self, window: int, phase: str, params: str, days: list[str], objective: float | None,
                  feasible: bool, metrics: dict[str, Any]) -> int:
        row = self.db.execute("SELECT trial FROM trials WHERE window = ? AND phase = ? AND params = ?",
                              (window, phase, params)).fetchone()
        values = (json.dumps(days), objective, int(feasible), json.dumps(metrics))
        if row is not None:
            self.db.execute("UPDATE trials SET days = ?, objective = ?, feasible = ?, metrics = ? WHERE trial = ?",
                            (*values, row[0]))
            self.db.commit()
            return int(row[0])
        cur = self.db.execute("INSERT INTO trials (window, phase, params, days, objective, feasible, metrics) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", (window, phase, params, *values))
        self.db.commit()
        return int(cur.lastrowid or 0)

    def put_window(self, window: int, train: list[str], test: list[str], best_trial: int | None,
                   in_sample: float | None, out_of_sample: float | None, in_metrics: dict[str, Any] | None,
                   out_metrics: dict[str, Any] | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (window, json.dumps(train), json.dumps(test), best_trial, in_sample, out_of_sample,
                         json.dumps(in_metrics), json.dumps(out_metrics)))
        self.db.commit()

    def trial_params(self, trial: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT params FROM trials WHERE trial = ?", (trial,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            return list(self.db.execute(sql, args))
        finally:
            self.db.row_factory = None
