"""The options-stream client: ``MarketDataClient`` with ``OptionProtocol`` on ``/v1beta1/{feed}``."""

from __future__ import annotations

from typing import Literal, Unpack

from engine.alpaca.feeds.datastream import ClientOptions, MarketDataClient
from engine.alpaca.feeds.options.protocol import PLAN_QUOTE_CAPS, OptionProtocol
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
    max_quotes: int = PLAN_QUOTE_CAPS["indicative"],
    **options: Unpack[ClientOptions],
) -> MarketDataClient:
    """A client for the option stream at ``url`` decoding symbols through ``index``."""
    return MarketDataClient("options", url, OptionProtocol(key, secret, index, max_quotes=max_quotes), **options)
