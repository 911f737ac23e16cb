"""structlog set-up: JSON lines to stdout, contextvars, and a processor that redacts secrets.

The redactor removes (a) every configured secret value wherever it appears in a string, (b) anything shaped
like an Alpaca key id (``PK``/``AK``/``CK`` + 18 upper-case alphanumerics; OCC option symbols excepted), and
(c) the values of fields whose *name* says secret (``secret``, ``password``, ``token``, ``api_key``,
``authorization``...). The same :class:`Redactor` scrubs Redis messages (engine/service/publish.py), so one object
guards both exits.
"""

from __future__ import annotations

import logging as std_logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"
ALPACA_KEY_RE = re.compile(r"\b(?:PK|AK|CK)[A-Z0-9]{18}\b")
_OCC_RE = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")  # an option symbol of that length is not a key
_SECRET_NAME_RE = re.compile(r"(secret|passw|token|api_?key|authori[sz]ation|credential|key_id)", re.IGNORECASE)
_MIN_SECRET_LEN = 6  # shorter "secrets" would redact ordinary words


class Redactor:
    """Scrubs secrets out of strings and nested log/event dicts; cheap when nothing matches."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the set of literal secret values (longest first, so overlapping values redact fully)."""
        uniq = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}
        self._secrets = tuple(sorted(uniq, key=len, reverse=True))

    def redact_str(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        if ALPACA_KEY_RE.search(text):
            text = ALPACA_KEY_RE.sub(_redact_key, text)
        return text

    def redact(self, value: Any) -> Any:
        """Redact a string, or a dict/list/tuple recursively (returns new containers only when needed)."""
        if isinstance(value, str):
            return self.redact_str(value)
        if isinstance(value, dict):
            return {
                k: (REDACTED if isinstance(k, str) and _is_secret_name(k) and v else self.redact(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.redact(v) for v in value)
        if isinstance(value, bytes | int | float | bool) or value is None:
            return value
        return self.redact_str(repr(value)) if _might_leak(value) else value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """structlog processor."""
        for k, v in list(event_dict.items()):
            if _is_secret_name(k) and v and k != "event":
                event_dict[k] = REDACTED
            else:
                event_dict[k] = self.redact(v)
        return event_dict


def _redact_key(match: re.Match[str]) -> str:
    return match.group(0) if _OCC_RE.match(match.group(0)) else REDACTED


def _is_secret_name(name: str) -> bool:
    return _SECRET_NAME_RE.search(name) is not None and not name.endswith(("_env", "_file", "_count"))


def _might_leak(value: object) -> bool:
    # Exceptions and other objects are rendered by the JSON renderer via repr/str; scrub them now.
    return isinstance(value, BaseException)


_LEVELS = {
    "debug": std_logging.DEBUG,
    "info": std_logging.INFO,
    "warning": std_logging.WARNING,
    "error": std_logging.ERROR,
}

_redactor = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor used by the log pipeline (share it with the Redis publisher)."""
    return _redactor


def configure_logging(level: str = "info", secrets: Iterable[str] = (), stream: TextIO | None = None) -> Redactor:
    """Configure structlog once for the process: JSON to ``stream`` (stdout), level filter, redaction."""
    _redactor.set_secrets(secrets)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redactor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream if stream is not None else sys.stdout),
        cache_logger_on_first_use=False,
    )
    return _redactor


def set_level(level: str) -> None:
    """Change the level at run time (``engine.log_level`` is a hot field)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]))
