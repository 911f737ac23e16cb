"""Hot reload of ``engine.toml`` on SIGHUP and when the file changes.

decode -> validate -> diff -> apply. Hot changes go to the app in ONE call of ``apply(new_config, changes)``;
the app stages them with :func:`stage_hot_changes`, which validates every change (each actor's new params, the
gate's and the breakers' limits) before it applies any: one failure applies none and rejects the reload naming
the field, so the loop never sees half a reload. Cold changes are reported (alert ``config_restart_required``)
and their old values kept. An invalid file keeps the running config and raises alert ``config_rejected`` with
every error (path: reason). Every applied diff is journaled and announced (alert ``config_reloaded``), and
systemd hears ``RELOADING=1`` + ``MONOTONIC_USEC`` before and ``READY=1`` after.

The file is watched by polling its ``stat`` (inode, size, mtime): editors and config managers replace the
file atomically (write a temp file, rename over), which changes the inode, and a poll sees both that and
in-place writes without inotify. A change is applied once the signature stays stable for one short interval.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec
import structlog

from engine.kernel.alerts import Alert
from engine.service.background import BackgroundTask, RunsInBackground
from engine.service.config import ConfigError, ConfigIssue, EngineConfig, is_hot, load_config
from risk.breakers import Breakers
from risk.gate import RiskGate
from risk.stress import StressGrid
from strategies.base import Strategy

log = structlog.get_logger(__name__)

_MISSING: Any = msgspec.UNSET


class ConfigChange(msgspec.Struct, frozen=True):
    """One changed leaf (or a whole added/removed table); ``old``/``new`` are None when absent."""

    path: str
    old: Any
    new: Any
    hot: bool


class ReloadOutcome(msgspec.Struct, frozen=True):
    config: EngineConfig
    applied: list[ConfigChange]
    cold: list[ConfigChange]


class DiffJournal(Protocol):
    def record_config_diff(self, applied: Any, cold: Any, ts_ns: int | None = None) -> None: ...


class ReloadNotifier(Protocol):
    def reloading(self) -> bool: ...

    def ready(self, status: str | None = None) -> bool: ...


def _walk(old: Any, new: Any, path: tuple[str, ...], out: list[ConfigChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            _walk(old.get(key, _MISSING), new.get(key, _MISSING), (*path, key), out)
        return
    if old == new:
        return
    # a table appearing or disappearing (e.g. a strategy) is one change at the table's path
    out.append(
        ConfigChange(".".join(path), None if old is _MISSING else old, None if new is _MISSING else new, is_hot(path))
    )


def diff_configs(old: EngineConfig, new: EngineConfig) -> list[ConfigChange]:
    """Every changed leaf between two configs, each marked hot or cold."""
    out: list[ConfigChange] = []
    _walk(_tables(old), _tables(new), (), out)
    return out


def _tables(cfg: EngineConfig) -> dict[str, Any]:
    data = cfg.to_builtins()
    data["strategies"] = {k: v for k, v in data["strategies"].items() if v is not None}
    return data


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    if value is None:
        data.pop(path[-1], None)
    else:
        data[path[-1]] = value


def merge_hot(old: EngineConfig, new: EngineConfig, changes: list[ConfigChange]) -> EngineConfig:
    """``new`` with every cold change reverted to its old value (validated again as a whole)."""
    data = _tables(new)
    for change in changes:
        if not change.hot:
            _set_path(data, change.path.split("."), change.old)
    try:
        return msgspec.convert(data, EngineConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(
            [ConfigIssue("", f"the hot changes are inconsistent with the running cold values: {exc}")]
        ) from None


def _validation_issue(path: str, exc: Exception) -> ConfigIssue:
    """``exc`` as an issue at ``path``, with msgspec's ``$.field`` location folded into the path."""
    text = str(exc)
    cut = text.rfind(" - at `$")
    if cut < 0:
        return ConfigIssue(path, text)
    where = text[cut + len(" - at `$") :].rstrip("`")
    return ConfigIssue(path + where.replace("[", ".").replace("]", ""), text[:cut])


def stage_hot_changes(
    new: EngineConfig, actors: Sequence[Strategy[Any]], gate: RiskGate, breakers: Breakers
) -> Callable[[], None]:
    """Validate every hot change of ``new`` against the running engine and return the function that applies
    them all; nothing is applied here. Every failure is collected and raised as one :class:`ConfigError`
    naming the field (``strategies.<id>.<field>``, ``risk.stress``)."""
    issues: list[ConfigIssue] = []
    params = new.strategy_configs()
    staged: list[tuple[Strategy[Any], Any]] = []
    for actor in actors:
        scfg = params.get(actor.strategy_id)
        if scfg is None:
            continue
        try:
            actor.check_params(scfg)
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            issues.append(_validation_issue(f"strategies.{actor.strategy_id}", exc))
        else:
            staged.append((actor, scfg))
    if new.risk.stress != gate.grid.limits:
        try:
            StressGrid(new.risk.stress)
        except (ValueError, TypeError) as exc:
            issues.append(_validation_issue("risk.stress", exc))
    if issues:
        raise ConfigError(issues)

    def apply() -> None:
        for actor, scfg in staged:
            actor.on_params(scfg)
        gate.set_limits(new.risk)
        breakers.set_limits(new.risk.breakers)

    return apply


