"""Intents are written to the append-only intent log on the loop; the table insert follows on the writer thread."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from engine.service.intent_log import IntentLog
from engine.service.journal import INTENT_LOG, Journal
from tests.service.helpers import make_intent


async def test_intent_whose_table_insert_never_ran_is_recovered_and_folded(tmp_path: Path):
    crashed = Journal.open(tmp_path)
    crashed.start()
    release = threading.Event()
    crashed.call(lambda conn: release.wait(10))  # the writer thread is stuck: nothing reaches the table
    intent = make_intent("in-7", "st-7")
    await crashed.record_intent(intent, "oe-7")
    try:
        table = sqlite3.connect(crashed.path).execute("SELECT intent_id FROM intents").fetchall()
        assert table == []
        # another process after a crash of this one: the intent is known ...
        assert Journal.open(tmp_path).read_state().intents["in-7"].intent == intent
        # ... and the next writer folds the log into the table and starts an empty log
        nxt = Journal.open(tmp_path)
        nxt.start()
        nxt.close()
        rows = sqlite3.connect(crashed.path).execute("SELECT intent_id, client_order_id FROM intents").fetchall()
        assert rows == [("in-7", "oe-7")]
        assert (tmp_path / INTENT_LOG).read_bytes() == b""
    finally:
        release.set()
        await crashed.aclose()


async def test_torn_last_line_of_the_intent_log_is_skipped(tmp_path: Path):
    j = Journal.open(tmp_path)
    j.start()
    await j.record_intent(make_intent("in-1", "st-1"), "oe-1")
    await j.flush()
    _append(tmp_path / INTENT_LOG, b'["oe-2", 12, {"intent_id": "in-')  # the process died inside this write
    state = Journal.open(tmp_path).read_state()
    assert set(state.intents) == {"in-1"}
    await j.aclose()


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_the_log_grows_past_its_reservation_and_closes_to_its_exact_length(tmp_path: Path):
    log = IntentLog(tmp_path / INTENT_LOG, step=4096)
    lines = [b'["oe-%d",%d,{}]\n' % (n, n) for n in range(1000)]
    for line in lines:
        log.append(line)
        log.make_room()
    assert log.mapped
    assert (tmp_path / INTENT_LOG).read_bytes().rstrip(b"\0") == b"".join(lines)  # what a crash would leave
    log.close()
    assert (tmp_path / INTENT_LOG).read_bytes() == b"".join(lines)


def test_a_log_that_cannot_be_reserved_is_written_with_pwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)  # a full disk: a store into an unreserved page is a SIGBUS
    log = IntentLog(tmp_path / INTENT_LOG)
    assert not log.mapped
    log.append(b"a\n")
    log.append(b"b\n")
    assert (tmp_path / INTENT_LOG).read_bytes() == b"a\nb\n"
    log.close()


async def test_intents_in_a_log_with_its_reserved_tail_are_read_back(tmp_path: Path):
    j = Journal.open(tmp_path)
    j.start()
    await j.record_intent(make_intent("in-1", "st-1"), "oe-1")
    assert (tmp_path / INTENT_LOG).stat().st_size > 1000  # reserved ahead, NUL bytes after the line
    assert set(Journal.open(tmp_path).read_state().intents) == {"in-1"}
    await j.aclose()


def test_a_restart_keeps_only_the_lines_after_the_committed_offset(tmp_path: Path):
    log = IntentLog(tmp_path / INTENT_LOG, step=4096)
    log.append(b"committed-1\n")
    log.append(b"committed-2\n")
    committed = log.used
    log.append(b"pending\n")
    log.restart(committed)
    log.append(b"after\n")
    assert (tmp_path / INTENT_LOG).read_bytes().rstrip(b"\0") == b"pending\nafter\n"
    assert not (tmp_path / (INTENT_LOG + ".new")).exists()
    log.close()
    assert (tmp_path / INTENT_LOG).read_bytes() == b"pending\nafter\n"


async def test_the_log_of_a_long_run_stays_bounded_and_every_intent_is_still_known(tmp_path: Path):
    """Weeks of orders: the log is moved on once the table holds what it had, instead of growing for good."""
    j = Journal.open(tmp_path)
    j.intent_log_step = 4096  # some 8 intents
    j.start()
    sizes: list[int] = []
    try:
        for n in range(300):
            await j.record_intent(make_intent(f"in-{n}", f"st-{n}"), f"oe-{n}")
            await asyncio.sleep(0)  # the order went out: the loop runs the log's upkeep
            if n % 4 == 0:
                await j.flush()  # the table commits within milliseconds, orders come further apart
                sizes.append((tmp_path / INTENT_LOG).stat().st_size)
        assert max(sizes) <= 2 * 4096  # the 300 intents' lines take about 150 KiB
        assert set(Journal.open(tmp_path).read_state().intents) == {f"in-{n}" for n in range(300)}
    finally:
        await j.aclose()


async def test_the_log_is_not_moved_on_while_its_intents_are_not_committed(tmp_path: Path):
    j = Journal.open(tmp_path)
    j.intent_log_step = 4096
    j.start()
    release = threading.Event()
    j.call(lambda conn: release.wait(10))  # the writer thread is stuck: nothing reaches the table
    try:
        for n in range(30):
            await j.record_intent(make_intent(f"in-{n}", f"st-{n}"), f"oe-{n}")
            await asyncio.sleep(0)
        # another process after a crash now: every intent is in the log, none in the table
        assert set(Journal.open(tmp_path).read_state().intents) == {f"in-{n}" for n in range(30)}
    finally:
        release.set()
        await j.aclose()
