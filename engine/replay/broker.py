"""The broker the router talks to during a replay: the simulator's exchange, in process.

Same methods and the same answers as ``engine.alpaca.broker.AlpacaBroker`` for what the router uses
(``submit_order``, ``get_order``, ``get_order_by_client_id``, ``list_orders``, ``replace_order``,
``cancel_order``): request structs go in as the JSON bodies Alpaca would receive, orders come back
through msgspec from the JSON Alpaca would send, refusals raise ``BrokerRejected``/``NotFound``
with Alpaca's status and body. The exchange's trade updates are queued as the bytes of
``trade_updates`` frames; the replay driver feeds them to the trading-stream protocol after each
request returns (a REST answer comes before the stream's updates, as usual on Alpaca).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Literal, NoReturn

import msgspec

from engine.alpaca.broker import BrokerRejected, NotFound, OrderRequest, decimal_text
from engine.alpaca.feeds.trading.models import Order
from engine.sim.errors import AlpacaError
from engine.sim.exchange import Exchange


class ReplayBroker:
    """``AlpacaBroker``'s order methods over an in-process ``Exchange``."""

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

    def _to_order(self, data: dict[str, Any]) -> Order:
        return self._order.decode(self._encode(data))

    def _call(self, method: str, path: str, fn: Callable[[], Any]) -> Any:
        self.requests[method] += 1
        try:
            return fn()
        except AlpacaError as exc:
            _raise(exc, method, path)

    async def submit_order(self, request: OrderRequest) -> Order:
        body = msgspec.json.decode(self._encode(request))  # the JSON body Alpaca would receive
        return self._to_order(self._call("POST", "/v2/orders", lambda: self.exchange.submit(body)))

    async def get_order(self, order_id: str, *, nested: bool = True) -> Order:
        path = f"/v2/orders/{order_id}"
        return self._to_order(self._call("GET", path, lambda: self.exchange.get(order_id).to_json()))

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        self.requests["GET"] += 1
        order = self.exchange.by_client_id.get(client_order_id)
        return None if order is None else self._to_order(order.to_json())

    async def list_orders(self, *, status: Literal["open", "closed", "all"] = "open", limit: int = 500,
                          nested: bool = True, symbols: Any = None, after: str | None = None) -> list[Order]:
        self.requests["GET"] += 1
        out = []
        for order in self.exchange.orders.values():
            if order.parent is not None:
                continue
            if status == "all" or (status == "open") == order.is_open:
                out.append(self._to_order(order.to_json()))
        return out[-limit:]

    async def replace_order(self, order_id: str, *, qty: float | None = None, limit_price: float | None = None,
                            time_in_force: str | None = None, client_order_id: str | None = None) -> Order:
        body = {k: v for k, v in {
            "qty": None if qty is None else decimal_text(qty),
            "limit_price": None if limit_price is None else decimal_text(limit_price),
            "time_in_force": time_in_force, "client_order_id": client_order_id,
        }.items() if v is not None}
        return self._to_order(self._call("PATCH", f"/v2/orders/{order_id}",
                                         lambda: self.exchange.replace(order_id, body)))

    async def cancel_order(self, order_id: str) -> None:
        self._call("DELETE", f"/v2/orders/{order_id}", lambda: self.exchange.cancel(order_id))

    async def close(self) -> None:
        return None


def _raise(exc: AlpacaError, method: str, path: str) -> NoReturn:
    cls = NotFound if exc.status == 404 else BrokerRejected
    raise cls(f"{exc.status} {exc.message}", body=exc.body(), status=exc.status, code=exc.code, method=method,
              path=path) from exc
