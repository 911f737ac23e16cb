"""The simulator's state on disk: SQLite in WAL mode, one transaction per change the outside could see.

A simulator given a state directory (``Simulator(config, state_dir=...)``, ``options-engine sim
--state-dir``, and always under ``<state_dir>/sim`` when the engine runs in sim mode) saves its
account, every order (any status, legs nested), fills, account activities, submissions per
client_order_id, the id generators, the listed universe, the event clock and the market's process
state, and continues from them at the next start.

When it is written: at the end of every market step that changed anything (fills, expiries, a
session roll), after every REST request that may change state (before its response and before the
trade updates it queued can leave, since both go out only when the event loop next runs), once a
wall second (what changes silently, such as a stop order's trigger), and at a clean stop. So the
saved orders and fills are never behind what a client can have seen, even after ``kill -9``.

Cost: the commit runs on the event loop (a hop to a thread would let the trade update leave first).
``synchronous=NORMAL`` in WAL mode writes the changed pages without an fsync: a commit survives the
process being killed, not a power cut. The WAL is checkpointed from a worker thread (that is where
the fsync is), never by a commit on the loop. ``stats`` counts commits and their time.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import fcntl
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import structlog

from engine.sim import state
from engine.sim.state import StateError

if TYPE_CHECKING:
    from engine.sim.orders import Order
    from engine.sim.server import Simulator

log = structlog.get_logger("engine.sim.store")

STATE_FILE = "sim.sqlite3"
LOCK_FILE = "sim.lock"
WAL_CHECKPOINT_BYTES = 8 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS orders (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS fills (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS activities (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (client_order_id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
"""
# Small values rewritten at every commit live in ``meta`` (one B-tree, updated in place); the universe and
# the stop snapshot (hundreds of KiB, rarely written) in ``blobs``, so a commit touches a few pages.
_BLOBS = frozenset({"universe", "snapshot"})
_UPSERT_ORDER = "INSERT INTO orders (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body"
_UPSERT = "INSERT INTO {table} VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
_UPSERT_SUBMISSION = ("INSERT INTO submissions VALUES (?, ?) "
                      "ON CONFLICT(client_order_id) DO UPDATE SET n = excluded.n")


def _numpy_scalars(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"cannot save a {type(value).__name__}")


_enc = msgspec.msgpack.Encoder(enc_hook=_numpy_scalars)
_dec = msgspec.msgpack.Decoder()


def _lock(path: Path) -> int:
    """Hold an exclusive lock on ``path`` for the life of the process (the OS drops it even on kill -9)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateError(f"{path.parent} is in use by another simulator: one account, one simulator") from None
    return fd


class TrackedCounter(collections.Counter[str]):
    """The exchange's submissions per client_order_id, remembering which keys changed since the last commit."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.dirty: set[str] = set()
        super().__init__(counts or {})

    def __setitem__(self, key: str, value: int) -> None:
        self.dirty.add(key)
        super().__setitem__(key, value)


def _fingerprint(order: Order) -> tuple[Any, ...]:
    """What an open order's changes show in (cheap; the order is re-encoded only when this moved)."""
    return (order.status, order.filled_qty, order.updated_ns, order.in_flight, order.stop_triggered,
            order.replaced_by, order.limit_price, order.qty)


class CommitStats:
    """Commits and the wall time they took on the event loop (what persistence costs the process)."""

    def __init__(self) -> None:
        self.commits = 0
        self.total_ns = 0
        self.max_ns = 0
        self.recent: collections.deque[int] = collections.deque(maxlen=4096)

    def add(self, ns: int) -> None:
        self.commits += 1
        self.total_ns += ns
        self.max_ns = max(self.max_ns, ns)
        self.recent.append(ns)

    def as_dict(self) -> dict[str, float]:
        recent = sorted(self.recent)

        def pct_us(q: float) -> float:
            return round(recent[min(len(recent) - 1, int(len(recent) * q))] / 1e3, 1) if recent else 0.0

        return {"commits": self.commits, "mean_us": round(self.total_ns / max(self.commits, 1) / 1e3, 1),
                "p50_us": pct_us(0.5), "p99_us": pct_us(0.99), "max_us": round(self.max_ns / 1e3, 1)}


