"""Acceptance: the real GOOG 2015-12-24 chain replays end to end with the default strategies, deterministically."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from engine.replay.driver import Replay
from engine.report.html import render_report
from engine.service.config import load_config
from engine.service.replay_cli import add_arguments, main

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command configures structlog for the process (onto the captured stderr): undo it afterwards."""
    yield
    structlog.reset_defaults()


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert main(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


async def test_goog_day_replays_to_fills_with_the_same_hash_twice(
    goog_recording: Path, goog_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(goog_config_file)
    first = await Replay(cfg, goog_recording).run()
    assert first.messages > 275_000  # every option bar and underlying bar of the day went through the parsers
    assert first.fills, "no fills on the GOOG day"
    opened = {sid for sid, s in first.summary["strategies"].items() if s["structures_opened"]}
    assert opened, first.summary
    assert {f.strategy_id for f in first.fills} <= set(first.summary["strategies"])
    # mleg fills carry the parent's net price, which the exchange computed from the recorded legs
    assert any(f.parent_net_price is not None for f in first.fills)
    # every denial (gate or broker) reaches the report's data, reason by reason, as the core tallied them
    tallied = sum(sum(s["gate_denials"].values()) for s in first.summary["strategies"].values())
    assert sum(first.timeline.denials.values()) == sum(len(d.reasons) for d in first.denials) == tallied

    second = await Replay(cfg, goog_recording).run()
    assert second.fills_hash == first.fills_hash
    assert [(f.symbol, f.qty, f.price) for f in second.fills] == [(f.symbol, f.qty, f.price) for f in first.fills]


def test_replay_command_prints_the_fills_hash_last_and_writes_the_report(
    goog_recording: Path, goog_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "goog.html"
    out = _cli([str(goog_recording), "-c", str(goog_config_file), "--report", str(report)], capsys)
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"fills_hash: ([0-9a-f]{64})", last)
    assert m, out
    assert m.group(1) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of no fills
    page = report.read_text()
    assert page.count("<svg") >= 5 and "GOOG" in page


def test_replay_command_refuses_a_file_that_is_no_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "x.oerec"
    bogus.write_bytes(b"this is not a recording at all")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert main(parser.parse_args([str(bogus)])) == 2
    assert "not a recording" in capsys.readouterr().err


async def test_goog_day_surface_marks_jump_no_more_than_fills_prove_and_the_report_shows_smiles(
    goog_recording: Path, goog_config_file: Path
) -> None:
    """Acceptance (GOOG 2015-12-24): single wide or one-sided minute quotes swung the held legs' raw mids by over a
    thousand dollars a minute; on surface marks no sample-to-sample jump exceeds the day's largest true fill P&L
    change (the largest one-interval change of a strategy's realized P&L)."""
    replay = Replay(load_config(goog_config_file), goog_recording)
    result = await replay.run()
    marks = result.summary["marks"]
    assert marks["largest_fill_change_usd"] > 0, "no structure closed: nothing to measure the marks against"
    assert marks["largest_jump_usd"] <= marks["largest_fill_change_usd"], marks
    assert marks["ok"] and marks["largest_jump_raw_usd"] > 2 * marks["largest_fill_change_usd"], marks
    assert marks["surface_leg_samples"] > 0  # the surface did the cleaning, not quiet quotes
    tl = result.timeline
    # a strategy whose held legs all end on their quotes ends with both curves at the same figure
    marked = set(result.summary["surface"]["surface_marked_legs"])
    on_quotes = [sid for sid in tl.strategies
                 if not marked & {leg for s in replay.portfolio.structures(sid) for leg in s.legs}]
    assert on_quotes
    assert all(tl.pnl[sid][-1] == tl.pnl_raw[sid][-1] for sid in on_quotes)
    assert any(a != b for sid in tl.strategies for a, b in zip(tl.pnl[sid], tl.pnl_raw[sid], strict=True))

    data = replay.session_data(title="GOOG 2015-12-24")
    page = render_report(data)
    traded = {(s.structure_id, s.expiry) for s in data.smiles}
    assert ("iron_condor-GOOG-1450967460-1", "2016-01-15") in traded  # the closed condor: entry and exit
    assert {s.moment for s in data.smiles if s.structure_id == "iron_condor-GOOG-1450967460-1"} == {"entry", "exit"}
    for structure_id, expiry in traded:
        assert f"{structure_id} &middot; expiry {expiry}" in page
    assert page.count('role="img"><title>GOOG 20') == 2 * len(traded)  # a smile at entry, one at exit (or end)
    assert page.count("<h3>") == len(traded)
    assert all(s.params and len(s.k) >= 4 for s in data.smiles)
    for sid, s in marks["strategies"].items():
        row = page[page.index(f"<td class='l'>{sid}</td>"):]
        assert f"<td>{s['max_drawdown_usd']:,.2f}</td><td>{s['max_drawdown_raw_usd']:,.2f}</td>" in row[:600], sid
