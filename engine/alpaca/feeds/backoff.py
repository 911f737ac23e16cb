"""Reconnect policy as pure functions: a delay generator and classifiers of what went wrong.

Delays grow exponentially from ``initial_s`` to ``max_s`` (30 s) with "equal jitter" (half the delay
fixed, half random) as alpaca-py 0.44 does, so many clients do not reconnect in lock-step. A server
error says what to do next (docs/alpaca.md §2.1): bad credentials (402), a feed outside the plan
(409), a missing scope (411) and the msgpack requirement (412) cannot heal by retrying, so they stop
the feed with a clear message; the connection limit (406) waits longer before retrying, since a
stale session of ours may still hold the slot; requests the server refused (400, 405, 410, 413)
are reported but keep the session.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterator

import msgspec
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus


class Reaction(enum.Enum):
    RETRY = "retry"
    """Reconnect after the normal backoff."""
    RETRY_SLOW = "retry_slow"
    """Reconnect, but not before the long connection-limit delay."""
    FATAL = "fatal"
    """Stop the feed; an operator must act."""
    REPORT = "report"
    """Keep the session; raise an alert."""


class BackoffConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    initial_s: float = 1.0
    max_s: float = 30.0
    factor: float = 2.0
    connection_limit_s: float = 60.0
    """Minimum wait after a 406 (connection limit exceeded)."""


def backoff(config: BackoffConfig = BackoffConfig(), rng: Callable[[], float] = random.random) -> Iterator[float]:
    """Endless reconnect delays: exponential, capped at ``max_s``, each in [d/2, d]."""
    delay = config.initial_s
    while True:
        yield delay / 2 + rng() * delay / 2
        delay = min(config.max_s, delay * config.factor)


SERVER_ERRORS: dict[int, tuple[Reaction, str]] = {
    400: (Reaction.REPORT, "invalid syntax: the engine sent a malformed message"),
    401: (Reaction.RETRY, "not authenticated"),
    402: (Reaction.FATAL, "auth failed: check the API key and secret"),
    403: (Reaction.REPORT, "already authenticated"),
    404: (Reaction.RETRY, "auth timeout"),
    405: (Reaction.REPORT, "symbol limit exceeded: the server kept the previous subscription"),
    406: (Reaction.RETRY_SLOW, "connection limit exceeded: another session uses these keys"),
    407: (Reaction.RETRY, "slow client: the engine fell behind the feed"),
    409: (Reaction.FATAL, "insufficient subscription: this feed is not in the account's market-data plan"),
    410: (Reaction.REPORT, "invalid subscribe action for this feed"),
    411: (Reaction.FATAL, "insufficient scope for this token"),
    412: (Reaction.FATAL, "option messages are only available in msgpack format"),
    413: (Reaction.REPORT, "star subscription is not allowed for option quotes"),
    500: (Reaction.RETRY, "internal server error"),
}


def classify_server_error(code: int) -> tuple[Reaction, str]:
    """Reaction to ``[{"T":"error","code":code}]`` and a sentence for the operator."""
    return SERVER_ERRORS.get(code, (Reaction.RETRY, f"unknown server error {code}"))


def classify_exception(exc: BaseException) -> Reaction:
    """Reaction to an exception raised while connecting or reading."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return Reaction.FATAL
        if status == 429:
            return Reaction.RETRY_SLOW
        return Reaction.RETRY
    if isinstance(exc, (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, EOFError)):
        return Reaction.RETRY
    return Reaction.RETRY
