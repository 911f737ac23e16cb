"""The in-process exchange of a replay: the simulator's fill rules against recorded quotes, via the kernel's port."""

from __future__ import annotations

import numpy as np
import pytest

from domain.orders import AssetClass, Leg, OrderStatus, PositionIntent, Side
from engine.alpaca.feeds.trading.protocol import TradeUpdateReceived, TradingProtocol
from engine.kernel.market_data import KIND_QUOTE, BatchColumns, DataBatch
from engine.kernel.ports import ExecutionClient
from engine.kernel.venue_types import NotFound, OrderRequest, Rejected
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


def _condor(limit: float, cid: str) -> OrderRequest:
    legs = (Leg(P590, Side.BUY, 1, PositionIntent.BUY_TO_OPEN), Leg(P600, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
            Leg(C610, Side.SELL, 1, PositionIntent.SELL_TO_OPEN), Leg(C620, Side.BUY, 1, PositionIntent.BUY_TO_OPEN))
    return OrderRequest(client_id=cid, legs=legs, qty=2, limit=limit)


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
    order = await broker.submit(_condor(-3.00, "c1"))  # asks for a 3.00 credit: better than natural
    assert order.status is OrderStatus.PENDING_NEW
    assert [e for e, _ in _updates(broker)] == ["pending_new", "new"]
    broker.exchange.on_step()
    assert _updates(broker) == []  # still working
    # the market moves: natural credit is now 3.20 + 2.65 - 1.45 - 1.00 = 3.40, the 3.00 asked is marketable
    market.on_option_batch(_batch([1.40, 3.20, 2.65, 0.95], [1.45, 3.40, 2.80, 1.00]))
    broker.exchange.on_step()
    assert _updates(broker) == [("fill", "-3.4")]  # filled at the legs' quotes (net natural), all 2 units
    filled = await broker.order(order.id)
    assert filled.status is OrderStatus.FILLED and filled.filled_qty == 2 and filled.avg_price == -3.4
    assert {leg.symbol: leg.filled_qty for leg in filled.legs} == dict.fromkeys(SYMBOLS, 2.0)
    assert broker.exchange.account.positions[P600].qty == -2


async def test_refusals_come_back_as_the_venue_errors(venue: tuple[RecordedMarket, ReplayBroker]) -> None:
    market, replay = venue
    broker: ExecutionClient = replay  # the router's port, no cast
    market.on_option_batch(_batch([1.50, 3.00, 2.50, 1.00], [1.60, 3.20, 2.70, 1.10]))
    with pytest.raises(NotFound):
        await broker.order("no-such-order")
    assert await broker.order_by_client_id("nobody") is None
    naked = OrderRequest(client_id="n1", legs=(Leg(C610, Side.SELL, 1, PositionIntent.SELL_TO_OPEN,
                                                   AssetClass.OPTION),), qty=1, limit=2.50)
    with pytest.raises(Rejected) as exc:
        await broker.submit(naked)
    assert exc.value.status == 403 and "uncovered" in exc.value.message and not exc.value.duplicate
    order = await broker.submit(_condor(-3.00, "c2"))
    with pytest.raises(Rejected) as dup:
        await broker.submit(_condor(-3.00, "c2"))
    assert dup.value.status == 422 and dup.value.duplicate and "client_order_id" in dup.value.message
    replaced = await broker.replace(order.id, limit=-2.9, client_id="c2.r1")
    assert replaced.client_id == "c2.r1" and replaced.limit == -2.9 and replaced.replaces == order.id
    await broker.cancel(replaced.id)
    with pytest.raises(Rejected):
        await broker.cancel(replaced.id)  # already canceled
    assert [o.client_id for o in await broker.orders("open")] == []
    assert {o.client_id for o in await broker.orders("all")} == {"c2", "c2.r1"}
    assert (await broker.account()).cash > 0 and await broker.positions() == []
    assert await broker.executions() == [] and await broker.settlements() == []
