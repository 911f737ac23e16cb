"""The simulator's world as plain data: what the state store saves and how it is put back.

Generic by design, so state added later persists without a code path of its own:

* the account: every instance attribute of ``Account`` except ``Account.TRANSIENT``, converted back
  with the attribute's class annotation (``restore_account`` refuses an unannotated one);
* orders, positions, instruments and decided-but-unreported executions are dataclasses: every field
  is saved and converted back by its type (an order's ``parent`` is implied by nesting, an
  execution's order is saved as its id); a field added with a default also reads older states;
* each underlying's process state: every dataclass field except the parameters the configuration
  sets (``UNDERLYING_PARAMS``); random generators are saved as their bit-generator state;
* the exchange's counters, generators and state records named in ``EXCHANGE_FIELDS`` (a dataclass such as
  the expiration process's record is saved field by field, like the rest); every attribute of the exchange
  and the market is classified here as saved or rebuilt at start, and a test fails on one that is not;
* the listed universe (``Universe``): its arrays and lists; lookups are rebuilt from them.

Values are msgpack-ready builtins (bit-generator states as JSON text: their integers exceed 64 bits).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from engine.sim.account import Account
from engine.sim.exchange import Execution
from engine.sim.orders import Order
from engine.sim.pricing import PriceCache
from engine.sim.universe import Universe, contract_id

if TYPE_CHECKING:
    from engine.sim.server import Simulator

FORMAT_VERSION = 1

UNDERLYING_PARAMS = frozenset(
    {"symbol", "long_var", "kappa", "xi", "rho", "jump_rate_per_tick", "jump_mean", "jump_std", "q"}
)
"""Fields of the market's underlying record set from ``[sim.underlyings]`` at every start (never saved)."""

EXCHANGE_FIELDS = ("event_seq", "fill_rng", "id_rng", "expiry_state")
"""Exchange attributes saved with every change (one this exchange does not have is skipped)."""
EXCHANGE_STORED = frozenset({"account", "orders", "by_client_id", "submissions", "fills", "in_flight"})
"""Exchange attributes the store saves itself (orders, fills and submissions as they change; the lookup by
client_order_id is rebuilt from the orders)."""
EXCHANGE_REBUILT = frozenset({"config", "market", "listeners", "fill_delay_ms", "reject_next", "rules"})
"""Exchange attributes rebuilt at every start: configuration, wiring, injected faults and the order rules in
force (run-time switches, like faults, do not outlive the process)."""
MARKET_SAVED = frozenset({"unds", "universe", "cache", "stock_trade_id", "last_option_trade", "last_stock_trade",
                          "last_publish_ns"})
"""Market attributes saved (``last_publish_ns`` restarts at the restored clock)."""
MARKET_REBUILT = frozenset({"config", "clock", "seed", "r", "tick_ns", "tick_years", "surfaces", "tick_class", "q"})
"""Market attributes derived from the configuration at every start."""


class StateError(Exception):
    """A saved state that cannot be used with this configuration or this code."""


# ---- generators ----------------------------------------------------------------------------------
def rng_state(gen: np.random.Generator) -> str:
    return json.dumps(gen.bit_generator.state)


def set_rng_state(gen: np.random.Generator, text: str) -> None:
    gen.bit_generator.state = json.loads(text)


def _plain(value: Any) -> Any:
    """A value made of builtins: generators as their state, dataclasses field by field."""
    if isinstance(value, np.random.Generator):
        return rng_state(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _restore(owner: Any, name: str, value: Any) -> None:
    """Put a saved value back: generators get their state, dataclasses their fields (in place), the rest is
    converted to the owner's annotation of ``name`` when it has one."""
    current = getattr(owner, name)
    if isinstance(current, np.random.Generator):
        set_rng_state(current, value)
    elif dataclasses.is_dataclass(current) and not isinstance(current, type) and isinstance(value, dict):
        names = {f.name for f in dataclasses.fields(current)}
        for field_name, field_value in value.items():
            if field_name in names:
                _restore(current, field_name, field_value)
    else:
        hint = _hints(type(owner)).get(name)
        setattr(owner, name, value if hint is None else msgspec.convert(value, hint))


# ---- account -------------------------------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The class's resolved annotations ({} when some cannot be resolved: values then stay as saved)."""
    hints = _HINTS.get(cls)
    if hints is None:
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):
            hints = {}
        _HINTS[cls] = hints
    return hints


def account_fields(account: Account) -> list[str]:
    """The account's saved attributes (all but the transient ones and the append-only activity log)."""
    hints = _hints(type(account))
    names = [n for n in vars(account) if n not in account.TRANSIENT and n != "activities"]
    missing = [n for n in names if n not in hints]
    if missing:
        raise StateError(
            f"Account attributes {missing} have no class annotation: annotate them in engine/sim/account.py "
            "so the simulator's state can restore them (or list them in Account.TRANSIENT)"
        )
    return names


def account_state(account: Account) -> dict[str, Any]:
    return {name: getattr(account, name) for name in account_fields(account)}


def restore_account(account: Account, data: dict[str, Any]) -> None:
    hints = _hints(type(account))
    for name, value in data.items():
        if name in hints and name not in account.TRANSIENT:
            _restore(account, name, value)


# ---- orders and executions -----------------------------------------------------------------------
def order_state(order: Order) -> dict[str, Any]:
    """An order with its legs nested; ``parent`` is left out (it is the enclosing order)."""
    out = {f.name: getattr(order, f.name) for f in dataclasses.fields(order) if f.name != "parent"}
    out["legs"] = [order_state(leg) for leg in order.legs]
    return out


