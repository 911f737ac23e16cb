"""The engine's configuration: frozen, validated types decoded from ``engine.toml``.

Every section is a frozen msgspec Struct that rejects unknown fields and carries its constraints
(``Annotated[..., Meta(...)]``); cross-field rules live in :func:`cross_field_issues`. Decoding collects
*every* error with its dotted path instead of stopping at the first (:func:`decode_config`).

Sections owned elsewhere are their owners' types: ``[sim]`` is the simulator's ``SimConfig``, ``[risk]`` the
gate's ``RiskLimits``, and ``[strategies.<kind>]`` the config struct of that kind in the strategy registry
(``strategies.registry``, which discovers the strategy modules): a new strategy needs no line here.

Hot or cold: a field is *hot* when a reload may apply it to a running engine, *cold* when it needs a
restart. A Struct that declares the project's ``HOT_FIELDS`` ClassVar (domain/params.py) makes exactly those
fields hot (a nested struct's fields inherit its field's verdict unless it declares its own); without one,
``[risk]`` and ``[strategies.<name>]`` are hot and every other section cold (see :func:`is_hot`). Adding or
removing a whole ``[strategies.<name>]`` table is cold.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from engine.kernel.order_rules import OrdersSection
from engine.kernel.vol_surface import SurfaceSettings
from engine.service.venues import settings_type, unknown_venue_reason
from engine.sim.config import SimConfig
from risk.limits import RiskLimits
from strategies.base import StrategyConfig
from strategies.registry import config_types

Mode = Literal["sim", "paper", "live"]
LogLevel = Literal["debug", "info", "warning", "error"]
Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveFloat = Annotated[float, Meta(gt=0)]
EnvName = Annotated[str, Meta(pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", max_length=128)]

SIM_VENUE = "alpaca"
"""The venue whose wire the built-in simulator speaks: ``mode = "sim"`` trades through it."""

LIVE_CONFIRM_ENV = "OPTIONS_ENGINE_LIVE"
"""Environment variable that must be ``1`` for ``mode = "live"`` to start."""


class ConfigError(Exception):
    """The config file cannot be used; ``issues`` lists every problem with its path."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


class ConfigIssue(msgspec.Struct, frozen=True):
    """One problem: a dotted path (``"risk.max_delta"``, ``""`` for the whole file) and a reason."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path or '<file>'}: {self.reason}"


class EngineSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[engine]``: mode, state, logging, metrics, shutdown and restart policy."""

    HOT_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "log_level",
            "watchdog_max_lag_ms",
            "unknown_order_policy",
            "cancel_on_shutdown",
            "shutdown_timeout_s",
        }
    )

    mode: Mode = "sim"
    venue: Annotated[str, Meta(pattern=r"^[a-z_][a-z0-9_]*$")] = "alpaca"
    state_dir: Annotated[str, Meta(min_length=1)] = "state"
    log_level: LogLevel = "info"
    metrics_host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 9464
    dashboard_token_env: EnvName = ""
    """The variable (environment or credentials file) holding the dashboard's control token; empty: the command
    channel's secret (``[redis] command_secret_env``). Without either the dashboard is read-only, and a
    ``metrics_host`` off loopback then serves nothing (docs/dashboard.md)."""
    client_order_prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,16}$")] = "oe"
    unknown_order_policy: Literal["cancel", "adopt"] = "cancel"
    cancel_on_shutdown: bool = True
    shutdown_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 20.0
    watchdog_max_lag_ms: Annotated[float, Meta(gt=0)] = 500.0
    reload_poll_s: Annotated[float, Meta(ge=0.05, le=60)] = 0.5


class AlpacaSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[alpaca]``: feeds, where the keys come from, endpoints. Never holds a key itself."""

    options_feed: Literal["indicative", "opra"] = "indicative"
    stock_feed: Literal["iex", "sip"] = "iex"
    key_id_env: EnvName = "APCA_API_KEY_ID"
    secret_key_env: EnvName = "APCA_API_SECRET_KEY"
    credentials_file: str = ""
    paper_url: Annotated[str, Meta(pattern=r"^https?://")] = "https://paper-api.alpaca.markets"
    live_url: Annotated[str, Meta(pattern=r"^https?://")] = "https://api.alpaca.markets"
    data_url: Annotated[str, Meta(pattern=r"^https?://")] = "https://data.alpaca.markets"
    stream_url: Annotated[str, Meta(pattern=r"^wss?://")] = "wss://stream.data.alpaca.markets"
    trading_stream_url: Annotated[str, Meta(pattern=r"^(wss?://.*)?$")] = ""


class RedisSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[redis]``: where fills, alerts, orders and Greeks go, and the command channel."""

    enabled: bool = False
    url: Annotated[str, Meta(pattern=r"^(redis|rediss|unix)://")] = "redis://127.0.0.1:6379/0"
    prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "options-engine"
    stream_maxlen: Annotated[int, Meta(ge=100)] = 100_000
    queue_bound: Annotated[int, Meta(ge=16)] = 10_000
    alert_buffer: Annotated[int, Meta(ge=1)] = 1_000
    command_secret_env: EnvName = ""
    greeks_interval_s: Annotated[float, Meta(ge=0.1)] = 1.0


class RecordSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[record]``: raw frames of the option, stock and trading streams to disk, for replay (docs/replay.md)."""

    enabled: bool = False
    """Record every frame the feeds receive, with its receive time."""
    dir: Annotated[str, Meta(min_length=1)] = "recordings"
    """Directory of the recordings, relative to ``engine.state_dir`` unless absolute."""
    max_file_mb: Annotated[float, Meta(gt=0)] = 256.0
    """A file is closed and the next one started beyond this size (compressed MiB)."""
    max_total_mb: Annotated[float, Meta(gt=0)] = 4096.0
    """The oldest files are deleted to keep the directory under this size (compressed MiB)."""
    flush_interval_s: Annotated[float, Meta(gt=0, le=60)] = 1.0
    """How often the writer thread compresses and appends what was received."""
    max_buffer_mb: Annotated[float, Meta(gt=0)] = 256.0
    """If the disk stalls, frames beyond this much buffered memory are dropped (and counted), never waited for."""
    compress_level: Annotated[int, Meta(ge=1, le=9)] = 3
    """zlib level (1 fastest .. 9 smallest)."""


class VolHistorySection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[vol_history]``: the daily IV history that IV rank and percentile rank in (engine/service/vol_history.py)."""

    lookback_days: Annotated[int, Meta(ge=2, le=5040)] = 252
    """Sessions of history read at start (252: about a year)."""
    min_days: Annotated[int, Meta(ge=1, le=5040)] = 20
    """Below this many sessions of history IV rank and percentile are "insufficient history" (NaN)."""

    def __post_init__(self) -> None:
        if self.min_days > self.lookback_days:
            raise ValueError(f"min_days ({self.min_days}) must not exceed lookback_days ({self.lookback_days})")


SimSection = SimConfig
"""``[sim]``: the simulator's own config (engine/sim/config.py)."""
RiskSection = RiskLimits
"""``[risk]``: the gate's limits (risk/limits.py)."""

StrategiesSection: Any = msgspec.defstruct(
    "StrategiesSection",
    [(kind, cls | None, None) for kind, cls in config_types().items()],
    frozen=True,
    forbid_unknown_fields=True,
    module=__name__,
)
"""``[strategies]``: one optional ``[strategies.<kind>]`` table per kind of the strategy registry."""


class EngineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole ``engine.toml``."""

    engine: EngineSection = EngineSection()
    alpaca: AlpacaSection = AlpacaSection()
    redis: RedisSection = RedisSection()
    record: RecordSection = RecordSection()
    orders: OrdersSection = OrdersSection()
    vol_history: VolHistorySection = VolHistorySection()
    surface: SurfaceSettings = SurfaceSettings()
    sim: SimConfig = msgspec.field(default_factory=SimConfig)
    risk: RiskLimits = msgspec.field(default_factory=RiskLimits)
    strategies: StrategiesSection = msgspec.field(default_factory=StrategiesSection)
    venues: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """``[venues.<name>]``: the settings of a venue package that declares a ``SETTINGS`` struct (validated
    against it; Alpaca's settings are ``[alpaca]``)."""

    def venue_settings(self) -> Any:
        """The selected venue's ``[venues.<name>]`` table as its ``SETTINGS`` struct (defaults when absent), or
        None when the venue declares none."""
        declared = settings_type(self.engine.venue)
        return None if declared is None else msgspec.convert(self.venues.get(self.engine.venue, {}), declared)

    def strategy_configs(self) -> dict[str, StrategyConfig]:
        """The configured strategies by kind (tables present in the file), in registry order."""
        return {n: c for n in config_types() if (c := getattr(self.strategies, n)) is not None}

    def to_builtins(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], msgspec.to_builtins(self))


# ---------------------------------------------------------------------------------------------------
# Decoding with every error collected


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _struct_in(tp: Any) -> Any:
    """The Struct class inside ``tp`` (``X``, ``X | None``, ``Annotated[X, ...]``), or None."""
    tp = _strip_annotated(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        structs = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, msgspec.Struct)]
        if len(structs) == 1:
            return structs[0]
    return None