def _file_signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ConfigReloader(RunsInBackground):
    """Owns the running config; reloads it on request (SIGHUP, command) or when the file changes."""

    def __init__(
        self,
        path: str | Path,
        config: EngineConfig,
        apply: Callable[[EngineConfig, list[ConfigChange]], None],
        alert: Callable[[Alert], None],
        *,
        journal: DiffJournal | None = None,
        notifier: ReloadNotifier | None = None,
        poll_s: float | None = None,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._config = config
        self._apply = apply
        self._alert = alert
        self._journal = journal
        self._notifier = notifier
        self.poll_s = config.engine.reload_poll_s if poll_s is None else poll_s
        self._on_outcome = on_outcome
        self._requested = asyncio.Event()
        self._signature = _file_signature(self.path)
        self._loop = BackgroundTask("config-reloader", self._run)
        self._lock = asyncio.Lock()

    @property
    def config(self) -> EngineConfig:
        """The running config (hot changes applied, cold fields as at start)."""
        return self._config

    # -- triggers ---------------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Ask for a reload soon (safe from a signal handler registered with the loop)."""
        self._requested.set()

    def install_signal_handler(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Reload on SIGHUP (``systemctl reload`` sends it via ``ExecReload=kill -HUP $MAINPID``)."""
        (loop or asyncio.get_running_loop()).add_signal_handler(signal.SIGHUP, self.request_reload)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._requested.wait(), self.poll_s)
            except TimeoutError:
                sig = _file_signature(self.path)
                if sig == self._signature:
                    continue
                await asyncio.sleep(min(0.05, self.poll_s))  # let a writer finish before reading
                if _file_signature(self.path) != sig:
                    continue  # still changing; pick it up on the next poll
            self._requested.clear()
            await self.reload()

    # -- the reload -----------------------------------------------------------------------------------

    async def reload(self) -> ReloadOutcome | None:
        """Reload now: the outcome, or None when the file was rejected (the running config stays)."""
        async with self._lock:
            if self._notifier is not None:
                self._notifier.reloading()
            try:
                return self._reload()
            finally:
                if self._notifier is not None:
                    self._notifier.ready()

    def _reload(self) -> ReloadOutcome | None:
        self._signature = _file_signature(self.path)
        try:
            new = load_config(self.path)
            changes = diff_configs(self._config, new)
            merged = merge_hot(self._config, new, changes)
        except ConfigError as exc:
            self._reject(exc.issues)
            return None
        applied = [c for c in changes if c.hot]
        cold = [c for c in changes if not c.hot]
        if not changes:
            log.info("config_unchanged", file=str(self.path))
            self._outcome("unchanged")
            return ReloadOutcome(self._config, [], [])
        if applied:
            try:
                self._apply(merged, applied)
            except ConfigError as exc:  # a change the running engine cannot take: none was applied
                log.error("config_apply_refused", errors=[str(i) for i in exc.issues])
                self._reject(exc.issues)
                return None
            except Exception as exc:
                log.error("config_apply_failed", error=str(exc))
                self._reject([ConfigIssue("", f"the engine could not apply the change: {exc}")])
                return None
            self._config = merged
        if self._journal is not None:
            self._journal.record_config_diff(
                [msgspec.to_builtins(c) for c in applied], [msgspec.to_builtins(c) for c in cold]
            )
        if cold:
            self._alert(
                Alert(
                    "config_restart_required",
                    "warning",
                    f"{len(cold)} changed field(s) need a restart and keep their running values: "
                    + ", ".join(c.path for c in cold),
                    {"file": str(self.path), "cold": [msgspec.to_builtins(c) for c in cold]},
                )
            )
        if applied:
            self._alert(
                Alert(
                    "config_reloaded",
                    "info",
                    f"applied {len(applied)} change(s): " + ", ".join(c.path for c in applied),
                    {"file": str(self.path), "applied": [msgspec.to_builtins(c) for c in applied]},
                )
            )
        log.info("config_reloaded", applied=[c.path for c in applied], cold=[c.path for c in cold])
        self._outcome("applied" if applied else "cold_only")
        return ReloadOutcome(self._config, applied, cold)

    def _reject(self, issues: list[ConfigIssue]) -> None:
        errors = [str(i) for i in issues]
        log.error("config_rejected", file=str(self.path), errors=errors)
        self._alert(
            Alert(
                "config_rejected",
                "error",
                f"{self.path} rejected, running config kept: " + "; ".join(errors),
                {"file": str(self.path), "errors": [msgspec.to_builtins(i) for i in issues]},
            )
        )
        self._outcome("rejected")

    def _outcome(self, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)
