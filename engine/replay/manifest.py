"""A recording's manifest ``<name>.json`` beside ``<name>.oerec``: what day it is and how to trade it.

The manifest names the day's underlyings, date, source (``sim``, ``lean``, ``cboe``, ``live``), regime, quote
cadence and any config fields the day needs (``overrides``). :func:`adapt_config` maps a config's strategies onto
the day's underlyings and fits its quote-age limits and order walks to the cadence (minute data re-sends a quote
only when it changes), so the shipped ``engine.toml`` trades any day.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import msgspec


class Manifest(msgspec.Struct, frozen=True):
    """What a recorded day is."""

    underlyings: list[str]
    date: str
    source: str
    regime: str = "recorded"
    cadence_s: float = 0.0
    """Seconds between quote updates of a contract (0: live tick data)."""
    seed: int | None = None
    overrides: dict[str, Any] = {}
    """Config fields (dotted paths: ``"risk.max_loss_per_structure_usd"``) this day needs, e.g. dollar limits sized
    for a higher-priced underlying; applied after the mapping."""


def manifest_path(recording: Path) -> Path:
    return Path(recording).with_suffix(".json")


def read_manifest(recording: Path) -> Manifest | None:
    """The manifest beside ``recording`` (None without one)."""
    path = manifest_path(recording)
    return msgspec.json.decode(path.read_bytes(), type=Manifest) if path.is_file() else None


def write_manifest(recording: Path, manifest: Manifest) -> None:
    manifest_path(recording).write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2))


QUOTE_AGE_CADENCES = 15
"""Quote-age limits are raised to this many cadences: a minute-bar quote is fresh for 15 minutes."""


def adapt_config(data: dict[str, Any], underlyings: list[str], cadence_s: float) -> dict[str, Any]:
    """Config data (TOML) that trades a day of ``underlyings`` quoted every ``cadence_s``: each configured strategy
    on those underlyings, quote-age limits (strategies, gate, stale-data breaker) and order timeouts of at least 15
    cadences, price walks no faster than the cadence."""
    out = copy.deepcopy(data)
    age_ms = math.ceil(QUOTE_AGE_CADENCES * cadence_s * 1000) if cadence_s > 0 else 0
    for table in out.get("strategies", {}).values():
        if isinstance(table, dict):
            table["underlyings"] = list(underlyings)
            if age_ms:
                table["max_quote_age_ms"] = max(int(table.get("max_quote_age_ms", 5000)), age_ms)
                for name in ("open_policy", "close_policy"):  # a price walk step needs a new quote to meet
                    policy = table.setdefault(name, {})
                    policy["walk_every_s"] = max(float(policy.get("walk_every_s", 0.0)), cadence_s)
                    policy["timeout_s"] = max(float(policy.get("timeout_s", 0.0)), age_ms / 1000)
    if age_ms:
        risk = out.setdefault("risk", {})
        risk["max_quote_age_ms"] = max(int(risk.get("max_quote_age_ms", 5000)), age_ms)
        breakers = risk.setdefault("breakers", {})
        breakers["stale_data_after_ms"] = max(int(breakers.get("stale_data_after_ms", 10000)), age_ms)
    return out


def day_config(data: dict[str, Any], recording: Path, underlyings: list[str] | None = None) -> dict[str, Any]:
    """The config data to replay ``recording`` with: mapped onto ``underlyings`` if given, else by its manifest
    (unchanged without either)."""
    manifest = read_manifest(Path(recording))
    if underlyings:
        return adapt_config(data, underlyings, manifest.cadence_s if manifest else 0.0)
    if manifest is None:
        return data
    out = adapt_config(data, manifest.underlyings, manifest.cadence_s)
    for path, value in manifest.overrides.items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
