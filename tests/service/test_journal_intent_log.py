"""Intents are written to the append-only intent log on the loop; the table insert follows on the writer thread."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

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
