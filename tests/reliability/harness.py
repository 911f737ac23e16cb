"""Run the engine as a user does and hurt it: a simulator process, an engine process, Redis, invariants.

The simulator runs as its own process (``options-engine sim``) so it outlives engine restarts; the engine
runs ``options-engine run`` in ``mode = "paper"`` pointed at the simulator's URLs with the keys in the
environment, exactly as against Alpaca. Faults go in through the simulator's HTTP control API and the OS
(SIGKILL of the engine, SIGSTOP or a stop of redis-server). The same harness drives the CI-sized suite
(``tests/reliability``) and the full matrix (``bench/faults.py``).

Invariants (:func:`check_invariants`), checked after every fault once the engine has had time to catch up:
no client order submitted twice; every broker fill exactly once in the journal and, after deduplication by
``execution_id``, on ``<prefix>:stream:fills``; no fill in the journal that the broker did not make; the
engine's positions equal the broker's; the engine process is alive and answers ``/status``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "options-engine"
EPS = 1e-9
OPEN_STATUSES = ("new", "accepted", "pending_new", "partially_filled", "pending_replace", "pending_cancel", "held")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmd(*args: str) -> list[str]:
    if BIN.exists():
        return [str(BIN), *args]
    return [sys.executable, "-m", "engine", *args]


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
              timeout_s: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                         **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read() or b"null")


# ------------------------------------------------------------------------------------------ simulator

SIM_TOML = """
[sim]
seed = {seed}
speed = {speed}
start = "{start}"
option_quote_rate = {option_quote_rate}
partial_fill_probability = {partial_fill_probability}
rate_limit_per_min = {rate_limit_per_min}
"""


@dataclass
class SimSettings:
    seed: int = 7
    speed: float = 600.0
    start: str = "2026-11-23T09:50:00"
    option_quote_rate: float = 0.2
    partial_fill_probability: float = 0.3
    rate_limit_per_min: int = 200
    extra: str = ""


class SimProcess:
    """``options-engine sim`` in its own process; its control API over HTTP."""

    def __init__(self, workdir: Path, settings: SimSettings | None = None) -> None:
        self.workdir = workdir
        self.settings = settings or SimSettings()
        self.proc: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}

    def start(self, timeout_s: float = 90.0) -> dict[str, str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "sim.toml"
        s = self.settings
        cfg.write_text(SIM_TOML.format(**{k: v for k, v in s.__dict__.items() if k != "extra"}) + s.extra)
        err = open(self.workdir / "sim.log", "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(_cmd("sim", "-c", str(cfg)), stdout=subprocess.PIPE, stderr=err,
                                     cwd=REPO, start_new_session=True)
        err.close()
        line: list[bytes] = []
        assert self.proc.stdout is not None
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError(f"simulator did not start: {(self.workdir / 'sim.log').read_text()[-2000:]}")
        self.urls = json.loads(line[0])
        return self.urls

    @property
    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.urls["key"], "APCA-API-SECRET-KEY": self.urls["secret"]}

    def control(self, method: str, path: str, body: Any = None) -> Any:
        return http_json(method, self.urls["control_url"] + path, body, self.headers)

    def inspect(self) -> dict[str, Any]:
        return dict(self.control("GET", "/inspect"))

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "/state"))

    def clear(self) -> None:
        self.control("DELETE", "/faults")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


# ------------------------------------------------------------------------------------------ redis

class RedisServer:
    """A private redis-server the faults may stop, restart (same port) or freeze with SIGSTOP."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=5)
        self.proc = None

    def freeze(self, frozen: bool) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)


# ------------------------------------------------------------------------------------------ engine

ENGINE_TOML = """
[engine]
mode = "paper"
state_dir = "state"
metrics_port = 0
reload_poll_s = 0.2
shutdown_timeout_s = 15.0
log_level = "info"

[alpaca]
options_feed = "{options_feed}"
paper_url = "{trading_url}"
data_url = "{data_url}"
stream_url = "{stream_base}"
trading_stream_url = "{trading_stream_url}"

[redis]
enabled = {redis_enabled}
url = "{redis_url}"
prefix = "{prefix}"
greeks_interval_s = 5.0

[risk.breakers]
stale_data_after_ms = {stale_ms}

[strategies.gamma_scalper]
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}

[strategies.iron_condor]
take_profit_pct = 0.05
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 30.0, walk_step_fraction = 0.5, timeout_s = 600.0 }}

[strategies.zero_dte]
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 20.0, walk_step_fraction = 0.5, timeout_s = 300.0 }}
"""


