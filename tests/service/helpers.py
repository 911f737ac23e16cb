"""Builders shared by the service tests (fills, orders, intents with realistic shapes)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from domain.orders import IntentAction, Leg, OrderFilled, OrderIntent, OrderStatus, OrderUpdated, Side

CALL = "SPY261127C00600000"
PUT = "SPY261127P00590000"


def make_fill(
    n: int,
    symbol: str = CALL,
    side: Side = Side.BUY,
    qty: float = 1.0,
    price: float = 1.25,
    coid: str = "oe-1",
    order_id: str = "ord-1",
) -> OrderFilled:
    now = time.time_ns()
    return OrderFilled(
        execution_id=f"exec-{n}",
        order_id=order_id,
        client_order_id=coid,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        ts_event_ns=now,
        ts_init_ns=now,
        strategy_id="gamma_scalper",
        structure_id="st-1",
        intent_id="in-1",
    )


def make_intent(intent_id: str = "in-1", structure_id: str = "st-1") -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id,
        strategy_id="iron_condor",
        structure_id=structure_id,
        underlying="SPY",
        action=IntentAction.OPEN,
        legs=(Leg(CALL, Side.SELL), Leg(PUT, Side.SELL)),
        qty=1,
        ts_event_ns=time.time_ns(),
    )


def make_update(
    coid: str,
    order_id: str,
    status: OrderStatus,
    filled: float = 0.0,
    qty: float = 1.0,
    intent_id: str = "in-1",
    structure_id: str = "st-1",
) -> OrderUpdated:
    now = time.time_ns()
    return OrderUpdated(
        order_id=order_id,
        client_order_id=coid,
        status=status,
        filled_qty=filled,
        qty=qty,
        ts_event_ns=now,
        ts_init_ns=now,
        strategy_id="iron_condor",
        structure_id=structure_id,
        intent_id=intent_id,
    )


SIM_TRADING_DAY = """
[sim]
speed = 600.0
start = "2026-11-23T09:50:00"
option_quote_rate = 0.2
seed = 7

[strategies.gamma_scalper]
open_policy = { walk_every_s = 30.0, timeout_s = 600.0 }

[strategies.iron_condor]
take_profit_pct = 0.05
open_policy = { walk_every_s = 30.0, timeout_s = 600.0 }
close_policy = { walk_every_s = 30.0, walk_step_fraction = 0.5, timeout_s = 600.0 }

[strategies.zero_dte]
open_policy = { walk_every_s = 30.0, timeout_s = 600.0 }
close_policy = { walk_every_s = 20.0, walk_step_fraction = 0.5, timeout_s = 300.0 }
"""
"""``[sim]`` and all three strategies, tuned so a few seconds at 600x open, hedge and close structures (appended to
an ``[engine]`` table by the sim engine tests)."""


async def until(cond: Any, limit_s: float = 15.0) -> None:
    """Wait (polling every 10 ms) until ``cond()`` is true; fail after ``limit_s``."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
