"""The venue the router talks to during a replay: the simulator's exchange, in process.

An ``ExecutionClient`` (``engine.kernel.ports``) with the same answers Alpaca gives over the wire: requests go in
as the JSON bodies Alpaca would receive (``engine.alpaca.order_requests``), the exchange's JSON answers come back
through Alpaca's decoder (``engine.alpaca.decode``), and refusals through the adapter's error mapping
(``engine.alpaca.execution.venue_error``), so the kernel sees exactly what it sees live. The exchange's trade
updates are queued as the bytes of ``trade_updates`` frames; the replay driver feeds them to the trading-stream
protocol after each request returns (a REST answer comes before the stream's updates, as usual on Alpaca).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Literal, NoReturn

import msgspec

from engine.alpaca import decode
from engine.alpaca.broker import BrokerRejected, NotFound
from engine.alpaca.execution import venue_error
from engine.alpaca.feeds.trading.models import Account as WireAccount
from engine.alpaca.feeds.trading.models import Order
from engine.alpaca.order_requests import order_body, replace_body
from engine.kernel.venue_types import Account, Execution, OrderRequest, Position, Settlement, VenueOrder
from engine.sim.errors import AlpacaError
from engine.sim.exchange import Exchange


class ReplayBroker:
    """The kernel's ``ExecutionClient`` over an in-process ``Exchange``."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.stream: collections.deque[bytes] = collections.deque()
        """Pending ``trade_updates`` frames (JSON bytes, as the trading websocket sends them)."""
        self.requests: collections.Counter[str] = collections.Counter()
        self._encode = msgspec.json.Encoder().encode
        self._order = msgspec.json.Decoder(Order)
        exchange.listeners.append(self._on_trade_update)

    def _on_trade_update(self, message: dict[str, Any]) -> None:
        self.stream.append(self._encode(message))

    def _to_order(self, data: dict[str, Any]) -> VenueOrder:
        return decode.venue_order(self._order.decode(self._encode(data)))

    def _call(self, method: str, path: str, fn: Callable[[], Any]) -> Any:
        self.requests[method] += 1
        try:
            return fn()
        except AlpacaError as exc:
            _raise(exc, method, path)

    # --- orders -------------------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> VenueOrder:
        body = msgspec.json.decode(self._encode(order_body(request)))  # the JSON body Alpaca would receive
        return self._to_order(self._call("POST", "submit", lambda: self.exchange.submit(body)))

    async def replace(self, order_id: str, *, limit: float, client_id: str) -> VenueOrder:
        body = replace_body(limit, client_id)
        return self._to_order(self._call("PATCH", f"replace {order_id}", lambda: self.exchange.replace(order_id, body)))

    async def cancel(self, order_id: str) -> None:
        self._call("DELETE", f"cancel {order_id}", lambda: self.exchange.cancel(order_id))

    async def order(self, order_id: str) -> VenueOrder:
        return self._to_order(self._call("GET", f"order {order_id}", lambda: self.exchange.get(order_id).to_json()))

    async def order_by_client_id(self, client_id: str) -> VenueOrder | None:
        self.requests["GET"] += 1
        order = self.exchange.by_client_id.get(client_id)
        return None if order is None else self._to_order(order.to_json())

    async def orders(self, status: Literal["open", "all"] = "open", after_ns: int | None = None) -> list[VenueOrder]:
        self.requests["GET"] += 1
        out = []
        for order in self.exchange.orders.values():
            if order.parent is not None or (after_ns is not None and order.submitted_ns <= after_ns):
                continue
            if status == "all" or order.is_open:
                out.append(self._to_order(order.to_json()))
        return out if after_ns is not None else out[-500:]

    # --- account ------------------------------------------------------------------------------------------

    async def account(self) -> Account:
        self.requests["GET"] += 1
        ex = self.exchange
        prices = {s: ex.mark(s) for s in ex.account.positions}
        return decode.account(msgspec.convert(ex.account.account_json(prices, ex.now_ns), WireAccount,
                                              strict=False))

    async def positions(self) -> list[Position]:
        self.requests["GET"] += 1
        ex = self.exchange
        return decode.positions_from_json(ex.account.position_json(p, ex.mark(s))
                                          for s, p in sorted(ex.account.positions.items()))

    async def executions(self, after_ns: int | None = None) -> list[Execution]:
        self.requests["GET"] += 1
        return decode.executions_from_json(a for a in self.exchange.account.activities
                                           if after_ns is None or a["_ns"] > after_ns)

    async def settlements(self) -> list[Settlement]:
        self.requests["GET"] += 1
        return decode.settlements_from_json(self.exchange.account.activities)

    async def close(self) -> None:
        return None


def _raise(exc: AlpacaError, method: str, path: str) -> NoReturn:
    cls = NotFound if exc.status == 404 else BrokerRejected
    raise venue_error(cls(f"{exc.status} {exc.message}", body=exc.body(), status=exc.status, code=exc.code,
                          method=method, path=path)) from exc
