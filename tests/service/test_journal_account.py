"""A journal belongs to one broker account and refuses, naming both, to reconcile against another."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.service.journal import BoundAccount, Journal
from engine.service.reconcile import AccountMismatch, check_account
from tests.service.helpers import make_fill

SIM_A = BoundAccount("aaaaaaaa-1111-4111-8111-111111111111", "sim")
SIM_B = BoundAccount("bbbbbbbb-2222-4222-8222-222222222222", "sim")
PAPER = BoundAccount("cccccccc-3333-4333-8333-333333333333", "paper")


async def test_the_journal_records_its_account_and_whether_it_holds_history(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    journal.start()
    assert journal.bound_account() is None and not journal.has_history()
    journal.bind_account(SIM_A)
    journal.record_fill(make_fill(1))
    await journal.aclose()
    again = Journal.open(tmp_path)
    assert again.bound_account() == SIM_A and again.has_history()


def test_first_use_binds_and_the_same_account_passes() -> None:
    assert check_account(None, SIM_A, journal_has_history=False, journal_path="j") is True
    assert check_account(SIM_A, SIM_A, journal_has_history=True, journal_path="j") is False


def test_another_account_is_refused_with_both_ids_and_the_remedy() -> None:
    with pytest.raises(AccountMismatch) as sim_error:
        check_account(SIM_A, SIM_B, journal_has_history=True, journal_path="state/journal.sqlite3")
    message = str(sim_error.value)
    assert SIM_A.account_id in message and SIM_B.account_id in message
    assert "state/journal.sqlite3" in message and "--fresh" in message
    with pytest.raises(AccountMismatch) as paper_error:
        check_account(SIM_A, PAPER, journal_has_history=False, journal_path="j")
    message = str(paper_error.value)
    assert SIM_A.account_id in message and PAPER.account_id in message and "--fresh" not in message


def test_an_unbound_sim_journal_with_history_belongs_to_a_lost_account() -> None:
    """Journals from before accounts were recorded: in sim mode the simulator's account of that time is gone."""
    with pytest.raises(AccountMismatch, match=f"{SIM_B.account_id}.*--fresh"):
        check_account(None, SIM_B, journal_has_history=True, journal_path="j")
    assert check_account(None, PAPER, journal_has_history=True, journal_path="j") is True  # paper: same account


async def test_the_engine_does_not_start_against_another_account(tmp_path: Path) -> None:
    """Paper mode against a simulator that is a different account than the journal's: no start, both named."""
    from engine.service.app import Engine
    from engine.service.config import parse_config_text
    from engine.service.venue import StartupError
    from engine.sim.config import SimConfig
    from engine.sim.server import Simulator

    journal = Journal.open(tmp_path / "state")
    journal.start()
    journal.bind_account(BoundAccount(SIM_A.account_id, "paper"))
    await journal.aclose()
    sim = Simulator(SimConfig(speed=0.0, rate_limit_per_min=0))
    urls = await sim.start()
    stream_base = urls.options_stream_url.rsplit("/v1beta1/", 1)[0]
    cfg = parse_config_text(f"""
[engine]
mode = "paper"
state_dir = "{tmp_path / 'state'}"
metrics_port = 0
[alpaca]
paper_url = "{urls.trading_url}"
data_url = "{urls.data_url}"
stream_url = "{stream_base}"
trading_stream_url = "{urls.trading_stream_url}"
""")
    keys = {"APCA_API_KEY_ID": urls.key, "APCA_API_SECRET_KEY": urls.secret}
    old_env = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        engine = Engine(cfg, duration_s=3.0)  # bounded, should the start go through
        with pytest.raises(StartupError) as error:
            await engine.run()
        message = str(error.value)
        assert SIM_A.account_id in message and sim.exchange.account.account_id in message
        assert engine.core is None  # stopped before reconciliation or any trading part was built
        assert Journal.open(tmp_path / "state").bound_account() == BoundAccount(SIM_A.account_id, "paper")
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        await sim.stop()
