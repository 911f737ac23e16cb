"""The strategy registry is the one list of strategy kinds: found in the package's modules, read by the config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from strategies.gamma_scalper import GammaScalper, GammaScalperConfig
from strategies.iron_condor import IronCondor
from strategies.registry import build_strategy, config_types, strategy_types
from strategies.zero_dte import ZeroDte

ROOT = Path(__file__).resolve().parents[2]

TOY_MODULE = '''
"""A strategy that exists only in this file."""

from typing import Annotated, ClassVar

import msgspec

from strategies.base import Strategy, StrategyConfig


class ToyConfig(StrategyConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    HOT_FIELDS: ClassVar[frozenset[str]] = StrategyConfig.HOT_FIELDS | {"threshold"}
    threshold: Annotated[int, msgspec.Meta(gt=0)] = 1


class Toy(Strategy[ToyConfig]):
    KIND: ClassVar[str] = "toy"
    CONFIG_TYPE = ToyConfig
'''

# Run in a fresh interpreter: the engine config's [strategies] section is built from the registry at import.
PROBE = '''
import sys

import strategies

strategies.__path__.append(sys.argv[1])  # as if toy.py had been added to the package

from engine.service.config import ConfigError, is_hot, parse_config_text
from strategies.registry import build_strategy

cfg = parse_config_text("[strategies.toy]\\nthreshold = 3\\n")
toy = cfg.strategy_configs()["toy"]
assert type(toy).__name__ == "ToyConfig" and toy.threshold == 3, toy
actor = build_strategy("toy", toy)
assert type(actor).__name__ == "Toy" and actor.config.threshold == 3
assert is_hot(("strategies", "toy", "threshold")) and not is_hot(("strategies", "toy", "underlyings"))
try:
    parse_config_text("[strategies.toy]\\nthreshold = 0\\n")
except ConfigError as exc:
    assert [i.path for i in exc.issues] == ["strategies.toy.threshold"], exc.issues
else:
    raise AssertionError("threshold = 0 was accepted")
print("ok")
'''


def test_the_registry_finds_the_strategies_of_the_package_by_kind() -> None:
    assert dict(strategy_types()) == {"gamma_scalper": GammaScalper, "iron_condor": IronCondor, "zero_dte": ZeroDte}
    assert config_types()["gamma_scalper"] is GammaScalperConfig


def test_build_strategy_validates_and_names_the_known_kinds() -> None:
    actor = build_strategy("gamma_scalper", {"qty": 3})
    assert isinstance(actor, GammaScalper) and actor.config.qty == 3
    known = r"\(known: gamma_scalper, iron_condor, zero_dte\)"
    with pytest.raises(ValueError, match=rf"unknown strategy kind 'nope' {known}"):
        build_strategy("nope")


def test_a_strategy_in_a_new_module_is_found_and_configurable(tmp_path: Path) -> None:
    (tmp_path / "toy.py").write_text(textwrap.dedent(TOY_MODULE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
