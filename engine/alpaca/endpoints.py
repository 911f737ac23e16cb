"""Where the engine connects to Alpaca (or the simulator): the REST bases and the three websocket URLs."""

from __future__ import annotations

from typing import Protocol

import msgspec


class Endpoints(msgspec.Struct, frozen=True):
    """Where the engine connects (Alpaca or the simulator); the secret never appears in a repr."""

    trading_url: str
    data_url: str
    options_stream_url: str
    stocks_stream_url: str
    trading_stream_url: str
    key: str = msgspec.field(default="")
    secret: str = msgspec.field(default="")

    def __repr__(self) -> str:
        return f"Endpoints(trading={self.trading_url}, data={self.data_url}, key=***)"


class AlpacaSettings(Protocol):
    """The ``[alpaca]`` settings the URLs come from."""

    @property
    def paper_url(self) -> str: ...
    @property
    def live_url(self) -> str: ...
    @property
    def data_url(self) -> str: ...
    @property
    def stream_url(self) -> str: ...
    @property
    def trading_stream_url(self) -> str: ...
    @property
    def options_feed(self) -> str: ...
    @property
    def stock_feed(self) -> str: ...


def alpaca_endpoints(settings: AlpacaSettings, mode: str, key: str, secret: str) -> Endpoints:
    """Alpaca's URLs for ``paper``/``live`` mode."""
    a = settings
    trading = a.live_url if mode == "live" else a.paper_url
    stream = a.stream_url.rstrip("/")
    trading_stream = a.trading_stream_url or (trading.replace("https://", "wss://").replace("http://", "ws://")
                                              + "/stream")
    return Endpoints(trading, a.data_url, f"{stream}/v1beta1/{a.options_feed}", f"{stream}/v2/{a.stock_feed}",
                     trading_stream, key, secret)
