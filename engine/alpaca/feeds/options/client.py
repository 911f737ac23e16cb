"""The options-stream client: ``MarketDataClient`` with ``OptionProtocol`` on ``/v1beta1/{feed}``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.datastream import MarketDataClient
from engine.alpaca.feeds.options.protocol import PLAN_QUOTE_CAPS, OptionProtocol
from engine.kernel.market_data import DataBatch
from engine.kernel.symbols import SymbolIndex

LIVE_BASE = "wss://stream.data.alpaca.markets"


def options_url(feed: Literal["indicative", "opra"], base: str = LIVE_BASE) -> str:
    """The option stream URL of ``feed`` on ``base`` (scheme://host[:port])."""
    return f"{base.rstrip('/')}/v1beta1/{feed}"


def option_client(
    url: str,
    key: str,
    secret: str,
    index: SymbolIndex,
    *,
    on_batch: Callable[[DataBatch, int], object],
    publish: Callable[[Any], None],
    max_quotes: int = PLAN_QUOTE_CAPS["indicative"],
    config: FeedConfig = FeedConfig(),
    market_open: Callable[[], bool] = lambda: True,
    on_data_time: Callable[[int], None] | None = None,
    now_ns: Callable[[], int] = time.time_ns,
) -> MarketDataClient:
    """A client for the option stream at ``url`` decoding symbols through ``index``."""
    protocol = OptionProtocol(key, secret, index, max_quotes=max_quotes)
    return MarketDataClient(
        "options",
        url,
        protocol,
        on_batch=on_batch,
        publish=publish,
        config=config,
        market_open=market_open,
        on_data_time=on_data_time,
        now_ns=now_ns,
    )
