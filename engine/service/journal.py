"""The journal: SQLite in WAL mode under ``state_dir``, the engine's memory across restarts.

It records intents (before submission), orders and their events, fills (unique on ``execution_id``),
structures, applied config diffs and operator actions (the dashboard's controls), and reads them back for
restart reconciliation (engine/service/reconcile.py).
It also keeps the daily IV history (``iv_history``, engine/service/vol_history.py).

Writes never block the event loop: one writer thread owns the write connection, drains a queue and commits
each batch in one transaction. ``record_*`` calls return at once; :meth:`Journal.record_intent` returns an
awaitable that completes when the intent is committed, so the router can submit only what is on disk.
With ``synchronous=NORMAL`` (the default) a commit survives a process crash (SIGKILL) without an fsync per
batch; ``synchronous="FULL"`` also survives power loss at the cost of an fsync per batch.

A write queued while a loop runs reaches the writer thread after the current loop callback: waking the thread
on the tick's own stack (the core journals a new structure just before its order goes out) would let it take the
GIL from the loop while the intent and the order are written, each a system call that releases it.

Intents are the exception to "never on the loop": an order may only go out once its intent is written,
and a hop to the writer thread and back costs the tick-to-order path 0.2 ms idle and several ms when the
loop is busy (the writer waits for the GIL); a commit on the loop's own connection still costs 0.05-0.2 ms
(three B-tree pages into the WAL). With ``synchronous=NORMAL`` the intent is therefore appended to
``intents.log`` beside the database (``engine.service.intent_log``: a store into a shared memory map of the file,
a few us without a system call; in the page cache when it returns, so it survives a process crash exactly like a
NORMAL commit) and queued for the intents table as usual.
:meth:`read_state` merges the log, and :meth:`start` folds it into the table and truncates it, so an intent
whose table insert a crash cut off is still known at the next start. With ``FULL`` the intent goes through
the writer thread and its fsync (an fsync does not belong on the loop).

Reads at start-up (:meth:`read_state`, :meth:`read_meta`) are synchronous on their own connection;
:meth:`fills_after` runs on the writer thread, after every write queued before it.

A journal belongs to one broker account: :meth:`bind_account` records the account (GET /v2/account
``id``) and the mode on first use, and :meth:`bound_account` reads it back so a start against another
account can be refused (engine/service/reconcile.py ``check_account``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
import structlog

from domain.orders import OrderFilled, OrderIntent, OrderStatus, OrderUpdated
from domain.views import PortfolioGreeks
from engine.kernel.orders import OrderTags, RetiredOrder
from engine.kernel.outputs import StructureRecord
from engine.kernel.retention import BloomFilter, RecentIds
from engine.service import vol_history
from engine.service.intent_log import STEP as INTENT_LOG_STEP
from engine.service.intent_log import IntentLog
from engine.service.vol_history import IvHistoryRow

log = structlog.get_logger(__name__)
T = TypeVar("T")

JOURNAL_FILE = "journal.sqlite3"
EXECUTIONS_IN_MEMORY = 8192
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
  intent_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL, strategy_id TEXT NOT NULL,
  structure_id TEXT NOT NULL, underlying TEXT NOT NULL, action TEXT NOT NULL, ts_ns INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS intents_coid ON intents (client_order_id);
CREATE TABLE IF NOT EXISTS orders (
  client_order_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, intent_id TEXT NOT NULL,
  strategy_id TEXT NOT NULL,
  structure_id TEXT NOT NULL, status TEXT NOT NULL, qty REAL NOT NULL, filled_qty REAL NOT NULL,
  limit_price REAL, ts_event_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS order_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, client_order_id TEXT NOT NULL, order_id TEXT NOT NULL,
  status TEXT NOT NULL, filled_qty REAL NOT NULL, ts_event_ns INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS fills (
  seq INTEGER PRIMARY KEY, execution_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL,
  client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, signed_qty REAL NOT NULL, price REAL NOT NULL,
  ts_event_ns INTEGER NOT NULL, strategy_id TEXT NOT NULL, structure_id TEXT NOT NULL, source TEXT NOT NULL,
  body BLOB NOT NULL, greeks_before BLOB, greeks_after BLOB);
CREATE INDEX IF NOT EXISTS fills_coid ON fills (client_order_id);
CREATE INDEX IF NOT EXISTS orders_oid ON orders (order_id);
CREATE TABLE IF NOT EXISTS structures (
  structure_id TEXT PRIMARY KEY, strategy_id TEXT NOT NULL, underlying TEXT NOT NULL, state TEXT NOT NULL,
  legs BLOB NOT NULL, ts_event_ns INTEGER NOT NULL, extra BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS config_diffs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ns INTEGER NOT NULL, applied BLOB NOT NULL, cold BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS operator_actions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ns INTEGER NOT NULL, action TEXT NOT NULL, source TEXT NOT NULL,
  outcome TEXT NOT NULL, detail TEXT NOT NULL);
"""

