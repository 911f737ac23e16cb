"""Alpaca as the kernel's execution venue: ``ExecutionClient`` and ``ReferenceData`` over ``AlpacaBroker``.

Requests go out as Alpaca's bodies (``engine.alpaca.order_requests``), answers come back through the one
decoder (``engine.alpaca.decode``), and the REST client's errors become the kernel's venue errors:

* 400/403/404/422 -> ``Rejected`` (404: ``NotFound``) with the reason read off Alpaca's body (``wash_trade`` for
  403 "potential wash trade detected", ...) and ``duplicate`` for a 422 on a client_order_id already taken;
* 429 -> ``RateLimited`` with the seconds until the window resets;
* a write's 5xx, timeout or dropped connection -> ``OutcomeUnknown``; no connection, or a read that kept failing
  -> ``Unavailable``; an answer that is not what Alpaca documents -> ``VenueError``.

``submit`` writes the order's request before it returns when one of the REST client's order connections is idle
(``AlpacaBroker.send_order``): only the answer is awaited. Its body comes from a template (``order_json``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Sequence
from typing import Literal, NoReturn

from engine.alpaca import broker as rest
from engine.alpaca import decode
from engine.alpaca.feeds.trading.models import Order, ns_to_rfc3339, rfc3339_to_ns
from engine.alpaca.order_requests import broker_reason, is_duplicate_client_id, order_json, replace_json
from engine.kernel import venue_types as port

FILL_PAGES = 10_000
"""Pages of FILL activities read at most (100 each): every fill of the account's history."""
LISTING_PAGE = 1_000
"""Contracts per listing request (Alpaca allows up to 10,000): a page decodes in about a millisecond."""
ORDER_PAGE = 500
"""Alpaca's largest ``limit`` on GET /v2/orders."""


def venue_error(exc: rest.BrokerError) -> port.VenueError:
    """The kernel's error for an error of the REST client."""
    text = str(exc)
    if isinstance(exc, rest.RateLimited):
        return port.RateLimited(text, retry_after=exc.retry_after_s, status=exc.status or 429)
    if isinstance(exc, rest.BrokerRejected):
        cls = port.NotFound if isinstance(exc, rest.NotFound) else port.Rejected
        return cls(text, status=exc.status, code=exc.code, message=str(exc.body.get("message") or text),
                   reason=broker_reason(exc.status, exc.body), duplicate=is_duplicate_client_id(exc.status, exc.body))
    if isinstance(exc, rest.OutcomeUnknown):
        return port.OutcomeUnknown(text, status=exc.status)
    if isinstance(exc, rest.BrokerUnavailable):
        return port.Unavailable(text, status=exc.status)
    return port.VenueError(text, status=exc.status)


def _raise(exc: rest.BrokerError) -> NoReturn:
    raise venue_error(exc) from exc