def restore_order(data: Any) -> Order:
    order = msgspec.convert(data, Order)
    for leg in order.legs:
        leg.parent = order
    return order


def execution_state(execution: Execution) -> dict[str, Any]:
    return {
        f.name: (value.id if isinstance(value, Order) else value)
        for f in dataclasses.fields(execution)
        for value in [getattr(execution, f.name)]
    }


def restore_execution(data: dict[str, Any], orders: dict[str, Order]) -> Execution:
    hints = _hints(Execution)
    values: dict[str, Any] = {
        name: (orders[value] if hints[name] is Order else msgspec.convert(value, hints[name]))
        for name, value in data.items()
        if name in hints
    }
    return Execution(**values)


# ---- clock, market and exchange counters: the "world", saved with every change -------------------
def world_state(sim: Simulator) -> dict[str, Any]:
    market, ex = sim.market, sim.exchange
    return {
        "now_ns": sim.clock.now_ns,
        "session": sim.clock.today().isoformat(),
        "underlyings": [
            {f.name: _plain(getattr(u, f.name)) for f in dataclasses.fields(u) if f.name not in UNDERLYING_PARAMS}
            for u in market.unds
        ],
        "stock_trade_id": market.stock_trade_id,
        "exchange": {name: _plain(getattr(ex, name)) for name in EXCHANGE_FIELDS if hasattr(ex, name)},
    }


def restore_world(sim: Simulator, data: dict[str, Any]) -> None:
    clock, market, ex = sim.clock, sim.market, sim.exchange
    day = dt.date.fromisoformat(data["session"])
    session = clock.calendar.session(day)
    if session is None:
        raise StateError(f"saved session {day} is not a trading day of the market calendar")
    clock.session_date = session.day
    clock.open_ns, clock.close_ns, clock.early_close = session.open_ns, session.close_ns, session.early_close
    clock.now_ns = int(data["now_ns"])
    for u, saved in zip(market.unds, data["underlyings"], strict=True):
        for name, value in saved.items():
            if hasattr(u, name) and name not in UNDERLYING_PARAMS:
                _restore(u, name, value)
    market.stock_trade_id = int(data["stock_trade_id"])
    market.last_publish_ns = clock.now_ns
    for name, value in data["exchange"].items():
        if name in EXCHANGE_FIELDS and hasattr(ex, name):
            _restore(ex, name, value)


# ---- the listed universe -------------------------------------------------------------------------
_UNIVERSE_DERIVED = frozenset({"underlyings", "calendar", "und_index", "index", "ids", "symbol_bytes", "_expiry_day"})


def universe_state(universe: Universe) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in vars(universe).items():
        if name in _UNIVERSE_DERIVED:
            continue
        if isinstance(value, np.ndarray):
            out[name] = {"dtype": value.dtype.str, "data": value.tobytes()}
        elif name == "expiry_dates":
            out[name] = [d.isoformat() for d in value]
        elif name == "_listed":
            out[name] = sorted([ui, d.isoformat()] for ui, d in value)
        else:
            out[name] = value
    return out


def restore_universe(universe: Universe, data: dict[str, Any]) -> None:
    for name, value in data.items():
        if isinstance(value, dict) and "dtype" in value:
            setattr(universe, name, np.frombuffer(value["data"], dtype=np.dtype(value["dtype"])).copy())
        elif name == "expiry_dates":
            universe.expiry_dates = [dt.date.fromisoformat(d) for d in value]
        elif name == "_listed":
            universe._listed = {(int(ui), dt.date.fromisoformat(d)) for ui, d in value}
        elif hasattr(universe, name):
            setattr(universe, name, value)
    universe.index = {s: i for i, s in enumerate(universe.symbols)}
    universe.ids = [contract_id(s) for s in universe.symbols]
    universe.symbol_bytes = [s.encode() for s in universe.symbols]
    universe._expiry_day = np.array(universe.expiry_dates, dtype="datetime64[D]")


def universe_signature(universe: Universe) -> tuple[int, int]:
    """Changes when contracts are listed or expire (the universe is rewritten then)."""
    return len(universe), int(universe.active.sum())


# ---- what is only saved at a clean stop: the price cache and the latest trades ---------------------
def market_snapshot(sim: Simulator) -> dict[str, Any]:
    market = sim.market
    cache = market.cache
    return {
        "now_ns": sim.clock.now_ns,
        "cache": {
            name: {"dtype": v.dtype.str, "data": v.tobytes()}
            for name, v in vars(cache).items()
            if isinstance(v, np.ndarray)
        },
        "last_option_trade": [[row, *trade] for row, trade in market.last_option_trade.items()],
        "last_stock_trade": [[ui, *trade] for ui, trade in market.last_stock_trade.items()],
    }


def restore_market_snapshot(sim: Simulator, data: dict[str, Any]) -> None:
    """The cache only when it was taken at the restored instant (after a crash it is older: priced afresh)."""
    market = sim.market
    market.last_option_trade = {int(r[0]): tuple(r[1:]) for r in data.get("last_option_trade", [])}
    market.last_stock_trade = {int(r[0]): tuple(r[1:]) for r in data.get("last_stock_trade", [])}
    market.cache = PriceCache()
    if data.get("now_ns") == sim.clock.now_ns:
        for name, value in data.get("cache", {}).items():
            setattr(market.cache, name, np.frombuffer(value["data"], dtype=np.dtype(value["dtype"])).copy())
    market.cache.grow(len(market.universe))