class SimStore:
    """The state directory of one simulated account: ``attach`` a simulator, then ``commit`` its changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = _lock(directory / LOCK_FILE)
        self.path = directory / STATE_FILE
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            pragmas = ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0", "busy_timeout=5000",
                       f"journal_size_limit={WAL_CHECKPOINT_BYTES}")
            for pragma in pragmas:
                self._conn.execute(f"PRAGMA {pragma}")
            self._conn.executescript(_SCHEMA)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.stats = CommitStats()
        self._checkpointing = False
        # what the last commit wrote
        self._signature: tuple[Any, ...] = ()
        self._orders_seen = 0
        self._open: dict[str, tuple[Any, ...]] = {}
        self._fills = 0
        self._activities = 0
        self._account = b""
        self._in_flight = b""
        self._universe: tuple[int, int] = (-1, -1)

    @classmethod
    def open(cls, directory: str | Path) -> SimStore:
        return cls(Path(directory))

    def close(self) -> None:
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _meta(self, key: str) -> Any:
        table = "blobs" if key in _BLOBS else "meta"
        row = self._conn.execute(f"SELECT value FROM {table} WHERE key = ?", (key,)).fetchone()
        return None if row is None else _dec.decode(row[0])

    def _put(self, rows: list[tuple[str, bytes]]) -> None:
        """Upsert (key, encoded value) rows into ``meta`` or ``blobs`` (inside the caller's transaction)."""
        for table in ("meta", "blobs"):
            mine = [r for r in rows if (r[0] in _BLOBS) == (table == "blobs")]
            if mine:
                self._conn.executemany(_UPSERT.format(table=table), mine)

    # ---- start ---------------------------------------------------------------------------------
    def attach(self, sim: Simulator) -> bool:
        """Continue the saved account in ``sim`` (True), or save ``sim``'s new one as the start (False)."""
        ex = sim.exchange
        state.account_fields(ex.account)  # an unannotated attribute fails now, not at the first commit
        try:
            resumed = self._load(sim)
        except StateError:
            raise
        except Exception as exc:  # a damaged or incompatible state: say so, never start from half of it
            raise StateError(f"cannot continue the account saved in {self.directory}: {exc!r}; --fresh archives "
                             "it and starts a new account") from exc
        if not resumed:
            # A new account: its own id sequence, so no order or execution id of an archived account repeats.
            ex.id_rng = np.random.default_rng([sim.config.seed, 98, uuid.UUID(ex.account.account_id).int])
            self._put([("format", _enc.encode(state.FORMAT_VERSION)),
                       ("underlyings", _enc.encode([u.symbol for u in sim.config.underlyings]))])
        ex.submissions = TrackedCounter(ex.submissions)
        self._orders_seen = 0 if not resumed else len(ex.orders)
        self._fills = len(ex.fills) if resumed else 0
        self._activities = len(ex.account.activities) if resumed else 0
        self._open = {o.id: _fingerprint(o) for o in ex.orders.values() if o.parent is None and o.is_open}
        self._universe = state.universe_signature(sim.market.universe) if resumed else (-1, -1)
        self.commit(sim, force=True)
        return resumed

    def _load(self, sim: Simulator) -> bool:
        world = self._meta("world")
        if world is None:
            return False
        version = self._meta("format")
        if version != state.FORMAT_VERSION:
            raise StateError(f"{self.path}: state format {version}, this simulator reads {state.FORMAT_VERSION}")
        saved = self._meta("underlyings")
        configured = [u.symbol for u in sim.config.underlyings]
        if saved != configured:
            raise StateError(f"{self.path}: the saved account trades {saved} but [sim] underlyings are {configured}; "
                             "start a new account with --fresh (the old state is archived, not deleted)")
        market, ex = sim.market, sim.exchange
        state.restore_universe(market.universe, self._meta("universe"))
        state.restore_world(sim, world)
        state.restore_market_snapshot(sim, self._meta("snapshot") or {})
        account = ex.account
        state.restore_account(account, self._meta("account"))
        self._account = _enc.encode(state.account_state(account))
        ex.orders.clear()
        ex.by_client_id.clear()
        for (body,) in self._conn.execute("SELECT body FROM orders ORDER BY seq"):
            order = state.restore_order(_dec.decode(body))
            ex.orders[order.id] = order
            ex.by_client_id[order.client_order_id] = order
            for leg in order.legs:
                ex.orders[leg.id] = leg
        ex.fills[:] = [_dec.decode(b) for (b,) in self._conn.execute("SELECT body FROM fills ORDER BY seq")]
        rows = self._conn.execute("SELECT body FROM activities ORDER BY seq")
        account.activities[:] = [_dec.decode(b) for (b,) in rows]
        ex.submissions.clear()
        ex.submissions.update(dict(self._conn.execute("SELECT client_order_id, n FROM submissions")))
        ex.in_flight = [state.restore_execution(e, ex.orders) for e in self._meta("in_flight") or []]
        log.info("sim_resumed", state_dir=str(self.directory), account_id=account.account_id,
                 now=dt.datetime.fromtimestamp(sim.clock.now_ns / 1e9, dt.UTC).isoformat(),
                 session=sim.clock.today().isoformat(), cash=round(account.cash, 2), positions=len(account.positions),
                 orders=sum(1 for o in ex.orders.values() if o.parent is None), fills=len(ex.fills))
        return True

    # ---- commits -------------------------------------------------------------------------------
    def _signature_of(self, sim: Simulator) -> tuple[Any, ...]:
        ex = sim.exchange
        sub = ex.submissions
        return (ex.event_seq, len(ex.orders), len(ex.fills), len(ex.account.activities), len(ex.in_flight),
                len(sub.dirty) if isinstance(sub, TrackedCounter) else 0, len(sim.market.universe),
                sim.clock.session_date)

    def commit(self, sim: Simulator, force: bool = False) -> bool:
        """Write what changed since the last commit in one transaction; without ``force`` only when the
        exchange's counters moved (cheap to call after every market step). True when something was written."""
        signature = self._signature_of(sim)
        if not force and signature == self._signature:
            return False
        started = time.perf_counter_ns()
        ex = sim.exchange
        orders = self._changed_orders(ex.orders)
        rows: list[tuple[str, bytes]] = [(o.id, _enc.encode(state.order_state(o))) for o in orders]
        fills = [(_enc.encode(f),) for f in ex.fills[self._fills:]]
        activities = [(_enc.encode(a),) for a in ex.account.activities[self._activities:]]
        account = _enc.encode(state.account_state(ex.account))
        in_flight = _enc.encode([state.execution_state(e) for e in ex.in_flight])
        meta = [("world", _enc.encode(state.world_state(sim)))]
        if in_flight != self._in_flight:
            meta.append(("in_flight", in_flight))
        if account != self._account:
            meta.append(("account", account))
        universe = state.universe_signature(sim.market.universe)
        if universe != self._universe:
            meta.append(("universe", _enc.encode(state.universe_state(sim.market.universe))))
        sub = ex.submissions
        dirty = sorted(sub.dirty) if isinstance(sub, TrackedCounter) else []
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.executemany(_UPSERT_ORDER, rows)
            conn.executemany("INSERT INTO fills (body) VALUES (?)", fills)
            conn.executemany("INSERT INTO activities (body) VALUES (?)", activities)
            conn.executemany(_UPSERT_SUBMISSION, [(c, sub[c]) for c in dirty])
            self._put(meta)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._fills += len(fills)
        self._activities += len(activities)
        self._account = account
        self._in_flight = in_flight
        self._universe = universe
        if isinstance(sub, TrackedCounter):
            sub.dirty.clear()
        written = {o.id for o in orders}
        self._open = {k: v for k, v in self._open.items() if k not in written}
        self._open.update({o.id: _fingerprint(o) for o in orders if o.is_open})
        self._signature = self._signature_of(sim)
        self.stats.add(time.perf_counter_ns() - started)
        return True

    def _changed_orders(self, orders: dict[str, Order]) -> list[Order]:
        """Root orders new since the last commit, and open ones (then) whose fingerprint moved."""
        new: list[Order] = []
        fresh = len(orders) - self._orders_seen
        if fresh > 0:
            it = reversed(orders.values())
            new = [o for _, o in zip(range(fresh), it, strict=False) if o.parent is None]
            new.reverse()
        self._orders_seen = len(orders)
        changed = [orders[i] for i, fp in self._open.items() if i in orders and _fingerprint(orders[i]) != fp]
        seen = {o.id for o in new}
        return new + [o for o in changed if o.id not in seen]

    def snapshot(self, sim: Simulator) -> None:
        """Everything, plus what only a clean stop saves (the price cache, the latest trades)."""
        self.commit(sim, force=True)
        self._put([("snapshot", _enc.encode(state.market_snapshot(sim)))])

    # ---- WAL upkeep ----------------------------------------------------------------------------
    def claim_checkpoint(self) -> bool:
        """True (and the claim is held until ``checkpoint`` ends) when the WAL has grown past its bound."""
        if self._checkpointing:
            return False
        try:
            grown = os.stat(f"{self.path}-wal").st_size > WAL_CHECKPOINT_BYTES
        except OSError:
            return False
        self._checkpointing = grown
        return grown

    def checkpoint(self) -> None:
        """Copy the WAL into the database (run in a worker thread: this is where the fsync happens)."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error as exc:  # the WAL only keeps growing; the next claim tries again
            log.warning("sim_state_checkpoint_failed", error=str(exc))
        finally:
            self._checkpointing = False


# ---- --fresh ---------------------------------------------------------------------------------------
def archive(paths: Iterable[Path], into: Path) -> list[Path]:
    """Move every existing path of ``paths`` into the directory ``into`` (created); never deletes anything.
    Returns the new paths. SQLite files keep their names, so a database and its WAL stay a pair."""
    moved: list[Path] = []
    for path in paths:
        if path.exists():
            into.mkdir(parents=True, exist_ok=True)
            target = into / path.name
            path.rename(target)
            moved.append(target)
    return moved


def archive_dir_name(parent: Path) -> Path:
    """``<parent>/archive-<UTC time>`` (wall time: it names files), with a counter if that exists already."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = parent / f"archive-{stamp}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = parent / f"archive-{stamp}-{n}"
    return candidate


def sim_state_files(directory: Path) -> list[Path]:
    """The files that make up a saved simulator state in ``directory``."""
    return [directory / f"{STATE_FILE}{suffix}" for suffix in ("", "-wal", "-shm")]


@contextlib.contextmanager
def unused(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s simulator lock (if it is a state directory) so nothing archives it from under a
    running simulator; StateError when one runs."""
    fd = _lock(directory / LOCK_FILE) if (directory / LOCK_FILE).exists() else None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def archive_sim_state(directory: Path) -> Path | None:
    """``--fresh`` for ``options-engine sim --state-dir``: move the saved state into ``directory/archive-<time>``."""
    into = archive_dir_name(directory)
    with unused(directory):
        return into if archive(sim_state_files(directory), into) else None