class EngineProcess:
    """``options-engine run -c engine.toml`` against the simulator, as a user starts it."""

    def __init__(self, workdir: Path, sim: SimProcess, redis_url: str | None, prefix: str = "rel",
                 stale_ms: int = 2000, extra_toml: str = "", options_feed: str = "indicative") -> None:
        self.workdir = workdir
        self.sim = sim
        self.redis_url = redis_url
        self.prefix = prefix
        self.stale_ms = stale_ms
        self.config_path = workdir / "engine.toml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self._log_pos = 0
        u = sim.urls
        stream_base = u["options_stream_url"].rsplit("/v1beta1/", 1)[0]
        self.config_text = ENGINE_TOML.format(
            trading_url=u["trading_url"], data_url=u["data_url"], stream_base=stream_base,
            trading_stream_url=u["trading_stream_url"], redis_enabled="true" if redis_url else "false",
            redis_url=redis_url or "redis://127.0.0.1:6379/0", prefix=prefix, stale_ms=stale_ms,
            options_feed=options_feed) + extra_toml

    @property
    def log_path(self) -> Path:
        return self.workdir / "engine.log"

    @property
    def journal_path(self) -> Path:
        return self.workdir / "state" / "journal.sqlite3"

    def start(self, timeout_s: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)
        env = dict(os.environ, APCA_API_KEY_ID=self.sim.urls["key"], APCA_API_SECRET_KEY=self.sim.urls["secret"])
        env.pop("STATE_DIRECTORY", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self._log_pos = self.log_path.stat().st_size
        self.proc = subprocess.Popen(_cmd("run", "-c", str(self.config_path), "--no-table"), stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.workdir, env=env, start_new_session=True)
        log.close()
        self.starts += 1
        self.port = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}: {self.log_tail()}")
            events = self.events()
            for e in events:
                if e.get("event") == "metrics_listening":
                    self.port = int(e["port"])
            if self.port and any(e.get("event") == "engine_ready" for e in events):
                return
            time.sleep(0.1)
        raise RuntimeError(f"engine not ready within {timeout_s}s: {self.log_tail()}")

    def events(self) -> list[dict[str, Any]]:
        """JSON log events of the current run."""
        out = []
        with open(self.log_path, "rb") as fh:
            fh.seek(self._log_pos)
            for line in fh:
                if line.startswith(b"{"):
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(line))
        return out

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self, timeout_s: float = 5.0) -> dict[str, Any]:
        return dict(http_json("GET", f"http://127.0.0.1:{self.port}/status", timeout_s=timeout_s))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait: the exit code (the engine cancels its orders and flushes on the way out)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                return -9
        return int(self.proc.returncode)

    def journal_fills(self) -> list[tuple[str, str, float, str]]:
        """(execution_id, order_id, signed_qty, source) of every journaled fill."""
        if not self.journal_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True, timeout=5)
        try:
            return [(r[0], r[1], float(r[2]), r[3]) for r in
                    conn.execute("SELECT execution_id, order_id, signed_qty, source FROM fills")]
        finally:
            conn.close()


# ------------------------------------------------------------------------------------------ invariants

@dataclass
class Check:
    ok: bool
    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    waited_s: float = 0.0


def _nonzero(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in d.items() if abs(float(v)) > EPS}