def _reason(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    cut = text.rfind(" - at `$")
    return text[:cut] if cut >= 0 else text


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _collect(value: Any, tp: Any, path: str, issues: list[ConfigIssue]) -> None:
    struct = _struct_in(tp)
    if struct is not None and isinstance(value, dict):
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        before = len(issues)
        unknown = "unknown strategy kind" if struct is StrategiesSection else "unknown field"
        for key in value:
            if key not in fields:
                known = ", ".join(sorted(fields)) or "none"
                issues.append(ConfigIssue(_join(path, key), f"{unknown} (known: {known})"))
        for name, f in fields.items():
            if name in value:
                _collect(value[name], f.type, _join(path, name), issues)
            elif f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT:
                issues.append(ConfigIssue(_join(path, name), "required field is missing"))
        if len(issues) == before:  # fields fine: now the struct's own cross-field checks
            try:
                msgspec.convert(value, struct)
            except msgspec.ValidationError as exc:
                issues.append(ConfigIssue(path, _reason(exc)))
        return
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        bare = _strip_annotated(tp)
        if typing.get_origin(bare) is Literal:
            choices = ", ".join(repr(c) for c in typing.get_args(bare))
            issues.append(ConfigIssue(path, f"{value!r} is not one of {choices}"))
            return
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
        issues.append(ConfigIssue(path, f"{_reason(exc)}; value: {shown}"))


def cross_field_issues(cfg: EngineConfig) -> list[ConfigIssue]:
    """Rules that span sections."""
    issues: list[ConfigIssue] = []
    a = cfg.alpaca
    unknown = unknown_venue_reason(cfg.engine.venue)
    if unknown is not None:
        issues.append(ConfigIssue("engine.venue", unknown))
    elif cfg.engine.mode == "sim" and cfg.engine.venue != SIM_VENUE:
        issues.append(ConfigIssue("engine.venue", f"mode = 'sim' trades the built-in simulator, which speaks "
                                                  f"{SIM_VENUE!r}: venue must be {SIM_VENUE!r}"))
    for name, table in cfg.venues.items():
        declared = settings_type(name)
        if declared is None:
            reason = unknown_venue_reason(name) or f"venue {name!r} declares no settings (SETTINGS)"
            issues.append(ConfigIssue(f"venues.{name}", reason))
        else:
            _collect(table, declared, f"venues.{name}", issues)
    if cfg.engine.mode in ("paper", "live") and not a.credentials_file and not (a.key_id_env and a.secret_key_env):
        issues.append(
            ConfigIssue(
                "alpaca",
                f"mode = {cfg.engine.mode!r} needs key_id_env and secret_key_env or a credentials_file",
            )
        )
    if cfg.engine.mode == "live" and a.options_feed == "indicative":
        issues.append(
            ConfigIssue(
                "alpaca.options_feed",
                "live trading needs the 'opra' feed; 'indicative' quotes are delayed and modified",
            )
        )
    if cfg.redis.command_secret_env and not cfg.redis.enabled:
        issues.append(ConfigIssue("redis.command_secret_env", "commands need redis.enabled = true"))
    if a.key_id_env and a.key_id_env == a.secret_key_env:
        issues.append(ConfigIssue("alpaca.secret_key_env", "must differ from key_id_env"))
    return issues


def decode_config(data: Mapping[str, Any]) -> tuple[EngineConfig | None, list[ConfigIssue]]:
    """Validate a decoded TOML document: the config, or None and every issue found."""
    issues: list[ConfigIssue] = []
    _collect(dict(data), EngineConfig, "", issues)
    if issues:
        return None, issues
    cfg = msgspec.convert(dict(data), EngineConfig)
    issues = cross_field_issues(cfg)
    return (None, issues) if issues else (cfg, [])


def parse_config_text(text: str) -> EngineConfig:
    """Parse and validate TOML text; raise :class:`ConfigError` listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue("", f"TOML syntax error: {exc}")]) from None
    cfg, issues = decode_config(data)
    if cfg is None:
        raise ConfigError(issues)
    return cfg


def load_config(path: str | Path) -> EngineConfig:
    """Read, parse and validate ``path``; raise :class:`ConfigError` listing every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc}")]) from None
    return parse_config_text(text)


def state_path(cfg: EngineConfig, config_path: str | Path | None = None) -> Path:
    """``engine.state_dir`` as a path: $STATE_DIRECTORY (systemd) wins, relative paths sit beside the file."""
    import os

    systemd_dir = os.environ.get("STATE_DIRECTORY")
    if systemd_dir:
        return Path(systemd_dir.split(":")[0])
    p = Path(cfg.engine.state_dir)
    if not p.is_absolute() and config_path is not None:
        p = Path(config_path).resolve().parent / p
    return p


# ---------------------------------------------------------------------------------------------------
# Hot / cold


_HOT_BY_DEFAULT = frozenset({"risk", "strategies"})


def is_hot(path: tuple[str, ...]) -> bool:
    """Whether a change at ``path`` (``("strategies", "iron_condor", "wing_width")``) applies on reload."""
    if not path:
        return False
    if path[0] == "strategies" and len(path) < 3:
        return False  # adding or removing a strategy needs a restart
    hot = path[0] in _HOT_BY_DEFAULT
    tp: Any = EngineConfig
    for part in path:
        struct = _struct_in(tp)
        if struct is None:
            break
        hot_fields = getattr(struct, "HOT_FIELDS", None)
        if isinstance(hot_fields, frozenset):
            hot = part in hot_fields
        fields = {f.encode_name: f.type for f in msgspec.structs.fields(struct)}
        if part not in fields:
            break
        tp = fields[part]
    return hot
