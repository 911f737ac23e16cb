"""Keys and secrets: read only from the environment or a credentials file, never logged, never in a repr.

The config names the *variables* (``[alpaca] key_id_env``/``secret_key_env``, ``[redis] command_secret_env``);
values come from the process environment, or from ``[alpaca] credentials_file``: ``NAME=value`` lines (the
``EnvironmentFile=`` format). A relative credentials file name is looked up in ``$CREDENTIALS_DIRECTORY``
first,
which is where systemd's ``LoadCredential=`` puts it. The environment wins over the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import msgspec

from engine.service.config import LIVE_CONFIRM_ENV, EngineConfig


class SecretError(Exception):
    """A required secret is missing, or live trading was not confirmed."""


class Secret:
    """A string that will not print itself: ``repr``/``str`` show ``'***'``; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


class Credentials(msgspec.Struct, frozen=True):
    """Alpaca API keys; the repr never shows them."""

    key_id: Secret
    secret_key: Secret
    source: str

    def values(self) -> Iterator[str]:
        yield self.key_id.reveal()
        yield self.secret_key.reveal()


def parse_env_file(text: str) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, blank lines, optional ``export``, optional quotes)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name.strip()] = value
    return out


def credentials_file_path(name: str, env: Mapping[str, str]) -> Path:
    """Where a credentials file lives: ``$CREDENTIALS_DIRECTORY/name`` for a bare name under systemd."""
    p = Path(name)
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and not p.is_absolute() and (Path(cred_dir) / p).exists():
        return Path(cred_dir) / p
    return p


def load_credentials(cfg: EngineConfig, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Alpaca keys for paper/live (None in sim mode); raise :class:`SecretError` naming what is missing."""
    env = os.environ if env is None else env
    if cfg.engine.mode == "sim":
        return None
    a = cfg.alpaca
    file_values: dict[str, str] = {}
    source = "environment"
    if a.credentials_file:
        path = credentials_file_path(a.credentials_file, env)
        try:
            file_values = parse_env_file(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SecretError(f"cannot read credentials file {path}: {exc.strerror}") from None
    key = env.get(a.key_id_env, "") if a.key_id_env else ""
    secret = env.get(a.secret_key_env, "") if a.secret_key_env else ""
    if not key or not secret:
        key = key or file_values.get(a.key_id_env, "")
        secret = secret or file_values.get(a.secret_key_env, "")
        source = f"credentials file {a.credentials_file}" if file_values else source
    missing = [n for n, v in ((a.key_id_env, key), (a.secret_key_env, secret)) if not v]
    if missing:
        where = f" or in {a.credentials_file}" if a.credentials_file else ""
        raise SecretError(
            f"mode = {cfg.engine.mode!r} needs Alpaca keys: {', '.join(missing)} not set in the environment{where}"
        )
    return Credentials(Secret(key), Secret(secret), source)


def _file_values(cfg: EngineConfig, env: Mapping[str, str]) -> dict[str, str]:
    if not cfg.alpaca.credentials_file:
        return {}
    try:
        return parse_env_file(credentials_file_path(cfg.alpaca.credentials_file, env).read_text(encoding="utf-8"))
    except OSError:
        return {}


def command_secret(cfg: EngineConfig, env: Mapping[str, str] | None = None) -> Secret | None:
    """The Redis command secret, or None when commands are disabled (no variable named, or it is empty).

    Read from the environment, else from the credentials file under the same name.
    """
    env = os.environ if env is None else env
    name = cfg.redis.command_secret_env
    if not name:
        return None
    value = env.get(name, "") or _file_values(cfg, env).get(name, "")
    return Secret(value) if value else None


def dashboard_token(cfg: EngineConfig, env: Mapping[str, str] | None = None) -> Secret | None:
    """The dashboard's control token: ``[engine] dashboard_token_env`` (environment, else credentials file), else
    the command channel's secret; None when neither is set (the dashboard is then read-only)."""
    env = os.environ if env is None else env
    name = cfg.engine.dashboard_token_env
    value = (env.get(name, "") or _file_values(cfg, env).get(name, "")) if name else ""
    return Secret(value) if value else command_secret(cfg, env)


def require_live_confirmation(cfg: EngineConfig, env: Mapping[str, str] | None = None) -> None:
    """Refuse live trading unless ``mode = "live"`` is confirmed by ``OPTIONS_ENGINE_LIVE=1``."""
    env = os.environ if env is None else env
    if cfg.engine.mode == "live" and env.get(LIVE_CONFIRM_ENV) != "1":
        raise SecretError(
            f'refusing to trade live: engine.toml says mode = "live" but {LIVE_CONFIRM_ENV}=1 is not '
            f"set in the environment; set it to confirm that real money is at stake"
        )


def secret_values(cfg: EngineConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """Every configured secret value present in the environment or credentials file (for the redactor)."""
    env = os.environ if env is None else env
    names = [cfg.alpaca.key_id_env, cfg.alpaca.secret_key_env, cfg.redis.command_secret_env,
             cfg.engine.dashboard_token_env]
    values = [env[n] for n in names if n and env.get(n)]
    values += [v for v in _file_values(cfg, env).values() if v]
    return values
