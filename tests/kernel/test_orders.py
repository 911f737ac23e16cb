"""Order state machine: trade updates and REST orders (through Alpaca's decoder) in, exact fills and monotone
states out."""

from __future__ import annotations

import itertools
import json
import math
import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.orders import OrderFilled, OrderStatus, OrderUpdated, Side
from engine.alpaca.decode import order_event, venue_order
from engine.alpaca.feeds.trading.models import Order
from engine.alpaca.feeds.trading.protocol import TradeUpdateReceived, TradingProtocol
from engine.kernel.orders import OrderStateMachine, OrderTags, RetiredOrder
from engine.kernel.venue_types import OrderEvent

SYM = "SPY260130P00600000"

# An mleg fill shaped like the trade_updates example of Alpaca's docs (docs/alpaca.md §7.1):
# buy put @1.60 + buy call @0.02 -> net 1.62, with position_qtys and per-leg executions.
MLEG_FILL = b"""{"stream":"trade_updates","data":{"event":"fill","execution_id":"9ba7a1f6-0000-4000-8000-000000000001",
"order":{"id":"61e69015-8549-4bfd-b9c3-01e75843f47d","client_order_id":"eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4",
"created_at":"2024-08-07T15:00:00.123456789Z","updated_at":"2024-08-07T15:00:01.523456789Z",
"submitted_at":"2024-08-07T15:00:00.223456789Z","filled_at":"2024-08-07T15:00:01.523456789Z",
"expired_at":null,"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,
"asset_id":"00000000-0000-0000-0000-000000000000","symbol":"","asset_class":"","notional":null,"qty":"1",
"filled_qty":"1","filled_avg_price":"1.62","order_class":"mleg","order_type":"limit","type":"limit","side":"buy",
"position_intent":"","time_in_force":"day","limit_price":"2","stop_price":null,"status":"filled",
"extended_hours":false,"legs":[
 {"id":"3a0a7bb0-0000-4000-8000-00000000000a","client_order_id":"leg-a","created_at":"2024-08-07T15:00:00.123456789Z",
  "updated_at":"2024-08-07T15:00:01.523456789Z","submitted_at":"2024-08-07T15:00:00.223456789Z",
  "asset_class":"us_option","symbol":"AAPL240816P00215000","qty":"1","filled_qty":"1","filled_avg_price":"1.6",
  "order_class":"mleg","order_type":"","type":"","side":"buy","position_intent":"buy_to_open","time_in_force":"day",
  "limit_price":null,"status":"filled","extended_hours":false,"ratio_qty":"1","legs":null},
 {"id":"3a0a7bb0-0000-4000-8000-00000000000b","client_order_id":"leg-b","created_at":"2024-08-07T15:00:00.123456789Z",
  "updated_at":"2024-08-07T15:00:01.523456789Z","submitted_at":"2024-08-07T15:00:00.223456789Z",
  "asset_class":"us_option","symbol":"AAPL240816C00240000","qty":"1","filled_qty":"1","filled_avg_price":"0.02",
  "order_class":"mleg","order_type":"","type":"","side":"buy","position_intent":"buy_to_open","time_in_force":"day",
  "limit_price":null,"status":"filled","extended_hours":false,"ratio_qty":"1","legs":null}]},
"timestamp":"2024-08-07T15:00:01.523456789Z","price":"1.62","qty":"1",
"position_qtys":{"AAPL240816P00215000":"1","AAPL240816C00240000":"1"},
"legs":[{"execution_id":"exec-leg-a","qty":"1","price":"1.6","order_id":"3a0a7bb0-0000-4000-8000-00000000000a",
 "symbol":"AAPL240816P00215000","timestamp":"2024-08-07T15:00:01.523456789Z"},
 {"execution_id":"exec-leg-b","qty":"1","price":"0.02","order_id":"3a0a7bb0-0000-4000-8000-00000000000b",
 "symbol":"AAPL240816C00240000","timestamp":"2024-08-07T15:00:01.523456789Z"}]}}"""


def order(
    status: str,
    filled: int,
    *,
    qty: int = 5,
    updated_s: int = 0,
    avg: float | None = None,
    oid: str = "o-1",
    side: str = "buy",
    symbol: str = SYM,
    coid: str = "coid-1",
) -> dict[str, object]:
    return {
        "id": oid,
        "client_order_id": coid,
        "created_at": "2026-01-05T15:00:00Z",
        "updated_at": f"2026-01-05T15:00:{updated_s:02d}.000000001Z",
        "submitted_at": "2026-01-05T15:00:00Z",
        "symbol": symbol,
        "asset_class": "us_option",
        "qty": str(qty),
        "filled_qty": str(filled),
        "filled_avg_price": None if avg is None else str(avg),
        "order_class": "simple",
        "type": "limit",
        "side": side,
        "time_in_force": "day",
        "limit_price": "1.10",
        "status": status,
        "extended_hours": False,
        "legs": None,
    }


