"""Alpaca as a venue of the service shell: the REST client behind the kernel's ports, and the three streams.

``[engine] venue = "alpaca"`` (the default) selects it through the service's venue registry, which calls
``open_venue``. In paper/live mode it connects where ``[alpaca]`` says, with the keys the service found; in sim
mode the service hands it the built-in simulator's endpoints (the simulator speaks Alpaca).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.endpoints import AlpacaSettings, Endpoints, alpaca_endpoints
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.feeds.datastream import MarketDataClient
from engine.alpaca.feeds.options.client import option_client
from engine.alpaca.feeds.options.protocol import PLAN_QUOTE_CAPS
from engine.alpaca.feeds.stocks.client import stock_client
from engine.alpaca.feeds.trading.client import TradingStreamClient
from engine.kernel.market_data import OnBatch
from engine.kernel.symbols import SymbolIndex
from engine.kernel.venue_types import OrderEvent


class _Secret(Protocol):
    def reveal(self) -> str: ...


class Keys(Protocol):
    """The API key id and secret (the service's ``Credentials``)."""

    @property
    def key_id(self) -> _Secret: ...
    @property
    def secret_key(self) -> _Secret: ...


class VenueSettings(AlpacaSettings, Protocol):
    """``[alpaca]`` as the venue reads it."""

    @property
    def options_feed(self) -> Literal["indicative", "opra"]: ...
    @property
    def stock_feed(self) -> Literal["iex", "sip"]: ...
    @property
    def key_id_env(self) -> str: ...
    @property
    def secret_key_env(self) -> str: ...


class _EngineSection(Protocol):
    @property
    def mode(self) -> str: ...


class AlpacaConfig(Protocol):
    """What the venue reads of the engine's config: ``[alpaca]`` and the mode."""

    @property
    def alpaca(self) -> VenueSettings: ...
    @property
    def engine(self) -> _EngineSection: ...


def live_endpoints(cfg: AlpacaConfig, keys: Keys | None) -> Endpoints:
    """Alpaca's endpoints for ``paper``/``live`` with the keys the service found."""
    if keys is None:
        raise SystemExit(f"{cfg.engine.mode} mode needs API keys: set ${cfg.alpaca.key_id_env} and "
                         f"${cfg.alpaca.secret_key_env} or [alpaca] credentials_file")
    return alpaca_endpoints(cfg.alpaca, cfg.engine.mode, keys.key_id.reveal(), keys.secret_key.reveal())


def open_venue(cfg: AlpacaConfig, *, endpoints: Endpoints | None,
               credentials: Callable[[], Keys | None]) -> AlpacaVenue:
    """Alpaca at ``endpoints`` (the simulator's), or where ``[alpaca]`` says with ``credentials()``."""
    if endpoints is None:
        endpoints = live_endpoints(cfg, credentials())
    return AlpacaVenue(endpoints, cfg.alpaca)


class AlpacaVenue:
    """One run's connections to Alpaca (or the simulator): the REST client and the streams it builds."""

    name = "alpaca"

    def __init__(self, endpoints: Endpoints, settings: VenueSettings) -> None:
        self.endpoints = endpoints
        self.settings = settings
        self.execution = AlpacaExecution(AlpacaBroker(
            endpoints.trading_url, endpoints.data_url, endpoints.key, endpoints.secret,
            option_feed=settings.options_feed, stock_feed=settings.stock_feed,
        ))

    def __repr__(self) -> str:
        return f"AlpacaVenue({self.endpoints!r})"

    @property
    def quote_cap(self) -> int:
        """The plan's cap on option quote symbols (``[alpaca] options_feed``: indicative or opra)."""
        return PLAN_QUOTE_CAPS[self.settings.options_feed]

    def option_stream(self, index: SymbolIndex, *, on_batch: OnBatch, publish: Callable[[Any], None],
                      market_open: Callable[[], bool], max_quotes: int) -> MarketDataClient:
        ep = self.endpoints
        return option_client(ep.options_stream_url, ep.key, ep.secret, index, on_batch=on_batch, publish=publish,
                             max_quotes=max_quotes, market_open=market_open)

    def stock_stream(self, index: SymbolIndex, *, on_batch: OnBatch, publish: Callable[[Any], None],
                     market_open: Callable[[], bool]) -> MarketDataClient:
        ep = self.endpoints
        return stock_client(ep.stocks_stream_url, ep.key, ep.secret, index, on_batch=on_batch, publish=publish,
                            market_open=market_open)

    def order_stream(self, *, on_event: Callable[[OrderEvent], None],
                     publish: Callable[[Any], None]) -> TradingStreamClient:
        ep = self.endpoints
        return TradingStreamClient(ep.trading_stream_url, ep.key, ep.secret, on_update=on_event, publish=publish)

    async def close(self) -> None:
        """Closes the REST session (the shell stops the streams it runs)."""
        await self.execution.close()