_enc = msgspec.json.Encoder()
ACCOUNT_META = "broker_account"
CHECKPOINT_META = "broker_checkpoint"
_INSERT_INTENT = "INSERT OR REPLACE INTO intents VALUES (?,?,?,?,?,?,?,?)"
INTENT_LOG = "intents.log"


def journal_files(state_dir: Path) -> list[Path]:
    """The files of the journal in ``state_dir`` (the database, its WAL pair and the intent log)."""
    return [state_dir / name for name in (JOURNAL_FILE, f"{JOURNAL_FILE}-wal", f"{JOURNAL_FILE}-shm", INTENT_LOG)]


class BrokerCheckpoint(msgspec.Struct, frozen=True):
    """How far the broker's record is reconciled into the journal: every fill and order before ``ts_ns``
    (venue time) is journaled, or belongs to an order still working in the journal. A restart reads only the
    broker's orders and FILL activities after it (less an overlap)."""

    ts_ns: int
    activity_id: str = ""
    """The newest FILL activity the last restart read (for the operator; the time is what is used)."""


class BoundAccount(msgspec.Struct, frozen=True):
    """The broker account a journal belongs to."""

    account_id: str
    mode: str


def _intent_row(intent: OrderIntent, client_order_id: str, ts_ns: int = 0, body: bytes = b"") -> tuple[Any, ...]:
    return (intent.intent_id, client_order_id, intent.strategy_id, intent.structure_id, intent.underlying,
            str(intent.action), ts_ns or intent.ts_event_ns or time.time_ns(), body or _enc.encode(intent))