def update_frame(event: str, o: dict[str, object], **extra: object) -> bytes:
    return json.dumps({"stream": "trade_updates", "data": {"event": event, "order": o, **extra}}).encode()


def decode(frame: bytes) -> OrderEvent:
    proto = TradingProtocol("k", "s")
    (ev,) = proto.receive(frame)
    assert isinstance(ev, TradeUpdateReceived)
    return order_event(ev.update)


def partial_fills(n: int = 5) -> list[bytes]:
    """new, then n single-contract executions at rising prices, the last one a 'fill'."""
    frames = [update_frame("new", order("new", 0, qty=n, updated_s=1), timestamp="2026-01-05T15:00:01Z")]
    for i in range(1, n + 1):
        price = 1.0 + i / 100
        avg = sum(1.0 + k / 100 for k in range(1, i + 1)) / i
        frames.append(
            update_frame(
                "fill" if i == n else "partial_fill",
                order("filled" if i == n else "partially_filled", i, qty=n, updated_s=1 + i, avg=round(avg, 6)),
                timestamp=f"2026-01-05T15:00:{1 + i:02d}Z",
                execution_id=f"x{i}",
                price=str(price),
                qty="1",
                position_qty=str(i),
            )
        )
    return frames


def run(frames: list[bytes], osm: OrderStateMachine | None = None) -> tuple[OrderStateMachine, list[object]]:
    osm = osm or OrderStateMachine()
    events: list[object] = []
    for f in frames:
        events += osm.on_event(decode(f), ts_init_ns=1)
    return osm, events


def test_partial_fills_book_each_execution_and_end_filled() -> None:
    osm = OrderStateMachine()
    osm.expect("coid-1", OrderTags("gamma", "st-1", "in-1"))
    osm, events = run(partial_fills(), osm)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [f.execution_id for f in fills] == ["x1", "x2", "x3", "x4", "x5"]
    assert [f.price for f in fills] == [1.01, 1.02, 1.03, 1.04, 1.05]
    assert all(f.strategy_id == "gamma" and f.structure_id == "st-1" for f in fills)
    assert fills[-1].position_qty_after == 5
    tracked = osm.get("o-1")
    assert tracked is not None and tracked.status is OrderStatus.FILLED and tracked.filled_qty == 5
    assert not osm.working_symbols()


def test_duplicate_trade_updates_are_ignored() -> None:
    frames = partial_fills()
    osm, events = run(frames + frames)
    assert sum(1 for e in events if isinstance(e, OrderFilled)) == 5
    assert osm.duplicates_ignored == 5


def test_reordered_trade_updates_leave_positions_exact_and_status_terminal() -> None:
    frames = partial_fills()
    for seed in range(20):
        shuffled = frames[:]
        random.Random(seed).shuffle(shuffled)
        osm, events = run(shuffled)
        tracked = osm.get("o-1")
        assert tracked is not None and tracked.status is OrderStatus.FILLED
        statuses = [e.status for e in events if isinstance(e, OrderUpdated)]
        # once terminal, never left
        first_filled = statuses.index(OrderStatus.FILLED)
        assert all(s is OrderStatus.FILLED for s in statuses[first_filled:])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=20))
def test_any_replay_with_duplicates_and_reordering_counts_each_execution_once(picks: list[int]) -> None:
    frames = partial_fills()
    sequence = [frames[i] for i in picks] + frames  # everything arrives at least once, in the end
    osm, events = run(sequence)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert sorted(f.execution_id for f in fills) == ["x1", "x2", "x3", "x4", "x5"]
    assert math.isclose(sum(f.qty for f in fills), 5.0) and osm.positions() == {SYM: 5.0}
    tracked = osm.get("o-1")
    assert tracked is not None and tracked.status is OrderStatus.FILLED and tracked.filled_qty == 5


def test_mleg_fill_becomes_one_fill_per_leg_with_parent_net_price() -> None:
    osm, events = run([MLEG_FILL])
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert {(f.symbol, f.side, f.qty, f.price) for f in fills} == {
        ("AAPL240816P00215000", Side.BUY, 1.0, 1.6),
        ("AAPL240816C00240000", Side.BUY, 1.0, 0.02),
    }
    assert all(f.parent_net_price == 1.62 for f in fills)
    assert all(f.parent_order_id == "61e69015-8549-4bfd-b9c3-01e75843f47d" for f in fills)
    assert {f.order_id for f in fills} == {
        "3a0a7bb0-0000-4000-8000-00000000000a",
        "3a0a7bb0-0000-4000-8000-00000000000b",
    }
    assert all(f.position_qty_after == 1 for f in fills)
    assert fills[0].ts_event_ns == 1723042801523456789  # nanoseconds kept
    assert osm.positions() == {"AAPL240816P00215000": 1, "AAPL240816C00240000": 1}
    run([MLEG_FILL], osm)
    assert osm.positions() == {"AAPL240816P00215000": 1, "AAPL240816C00240000": 1}


