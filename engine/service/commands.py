"""Operator commands over Redis: ``<prefix>:commands`` carries pause, resume, halt, flatten and reload.

Disabled unless a command secret is configured (``[redis] command_secret_env`` names a set variable).
A command never carries the secret: it carries ``sig = hex(HMAC-SHA256(secret, "v1|command|id|ts_ns"))``,
compared in constant time (``hmac.compare_digest``). A command older or newer than ``max_skew_s`` or with an
``id`` seen recently is refused (anyone who can read the channel could otherwise replay it). Every refusal
raises a ``command_rejected`` alert with the reason; every accepted command a ``command_accepted`` alert.
The actions are the app's callbacks. Message format: docs/redis.md.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from engine.kernel.alerts import Alert
from engine.service.background import BackgroundTask
from engine.service.publish import backoff
from engine.service.secrets import Secret

log = structlog.get_logger(__name__)

COMMANDS = ("pause", "resume", "halt", "flatten", "reload")
Handler = Callable[[], Awaitable[None] | None]
_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class CommandMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    command: str
    id: str
    ts_ns: int
    sig: str
    args: dict[str, Any] = {}


def _payload(command: str, command_id: str, ts_ns: int) -> bytes:
    return f"v1|{command}|{command_id}|{ts_ns}".encode()


def sign_command(secret: str, command: str, command_id: str | None = None, ts_ns: int | None = None) -> bytes:
    """A signed command message, ready to ``PUBLISH <prefix>:commands`` (for operator tools and tests)."""
    command_id = command_id or uuid.uuid4().hex
    ts_ns = time.time_ns() if ts_ns is None else ts_ns
    sig = hmac.new(secret.encode(), _payload(command, command_id, ts_ns), hashlib.sha256).hexdigest()
    return msgspec.json.encode({"v": 1, "command": command, "id": command_id, "ts_ns": ts_ns, "sig": sig})


class CommandVerifier:
    """Pure check of one raw message: the command name, or the reason it is refused."""

    def __init__(self, secret: Secret, max_skew_s: float = 30.0, remember: int = 10_000) -> None:
        self._key = secret.reveal().encode()
        self.max_skew_ns = int(max_skew_s * 1e9)
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remember = remember

    def verify(self, raw: bytes, now_ns: int | None = None) -> tuple[str | None, str, str]:
        """(command or None, reason, id). Unknown commands are refused only after the signature checks out."""
        try:
            msg = msgspec.json.decode(raw, type=CommandMessage)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for non-UTF-8 str
            return None, f"malformed: {exc}", ""
        expected = hmac.new(self._key, _payload(msg.command, msg.id, msg.ts_ns), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), msg.sig.encode()):
            return None, "unauthenticated: bad signature", msg.id
        now_ns = time.time_ns() if now_ns is None else now_ns
        if abs(now_ns - msg.ts_ns) > self.max_skew_ns:
            return None, f"stale: ts_ns is {(now_ns - msg.ts_ns) / 1e9:.1f}s from now", msg.id
        if msg.id in self._seen:
            return None, "replayed: id already used", msg.id
        self._seen[msg.id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        if msg.v != 1:
            return None, f"unsupported version {msg.v}", msg.id
        if msg.command not in COMMANDS:
            return None, f"unknown command {msg.command!r} (known: {', '.join(COMMANDS)})", msg.id
        return msg.command, "ok", msg.id


class CommandListener:
    """Subscribes to ``<prefix>:commands`` and runs the app's handler for each verified command."""

    def __init__(
        self,
        url: str,
        prefix: str,
        secret: Secret | None,
        handlers: Mapping[str, Handler],
        alert: Callable[[Alert], None],
        max_skew_s: float = 30.0,
    ) -> None:
        missing = [c for c in COMMANDS if c not in handlers]
        if missing:
            raise ValueError(f"command handlers missing: {', '.join(missing)}")
        self.url = url
        self.channel = f"{prefix}:commands"
        self._verifier = CommandVerifier(secret, max_skew_s) if secret else None
        self._handlers = dict(handlers)
        self._alert = alert
        self._loop = BackgroundTask("redis-commands", self._run)
        self._subscribed = asyncio.Event()
        self.accepted = 0
        self.rejected = 0

    @property
    def enabled(self) -> bool:
        return self._verifier is not None

    def start(self) -> asyncio.Task[None] | None:
        """Start listening; None (and a log line) when no command secret is configured."""
        if self._verifier is None:
            log.info("redis_commands_disabled", reason="no command secret configured")
            return None
        return self._loop.start()

    async def wait_subscribed(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        delays = backoff()
        while True:
            client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0), retry_on_error=[]
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                delays = backoff()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        await self.handle(msg["data"])
            except _REDIS_ERRORS as exc:
                self._subscribed.clear()
                log.warning("redis_commands_disconnected", error=str(exc))
                await asyncio.sleep(next(delays))
            finally:
                self._subscribed.clear()
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed in newer redis
                await client.aclose()

    async def handle(self, raw: bytes) -> bool:
        """Verify and run one command; True when it ran."""
        assert self._verifier is not None
        command, reason, command_id = self._verifier.verify(raw)
        if command is None:
            self.rejected += 1
            log.warning("command_rejected", reason=reason, command_id=command_id)
            self._alert(
                Alert(
                    "command_rejected",
                    "warning",
                    f"command rejected: {reason}",
                    {"reason": reason, "command_id": command_id},
                )
            )
            return False
        self.accepted += 1
        log.info("command_accepted", command=command, command_id=command_id)
        self._alert(
            Alert(
                "command_accepted",
                "info",
                f"command {command} accepted",
                {"command": command, "command_id": command_id},
            )
        )
        try:
            result = self._handlers[command]()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.error("command_failed", command=command, error=str(exc))
            self._alert(
                Alert(
                    "command_failed",
                    "error",
                    f"command {command} failed: {exc}",
                    {"command": command, "command_id": command_id},
                )
            )
            return False
        return True
