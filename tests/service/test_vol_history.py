"""IV history in the journal database: upserts, look-back reads, the session-close write, back-fill and scan."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from support.memory_venue import MemoryVenue
from support.shared_data import CBOE_SPX_EOD

from domain.views import AccountView, VolStats
from engine.kernel.kernel import TradingKernel
from engine.replay.importers.cboe import import_cboe_days
from engine.service.app import Engine
from engine.service.cli import main as cli_main
from engine.service.config import ConfigError, parse_config_text
from engine.service.iv_history_cli import backfill
from engine.service.journal import Journal
from engine.service.settings import kernel_settings
from engine.service.vol_history import IvHistoryRow, hand_history
from greeks.calendar import ny_instant_ns

CONFIG = """
[engine]
mode = "sim"
state_dir = "{state}"
metrics_port = 0

[vol_history]
lookback_days = 10
min_days = 3

[strategies.iron_condor]
underlyings = ["SPY", "QQQ"]
"""


def row(day: str, atm: float, u: str = "SPY", source: str = "test") -> IvHistoryRow:
    return IvHistoryRow(u, day, atm, -0.05, 0.01, 0.02, source, 1)


def test_upsert_keeps_one_row_per_session_and_reads_the_look_back_oldest_first(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    assert j.write_iv_history([row("2026-11-10", 0.20), row("2026-11-11", 0.21), row("2026-11-12", math.nan)]) == 3
    j.write_iv_history([row("2026-11-11", 0.25, source="again"), row("2026-11-11", 0.30, u="QQQ")])
    got = j.read_iv_history("SPY")
    assert [(r.session_date, r.atm_iv_30d, r.source) for r in got[:2]] == [("2026-11-10", 0.20, "test"),
                                                                           ("2026-11-11", 0.25, "again")]
    assert math.isnan(got[2].atm_iv_30d)  # NaN survives as NULL
    assert [r.session_date for r in j.read_iv_history("SPY", before=dt.date(2026, 11, 12), limit=1)] == ["2026-11-11"]


async def test_session_close_writes_each_underlying_and_hands_the_kernel_its_history(tmp_path: Path) -> None:
    cfg = parse_config_text(CONFIG.format(state=tmp_path))
    engine = Engine(cfg)
    after_close = ny_instant_ns(dt.date(2026, 11, 16), dt.time(16, 1))
    engine.clock.advance(after_close)
    engine.kernel = TradingKernel(kernel_settings(cfg), MemoryVenue(engine.clock), publish=lambda e: None,
                                  account=AccountView(1e5, 1e5, 1e5, 1e5, 3), clock=engine.clock, settlements=False)
    engine.journal = Journal.open(tmp_path)
    engine.journal.start()
    engine.journal.write_iv_history([row("2026-11-12", 0.15), row("2026-11-13", 0.16)])

    class Surfaces:
        history: dict[str, list[float]] = {}

        def set_history(self, underlying: str, daily_atm_iv_30d: list[float]) -> None:
            self.history[underlying] = list(daily_atm_iv_30d)

    surfaces = Surfaces()
    engine.kernel.surfaces = surfaces  # type: ignore[attr-defined]
    hand_history(engine)
    assert surfaces.history == {"SPY": [0.15, 0.16], "QQQ": []}
    try:
        engine.market.vol["SPY"] = VolStats("SPY", after_close, 0.18, -0.04, 0.01, 0.02)
        engine.on_session_close()
        engine.market.vol["SPY"] = VolStats("SPY", after_close, 0.19, -0.04, 0.01, 0.02)
        engine.on_session_close()  # a second close of the same session rewrites its row
        await engine.journal.flush()
        rows = engine.journal.read_iv_history("SPY")
        assert [(r.session_date, r.atm_iv_30d, r.source) for r in rows][-1] == ("2026-11-16", 0.19, "session_close")
        assert len(rows) == 3 and engine.journal.read_iv_history("QQQ") == []  # no surface for QQQ: no row
        assert surfaces.history["SPY"] == [0.15, 0.16, 0.19]
    finally:
        await engine.journal.aclose()


def test_config_rejects_min_days_above_the_look_back() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text("[vol_history]\nlookback_days = 10\nmin_days = 11\n")
    assert "min_days" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config_text("[vol_history]\nlookback_days = 0\n")
    assert err.value.issues[0].path == "vol_history.lookback_days"


@pytest.fixture(scope="module")
def cboe_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CBOE_SPX_EOD.exists():
        pytest.skip(f"real market data not found at {CBOE_SPX_EOD}")
    out = tmp_path_factory.mktemp("cboe") / "spx.oerec"
    import_cboe_days(sorted(CBOE_SPX_EOD.glob("SPX_2019050*.csv.gz")), out)  # 05-01 .. 05-09, 7 sessions
    return out


def test_backfill_writes_every_session_once_and_a_second_run_changes_nothing(cboe_recording: Path,
                                                                              tmp_path: Path) -> None:
    cfg = parse_config_text("")
    first = backfill(cfg, cboe_recording, tmp_path)
    days = ["2019-05-01", "2019-05-02", "2019-05-03", "2019-05-06", "2019-05-07", "2019-05-08", "2019-05-09"]
    assert [(u, d) for u, d, _ in first] == [("SPX", d) for d in days]
    stored = Journal.open(tmp_path).read_iv_history("SPX")
    assert [r.session_date for r in stored] == days
    assert all(0.08 < r.atm_iv_30d < 0.25 and r.rr25 < 0 for r in stored)
    assert stored[-1].source == "backfill:spx.oerec"
    backfill(cfg, cboe_recording, tmp_path)
    assert Journal.open(tmp_path).read_iv_history("SPX") == stored


def test_scan_of_a_recording_ranks_in_the_stored_history(cboe_recording: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"))
    backfill(parse_config_text(""), cboe_recording, tmp_path / "state")
    assert cli_main(["scan", "-c", str(config), "--recording", str(cboe_recording), "--json"]) == 0
    (spx,) = json.loads(capsys.readouterr().out)
    assert spx["underlying"] == "SPX" and spx["session_date"] == "2019-05-09" and spx["status"] == "ok"
    assert 0.10 < spx["atm_iv_30d"] < 0.25 and spx["rr25"] < 0 < spx["bf25"]
    assert spx["history_days"] == 6 and spx["rank_ready"]  # 05-01 .. 05-08, before the scanned session
    history = [r.atm_iv_30d for r in Journal.open(tmp_path / "state").read_iv_history("SPX")][:-1]
    lo, hi = min(*history, spx["atm_iv_30d"]), max(*history, spx["atm_iv_30d"])
    assert spx["iv_rank"] == pytest.approx(100 * (spx["atm_iv_30d"] - lo) / (hi - lo), abs=1e-3)
    assert spx["iv_percentile"] == pytest.approx(100 * sum(h < spx["atm_iv_30d"] for h in history) / 6, abs=1e-6)
    fit = spx["fit"]
    assert fit["published"] >= 30 and fit["median_rmse_vol_pts"] < 0.25 and fit["in_band"] > 0.6
    # as of an earlier day: fewer sessions before it than min_days
    assert cli_main(["scan", "-c", str(config), "--recording", str(cboe_recording), "--at", "2019-05-03T16:00"]) == 0
    table = capsys.readouterr().out
    assert "SPX" in table and "insufficient history (2 days)" in table


def test_scan_in_sim_mode_reads_the_simulators_chains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"))
    assert cli_main(["scan", "-c", str(config), "--json"]) == 0
    rows = {r["underlying"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"SPY", "QQQ"}
    for r in rows.values():
        assert r["status"] == "ok" and 0.05 < r["atm_iv_30d"] < 0.6 and not r["rank_ready"]
        assert r["rank_status"] == "insufficient history" and r["iv_rank"] is None
        assert r["fit"]["published"] > 0