def test_mleg_credit_spread_with_ratio_books_leg_qty_as_units_times_ratio() -> None:
    parent = json.loads(MLEG_FILL)["data"]
    parent["order"]["qty"] = "2"
    parent["order"]["filled_qty"] = "2"
    parent["order"]["legs"][0].update(
        side="sell", position_intent="sell_to_open", qty="4", filled_qty="4", ratio_qty="2"
    )
    parent["order"]["legs"][1].update(qty="2", filled_qty="2")
    parent["legs"][0].update(qty="4")
    parent["legs"][1].update(qty="2")
    frame = json.dumps({"stream": "trade_updates", "data": parent}).encode()
    osm, _ = run([frame])
    assert osm.positions() == {"AAPL240816P00215000": -4, "AAPL240816C00240000": 2}


def test_rest_poll_books_fills_the_stream_missed_and_late_updates_do_not_double_count() -> None:
    frames = partial_fills()
    osm, _ = run(frames[:2])  # new + first execution seen on the stream
    assert osm.positions() == {SYM: 1}
    polled = venue_order(msgspec.convert(order("partially_filled", 3, updated_s=9, avg=1.02), Order))
    events = osm.on_order(polled, ts_init_ns=2)
    recon = [e for e in events if isinstance(e, OrderFilled)]
    assert len(recon) == 1 and recon[0].qty == 2
    assert abs(recon[0].price - (1.02 * 3 - 1.01) / 2) < 1e-12
    assert osm.positions() == {SYM: 3}
    run(frames[2:], osm)  # the missed executions x2, x3 arrive late, then x4, x5


def test_replacement_inherits_owner_and_old_order_ends_replaced() -> None:
    osm = OrderStateMachine()
    osm.expect("coid-1", OrderTags("condor", "st-9", "in-9"))
    run([update_frame("new", order("new", 0, updated_s=1))], osm)
    old = order("replaced", 0, updated_s=3)
    old["replaced_by"] = "o-2"
    new = order("new", 0, updated_s=3, oid="o-2", coid="coid-2")
    new["replaces"] = "o-1"
    run([update_frame("replaced", old), update_frame("new", new)], osm)
    assert osm.get("o-1").status is OrderStatus.REPLACED  # type: ignore[union-attr]
    assert osm.get("o-1").replaced_by == "o-2"  # type: ignore[union-attr]
    assert osm.get("o-2").tags.structure_id == "st-9"  # type: ignore[union-attr]
    assert osm.working_symbols() == {SYM}


def test_late_new_after_cancel_does_not_resurrect_the_order() -> None:
    osm, _ = run(
        [update_frame("canceled", order("canceled", 0, updated_s=5)), update_frame("new", order("new", 0, updated_s=1))]
    )
    assert osm.get("o-1").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert osm.stale_updates_ignored == 1


def test_sell_fills_reduce_positions_per_symbol() -> None:
    frames = partial_fills(2)
    sells = [
        f.replace(b'"side": "buy"', b'"side": "sell"').replace(b'"o-1"', b'"o-9"').replace(b'"x', b'"y') for f in frames
    ]
    osm, _ = run(list(itertools.chain(frames, sells)))
    assert osm.positions() == {}


def test_refused_cancel_is_reported_once_with_its_reason_and_keeps_the_status() -> None:
    osm, _ = run([update_frame("new", order("new", 0, updated_s=1))])
    refused = update_frame("order_cancel_rejected", order("new", 0, updated_s=2), timestamp="2026-01-05T15:00:02Z")
    _, events = run([refused, refused], osm)
    notices = [e for e in events if isinstance(e, OrderUpdated)]
    assert len(notices) == 1 and notices[0].reason == "order_cancel_rejected"
    assert notices[0].status is OrderStatus.NEW


