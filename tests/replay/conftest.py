"""Shared fixtures: the real market data in ``DATA`` (tests skip with a clear message without it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.shared_data import shared_data

from engine.replay.importers.lean import import_lean_day

REPO = Path(__file__).resolve().parents[2]
DATA = shared_data()
"""Recorded market data kept beside the checkout, not in it (too large for the repository)."""
LEAN_TIDY = DATA / "lean_minute_options" / "tidy"
CBOE = DATA / "cboe_spx_eod_2019"

GOOG_CONFIG = """
[engine]
mode = "paper"
state_dir = "{state}"

# Minute bars: a quote is re-sent only when it changes, so "fresh" means within 15 minutes here.
[risk]
max_quote_age_ms = 900000
max_loss_per_structure_usd = 20000.0
max_spread_pct = 1.0

[risk.breakers]
stale_data_after_ms = 900000
max_consecutive_losses = 50

[strategies.gamma_scalper]
underlyings = ["GOOG"]
max_quote_age_ms = 900000
qty = 1
open_policy = {{ walk_every_s = 60.0, timeout_s = 900.0 }}
close_policy = {{ walk_every_s = 60.0, timeout_s = 900.0 }}

# 2015-12-24: the 2016-01-15 monthly is 22 days out
[strategies.iron_condor]
underlyings = ["GOOG"]
max_quote_age_ms = 900000
dte_min = 20
dte_max = 24
open_policy = {{ walk_every_s = 60.0, timeout_s = 900.0 }}
close_policy = {{ walk_every_s = 60.0, walk_step_fraction = 0.5, timeout_s = 900.0 }}

# a half day: the close is 13:00 ET, and the default session times measure the 0DTE day from it (entries
# 10:00-11:30, flat by 12:00); 0DTE wings a few dimes wide are 40-60 % of mid on this day
[strategies.zero_dte]
underlyings = ["GOOG"]
max_quote_age_ms = 900000
max_spread_pct = 0.8
open_policy = {{ walk_every_s = 60.0, timeout_s = 900.0 }}
close_policy = {{ walk_every_s = 60.0, walk_step_fraction = 0.5, timeout_s = 600.0 }}
"""


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real market data not found at {path}")
    return path


@pytest.fixture(scope="session")
def goog_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GOOG 2015-12-24 (full chain, half day) imported from the Lean minute data."""
    tidy = need(LEAN_TIDY)
    out = tmp_path_factory.mktemp("goog") / "goog_20151224.oerec"
    import_lean_day(tidy, "goog", "20151224", out)
    return out


@pytest.fixture
def goog_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "goog.toml"
    path.write_text(GOOG_CONFIG.format(state=tmp_path / "state"))
    return path
