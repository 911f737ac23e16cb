"""Shared helpers for the simulator tests: alpaca-py clients and a thread-run stream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.requests import OptionLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import ContractType
from alpaca.trading.requests import GetOptionContractsRequest

from engine.sim.config import SimConfig
from engine.sim.server import Simulator, SimUrls


def trading_client(st: Any) -> Any:
    """alpaca-py's TradingClient (typed Any: its methods return Model | dict unions)."""
    return TradingClient(st.urls.key, st.urls.secret, url_override=st.urls.trading_url)


def option_data_client(st: Any) -> Any:
    return OptionHistoricalDataClient(st.urls.key, st.urls.secret, url_override=st.urls.data_url)


def near_money_contracts(
    st: Any, underlying: str = "SPY", kind: str = "call", count: int = 4, days_out: int = 7
) -> list[str]:
    """Symbols of ``count`` consecutive strikes just above the spot, on the first expiry ``days_out`` later."""
    tc = trading_client(st)
    spot = st.call(lambda: st.sim.market.spot(underlying))
    today = st.call(lambda: st.sim.clock.today())
    import datetime as dt

    res = tc.get_option_contracts(
        GetOptionContractsRequest(
            underlying_symbols=[underlying],
            type=ContractType(kind),
            expiration_date_gte=today + dt.timedelta(days=days_out),
            strike_price_gte=str(round(spot)),
            limit=200,
        )
    )
    first = res.option_contracts[0].expiration_date
    same = [c for c in res.option_contracts if c.expiration_date == first]
    return [c.symbol for c in same[:count]]


def quote(st: Any, symbol: str) -> tuple[float, float]:
    q = option_data_client(st).get_option_latest_quote(OptionLatestQuoteRequest(symbol_or_symbols=[symbol]))[symbol]
    return q.bid_price, q.ask_price


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; return it or fail with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)


class StreamThread:
    """Run an alpaca-py stream (``run()``) in a thread; ``stop()`` ends it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.thread = threading.Thread(target=stream.run, daemon=True)
        self.thread.start()

    def stop(self, nudge: Callable[[], Any] | None = None) -> None:
        """Stop the stream; ``nudge`` wakes a client blocked in a 5 s receive timeout (TradingStream)."""
        for _ in range(100):
            loop = getattr(self.stream, "_loop", None)
            if loop is not None and loop.is_running():
                break
            time.sleep(0.02)
        self.stream.stop()
        if nudge is not None:
            nudge()
        self.thread.join(15)
        assert not self.thread.is_alive(), "stream thread did not stop"


T = TypeVar("T")

FAST = SimConfig(
    seed=11,
    speed=1.0,
    publish_interval_ms=20,
    option_quote_rate=20.0,
    option_trade_rate=0.5,
    stock_quote_rate=50.0,
    stock_trade_rate=50.0,
    rate_limit_per_min=100_000,
    partial_fill_probability=0.0,
)


class SimThread:
    """A Simulator running on an event loop in a background thread."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim-loop", daemon=True)
        self.thread.start()
        self.sim: Simulator = self.call(lambda: Simulator(config))
        self.urls: SimUrls = self.run(self.sim.start())

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Run ``fn`` on the simulator's loop (its state belongs to that thread) and return its result."""
        fut: Future[T] = Future()

        def work() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(work)
        return fut.result(timeout)

    def close(self) -> None:
        self.run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.urls.key, "APCA-API-SECRET-KEY": self.urls.secret}
