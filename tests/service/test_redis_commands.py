"""The command listener on a real Redis channel: signed commands run, everything else is refused loudly."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import redis.asyncio as aioredis

from engine.kernel.alerts import Alert
from engine.service.commands import COMMANDS, CommandListener, sign_command
from engine.service.secrets import Secret

SECRET = "command-secret-for-tests-0123456789"


def _listener(redis_url: str, prefix: str, ran: list[str], alerts: list[Alert], secret: str | None = SECRET):
    handlers = {name: (lambda name=name: ran.append(name)) for name in COMMANDS}

    async def flatten() -> None:  # handlers may be coroutines
        await asyncio.sleep(0)
        ran.append("flatten")

    handlers["flatten"] = flatten
    return CommandListener(redis_url, prefix, Secret(secret) if secret else None, handlers, alerts.append)


async def _until(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_signed_commands_run_and_bad_ones_are_rejected_with_alerts(redis_url: str):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    ran: list[str] = []
    alerts: list[Alert] = []
    listener = _listener(redis_url, prefix, ran, alerts)
    listener.start()
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await listener.wait_subscribed(5)
        channel = f"{prefix}:commands"
        await client.publish(channel, sign_command(SECRET, "pause"))
        await client.publish(channel, sign_command(SECRET, "flatten"))
        await client.publish(channel, sign_command("wrong-secret-xxxxxxxx", "halt"))
        await client.publish(channel, sign_command(SECRET, "self_destruct"))
        replay = sign_command(SECRET, "resume")
        await client.publish(channel, replay)
        await client.publish(channel, replay)
        await client.publish(channel, sign_command(SECRET, "reload", ts_ns=time.time_ns() - 120 * 10**9))
        await client.publish(channel, b"{not json")
        await _until(lambda: len(alerts) == 8)
    finally:
        await listener.stop()
        await client.aclose()
    assert ran == ["pause", "flatten", "resume"]
    rejected = [a.details["reason"] for a in alerts if a.code == "command_rejected"]
    assert len(rejected) == 5
    assert rejected[0] == "unauthenticated: bad signature"
    assert rejected[1].startswith("unknown command 'self_destruct'")
    assert rejected[2] == "replayed: id already used"
    assert rejected[3].startswith("stale:")
    assert rejected[4].startswith("malformed:")
    assert SECRET not in msgspec.json.encode(alerts).decode()


async def test_commands_are_disabled_without_a_secret(redis_url: str):
    listener = _listener(redis_url, "x", [], [], secret=None)
    assert not listener.enabled
    assert listener.start() is None
