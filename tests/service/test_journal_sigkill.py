"""An intent whose ``record_intent`` completed survives SIGKILL of the process (no order submitted twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.service.journal import Journal

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, sys
from engine.service.journal import Journal
from tests.service.helpers import make_fill, make_intent

async def main(state_dir):
    j = Journal.open(state_dir)
    j.start()
    i = 0
    while True:
        await j.record_intent(make_intent(f"in-{i}", f"st-{i}"), f"oe-{i}")
        j.record_fill(make_fill(i))          # fire-and-forget writes interleaved
        print(f"committed {i}", flush=True)  # the router would submit order oe-{i} now
        i += 1

asyncio.run(main(sys.argv[1]))
"""


def test_committed_intents_survive_sigkill(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    committed: list[int] = []
    deadline = time.monotonic() + 20
    while len(committed) < 50 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("committed "):
            committed.append(int(line.split()[1]))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert len(committed) >= 50
    state = Journal.open(tmp_path).read_state()
    for i in committed:
        assert f"in-{i}" in state.intents, f"intent in-{i} was acknowledged but lost"
    # the journal is consistent and usable after the kill: fills are unique and numbering continues
    ids = [f.fill.execution_id for f in state.fills]
    assert len(ids) == len(set(ids))
    again = Journal.open(tmp_path)  # reopens cleanly (WAL recovered) and knows every journaled execution
    assert all(again.has_execution(e) for e in ids)
