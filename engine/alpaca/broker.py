"""The REST client for Alpaca (or the simulator): trading endpoints and option/stock market data.

One aiohttp session, keys sent as the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers and never
logged or shown in ``repr``. Responses are decoded with msgspec into structs (decimals arrive as
strings; the structs are in ``engine.alpaca.rest_models``). Errors are typed so the caller can tell what
happened to an order (docs/alpaca.md §8.6; ``engine.alpaca.execution`` maps them to the kernel's venue errors):

* ``BrokerRejected`` (400/403/404/422): the broker answered no; nothing was placed or changed.
* ``RateLimited`` (429): not processed; ``retry_after_s`` from ``X-RateLimit-Reset``.
* ``OutcomeUnknown``: a POST/PATCH/DELETE hit a 5xx, a timeout or a dropped connection after the
  request may have reached the broker - the order may exist. Look it up by ``client_order_id``.
* ``BrokerUnavailable``: a request that certainly did not take effect (connect failure, or a GET
  that failed after its retries); safe to retry later.

Reads (GET) are retried on 5xx and timeouts (``get_retries``); writes never are (idempotency is the
router's job, through ``client_order_id``). Paginated endpoints are followed to the end.

Order writes (POST/PATCH/DELETE under /v2/orders) go out on a kept-alive connection of ``OrderWire``
(``engine.alpaca.order_wire``) when one is idle: ``send_write`` has the request on the socket when it returns,
and the answer maps to the same errors (a response that never came whole is ``OutcomeUnknown``). With none
idle, or ``order_connections=0``, they go through the aiohttp session like every other call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Literal, TypeVar, cast

import aiohttp
import msgspec
import structlog

from engine.alpaca.feeds.trading.models import Account, Order, Position
from engine.alpaca.http1 import Response
from engine.alpaca.order_wire import OrderWire, WireDropped
from engine.alpaca.rest_models import (
    MAX_SYMBOLS_PER_REQUEST,
    Activity,
    CancelResult,
    ContractsPage,
    ErrorBody,
    LegRequest,
    ListedContract,
    ListingPage,
    OptionContract,
    OptionSnapshot,
    OrderRequest,
    QuotesPage,
    RateLimit,
    SnapshotQuote,
    SnapshotsPage,
    StockQuotePage,
    StockQuoteRest,
    StockSnapshot,
    decimal_text,
)

__all__ = [
    "MAX_SYMBOLS_PER_REQUEST", "Activity", "AlpacaBroker", "BrokerError", "BrokerRejected", "BrokerUnavailable",
    "CancelResult", "LegRequest", "ListedContract", "NotFound", "OptionContract", "OptionSnapshot", "OrderRequest",
    "OutcomeUnknown", "RateLimit", "RateLimited", "SnapshotQuote", "StockQuoteRest", "StockSnapshot",
    "decimal_text", "decode_response",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")
P = TypeVar("P", ContractsPage, ListingPage)


# --- errors ------------------------------------------------------------------------------------


class BrokerError(Exception):
    """Root of the REST client's errors; ``status`` is the HTTP status (0 when there was no response)."""

    def __init__(self, message: str, *, status: int = 0, code: int = 0, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.method = method
        self.path = path


class BrokerRejected(BrokerError):
    """The broker refused the request (403 buying power/permission, 422 invalid or not cancelable, ...)."""

    def __init__(self, message: str, *, body: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.body = body or {}


class NotFound(BrokerRejected):
    """404: no such order, position or contract."""


class RateLimited(BrokerError):
    """429: over the request budget; nothing was processed."""

    def __init__(self, message: str, *, retry_after_s: float, limit: RateLimit | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s
        self.limit = limit


class OutcomeUnknown(BrokerError):
    """A write may or may not have taken effect (5xx, timeout or dropped connection after sending)."""


class BrokerUnavailable(BrokerError):
    """The request did not take effect (could not connect, or a read kept failing); retry later."""


# --- the client --------------------------------------------------------------------------------


class AlpacaBroker:
    """Async REST client; use ``async with AlpacaBroker(...) as broker`` or call ``close()``."""

    def __init__(
        self,
        trading_url: str,
        data_url: str,
        key: str,
        secret: str,
        *,
        option_feed: Literal["indicative", "opra"] = "indicative",
        stock_feed: Literal["iex", "sip", "delayed_sip"] = "iex",
        timeout_s: float = 10.0,
        get_retries: int = 2,
        retry_delay_s: float = 0.25,
        session: aiohttp.ClientSession | None = None,
        order_connections: int = 4,
    ) -> None:
        self._trading = trading_url.rstrip("/")
        self._data = data_url.rstrip("/")
        self._headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
        self.option_feed = option_feed
        self.stock_feed = stock_feed
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._get_retries = get_retries
        self._retry_delay_s = retry_delay_s
        self._session = session
        self._own_session = session is None
        self.rate_limit: RateLimit | None = None
        self.requests = 0
        self._encode = msgspec.json.Encoder().encode
        self.wire = (OrderWire(self._trading, self._headers, connections=order_connections, timeout_s=timeout_s)
                     if order_connections > 0 else None)
        """Kept-alive connections for order writes (None: every call goes through the aiohttp session)."""

    def __repr__(self) -> str:
        return f"AlpacaBroker(trading={self._trading!r}, data={self._data!r}, key=***)"

    async def __aenter__(self) -> AlpacaBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.wire is not None:
            await self.wire.close()
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
            self._own_session = True
        return self._session

    # --- transport ---------------------------------------------------------------------------

    async def _request(
        self, method: str, url: str, path: str, *, params: dict[str, Any] | None = None, body: bytes | None = None
    ) -> tuple[int, bytes]:
        is_read = method == "GET"
        attempts = 1 + (self._get_retries if is_read else 0)
        if self.wire is not None:
            self.wire.warm()  # the order connections open with the first call, long before the first order
        clean = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(attempts):
            last = attempt == attempts - 1
            self.requests += 1
            try:
                async with self._http().request(
                    method, url + path, params=clean, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    data = await resp.read()
                    self._note_rate_limit(resp.headers)
                    status = resp.status
            except aiohttp.ClientConnectorError as exc:
                # Never connected: the request certainly did not reach the broker.
                if not last:
                    await asyncio.sleep(self._retry_delay_s)
                    continue
                raise BrokerUnavailable(f"{method} {path}: cannot connect: {exc}", method=method, path=path) from exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                if is_read and not last:
                    await asyncio.sleep(self._retry_delay_s)
                    continue
                what = f"{method} {path}: {type(exc).__name__}: {exc}"
                if is_read:
                    raise BrokerUnavailable(what, method=method, path=path) from exc
                log.warning("broker_outcome_unknown", method=method, path=path, error=type(exc).__name__)
                raise OutcomeUnknown(what, method=method, path=path) from exc
            if status >= 500 and is_read and not last:
                await asyncio.sleep(self._retry_delay_s)
                continue
            error = self._status_error(method, path, status, data)
            if error is not None:
                raise error
            return status, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _status_error(self, method: str, path: str, status: int, data: bytes) -> BrokerError | None:
        """The error a final answer of ``status`` is (None for success): a 5xx is an unknown outcome for a write
        and unavailability for a read, 429 is ``RateLimited``, another 4xx a refusal."""
        if status >= 500:
            err = _error_body(data)
            what = f"{method} {path}: HTTP {status}: {err.message or data[:200]!r}"
            if method == "GET":
                return BrokerUnavailable(what, status=status, code=err.code, method=method, path=path)
            log.warning("broker_outcome_unknown", method=method, path=path, status=status)
            return OutcomeUnknown(what, status=status, code=err.code, method=method, path=path)
        if status == 429:
            retry = self._retry_after()
            log.warning("broker_rate_limited", method=method, path=path, retry_after_s=round(retry, 3))
            return RateLimited(
                f"{method} {path}: rate limited",
                retry_after_s=retry,
                limit=self.rate_limit,
                status=429,
                method=method,
                path=path,
            )
        if status >= 400:
            err = _error_body(data)
            cls = NotFound if status == 404 else BrokerRejected
            return cls(
                f"{method} {path}: HTTP {status} {err.code}: {err.message}",
                body=_json_dict(data),
                status=status,
                code=err.code,
                method=method,
                path=path,
            )
        return None

    def _note_rate_limit(self, headers: Any) -> None:
        """Keep the ``X-RateLimit-*`` fields of a response (``headers.get`` by lower-case name: aiohttp's
        headers and the order wire's both answer to it)."""
        try:
            limit = headers.get("x-ratelimit-limit")
            if limit is None:
                return
            self.rate_limit = RateLimit(
                int(limit), int(headers.get("x-ratelimit-remaining", 0)), float(headers.get("x-ratelimit-reset", 0))
            )
        except ValueError:
            log.warning("broker_bad_rate_limit_headers")

    def _retry_after(self) -> float:
        if self.rate_limit is None or not self.rate_limit.reset_epoch_s:
            return 1.0
        return max(0.0, self.rate_limit.reset_epoch_s - time.time())

    async def _get(self, base: str, path: str, typ: type[T], params: dict[str, Any] | None = None) -> T:
        _, data = await self._request("GET", base, path, params=params)
        return cast(T, decode_response(data, typ, "GET", path))

    async def _write(
        self, method: str, path: str, typ: type[T], body: Any = None, params: dict[str, Any] | None = None
    ) -> T:
        payload = None if body is None else self._encode(body)
        _, data = await self._request(method, self._trading, path, params=params, body=payload)
        return cast(T, decode_response(data, typ, method, path))

    def send_write(self, method: str, path: str, body: bytes | None, typ: type[T] | None) -> Awaitable[T | None]:
        """An order write (``body``: its JSON): on the socket when this returns if an order connection is idle,
        else sent through the session when the result is awaited. The answer decoded as ``typ`` (None: not
        read)."""
        sent = self.wire.send(method, path, body or b"") if self.wire is not None else None
        if sent is None:
            return self._session_write(method, path, body, typ)
        return self._wire_answer(sent, method, path, typ)

    async def _session_write(self, method: str, path: str, body: bytes | None, typ: type[T] | None) -> T | None:
        _, data = await self._request(method, self._trading, path, body=body)
        return None if typ is None else cast(T, decode_response(data, typ, method, path))

    async def _wire_answer(self, sent: Awaitable[Response], method: str, path: str, typ: type[T] | None) -> T | None:
        self.requests += 1
        try:
            response = await sent
        except WireDropped as exc:
            log.warning("broker_outcome_unknown", method=method, path=path, error=str(exc))
            raise OutcomeUnknown(f"{method} {path}: {exc}", method=method, path=path) from exc
        self._note_rate_limit(response.headers)
        error = self._status_error(method, path, response.status, response.body)
        if error is not None:
            raise error
        return None if typ is None else cast(T, decode_response(response.body, typ, method, path))

    # --- orders ------------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest) -> Order:
        """POST /v2/orders."""
        return await self.send_order(self._encode(request))

    def send_order(self, body: bytes) -> Awaitable[Order]:
        """POST /v2/orders with the JSON ``body``; written before this returns when an order connection is idle."""
        return cast(Awaitable[Order], self.send_write("POST", "/v2/orders", body, Order))

    async def get_order(self, order_id: str, *, nested: bool = True) -> Order:
        return await self._get(self._trading, f"/v2/orders/{order_id}", Order, {"nested": nested})

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        """The order with this client_order_id, or None when the broker has none."""
        try:
            return await self._get(
                self._trading, "/v2/orders:by_client_order_id", Order, {"client_order_id": client_order_id}
            )
        except NotFound:
            return None

    async def list_orders(
        self,
        *,
        status: Literal["open", "closed", "all"] = "open",
        limit: int = 500,
        nested: bool = True,
        symbols: Sequence[str] | None = None,
        after: str | None = None,
        direction: Literal["asc", "desc"] | None = None,
    ) -> list[Order]:
        return await self._get(
            self._trading,
            "/v2/orders",
            list[Order],
            {
                "status": status,
                "limit": limit,
                "nested": nested,
                "after": after,
                "direction": direction,
                "symbols": ",".join(symbols) if symbols else None,
            },
        )

    async def replace_order(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        time_in_force: str | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        """PATCH /v2/orders/{id}: returns the new order (the old one goes to ``replaced``)."""
        body = {
            k: v
            for k, v in {
                "qty": None if qty is None else decimal_text(qty),
                "limit_price": None if limit_price is None else decimal_text(limit_price),
                "time_in_force": time_in_force,
                "client_order_id": client_order_id,
            }.items()
            if v is not None
        }
        return await self.send_replace(order_id, self._encode(body))

    def send_replace(self, order_id: str, body: bytes) -> Awaitable[Order]:
        """PATCH /v2/orders/{id} with the JSON ``body`` (as ``send_order``)."""
        return cast(Awaitable[Order], self.send_write("PATCH", f"/v2/orders/{order_id}", body, Order))

    async def cancel_order(self, order_id: str) -> None:
        """DELETE /v2/orders/{id}: 204 when the cancel was accepted (the final state comes on the stream)."""
        await self.send_write("DELETE", f"/v2/orders/{order_id}", None, None)

    async def cancel_all_orders(self) -> list[CancelResult]:
        _, data = await self._request("DELETE", self._trading, "/v2/orders")
        return decode_response(data, list[CancelResult], "DELETE", "/v2/orders") if data.strip() else []

    # --- account and positions ---------------------------------------------------------------

    async def account(self) -> Account:
        return await self._get(self._trading, "/v2/account", Account)

    async def positions(self) -> list[Position]:
        return await self._get(self._trading, "/v2/positions", list[Position])

    async def position(self, symbol: str) -> Position | None:
        try:
            return await self._get(self._trading, f"/v2/positions/{symbol}", Position)
        except NotFound:
            return None

    async def close_position(self, symbol: str, qty: float | None = None) -> Order:
        params = None if qty is None else {"qty": decimal_text(qty)}
        return await self._write("DELETE", f"/v2/positions/{symbol}", Order, params=params)

    async def activities(
        self,
        activity_types: Iterable[str] | None = None,
        *,
        after: str | None = None,
        page_size: int = 100,
        max_pages: int = 100,
    ) -> list[Activity]:
        """Account activities, oldest first, following ``page_token`` (the last id of a page)."""
        out: list[Activity] = []
        token: str | None = None
        types = ",".join(activity_types) if activity_types else None
        for _ in range(max_pages):
            page = await self._get(
                self._trading,
                "/v2/account/activities",
                list[Activity],
                {
                    "activity_types": types,
                    "after": after,
                    "direction": "asc",
                    "page_size": page_size,
                    "page_token": token,
                },
            )
            out.extend(page)
            if len(page) < page_size:
                break
            token = page[-1].id
        return out

    # --- contracts and market data -----------------------------------------------------------

    async def option_contracts(
        self,
        underlyings: Sequence[str],
        *,
        expiration_gte: str | None = None,
        expiration_lte: str | None = None,
        strike_gte: float | None = None,
        strike_lte: float | None = None,
        type: Literal["call", "put"] | None = None,
        status: str = "active",
        limit: int = 10_000,
    ) -> list[OptionContract]:
        """All contracts matching the filters (every page of /v2/options/contracts).

        Pages of Alpaca's maximum (10,000): a chain of ~4,000 contracts is one request of the 200 a minute the
        trading API allows, which restarts share with the run before them."""
        params = {
            "underlying_symbols": ",".join(underlyings),
            "status": status,
            "expiration_date_gte": expiration_gte,
            "expiration_date_lte": expiration_lte,
            "strike_price_gte": None if strike_gte is None else decimal_text(strike_gte),
            "strike_price_lte": None if strike_lte is None else decimal_text(strike_lte),
            "type": type,
            "limit": limit,
        }
        return [c for page in await self._contract_pages(ContractsPage, params) for c in page.option_contracts]

    async def listed_contracts(
        self, underlyings: Sequence[str], *, expiration_gte: str, expiration_lte: str, limit: int = 10_000
    ) -> list[ListedContract]:
        """Like :meth:`option_contracts` (active contracts in an expiry range), decoded as :class:`ListedContract`."""
        params = {"underlying_symbols": ",".join(underlyings), "status": "active",
                  "expiration_date_gte": expiration_gte, "expiration_date_lte": expiration_lte, "limit": limit}
        return [c for page in await self._contract_pages(ListingPage, params) for c in page.option_contracts]

    async def _contract_pages(self, page_type: type[P], params: dict[str, Any]) -> list[P]:
        pages: list[P] = []
        token: str | None = None
        while True:
            page = await self._get(self._trading, "/v2/options/contracts", page_type, {**params, "page_token": token})
            pages.append(page)
            token = page.next_page_token
            if not token:
                return pages

    async def option_chain(
        self,
        underlying: str,
        *,
        expiration_gte: str | None = None,
        expiration_lte: str | None = None,
        strike_gte: float | None = None,
        strike_lte: float | None = None,
        limit: int = 1000,
    ) -> dict[str, OptionSnapshot]:
        """Snapshots of a whole chain (every page of /v1beta1/options/snapshots/{underlying})."""
        out: dict[str, OptionSnapshot] = {}
        token: str | None = None
        while True:
            page = await self._get(
                self._data,
                f"/v1beta1/options/snapshots/{underlying}",
                SnapshotsPage,
                {
                    "feed": self.option_feed,
                    "expiration_date_gte": expiration_gte,
                    "expiration_date_lte": expiration_lte,
                    "strike_price_gte": None if strike_gte is None else decimal_text(strike_gte),
                    "strike_price_lte": None if strike_lte is None else decimal_text(strike_lte),
                    "limit": limit,
                    "page_token": token,
                },
            )
            out.update(page.snapshots)
            token = page.next_page_token
            if not token:
                return out

    async def option_snapshots(self, symbols: Sequence[str]) -> dict[str, OptionSnapshot]:
        """Snapshots of given contracts (batches of 100 symbols, each paginated)."""
        out: dict[str, OptionSnapshot] = {}
        for chunk in _chunks(symbols, MAX_SYMBOLS_PER_REQUEST):
            token: str | None = None
            while True:
                page = await self._get(
                    self._data,
                    "/v1beta1/options/snapshots",
                    SnapshotsPage,
                    {
                        "symbols": ",".join(chunk),
                        "feed": self.option_feed,
                        "page_token": token,
                    },
                )
                out.update(page.snapshots)
                token = page.next_page_token
                if not token:
                    break
        return out

    async def option_latest_quotes(self, symbols: Sequence[str]) -> dict[str, SnapshotQuote]:
        out: dict[str, SnapshotQuote] = {}
        for chunk in _chunks(symbols, MAX_SYMBOLS_PER_REQUEST):
            page = await self._get(
                self._data,
                "/v1beta1/options/quotes/latest",
                QuotesPage,
                {"symbols": ",".join(chunk), "feed": self.option_feed},
            )
            out.update(page.quotes)
        return out

    async def stock_latest_quote(self, symbol: str) -> StockQuoteRest | None:
        page = await self._get(self._data, f"/v2/stocks/{symbol}/quotes/latest", StockQuotePage,
                               {"feed": self.stock_feed})
        return page.quote

    async def stock_snapshots(self, symbols: Sequence[str]) -> dict[str, StockSnapshot]:
        return await self._get(
            self._data,
            "/v2/stocks/snapshots",
            dict[str, StockSnapshot],
            {"symbols": ",".join(symbols), "feed": self.stock_feed},
        )


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def decode_response(data: bytes, typ: Any, method: str, path: str) -> Any:
    """A 2xx body as ``typ``; a body that is not what Alpaca documents is a :class:`BrokerError` with the reason
    (a raw msgspec error would escape every ``except BrokerError`` and kill the task that made the call)."""
    try:
        return msgspec.json.decode(data, type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:  # non-UTF-8 str: Unicode...
        raise BrokerError(f"undecodable response to {method} {path}: {exc}", method=method, path=path) from None


def _error_body(data: bytes) -> ErrorBody:
    try:
        return msgspec.json.decode(data, type=ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return ErrorBody(0, data[:200].decode(errors="replace"))


def _json_dict(data: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
