"""The stock-stream client: ``MarketDataClient`` with ``StockProtocol`` on ``/v2/{iex|sip|test}``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.datastream import MarketDataClient
from engine.alpaca.feeds.stocks.protocol import StockProtocol
from engine.kernel.market_data import DataBatch
from engine.kernel.symbols import SymbolIndex

LIVE_BASE = "wss://stream.data.alpaca.markets"


def stocks_url(feed: Literal["iex", "sip", "test", "delayed_sip"], base: str = LIVE_BASE) -> str:
    """The stock stream URL of ``feed`` on ``base`` (scheme://host[:port])."""
    return f"{base.rstrip('/')}/v2/{feed}"


def stock_client(
    url: str,
    key: str,
    secret: str,
    index: SymbolIndex,
    *,
    on_batch: Callable[[DataBatch, int], object],
    publish: Callable[[Any], None],
    config: FeedConfig = FeedConfig(),
    market_open: Callable[[], bool] = lambda: True,
    on_data_time: Callable[[int], None] | None = None,
    now_ns: Callable[[], int] = time.time_ns,
) -> MarketDataClient:
    """A client for the stock stream at ``url`` decoding symbols through ``index``."""
    protocol = StockProtocol(key, secret, index)
    return MarketDataClient(
        "stocks",
        url,
        protocol,
        on_batch=on_batch,
        publish=publish,
        config=config,
        market_open=market_open,
        on_data_time=on_data_time,
        now_ns=now_ns,
    )
