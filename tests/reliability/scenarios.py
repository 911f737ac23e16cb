"""The fault catalogue: each scenario hurts a running engine once and says what it observed.

A scenario injects a fault (simulator control API, the OS), holds it, removes it and returns its
measurements; the caller then checks the invariants (:func:`harness.check_invariants`). Scenarios raise
``AssertionError`` for a fault-specific expectation that failed (e.g. the gate did not trip in time).
``hold_s`` scales every hold: small in CI, larger in ``bench/faults.py``.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import EngineProcess, RedisServer, SimProcess, time_to_gate


@dataclass
class Rig:
    sim: SimProcess
    engine: EngineProcess
    redis: RedisServer
    workdir: Path
    hold_s: float = 1.5
    full: bool = False
    """Full run (bench/faults.py): bigger bursts, and wait out Alpaca's 60 s back-off after a 406."""


Scenario = Callable[[Rig], dict[str, Any]]


def _events(rig: Rig, name: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in rig.engine.events() if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


def _wait(pred: Callable[[], bool], timeout_s: float, step_s: float = 0.05) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return round(time.monotonic() - t0, 3)
        time.sleep(step_s)
    return None


def _injected(rig: Rig, key: str) -> int:
    return int(rig.sim.state()["faults_injected"].get(key, 0))


def _wait_out_rate_limit(rig: Rig, since_wall: float) -> float:
    """Sleep until every rate-limit pause the engine logged since ``since_wall`` is over; the seconds slept."""
    until = since_wall
    for e in _events(rig, "broker_rate_limited"):
        at = dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
        if at >= since_wall:
            until = max(until, at + float(e.get("retry_after_s", 0.0)))
    wait = max(0.0, until - time.time())
    time.sleep(wait + 0.5 if wait else 0.0)
    return round(wait, 2)


def _router(rig: Rig) -> dict[str, int]:
    return dict(rig.engine.status()["summary"].get("router", {}))


def _reconnected(rig: Rig, feed: str, before: int, timeout_s: float = 15.0) -> float | None:
    return _wait(lambda: len(_events(rig, "feed_connected", feed=feed)) > before, timeout_s)


def drop(kind: str) -> Scenario:
    def run(rig: Rig) -> dict[str, Any]:
        before = len(_events(rig, "feed_connected", feed=kind))
        dropped = rig.sim.control("POST", f"/streams/{kind}/drop")["dropped"]
        reconnect_s = _reconnected(rig, kind, before)
        assert reconnect_s is not None, f"{kind} feed did not reconnect"
        return {"dropped": dropped, "reconnect_s": reconnect_s}

    run.__name__ = f"{kind}_socket_dropped"
    return run


def mute(kind: str) -> Scenario:
    def run(rig: Rig) -> dict[str, Any]:
        stale_s = rig.engine.stale_ms / 1e3
        rig.sim.control("POST", f"/streams/{kind}/faults", {"mute": True})
        try:
            if kind == "trading":  # no data heartbeat on trade_updates: orders keep working through REST
                time.sleep(rig.hold_s)
                return {}
            to_gate = time_to_gate(rig.engine, timeout_s=stale_s + 10)
        finally:
            rig.sim.control("POST", f"/streams/{kind}/faults", {"mute": False})
        assert to_gate is not None, f"{kind} mute never tripped the gate"
        beyond = round(to_gate - stale_s, 3)
        assert beyond <= 1.0, f"gate tripped {beyond} s after the stale limit ({to_gate} s after the mute)"
        back = _wait(lambda: rig.engine.status()["trading_state"] == "ACTIVE", 20.0, 0.1)
        assert back is not None, "trading did not resume after the feed came back"
        return {"gate_after_mute_s": round(to_gate, 3), "gate_after_stale_limit_s": beyond, "active_again_s": back}

    run.__name__ = f"{kind}_socket_mute"
    return run


def slow_frames(rig: Rig) -> dict[str, Any]:
    for kind in ("options", "stocks", "trading"):
        rig.sim.control("POST", f"/streams/{kind}/faults", {"delay_ms": 250})
    time.sleep(rig.hold_s)
    for kind in ("options", "stocks", "trading"):
        rig.sim.control("POST", f"/streams/{kind}/faults", {"delay_ms": 0})
    return {"delay_ms": 250}


def malformed_frames(rig: Rig) -> dict[str, Any]:
    for kind in ("options", "stocks", "trading"):
        rig.sim.control("POST", f"/streams/{kind}/faults", {"malformed_frames": 2})
    hit = _wait(lambda: _injected(rig, "malformed_frames") >= 4 or _malformed_hits(rig) >= 4, 10.0, 0.2)
    time.sleep(rig.hold_s)
    return {"malformed_sent": _malformed_hits(rig), "waited_s": hit}


def _malformed_hits(rig: Rig) -> int:
    return sum(v for k, v in rig.sim.state()["faults_injected"].items() if "malformed" in k)


def reject_406_on_reconnect(rig: Rig) -> dict[str, Any]:
    """Alpaca's 406 (connection limit) on reconnect: the feed backs off ``connection_limit_s`` (60 s), the
    gate holds trading meanwhile (stale options), and the feed comes back (waited for in the full run)."""
    before = len(_events(rig, "feed_connected", feed="options"))
    rig.sim.control("POST", "/streams/options/faults", {"reject_connections": 1})
    rig.sim.control("POST", "/streams/options/drop")
    seen = _wait(lambda: any("406" in str(e.get("reason", "")) for e in _events(rig, "feed_disconnected",
                                                                                 feed="options")), 15.0, 0.1)
    assert seen is not None, "the 406 never reached the feed"
    gate = time_to_gate(rig.engine, timeout_s=rig.engine.stale_ms / 1e3 + 5)
    assert gate is not None, "trading went on without options data"
    out: dict[str, Any] = {"406_seen_s": seen, "gate_s": round(gate, 3)}
    if rig.full:
        reconnect_s = _reconnected(rig, "options", before, timeout_s=150.0)
        assert reconnect_s is not None, "options feed did not get back after the 406"
        out["reconnect_s"] = reconnect_s
    return out


def rest_errors(kind: str, count: int) -> Scenario:
    def run(rig: Rig) -> dict[str, Any]:
        key = f"rest_{kind}"
        t0_wall = time.time()
        before = _injected(rig, key)
        n = count if rig.full else max(2, count // 3)
        rig.sim.control("POST", "/rest/faults", {"kind": kind, "count": n, "scope": "trading"})
        used = _wait(lambda: _injected(rig, key) >= before + n, 30.0 if rig.full else 5.0, 0.1)
        rig.sim.control("DELETE", "/faults")
        out = {"served": _injected(rig, key) - before, "served_within_s": used}
        if kind == "429":
            # Removing this fault takes until the broker's window resets: a 429 tells the client to send nothing
            # before X-RateLimit-Reset (up to 60 s), and the engine obeys. Only then can it read what it missed.
            out["rate_limit_wait_s"] = _wait_out_rate_limit(rig, t0_wall)
        return out

    run.__name__ = f"rest_{kind}_burst"
    return run


def after_order_reached(kind: str) -> Scenario:
    """The order reaches the book, then the answer is lost (504 after a hang, or 500)."""

    def run(rig: Rig) -> dict[str, Any]:
        key = f"rest_{kind}"
        before = _injected(rig, key)
        rig.sim.control("POST", "/rest/faults", {"kind": kind, "count": 2, "scope": "orders", "hold_s": 2.0})
        used = _wait(lambda: _injected(rig, key) >= before + 2, 30.0 if rig.full else 10.0, 0.1)
        rig.sim.control("DELETE", "/faults")
        time.sleep(2.5)  # the last answer's hang
        return {"served": _injected(rig, key) - before, "served_within_s": used, "router": _router(rig)}

    run.__name__ = f"rest_{kind}_after_the_order_reached_the_broker"
    return run


def rejected(status: int) -> Scenario:
    def run(rig: Rig) -> dict[str, Any]:
        before = _router(rig).get("rejected", 0)
        rig.sim.control("POST", "/orders/reject", {"status": status, "count": 2})
        seen = _wait(lambda: _router(rig).get("rejected", 0) >= before + 2, 30.0, 0.2)
        rig.sim.control("DELETE", "/faults")
        return {"rejected_seen_within_s": seen, "router_rejected": _router(rig).get("rejected", 0) - before}

    run.__name__ = f"orders_rejected_{status}"
    return run


def delayed_fills(rig: Rig) -> dict[str, Any]:
    rig.sim.control("POST", "/fills/delay", {"ms": 120_000})  # two event minutes: fills arrive late
    time.sleep(rig.hold_s * 2)
    rig.sim.control("POST", "/fills/delay", {"ms": 0})
    time.sleep(rig.hold_s)
    return {"fill_delay_ms": 120_000}


def partial_fills(rig: Rig) -> dict[str, Any]:
    """The simulator fills partially with probability ``partial_fill_probability``; count what it did."""
    time.sleep(rig.hold_s)
    per_leg: dict[str, int] = {}
    for f in rig.sim.inspect()["fills"]:
        per_leg[f["leg_order_id"]] = per_leg.get(f["leg_order_id"], 0) + 1
    partial = sum(1 for n in per_leg.values() if n > 1)
    assert partial > 0, "the simulator made no partial fill yet"
    return {"legs_filled_in_several_parts": partial}


def trade_updates(fault: str) -> Scenario:
    def run(rig: Rig) -> dict[str, Any]:
        rig.sim.control("POST", "/streams/trading/faults", {fault: 10})
        time.sleep(rig.hold_s * 2)
        rig.sim.control("POST", "/streams/trading/faults", {fault: 0})
        return {fault: 10}

    run.__name__ = f"trade_updates_{'duplicated' if fault.startswith('dup') else 'out_of_order'}"
    return run


def _working_at_broker(rig: Rig) -> int:
    return sum(1 for o in rig.sim.inspect()["orders"]
               if o["status"] in ("new", "accepted", "pending_new", "partially_filled", "pending_replace"))


def fill_races(what: str) -> Scenario:
    """Fills decided now but reported later (the simulator's fill delay): a replace or a cancel sent meanwhile
    races them. Replace: the router's walks keep replacing working orders. Cancel: SIGTERM with
    ``cancel_on_shutdown`` cancels every working order while their fills are in flight, then a restart."""

    def run(rig: Rig) -> dict[str, Any]:
        before = _router(rig)
        rig.sim.control("POST", "/fills/delay", {"ms": 45_000})  # longer than the 30 s walk / 20 s close walk
        working = _wait(lambda: _working_at_broker(rig) > 0, 20.0, 0.1)
        out: dict[str, Any] = {"working_orders_seen_s": working}
        if what == "cancel":
            out["working_at_stop"] = _working_at_broker(rig)
            out["stop_exit"] = rig.engine.stop()
            rig.sim.control("POST", "/fills/delay", {"ms": 0})
            rig.engine.start()
            return out
        time.sleep(rig.hold_s * 2)
        rig.sim.control("POST", "/fills/delay", {"ms": 0})
        after = _router(rig)
        out.update({k: after.get(k, 0) - before.get(k, 0) for k in ("replaces", "replace_rejected")})
        return out

    run.__name__ = f"fill_racing_a_{what}"
    return run


def redis_down(rig: Rig) -> dict[str, Any]:
    rig.redis.stop()
    time.sleep(rig.hold_s * 2)
    rig.redis.start()
    return {"down_s": rig.hold_s * 2}


def redis_slow(rig: Rig) -> dict[str, Any]:
    rig.redis.freeze(True)
    try:
        time.sleep(rig.hold_s * 2)
    finally:
        rig.redis.freeze(False)
    return {"frozen_s": rig.hold_s * 2}


def invalid_reload(rig: Rig) -> dict[str, Any]:
    path = rig.engine.config_path
    good = path.read_text()
    before = len(_events(rig, "config_rejected"))
    path.write_text(good + "\n[risk]\nmax_open_structures = \"many\"\n")
    try:
        seen = _wait(lambda: len(_events(rig, "config_rejected")) > before, 10.0, 0.1)
    finally:
        path.write_text(good)
    assert seen is not None, "the invalid engine.toml was not rejected"
    assert rig.engine.alive()
    return {"rejected_within_s": seen}


def clock_jump(rig: Rig) -> dict[str, Any]:
    before = rig.sim.state()["now"]
    after = rig.sim.control("POST", "/clock/advance", {"seconds": 1800})["now"]
    time.sleep(rig.hold_s)
    return {"from": before, "to": after}


def kill9_once(rig: Rig, rng: random.Random, max_wait_s: float) -> dict[str, Any]:
    """Trade a random while, SIGKILL, restart (restart reconciliation runs at start-up)."""
    time.sleep(rng.uniform(0.0, max_wait_s))
    rig.engine.kill()
    t0 = time.monotonic()
    rig.engine.start()
    return {"restart_s": round(time.monotonic() - t0, 2)}


def matrix() -> list[Scenario]:
    """Every fault kind, in the order the runners play them."""
    return [
        drop("options"), drop("stocks"), drop("trading"),
        mute("options"), mute("stocks"), mute("trading"),
        slow_frames, malformed_frames,
        rest_errors("429", 10), rest_errors("500", 5), rest_errors("504", 5),
        after_order_reached("timeout_after"), after_order_reached("500_after"),
        rejected(403), rejected(422),
        delayed_fills, partial_fills,
        trade_updates("duplicate_updates"), trade_updates("reorder_updates"),
        fill_races("replace"), fill_races("cancel"),
        redis_down, redis_slow, invalid_reload, clock_jump,
        reject_406_on_reconnect,  # last: the feed honours Alpaca's 406 by waiting connection_limit_s (60 s)
    ]