def check_once(sim: SimProcess, engine: EngineProcess, redis: RedisServer | None, *,
               need_alive: bool = True) -> Check:
    v: list[str] = []
    alive = engine.alive()
    status: dict[str, Any] = {}
    if need_alive:
        if not alive:
            v.append(f"engine not running (exit {engine.proc.returncode if engine.proc else None})")
        else:
            try:
                status = engine.status()
            except (OSError, urllib.error.URLError, ValueError) as exc:
                v.append(f"/status failed: {exc}")
    view = sim.inspect()
    # "Submitted twice" means two orders at the broker for one order: the broker counts every POST (a retry
    # after an unclear answer whose first try the broker refused is a POST too), so count what it accepted.
    per_coid: dict[str, int] = {}
    live_per_intent: dict[str, int] = {}
    for o in view["orders"]:
        coid = o["client_order_id"]
        per_coid[coid] = per_coid.get(coid, 0) + 1
        if o["status"] in OPEN_STATUSES:  # a replace chain (<coid>.rN) has one working order at a time
            base = coid.split(".r")[0]
            live_per_intent[base] = live_per_intent.get(base, 0) + 1
    dup_orders = {c: n for c, n in per_coid.items() if n > 1}
    if dup_orders:
        v.append(f"client orders accepted more than once: {dup_orders}")
    dup_live = {c: n for c, n in live_per_intent.items() if n > 1}
    if dup_live:
        v.append(f"several working orders for one intent: {dup_live}")
    broker_fills = {f["execution_id"]: f for f in view["fills"]}
    journal = engine.journal_fills()
    journal_ids = [f[0] for f in journal]
    jset = set(journal_ids)
    if len(jset) != len(journal_ids):
        v.append("journal holds a fill twice")
    # A fill first learned from a REST answer (a replace that filled at once, a reconnect) is journaled as
    # "<leg order id>:cum:<cumulative qty>" and the stream's later execution is absorbed into it
    # (engine/kernel/orders.py):
    # so each broker fill must be in the journal by its execution_id, or inside such a reconciliation fill of
    # its leg order; quantities per leg order must agree exactly either way.
    broker_by_leg: dict[str, float] = {}
    for f in broker_fills.values():
        sign = 1.0 if f["side"] == "buy" else -1.0
        broker_by_leg[f["leg_order_id"]] = broker_by_leg.get(f["leg_order_id"], 0.0) + sign * f["qty"]
    journal_by_leg: dict[str, float] = {}
    reconciled_legs: set[str] = set()
    phantom = 0
    settlements = 0
    activity_ids: set[str] | None = None
    imported_legs: set[str] = set()
    offsetting: dict[str, float] = {}
    for eid, order_id, qty, src in journal:
        if order_id.startswith(("expiry-", "transfer-")):
            # structures' opposite legs closed against each other at expiry, or settled shares moved between
            # structures: the engine's bookkeeping, not the broker's, so each must net to zero
            offsetting[order_id] = offsetting.get(order_id, 0.0) + qty
            settlements += 1
            continue
        if order_id.startswith("activity-"):  # expiry, exercise, assignment: the broker's activity, not a fill
            if activity_ids is None:  # from the control API: the trading API's rate limit is the engine's
                activity_ids = set(view.get("settlements", ()))
            settlements += 1
            phantom += order_id.removeprefix("activity-") not in activity_ids
            continue
        journal_by_leg[order_id] = journal_by_leg.get(order_id, 0.0) + qty
        if ":cum:" in eid:
            reconciled_legs.add(eid.split(":cum:")[0])
        elif src == "broker_activity":  # imported at restart from the FILL activities, keyed by activity id
            imported_legs.add(order_id)
        elif eid.split("@")[0] not in broker_fills:  # "<execution id>@<structure>": one fill split over structures
            phantom += 1
    accounted = reconciled_legs | imported_legs  # by quantity: the per-leg check below must then agree exactly
    booked = {e.split("@")[0] for e in jset}  # engine/kernel/attribution.py: a broker order's fill split by structure
    missing = [e for e, f in broker_fills.items() if e not in booked and f["leg_order_id"] not in accounted]
    if missing:
        v.append(f"{len(missing)} broker fills missing from the journal")
    if phantom:
        v.append(f"{phantom} journal fills the broker never made")
    unbalanced = {k: q for k, q in offsetting.items() if abs(q) > EPS}
    if unbalanced:
        v.append(f"expiry offsets or share transfers that do not net to zero (not the broker's): {unbalanced}")
    qty_diff = {k: (journal_by_leg.get(k, 0.0), broker_by_leg.get(k, 0.0))
                for k in set(broker_by_leg) | set(journal_by_leg)
                if abs(journal_by_leg.get(k, 0.0) - broker_by_leg.get(k, 0.0)) > EPS}
    if qty_diff:
        v.append(f"filled quantity per order differs (journal, broker): {dict(list(qty_diff.items())[:5])}")
    redis_ids: set[str] = set()
    redis_entries = 0
    if redis is not None:
        try:
            entries = redis.client().xrange(f"{engine.prefix}:stream:fills")
            redis_entries = len(entries)
            redis_ids = {e[1][b"id"].decode() for e in entries}
            lost = jset - redis_ids
            if lost:
                v.append(f"{len(lost)} journaled fills missing from the Redis fills stream")
            extra = redis_ids - jset
            if extra:
                v.append(f"{len(extra)} Redis fills not in the journal")
        except Exception as exc:  # redis down during the check: report, the caller retries
            v.append(f"redis read failed: {exc!r}")
    sim_pos = _nonzero(view["positions"])
    if status:
        eng_pos = _nonzero(status.get("positions", {}))
        if eng_pos != sim_pos:
            diff = {k: (eng_pos.get(k, 0.0), sim_pos.get(k, 0.0)) for k in set(eng_pos) | set(sim_pos)
                    if abs(eng_pos.get(k, 0.0) - sim_pos.get(k, 0.0)) > EPS}
            v.append(f"engine positions differ from the broker's (engine, broker): {diff}")
    retried = sum(1 for n in view["submissions"].values() if n > 1)
    counts = {"broker_orders": len(view["orders"]), "posts_retried": retried, "broker_fills": len(broker_fills),
              "journal_fills": len(jset),
              "reconciled_fills": sum(":cum:" in e for e in jset), "settlement_fills": settlements,
              "redis_fill_entries": redis_entries, "redis_fill_ids": len(redis_ids), "positions": len(sim_pos)}
    return Check(not v, v, counts)


def check_invariants(sim: SimProcess, engine: EngineProcess, redis: RedisServer | None, *,
                     within_s: float = 12.0, need_alive: bool = True) -> Check:
    """Check until every invariant holds at once (fills in flight settle) or ``within_s`` passes."""
    t0 = time.monotonic()
    while True:
        check = check_once(sim, engine, redis, need_alive=need_alive)
        check.waited_s = round(time.monotonic() - t0, 2)
        if check.ok or time.monotonic() - t0 > within_s:
            return check
        time.sleep(0.4)


def time_to_gate(engine: EngineProcess, states: tuple[str, ...] = ("REDUCE_ONLY", "HALTED"),
                 timeout_s: float = 10.0) -> float | None:
    """Seconds until /status reports one of ``states`` (None if it never does)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        with contextlib.suppress(OSError, ValueError):
            if engine.status(timeout_s=2.0).get("trading_state") in states:
                return time.monotonic() - t0
        time.sleep(0.02)
    return None
