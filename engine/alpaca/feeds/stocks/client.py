"""The stock-stream client: ``MarketDataClient`` with ``StockProtocol`` on ``/v2/{iex|sip|test}``."""

from __future__ import annotations

from typing import Literal, Unpack

from engine.alpaca.feeds.datastream import ClientOptions, MarketDataClient
from engine.alpaca.feeds.stocks.protocol import StockProtocol
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
    **options: Unpack[ClientOptions],
) -> MarketDataClient:
    """A client for the stock stream at ``url`` decoding symbols through ``index``."""
    return MarketDataClient("stocks", url, StockProtocol(key, secret, index), **options)