class AlpacaExecution:
    """The kernel's ports over one ``AlpacaBroker`` (its session is this adapter's: ``close`` closes it)."""

    def __init__(self, client: rest.AlpacaBroker) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"AlpacaExecution({self.client!r})"

    async def close(self) -> None:
        await self.client.close()

    # --- orders -------------------------------------------------------------------------------------------

    def submit(self, request: port.OrderRequest) -> Awaitable[port.VenueOrder]:
        """Place an order: its request is on the socket when this returns if an order connection is idle."""
        return self._answer(self.client.send_order(order_json(request)))

    async def replace(self, order_id: str, *, limit: float, client_id: str) -> port.VenueOrder:
        return await self._answer(self.client.send_replace(order_id, replace_json(limit, client_id)))

    async def cancel(self, order_id: str) -> None:
        try:
            await self.client.cancel_order(order_id)
        except rest.BrokerError as exc:
            _raise(exc)

    @staticmethod
    async def _answer(sent: Awaitable[Order]) -> port.VenueOrder:
        try:
            return decode.venue_order(await sent)
        except rest.BrokerError as exc:
            _raise(exc)

    async def order(self, order_id: str) -> port.VenueOrder:
        try:
            return decode.venue_order(await self.client.get_order(order_id))
        except rest.BrokerError as exc:
            _raise(exc)

    async def order_by_client_id(self, client_id: str) -> port.VenueOrder | None:
        try:
            order = await self.client.get_order_by_client_id(client_id)
        except rest.BrokerError as exc:
            _raise(exc)
        return None if order is None else decode.venue_order(order)

    async def orders(self, status: Literal["open", "all"] = "open",
                     after_ns: int | None = None) -> list[port.VenueOrder]:
        try:
            if after_ns is None:
                return [decode.venue_order(o) for o in await self.client.list_orders(status=status, nested=True)]
            return await self._orders_after(status, after_ns)
        except rest.BrokerError as exc:
            _raise(exc)

    async def _orders_after(self, status: Literal["open", "all"], after_ns: int) -> list[port.VenueOrder]:
        """Every order submitted after ``after_ns``, oldest first: pages of ``after``/``direction=asc``, each
        after the last one's submission (less 1 ns: a tie at the page's edge is read again, not lost)."""
        out: dict[str, port.VenueOrder] = {}
        while True:
            page = await self.client.list_orders(status=status, nested=True, after=ns_to_rfc3339(after_ns),
                                                 direction="asc", limit=ORDER_PAGE)
            for o in page:
                out.setdefault(o.id, decode.venue_order(o))
            last = max((rfc3339_to_ns(o.submitted_at) for o in page), default=0)
            if len(page) < ORDER_PAGE or last - 1 <= after_ns:
                return list(out.values())
            after_ns = last - 1

    # --- account ------------------------------------------------------------------------------------------

    async def account(self) -> port.Account:
        try:
            return decode.account(await self.client.account())
        except rest.BrokerError as exc:
            _raise(exc)

    async def positions(self) -> list[port.Position]:
        try:
            return [decode.position(p) for p in await self.client.positions()]
        except rest.BrokerError as exc:
            _raise(exc)

    async def executions(self, after_ns: int | None = None) -> list[port.Execution]:
        after = None if after_ns is None else ns_to_rfc3339(after_ns)
        try:
            activities = await self.client.activities(("FILL",), after=after, max_pages=FILL_PAGES)
        except rest.BrokerError as exc:
            _raise(exc)
        return [decode.execution(a) for a in activities if a.activity_type == "FILL"]

    async def settlements(self) -> list[port.Settlement]:
        try:
            activities = await self.client.activities(tuple(decode.SETTLEMENT_TYPES))
        except rest.BrokerError as exc:
            _raise(exc)
        return [s for a in activities if (s := decode.settlement(a)) is not None]

    # --- reference data -----------------------------------------------------------------------------------

    async def listed_contracts(self, underlying: str, first: dt.date, last: dt.date) -> port.Listing:
        """Read in pages of ``LISTING_PAGE`` and converted a page at a time, yielding to the loop in between: a
        5,000-contract listing decoded at once held the loop ~10 ms of CPU (an hourly stall on the tick path)."""
        try:
            records = await self.client.listed_contracts([underlying], expiration_gte=first.isoformat(),
                                                         expiration_lte=last.isoformat(), limit=LISTING_PAGE)
        except rest.BrokerError as exc:
            _raise(exc)
        if len(records) <= LISTING_PAGE:
            return decode.listing(records)
        first_page = decode.listing(records[:LISTING_PAGE])
        contracts = first_page.contracts
        for start in range(LISTING_PAGE, len(records), LISTING_PAGE):
            await asyncio.sleep(0)
            contracts += decode.listing(records[start:start + LISTING_PAGE]).contracts
        return port.Listing(contracts=contracts, penny=first_page.penny, listed=len(records))

    async def option_snapshots(self, symbols: Sequence[str]) -> dict[str, port.Snapshot]:
        try:
            return decode.snapshots(await self.client.option_snapshots(symbols))
        except rest.BrokerError as exc:
            _raise(exc)

    async def stock_quote(self, symbol: str) -> port.Quote | None:
        try:
            return decode.quote(await self.client.stock_latest_quote(symbol))
        except rest.BrokerError as exc:
            _raise(exc)
