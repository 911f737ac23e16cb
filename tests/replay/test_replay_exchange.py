"""The in-process exchange of a replay: the simulator's fill rules against recorded quotes, via the broker API."""

from __future__ import annotations

import numpy as np
import pytest

from engine.alpaca.broker import BrokerRejected, LegRequest, NotFound, OrderRequest
from engine.alpaca.feeds.trading.protocol import TradeUpdateReceived, TradingProtocol
from engine.kernel.market_data import KIND_QUOTE, BatchColumns, DataBatch
from engine.replay.broker import ReplayBroker
from engine.replay.exchange import RecordedMarket, replay_exchange

T0 = 1_795_446_000_000_000_000  # 2026-11-23 14:40 UTC
P590, P600, C610, C620 = "SPY261231P00590000", "SPY261231P00600000", "SPY261231C00610000", "SPY261231C00620000"
SYMBOLS = [P590, P600, C610, C620]


def _batch(bid: list[float], ask: list[float]) -> DataBatch:
    cols = BatchColumns(8)
    n = len(bid)
    cols.kind[:n] = KIND_QUOTE
    cols.gid[:n] = np.arange(n)
    cols.bid[:n], cols.ask[:n] = bid, ask
    return DataBatch(cols, n, T0)


@pytest.fixture
def venue() -> tuple[RecordedMarket, ReplayBroker]:
    market = RecordedMarket()
    market.add_contracts(list(range(4)), SYMBOLS, "SPY")
    market.on_stock_quote("SPY", 604.99, 605.01)
    market.clock.move(T0)
    return market, ReplayBroker(replay_exchange(market))


def _condor(limit: str, cid: str) -> OrderRequest:
    legs = (LegRequest(P590, "1", "buy", "buy_to_open"), LegRequest(P600, "1", "sell", "sell_to_open"),
            LegRequest(C610, "1", "sell", "sell_to_open"), LegRequest(C620, "1", "buy", "buy_to_open"))
    return OrderRequest(qty="2", type="limit", time_in_force="day", order_class="mleg", legs=legs,
                        limit_price=limit, client_order_id=cid)


def _updates(broker: ReplayBroker) -> list[tuple[str, str]]:
    proto = TradingProtocol("", "")
    out = []
    while broker.stream:
        for ev in proto.receive(broker.stream.popleft()):
            assert isinstance(ev, TradeUpdateReceived)
            out.append((ev.update.event, str(ev.update.price) if ev.update.price is not None else ""))
    return out


async def test_an_mleg_order_fills_only_at_the_net_natural_of_its_recorded_legs(
        venue: tuple[RecordedMarket, ReplayBroker]) -> None:
    market, broker = venue
    # natural credit: sell P600 at 3.00 + sell C610 at 2.50 - buy P590 at 1.60 - buy C620 at 1.10 = 2.80
    market.on_option_batch(_batch([1.50, 3.00, 2.50, 1.00], [1.60, 3.20, 2.70, 1.10]))
    order = await broker.submit_order(_condor("-3.00", "c1"))  # asks for a 3.00 credit: better than natural
    assert order.status == "pending_new"
    assert [e for e, _ in _updates(broker)] == ["pending_new", "new"]
    broker.exchange.on_step()
    assert _updates(broker) == []  # still working
    # the market moves: natural credit is now 3.20 + 2.65 - 1.45 - 1.00 = 3.40, the 3.00 asked is marketable
    market.on_option_batch(_batch([1.40, 3.20, 2.65, 0.95], [1.45, 3.40, 2.80, 1.00]))
    broker.exchange.on_step()
    assert _updates(broker) == [("fill", "-3.4")]  # filled at the legs' quotes (net natural), all 2 units
    filled = await broker.get_order(order.id)
    assert filled.status == "filled" and filled.filled_qty is not None and float(filled.filled_qty) == 2
    assert broker.exchange.account.positions[P600].qty == -2


async def test_refusals_come_back_as_the_brokers_errors(venue: tuple[RecordedMarket, ReplayBroker]) -> None:
    market, broker = venue
    market.on_option_batch(_batch([1.50, 3.00, 2.50, 1.00], [1.60, 3.20, 2.70, 1.10]))
    with pytest.raises(NotFound):
        await broker.get_order("no-such-order")
    assert await broker.get_order_by_client_id("nobody") is None
    naked = OrderRequest(qty="1", type="limit", time_in_force="day", symbol=C610, side="sell", limit_price="2.50",
                         client_order_id="n1", position_intent="sell_to_open")
    with pytest.raises(BrokerRejected) as exc:
        await broker.submit_order(naked)
    assert exc.value.status == 403 and "uncovered" in str(exc.value.body.get("message"))
    order = await broker.submit_order(_condor("-3.00", "c2"))
    with pytest.raises(BrokerRejected) as dup:
        await broker.submit_order(_condor("-3.00", "c2"))
    assert dup.value.status == 422 and "client_order_id" in str(dup.value.body.get("message"))
    replaced = await broker.replace_order(order.id, limit_price=-2.9, client_order_id="c2.r1")
    assert replaced.client_order_id == "c2.r1" and float(replaced.limit_price or 0) == -2.9
    await broker.cancel_order(replaced.id)
    with pytest.raises(BrokerRejected):
        await broker.cancel_order(replaced.id)  # 422: already canceled
    assert [o.client_order_id for o in await broker.list_orders(status="open")] == []
    assert {o.client_order_id for o in await broker.list_orders(status="all")} == {"c2", "c2.r1"}