def test_mleg_listed_without_legs_books_nothing_until_its_legs_are_known() -> None:
    data = json.loads(MLEG_FILL)["data"]
    bare = dict(data["order"], legs=None)
    osm = OrderStateMachine()
    events = osm.on_order(venue_order(msgspec.json.decode(json.dumps(bare), type=Order)), ts_init_ns=1)
    assert not [e for e in events if isinstance(e, OrderFilled)] and osm.positions() == {}
    osm.on_order(venue_order(msgspec.json.decode(json.dumps(data["order"]), type=Order)), ts_init_ns=2)
    assert osm.positions() == {"AAPL240816P00215000": 1, "AAPL240816C00240000": 1}
    run([MLEG_FILL], osm)  # the stream's executions arrive late: absorbed, not double counted
    assert osm.positions() == {"AAPL240816P00215000": 1, "AAPL240816C00240000": 1}


def test_an_adopted_order_books_only_what_the_broker_filled_beyond_the_journal() -> None:
    """Restart: the journal holds 2 fills of an order that then filled the rest while the engine was down.
    A fresh state machine took the broker's whole filled quantity for news (the journal then showed 9 where
    the broker filled 5: kill -9 loop); preloaded with the journal's fills it books the 3 it lacks."""
    journaled = [OrderFilled(f"x{i}", "o-1", "coid-1", SYM, Side.BUY, 1.0, 1.0 + i / 100, 1, 1) for i in (1, 2)]
    osm = OrderStateMachine()
    osm.expect("coid-1", OrderTags("gamma", "st-1", "in-1"))
    osm.preload("o-1", journaled)
    events = osm.on_order(venue_order(msgspec.convert(order("filled", 5, avg=1.05), Order)), 10)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.qty, f.structure_id) for f in fills] == [(3.0, "st-1")]
    assert math.isclose(fills[0].price, (1.05 * 5 - 1.01 - 1.02) / 3)
    # a journaled execution the stream repeats is still a duplicate
    assert osm.on_event(decode(update_frame("partial_fill", order("filled", 5), execution_id="x1",
                                                   qty="1", price="1.01")), 11) == []

    fresh = OrderStateMachine()
    fresh.expect("coid-1", OrderTags("gamma", "st-1", "in-1"))
    events = fresh.on_order(venue_order(msgspec.convert(order("filled", 5, avg=1.05), Order)), 10)
    assert [e.qty for e in events if isinstance(e, OrderFilled)] == [5.0]  # what the journal would double


def test_a_fill_preloaded_twice_is_counted_once() -> None:
    """Restart hands the preload the journal's fills and the fills imported from the broker's activities; an
    execution in both (a crash between the broker's fill and the journal's import mark) is one execution. Counted
    twice, the adopted order would look over-filled and the fills it really made later would never be booked."""
    journaled = [OrderFilled(f"x{i}", "o-1", "coid-1", SYM, Side.BUY, 1.0, 1.0 + i / 100, 1, 1) for i in (1, 2)]
    osm = OrderStateMachine()
    osm.expect("coid-1", OrderTags("gamma", "st-1", "in-1"))
    osm.preload("o-1", journaled + journaled[:1])
    events = osm.on_order(venue_order(msgspec.convert(order("filled", 5, avg=1.05), Order)), 10)
    assert [(e.qty, e.structure_id) for e in events if isinstance(e, OrderFilled)] == [(3.0, "st-1")]


class _UncommittedArchive:
    """The journal before its writer thread committed anything: it knows no retired order yet."""

    def retired_order(self, order_id: str) -> RetiredOrder | None:
        return None


def test_a_read_stamped_with_event_time_days_ahead_does_not_retire_a_just_filled_order() -> None:
    """An accelerated simulator's event clock runs days ahead of the wall. A REST answer the router applies
    with that clock's time must not make every final order look a minute old: retired before the journal
    committed its fills, the order came back untracked and the same answer booked its fill a second time."""
    osm = OrderStateMachine(archive=_UncommittedArchive())
    osm.expect("coid-1", OrderTags("condor", "st-1", "in-1"))
    wall = 1_796_700_000_000_000_000
    fill = update_frame("fill", order("filled", 1, qty=1, updated_s=2, avg=1.05), timestamp="2026-01-05T15:00:02Z",
                        execution_id="x1", price="1.05", qty="1", position_qty="1")
    booked = [e for e in osm.on_event(decode(fill), ts_init_ns=wall) if isinstance(e, OrderFilled)]
    rest = venue_order(msgspec.json.decode(json.dumps(order("filled", 1, qty=1, updated_s=2, avg=1.05)), type=Order))
    ten_days_ahead = wall + 10 * 86_400 * 10**9
    booked += [e for e in osm.on_order(rest, ten_days_ahead) if isinstance(e, OrderFilled)]
    assert [f.execution_id for f in booked] == ["x1"]
    assert osm.positions() == {SYM: 1.0}
    assert osm.retire_final(osm.retire_after_ns + osm._clock()) == 1  # it still retires, on its own clock
