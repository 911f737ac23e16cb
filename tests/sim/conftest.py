"""Fixtures: a real simulator on loopback, run in its own thread so blocking clients (alpaca-py) can talk to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sim.helpers import FAST, SimThread


@pytest.fixture(scope="module")
def sim_thread() -> Iterator[SimThread]:
    st = SimThread(FAST)
    yield st
    st.close()
