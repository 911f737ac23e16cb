"""The simulator keeps its account in a state directory: save, reload, identical answers, ids never repeat.

Each test drives a paused simulator (``speed = 0``, moved by ``advance``) through a script that leaves
every kind of state behind (filled, partially filled, working, cancelled, replaced and multi-leg orders,
a stop order, a fill decided but not yet reported, shares, a do-not-exercise flag, a session close with
expiries and new listings), then compares what a client sees over REST before and after a reload.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import numpy as np
import pytest

from engine.sim import state
from engine.sim.account import Account
from engine.sim.config import OrderRulesConfig, SimConfig
from engine.sim.server import SimError, Simulator
from engine.sim.state import (
    EXCHANGE_FIELDS,
    EXCHANGE_REBUILT,
    EXCHANGE_STORED,
    MARKET_REBUILT,
    MARKET_SAVED,
    StateError,
    account_fields,
)
from engine.sim.store import LOCK_FILE, STATE_FILE, archive_sim_state

PAUSED = SimConfig(speed=0.0, rate_limit_per_min=0, partial_fill_probability=0.5, option_quote_rate=5.0,
                   start=dt.datetime(2026, 11, 23, 14, 0),
                   order_rules=OrderRulesConfig(wash_trades=False))  # the state mixes both sides of one contract


def _symbols(sim: Simulator, expiry: dt.date, n: int) -> list[str]:
    """``n`` consecutive call strikes of SPY around the spot for ``expiry``."""
    uni = sim.market.universe
    spot = sim.market.spot("SPY")
    rows = [i for i, s in enumerate(uni.symbols)
            if s.startswith("SPY") and uni.expiry_dates[i] == expiry and uni.is_call[i] and uni.active[i]]
    rows.sort(key=lambda i: abs(float(uni.strike[i]) - spot))
    return sorted((uni.symbols[i] for i in rows[:n]), key=lambda s: s)


def _natural(sim: Simulator, buy: str, sell: str) -> float:
    """The net natural of buying ``buy`` and selling ``sell`` (a marketable mleg limit sits just through it)."""
    ex = sim.exchange
    return ex.quote(ex.instrument(buy))[1] - ex.quote(ex.instrument(sell))[0]


def _order(symbol: str, side: str, qty: int, coid: str, **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "qty": qty, "side": side, "type": "market", "time_in_force": "day",
            "client_order_id": coid, **extra}


def run_script(sim: Simulator, tag: str) -> None:
    """Leave every kind of state behind (Python API; the REST handlers call the same exchange methods)."""
    ex = sim.exchange
    today = sim.clock.today()
    later = sorted({d for d in sim.market.universe.expiry_dates if d > today + dt.timedelta(days=6)})[0]
    zero_dte = _symbols(sim, today, 2)
    calls = _symbols(sim, later, 4)
    ex.submit(_order(zero_dte[0], "buy", 3, f"{tag}-0dte"))  # settles at today's close
    ex.submit(_order(calls[0], "buy", 9, f"{tag}-mkt"))  # partial fills likely
    ex.submit(_order("SPY", "buy", 100, f"{tag}-shares"))
    sim.advance(2.0)
    gtc = {"time_in_force": "gtc"}  # these stay working through the close
    ex.submit(_order(calls[1], "buy", 2, f"{tag}-lim", type="limit", limit_price=0.05, **gtc))
    ex.submit(_order("SPY", "sell", 10, f"{tag}-stop", type="stop", stop_price=round(sim.market.spot("SPY") * 0.5),
                     **gtc))
    spread = {"order_class": "mleg", "qty": 2, "type": "limit", "time_in_force": "day",
              "legs": [{"symbol": calls[2], "ratio_qty": 1, "side": "buy", "position_intent": "buy_to_open"},
                       {"symbol": calls[3], "ratio_qty": 1, "side": "sell", "position_intent": "sell_to_open"}]}
    natural = _natural(sim, calls[2], calls[3])
    ex.submit({**spread, "limit_price": round(natural + 0.5, 2), "client_order_id": f"{tag}-mleg-fill"})
    ex.submit({**spread, "limit_price": -50.0, "client_order_id": f"{tag}-mleg-open", **gtc})
    cancel = ex.submit(_order(calls[1], "buy", 1, f"{tag}-cancel", type="limit", limit_price=0.05))
    ex.cancel(cancel["id"])
    replace = ex.submit(_order(calls[2], "buy", 1, f"{tag}-replace", type="limit", limit_price=0.05, **gtc))
    ex.replace(replace["id"], {"limit_price": "0.06", "client_order_id": f"{tag}-replace.r1"})
    sim.advance(5.0)
    ex.do_not_exercise(calls[0])
    ex.do_not_exercise(zero_dte[0])  # expires unexercised (OPEXP): no share delivery to fund
    sim.advance((sim.clock.close_ns - sim.now_ns) / 1e9 + 60)  # through the close: expiry, new listings
    sim.delay_fills(60_000)
    ex.submit(_order(calls[1], "sell", 1, f"{tag}-in-flight"))  # decided, reported a minute later
    sim.advance(1.0)


def more_trades(sim: Simulator, tag: str) -> None:
    """A few more fills on an account the script already used."""
    today = sim.clock.today()
    later = sorted({d for d in sim.market.universe.expiry_dates if d > today + dt.timedelta(days=6)})[0]
    calls = _symbols(sim, later, 6)
    for i, symbol in enumerate(calls):
        sim.exchange.submit(_order(symbol, "buy", 4, f"{tag}-more-{i}"))
        sim.advance(1.0)
    sim.exchange.submit(_order("SPY", "sell", 20, f"{tag}-more-shares"))
    sim.advance(1.0)


async def client_view(sim: Simulator) -> dict[str, Any]:
    """What a client sees: REST answers (trading, data, control) of the simulator."""
    assert sim.urls is not None
    headers = {"APCA-API-KEY-ID": sim.urls.key, "APCA-API-SECRET-KEY": sim.urls.secret}
    held = sorted(sim.exchange.account.positions)
    options = [s for s in held if len(s) > 6]
    quotes = sim.market.option_quotes(np.flatnonzero(sim.market.universe.active))
    out: dict[str, Any] = {"inspect": sim.inspect(), "spots": sim.state()["spots"], "now": sim.state()["now"],
                           "every_quote": (quotes.bid.tolist(), quotes.ask.tolist(), quotes.bid_size.tolist())}
    async with aiohttp.ClientSession(sim.urls.trading_url, headers=headers) as http:
        for name, path, params in [
            ("account", "/v2/account", {}),
            ("positions", "/v2/positions", {}),
            ("orders_nested", "/v2/orders", {"status": "all", "nested": "true", "limit": "500"}),
            ("orders_flat", "/v2/orders", {"status": "all", "limit": "500", "direction": "asc"}),
            ("open_orders", "/v2/orders", {"status": "open"}),
            ("activities", "/v2/account/activities", {"direction": "asc", "page_size": "100"}),
            ("clock", "/v2/clock", {}),
            ("quotes", "/v1beta1/options/quotes/latest", {"symbols": ",".join(options)}),
            ("trades", "/v1beta1/options/trades/latest", {"symbols": ",".join(options)}),
            ("stock", "/v2/stocks/quotes/latest", {"symbols": "SPY,QQQ"}),
            ("contracts", "/v2/options/contracts", {"underlying_symbols": "SPY", "limit": "10000",
                                                    "expiration_date_gte": "2026-11-25",
                                                    "expiration_date_lte": "2026-12-20"}),
        ]:
            async with http.get(path, params=params) as resp:
                assert resp.status == 200, (path, await resp.text())
                out[name] = await resp.json()
    return out


async def test_round_trip_gives_identical_inspect_and_rest_answers(tmp_path: Path) -> None:
    sim = Simulator(PAUSED, state_dir=tmp_path)
    assert not sim.resumed
    await sim.start()
    try:
        run_script(sim, "a")
        ex = sim.exchange
        assert ex.in_flight and any(o.status == "replaced" for o in ex.orders.values())
        assert any(a["activity_type"] in ("OPEXC", "OPEXP") for a in ex.account.activities)
        assert any(p.do_not_exercise for p in ex.account.positions.values())
        before = await client_view(sim)
    finally:
        await sim.stop()
    again = Simulator(PAUSED, state_dir=tmp_path)
    assert again.resumed
    await again.start()
    try:
        after = await client_view(again)
        assert again.exchange.account.positions == ex.account.positions  # flags included
        assert again.exchange.submissions == ex.submissions
    finally:
        await again.stop()
    assert len(before["orders_flat"]) > len(before["orders_nested"]) >= 10
    assert len(before["activities"]) >= 7 and len(before["open_orders"]) >= 5
    for key in before:
        assert after[key] == before[key], key


async def test_a_reloaded_simulator_continues_the_market_and_the_account(tmp_path: Path) -> None:
    """Save mid-script and reload: the market path, the fills and the cash match a simulator never stopped."""
    straight = Simulator(PAUSED, state_dir=tmp_path / "straight")
    run_script(straight, "a")
    straight.advance(90.0)
    first = Simulator(PAUSED, state_dir=tmp_path / "split")
    run_script(first, "a")
    await first.start()
    await first.stop()
    second = Simulator(PAUSED, state_dir=tmp_path / "split")
    assert second.clock.now_ns == first.clock.now_ns and second.clock.now_ns != _start_ns(PAUSED)
    second.advance(90.0)  # the fill decided before the save is reported now, as it would have been
    for a, b in ((straight, second),):
        assert a.clock.now_ns == b.clock.now_ns
        assert [(u.spot, u.var) for u in a.market.unds] == [(u.spot, u.var) for u in b.market.unds]
        assert a.exchange.account.cash == b.exchange.account.cash
        assert {s: p.qty for s, p in a.exchange.account.positions.items()} == {
            s: p.qty for s, p in b.exchange.account.positions.items()}
        assert [(f["symbol"], f["qty"], f["price"]) for f in a.exchange.fills] == [
            (f["symbol"], f["qty"], f["price"]) for f in b.exchange.fills]
    assert not second.exchange.in_flight
    straight.store.close()  # type: ignore[union-attr]
    second.store.close()  # type: ignore[union-attr]


def _start_ns(cfg: SimConfig) -> int:
    from engine.sim.clock import SimClock

    return SimClock(cfg.start).now_ns


def _ids(sim: Simulator) -> set[str]:
    ex = sim.exchange
    ids = {o.id for o in ex.orders.values()}
    ids |= {f["execution_id"] for f in ex.fills}
    ids |= {a["id"] for a in ex.account.activities}
    return ids


async def test_ids_never_repeat_after_a_reload_or_for_a_fresh_account(tmp_path: Path) -> None:
    sim = Simulator(PAUSED, state_dir=tmp_path)
    run_script(sim, "a")
    account = sim.exchange.account.account_id
    seen = _ids(sim)
    sim.save()
    sim.store.close()  # type: ignore[union-attr]
    for reload in ("b", "c"):  # each reload continues the id sequence, it does not restart one
        again = Simulator(PAUSED, state_dir=tmp_path)
        assert again.exchange.account.account_id == account and _ids(again) == seen
        more_trades(again, reload)
        new = _ids(again) - seen
        assert len(new) > 15 and len(_ids(again)) == len(seen) + len(new)
        seen |= new
        again.save()
        again.store.close()  # type: ignore[union-attr]

    assert archive_sim_state(tmp_path) is not None
    fresh = Simulator(PAUSED, state_dir=tmp_path)
    assert not fresh.resumed and fresh.exchange.account.account_id != account
    run_script(fresh, "a")  # the same script on the same seed: a new account still gets ids of its own
    assert not _ids(fresh) & seen
    fresh.store.close()  # type: ignore[union-attr]


async def test_fresh_archives_the_saved_account_and_never_deletes_it(tmp_path: Path) -> None:
    directory = tmp_path / "sim"
    sim = Simulator(PAUSED, state_dir=directory)
    run_script(sim, "a")
    view = sim.inspect()
    sim.save()
    sim.store.close()  # type: ignore[union-attr]
    archived = archive_sim_state(directory)
    assert archived is not None and archived.parent == directory and archived.name.startswith("archive-")
    assert (archived / STATE_FILE).exists() and not (directory / STATE_FILE).exists()
    old = Simulator(PAUSED, state_dir=archived)  # the archive is a whole, usable directory
    assert old.resumed and old.inspect() == view
    old.store.close()  # type: ignore[union-attr]
    fresh = Simulator(PAUSED, state_dir=directory)
    assert not fresh.resumed and fresh.inspect()["account_id"] != view["account_id"]
    assert fresh.inspect()["cash"] == PAUSED.initial_cash and not fresh.inspect()["orders"]
    fresh.store.close()  # type: ignore[union-attr]
    second = archive_sim_state(directory)
    assert second is not None and second != archived and archived.exists()


def test_a_state_directory_serves_one_simulator_at_a_time(tmp_path: Path) -> None:
    first = Simulator(PAUSED, state_dir=tmp_path)
    with pytest.raises(SimError, match="in use by another simulator"):
        Simulator(PAUSED, state_dir=tmp_path)
    with pytest.raises(StateError, match="in use"):
        archive_sim_state(tmp_path)
    assert (tmp_path / LOCK_FILE).exists() and (tmp_path / STATE_FILE).exists()
    first.store.close()  # type: ignore[union-attr]
    Simulator(PAUSED, state_dir=tmp_path).store.close()  # type: ignore[union-attr]


def test_other_underlyings_than_the_saved_account_are_refused(tmp_path: Path) -> None:
    Simulator(PAUSED, state_dir=tmp_path).store.close()  # type: ignore[union-attr]
    only_spy = msgspec.structs.replace(PAUSED, underlyings=PAUSED.underlyings[:1])
    with pytest.raises(SimError, match=r"trades \['SPY', 'QQQ'\].*--fresh"):
        Simulator(only_spy, state_dir=tmp_path)


def test_a_damaged_state_is_refused_with_the_way_out(tmp_path: Path) -> None:
    Simulator(PAUSED, state_dir=tmp_path).store.close()  # type: ignore[union-attr]
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'account'", (msgspec.msgpack.encode({"cash": "lots"}),))
    conn.close()
    with pytest.raises(SimError, match=f"cannot continue the account saved in {tmp_path}.*--fresh"):
        Simulator(PAUSED, state_dir=tmp_path)
    assert archive_sim_state(tmp_path) is not None  # the refused start let go of the directory: --fresh works
    fresh = Simulator(PAUSED, state_dir=tmp_path)
    assert not fresh.resumed
    fresh.store.close()  # type: ignore[union-attr]


def test_every_account_attribute_is_saved_or_declared_transient() -> None:
    """A new attribute of the account persists from its annotation alone; one without is refused loudly."""
    account = Account(1000.0, 3, lambda s: 1.0)
    names = set(account_fields(account))
    assert names == set(vars(account)) - Account.TRANSIENT - {"activities"}
    account.unannotated = 1  # type: ignore[attr-defined]
    with pytest.raises(StateError, match="unannotated"):
        account_fields(account)


def test_every_exchange_and_market_attribute_is_saved_or_rebuilt() -> None:
    """State added to the exchange or the market must be classified in engine/sim/state.py: saved with every
    change (EXCHANGE_FIELDS, MARKET_SAVED) or rebuilt from the configuration at start (*_REBUILT)."""
    sim = Simulator(PAUSED)
    exchange = set(vars(sim.exchange)) - set(EXCHANGE_FIELDS) - EXCHANGE_STORED - EXCHANGE_REBUILT
    market = set(vars(sim.market)) - MARKET_SAVED - MARKET_REBUILT
    assert not exchange, f"classify these Exchange attributes in engine/sim/state.py: {sorted(exchange)}"
    assert not market, f"classify these Market attributes in engine/sim/state.py: {sorted(market)}"


@dataclass
class _Pending:
    symbol: str
    contracts: int


@dataclass
class _Record:
    """Shaped like the state records exchanges keep (a generator, a dict, a list of dataclasses)."""

    seed: int
    done: dict[str, str] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 97])


class _Owner:
    def __init__(self) -> None:
        self.record = _Record(3)


def test_a_dataclass_record_is_saved_field_by_field_with_its_generator() -> None:
    saved = _Owner()
    saved.record.done["SPY"] = "order-1"
    saved.record.pending.append(_Pending("SPY261218C00600000", 2))
    saved.record.rng.random(5)
    blob = msgspec.msgpack.decode(msgspec.msgpack.encode(state._plain(saved.record)))
    restored = _Owner()
    state._restore(restored, "record", blob)
    assert restored.record.pending == [_Pending("SPY261218C00600000", 2)]
    assert restored.record.done == {"SPY": "order-1"} and restored.record.seed == 3
    assert restored.record.rng.random() == saved.record.rng.random()


def test_the_ephemeral_simulator_is_unchanged_and_saves_nothing(tmp_path: Path) -> None:
    sim = Simulator(PAUSED)
    assert sim.store is None and sim.state()["persistence"] is None
    assert np.random.default_rng([PAUSED.seed, 98]).bytes(16) == sim.exchange.id_rng.bytes(16)