def _read_intent_log(path: Path) -> list[tuple[Any, ...]]:
    """Table rows of the intents in ``path`` (one JSON ``[client_order_id, ts_ns, intent]`` per line); a torn
    last line (the process died inside the write, so its order was never sent) is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    rows = []
    for line in data.splitlines():
        line = line.rstrip(b"\0")  # the log's reserved, unused tail (engine/service/intent_log.py)
        if not line:
            continue
        try:
            cid, ts_ns, intent = msgspec.json.decode(line, type=tuple[str, int, OrderIntent])
        except msgspec.DecodeError:
            log.warning("journal_intent_log_bad_line", path=str(path), length=len(line))
            continue
        rows.append(_intent_row(intent, cid, ts_ns))
    return rows


# ---------------------------------------------------------------------------------------------------
# What the journal hands back at start-up


class JournalIntent(msgspec.Struct, frozen=True):
    intent: OrderIntent
    client_order_id: str


class JournalOrder(msgspec.Struct, frozen=True):
    client_order_id: str
    order_id: str
    intent_id: str
    strategy_id: str
    structure_id: str
    status: OrderStatus
    qty: float
    filled_qty: float
    limit_price: float | None
    ts_event_ns: int


class JournalFill(msgspec.Struct, frozen=True):
    seq: int
    fill: OrderFilled
    source: str
    greeks_before: PortfolioGreeks | None = None
    greeks_after: PortfolioGreeks | None = None


class OperatorAction(msgspec.Struct, frozen=True):
    """One operator action (dashboard control): what, from where, and what came of it."""

    ts_ns: int
    action: str
    source: str
    outcome: str
    """``done``, or ``refused: <reason>``."""
    detail: str = ""


class JournalState(msgspec.Struct, frozen=True):
    """Everything reconciliation needs, as of the last commit."""

    intents: dict[str, JournalIntent]
    orders: dict[str, JournalOrder]
    fills: list[JournalFill]
    structures: dict[str, StructureRecord]

    def positions(self) -> dict[str, float]:
        """Signed quantity per symbol implied by the journaled fills (zeros dropped)."""
        out: dict[str, float] = {}
        for f in self.fills:
            out[f.fill.symbol] = out.get(f.fill.symbol, 0.0) + f.fill.signed_qty
        return {s: q for s, q in out.items() if abs(q) > 1e-9}


# ---------------------------------------------------------------------------------------------------


class Journal:
    """The SQLite journal; construct with :meth:`open`, then :meth:`start` the writer before writing."""

    def __init__(self, path: Path, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._executions = RecentIds(EXECUTIONS_IN_MEMORY)
        """The newest execution ids journaled (older ones are looked up in the table)."""
        self._maybe_executions = BloomFilter()
        """Every execution id journaled, approximately: an id it has not seen skips the table lookup."""
        self._reader: sqlite3.Connection | None = None
        self._next_fill_seq = 1
        self.write_errors = 0
        self.writes = 0
        self._log_path = path.parent / INTENT_LOG
        self._log: IntentLog | None = None
        self._log_restarting = False
        self.intent_log_step = INTENT_LOG_STEP
        self._intent_rows: list[tuple[Any, ...]] = []
        self._held: list[Callable[[sqlite3.Connection], Any]] = []
        """Writes queued on the loop, handed to the writer thread after the current callback (``_release``)."""
        conn = self._connect()
        try:
            conn.executescript(_SCHEMA + vol_history.SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.commit()
            for (execution_id,) in conn.execute("SELECT execution_id FROM fills"):
                self._maybe_executions.add(execution_id)
            self._next_fill_seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM fills").fetchone()[0]) + 1
        finally:
            conn.close()

    @classmethod
    def open(cls, state_dir: str | Path, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> Journal:
        """Create ``state_dir`` and the schema if needed and load the fill index (synchronous)."""
        d = Path(state_dir)
        d.mkdir(parents=True, exist_ok=True)
        return cls(d / JOURNAL_FILE, synchronous)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.isolation_level = "DEFERRED"
        return conn

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            if self._synchronous == "NORMAL":
                self._fold_intent_log()
            self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit everything queued and stop the writer thread (blocking; see :meth:`aclose`)."""
        if self._thread is not None:
            self._release()
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Flush and stop the writer without blocking the loop."""
        await asyncio.to_thread(self.close, timeout_s)

    def _run(self) -> None:
        conn = self._connect()
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while len(batch) < 512:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if None in batch:
                    stop = True
                    batch = [b for b in batch if b is not None]
                self._apply(conn, batch)  # type: ignore[arg-type]
        finally:
            conn.close()

    def _apply(self, conn: sqlite3.Connection, batch: list[tuple[Callable[[sqlite3.Connection], Any], Any]]) -> None:
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            with conn:
                for fn, waiter in batch:
                    try:
                        results.append((waiter, fn(conn), None))
                    except Exception as exc:  # one bad write must not kill the writer thread
                        self.write_errors += 1
                        log.error("journal_write_failed", error=str(exc))
                        results.append((waiter, None, exc))
        except sqlite3.Error as exc:  # the commit itself failed: nothing in the batch is durable
            self.write_errors += 1
            log.error("journal_commit_failed", error=str(exc))
            results = [(w, None, exc) for w, _, _ in results]
        self.writes += len(batch)
        for waiter, value, err in results:
            if waiter is not None:
                loop, fut = waiter
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                    loop.call_soon_threadsafe(_resolve, fut, value, err)

    def _submit(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        if self._thread is None:
            raise RuntimeError("journal writer not started (call Journal.start())")
        self._held.append(fn)
        if len(self._held) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._release)
            except RuntimeError:  # no loop runs: nothing to wait for
                self._release()

    def _release(self) -> None:
        """Hand the held writes (intent rows first, as they were written) to the writer thread."""
        self._queue_intent_rows()
        held, self._held = self._held, []
        for fn in held:
            self._queue.put((fn, None))

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn(conn)`` on the writer thread after everything queued; await the result."""
        if self._thread is None:
            raise RuntimeError("journal writer not started (call Journal.start())")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._release()
        self._queue.put((fn, (loop, fut)))
        return fut

    async def flush(self) -> None:
        """Wait until every write queued so far is committed."""
        await self.call(lambda conn: None)

    # -- writes -----------------------------------------------------------------------------------

    def record_intent(self, intent: OrderIntent, client_order_id: str) -> asyncio.Future[None]:
        """Journal an intent before it is submitted; await the result to know it is committed.

        With ``synchronous=NORMAL`` the commit happens here, on the caller's thread, and the future is
        already done (awaiting it does not yield to the loop); with ``FULL`` it completes from the writer.
        """
        body = _enc.encode(intent)
        row = _intent_row(intent, client_order_id, body=body)
        if self._synchronous == "NORMAL":
            intents = self._log
            if intents is None:
                raise RuntimeError("journal writer not started (call Journal.start())")
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            # The intent encoded once: the log's line is ``[client_order_id, ts_ns, intent]`` around the row's body.
            line = b"[%s,%d,%s]\n" % (_enc.encode(client_order_id), row[6], body)
            try:
                intents.append(line)
            except OSError as exc:
                self.write_errors += 1
                log.error("journal_intent_write_failed", error=str(exc), intent_id=intent.intent_id)
                fut.set_exception(exc)
                return fut
            # The table insert waits: waking the writer thread now would take the GIL from the loop just
            # as the order goes out. It rides with the next write queued, or goes 20 ms later.
            self._intent_rows.append(row)
            if len(self._intent_rows) == 1:
                loop.call_later(0.02, self._queue_intent_rows)
            if intents.needs_room and not self._log_restarting:
                loop.call_soon(self._bound_intent_log)  # after the order went out
            fut.set_result(None)
            return fut

        def write(c: sqlite3.Connection) -> None:
            c.execute(_INSERT_INTENT, row)

        return self.call(write)

    def _bound_intent_log(self) -> None:
        """The log is filling its reservation: once the table has committed every intent appended so far, move
        only the later ones into a fresh file (the log stays a few MiB however long the engine runs)."""
        intents = self._log
        if intents is None or self._log_restarting:
            return
        self._log_restarting = True
        committed, errors = intents.used, self.write_errors
        self._queue_intent_rows()

        def restart(fut: asyncio.Future[None]) -> None:
            self._log_restarting = False
            failed = fut.cancelled() or fut.exception() is not None or self.write_errors != errors
            if failed or self._log is not intents:
                return  # not all committed (or closed meanwhile): the log keeps growing, as before
            try:
                intents.restart(committed)
            except OSError as exc:
                log.warning("journal_intent_log_restart_failed", error=str(exc))
                intents.make_room()

        self.call(lambda conn: None).add_done_callback(restart)

    def _queue_intent_rows(self) -> None:
        if self._intent_rows:
            rows, self._intent_rows = self._intent_rows, []
            self._queue.put((lambda c: c.executemany(_INSERT_INTENT, rows), None))

    def _fold_intent_log(self) -> None:
        """Intents appended by an earlier run (possibly cut off before their table insert) into the table; then
        an empty log for this run."""
        rows = _read_intent_log(self._log_path)
        if rows:
            conn = self._connect()
            try:
                with conn:
                    conn.executemany(_INSERT_INTENT, rows)
            finally:
                conn.close()
            log.info("journal_intent_log_folded", intents=len(rows))
        self._log = IntentLog(self._log_path, self.intent_log_step)

    def record_order(self, update: OrderUpdated) -> None:
        """Upsert the order's latest state and append the event (from a trade update or REST response)."""
        state = (
            update.client_order_id,
            update.order_id,
            update.intent_id,
            update.strategy_id,
            update.structure_id,
            str(update.status),
            update.qty,
            update.filled_qty,
            update.limit_price,
            update.ts_event_ns,
        )
        event = (
            update.client_order_id,
            update.order_id,
            str(update.status),
            update.filled_qty,
            update.ts_event_ns,
            _enc.encode(update),
        )

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(client_order_id) DO UPDATE SET "
                "order_id=excluded.order_id, status=excluded.status, qty=excluded.qty, "
                "filled_qty=MAX(orders.filled_qty, excluded.filled_qty), "
                "limit_price=COALESCE(excluded.limit_price, orders.limit_price), "
                "ts_event_ns=excluded.ts_event_ns, "
                "intent_id=CASE WHEN excluded.intent_id != '' THEN excluded.intent_id "
                "ELSE orders.intent_id END, "
                "strategy_id=CASE WHEN excluded.strategy_id != '' THEN excluded.strategy_id "
                "ELSE orders.strategy_id END, "
                "structure_id=CASE WHEN excluded.structure_id != '' THEN excluded.structure_id "
                "ELSE orders.structure_id END",
                state,
            )
            c.execute(
                "INSERT INTO order_events (client_order_id, order_id, status, filled_qty, ts_event_ns, body) "
                "VALUES (?,?,?,?,?,?)",
                event,
            )

        self._submit(write)

    def record_fill(
        self,
        fill: OrderFilled,
        greeks_before: PortfolioGreeks | None = None,
        greeks_after: PortfolioGreeks | None = None,
        source: str = "stream",
    ) -> int | None:
        """Journal a fill; its sequence number, or None when ``execution_id`` is already journaled."""
        if self.has_execution(fill.execution_id):
            return None
        self._executions.add(fill.execution_id)
        self._maybe_executions.add(fill.execution_id)
        seq = self._next_fill_seq
        self._next_fill_seq += 1
        row = (
            seq,
            fill.execution_id,
            fill.order_id,
            fill.client_order_id,
            fill.symbol,
            fill.signed_qty,
            fill.price,
            fill.ts_event_ns,
            fill.strategy_id,
            fill.structure_id,
            source,
            _enc.encode(fill),
            None if greeks_before is None else _enc.encode(greeks_before),
            None if greeks_after is None else _enc.encode(greeks_after),
        )
        self._submit(lambda c: c.execute("INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row))
        return seq

    def has_execution(self, execution_id: str) -> bool:
        """Whether ``execution_id`` is journaled: the newest ids from memory, older ones from the table (an id
        leaves memory thousands of fills after it was queued, long after its commit) when the Bloom filter
        says it may be there."""
        if execution_id in self._executions:
            return True
        if execution_id not in self._maybe_executions:
            return False
        row = self._read().execute("SELECT 1 FROM fills WHERE execution_id = ?", (execution_id,)).fetchone()
        return row is not None

    def retired_order(self, order_id: str) -> RetiredOrder | None:
        """A final order the order state machine let go of (kernel ``OrderArchive``): its owner and the fills
        journaled for it (its legs' too), or None when the journal holds no order ``order_id``."""
        if not order_id:
            return None
        conn = self._read()
        row = conn.execute("SELECT client_order_id, strategy_id, structure_id, intent_id, status FROM orders "
                           "WHERE order_id = ? LIMIT 1", (order_id,)).fetchone()
        if row is None:
            return None
        fills = [f.fill for f in _read_fills(conn, "WHERE client_order_id = ? ORDER BY seq", (row[0],))]
        return RetiredOrder(OrderTags(row[1], row[2], row[3]), fills, OrderStatus(row[4]))

    def _read(self) -> sqlite3.Connection:
        """The loop's own read connection (point lookups by index: tens of microseconds)."""
        if self._reader is None:
            self._reader = self._connect()
        return self._reader

    def record_structure(self, structure: StructureRecord) -> None:
        """Upsert a structure (opened, legs changed, closed)."""
        row = (
            structure.structure_id,
            structure.strategy_id,
            structure.underlying,
            structure.state,
            _enc.encode(structure.legs),
            structure.ts_event_ns,
            _enc.encode(structure.extra),
        )
        self._submit(lambda c: c.execute("INSERT OR REPLACE INTO structures VALUES (?,?,?,?,?,?,?)", row))

    def record_config_diff(self, applied: Iterable[Any], cold: Iterable[Any], ts_ns: int | None = None) -> None:
        """Journal one applied reload: the hot changes applied and the cold ones kept."""
        row = (ts_ns or time.time_ns(), _enc.encode(list(applied)), _enc.encode(list(cold)))
        self._submit(lambda c: c.execute("INSERT INTO config_diffs (ts_ns, applied, cold) VALUES (?,?,?)", row))

    def record_operator_action(self, action: OperatorAction) -> None:
        """Journal one operator action (done or refused) on the writer thread."""
        row = (action.ts_ns, action.action, action.source, action.outcome, action.detail)
        self._submit(lambda c: c.execute(
            "INSERT INTO operator_actions (ts_ns, action, source, outcome, detail) VALUES (?,?,?,?,?)", row))

    def record_iv_history(self, rows: list[IvHistoryRow]) -> None:
        """Upsert daily IV history rows (by underlying and session date) on the writer thread."""
        if rows:
            self._submit(lambda c: vol_history.upsert_rows(c, rows))

    def write_iv_history(self, rows: Iterable[IvHistoryRow]) -> int:
        """Upsert IV history rows now, on a connection of its own (no writer thread: back-fill); rows written."""
        conn = self._connect()
        try:
            with conn:
                return vol_history.upsert_rows(conn, rows)
        finally:
            conn.close()

    def read_iv_history(self, underlying: str, *, before: dt.date | None = None,
                        limit: int = 1_000_000) -> list[IvHistoryRow]:
        """The last ``limit`` sessions of ``underlying``'s IV history before ``before``, oldest first."""
        conn = self._connect()
        try:
            return vol_history.read_rows(conn, underlying, before=before, limit=limit)
        finally:
            conn.close()

    def set_meta(self, key: str, value: str) -> None:
        self._submit(lambda c: c.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value)))

    # -- reads ------------------------------------------------------------------------------------

    def fills_after(self, seq: int, limit: int = 10_000) -> asyncio.Future[list[JournalFill]]:
        """Fills with a sequence number above ``seq`` (oldest first), after all queued writes."""
        return self.call(lambda c: _read_fills(c, "WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)))

    def read_meta(self, key: str) -> str | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])
        finally:
            conn.close()

    def broker_checkpoint(self) -> BrokerCheckpoint | None:
        """The checkpoint last stored (None: a first start, or a journal from before checkpoints)."""
        raw = self.read_meta(CHECKPOINT_META)
        return None if raw is None else msgspec.json.decode(raw, type=BrokerCheckpoint)

    def set_broker_checkpoint(self, checkpoint: BrokerCheckpoint) -> None:
        """Store the checkpoint (on the writer thread, after every fill and order queued before it)."""
        self.set_meta(CHECKPOINT_META, _enc.encode(checkpoint).decode())

    def bound_account(self) -> BoundAccount | None:
        """The account recorded by :meth:`bind_account` (None for a journal that never recorded one)."""
        raw = self.read_meta(ACCOUNT_META)
        return None if raw is None else msgspec.json.decode(raw, type=BoundAccount)

    def bind_account(self, account: BoundAccount) -> None:
        """Record the broker account this journal belongs to (synchronous: it must hold before any trade)."""
        conn = self._connect()
        try:
            with conn:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ACCOUNT_META, _enc.encode(account).decode()))
        finally:
            conn.close()

    def has_history(self) -> bool:
        """True when the journal holds any intent, order or fill (a journal in use, not a new one)."""
        conn = self._connect()
        try:
            return any(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]
                       for t in ("intents", "orders", "fills"))
        finally:
            conn.close()

    def read_state(self) -> JournalState:
        """Everything committed, for reconciliation at start-up (synchronous, own connection)."""
        conn = self._connect()
        try:
            intents = {
                r[0]: JournalIntent(msgspec.json.decode(r[2], type=OrderIntent), r[1])
                for r in conn.execute("SELECT intent_id, client_order_id, body FROM intents")
            }
            for row in _read_intent_log(self._log_path):  # written, table insert possibly not yet committed
                if row[0] not in intents:
                    intents[row[0]] = JournalIntent(msgspec.json.decode(row[7], type=OrderIntent), row[1])
            orders = {
                r[0]: JournalOrder(r[0], r[1], r[2], r[3], r[4], OrderStatus(r[5]), r[6], r[7], r[8], r[9])
                for r in conn.execute("SELECT * FROM orders")
            }
            fills = _read_fills(conn, "ORDER BY seq", ())
            structures = {
                r[0]: StructureRecord(
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    msgspec.json.decode(r[4], type=dict[str, float]),
                    r[5],
                    msgspec.json.decode(r[6]),
                )
                for r in conn.execute("SELECT * FROM structures")
            }
            return JournalState(intents, orders, fills, structures)
        finally:
            conn.close()

    def read_operator_actions(self) -> list[OperatorAction]:
        """Every operator action journaled, oldest first (own connection: call after ``flush`` for the newest)."""
        conn = self._connect()
        try:
            return [OperatorAction(*r) for r in conn.execute(
                "SELECT ts_ns, action, source, outcome, detail FROM operator_actions ORDER BY seq")]
        finally:
            conn.close()

    def read_config_diffs(self) -> list[tuple[int, list[Any], list[Any]]]:
        conn = self._connect()
        try:
            return [
                (r[0], msgspec.json.decode(r[1]), msgspec.json.decode(r[2]))
                for r in conn.execute("SELECT ts_ns, applied, cold FROM config_diffs ORDER BY seq")
            ]
        finally:
            conn.close()


def _read_fills(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[JournalFill]:
    out = []
    for seq, source, body, gb, ga in conn.execute(
        f"SELECT seq, source, body, greeks_before, greeks_after FROM fills {where}", params
    ):
        out.append(
            JournalFill(
                seq,
                msgspec.json.decode(body, type=OrderFilled),
                source,
                None if gb is None else msgspec.json.decode(gb, type=PortfolioGreeks),
                None if ga is None else msgspec.json.decode(ga, type=PortfolioGreeks),
            )
        )
    return out


def _resolve(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
