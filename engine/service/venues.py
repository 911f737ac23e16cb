"""Venues: what the service shell needs from one, and the registry that finds them by name.

A venue is a package ``engine/<name>/`` whose module ``venue`` defines ``open_venue(cfg, *, endpoints,
credentials)`` returning a :class:`Venue`; ``[engine] venue = "<name>"`` selects it. The registry finds venues
by that module name, so adding one is its package and its config: no list here or in ``app.py`` to edit.

``open_venue`` is given the engine's config (the venue reads its own settings), ``endpoints``: where to
connect when the service chose (the built-in simulator's in sim mode; None otherwise, and the venue connects
where its settings say), and ``credentials()``: the keys the config names (``engine.service.secrets``; None
in sim mode), called only by a venue that needs them.

The kernel sees none of this: it gets the venue's execution client (``ExecutionClient`` and
``ReferenceData``) and the streams call its callbacks (``on_batch(batch, arrival_ns)``, ``on_order_event``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.machinery
import os
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

import engine
from engine.kernel.events import FeedName
from engine.kernel.market_data import OnBatch, QuoteFeed
from engine.kernel.ports import ExecutionClient, ReferenceData
from engine.kernel.symbols import SymbolIndex
from engine.kernel.venue_types import OrderEvent

if TYPE_CHECKING:
    from engine.service.config import EngineConfig

VENUE_MODULE = "venue"
"""The module of ``engine/<name>/`` that makes the package a venue (when it defines ``open_venue``)."""
OPEN = "open_venue"
"""The factory a venue module defines."""
SETTINGS = "SETTINGS"
"""The msgspec struct a venue module may declare for its ``[venues.<name>]`` table."""

Publish = Callable[[Any], None]
"""Where a stream publishes its connection events (``FeedConnected``, ``FeedStale``, ``GapDetected``, ...)."""


class Stream(Protocol):
    """One connection the shell runs as a task (``run()`` until ``stop()``), reconnecting on its own."""

    on_raw_frame: Callable[[bytes | str], None] | None
    """Set by the shell when recording: every frame as received."""

    @property
    def feed(self) -> FeedName:
        """Its role, the name in events and logs."""
        ...

    @property
    def connected(self) -> asyncio.Event:
        """Set while the session is established (handshake done, subscribed)."""
        ...

    @property
    def failure(self) -> BaseException | None:
        """Why the stream gave up for good (refused credentials, ...), or None."""
        ...

    async def run(self) -> None: ...

    def stop(self) -> None: ...


class DataStream(Stream, QuoteFeed, Protocol):
    """A quote feed (the kernel's ``QuoteFeed``) the shell runs and watches."""

    after_frame: Callable[[], bool] | None
    """Called after each frame is handed over; True lets an order out before the next frame is read."""

    @property
    def frame_arrival_ns(self) -> int:
        """Wall time the latest frame arrived, before decoding (where tick-to-order latency starts)."""
        ...

    @property
    def last_data_mono(self) -> float:
        """Monotonic time of the latest data message (0: none yet); the stale-data watch reads it."""
        ...


class VenueClient(ExecutionClient, ReferenceData, Protocol):
    """The venue's REST side as the kernel uses it: orders, account, listings, snapshots."""


class Venue(Protocol):
    """One venue's connections for one run; ``close()`` releases them (the shell stops the streams it runs)."""

    @property
    def name(self) -> str: ...

    @property
    def execution(self) -> VenueClient: ...

    @property
    def quote_cap(self) -> int:
        """Option quote symbols the account's data plan lets one stream carry at once."""
        ...

    def option_stream(self, index: SymbolIndex, *, on_batch: OnBatch, publish: Publish,
                      market_open: Callable[[], bool], max_quotes: int) -> DataStream:
        """Option quotes, symbols decoded through ``index``, at most ``max_quotes`` subscribed."""
        ...

    def stock_stream(self, index: SymbolIndex, *, on_batch: OnBatch, publish: Publish,
                     market_open: Callable[[], bool]) -> DataStream: ...

    def order_stream(self, *, on_event: Callable[[OrderEvent], None], publish: Publish) -> Stream:
        """The account's order updates as ``OrderEvent``s."""
        ...

    async def close(self) -> None: ...


def _candidates() -> list[str]:
    """Packages under ``engine`` with a ``venue`` module (without importing them)."""
    names: list[str] = []
    for info in pkgutil.iter_modules(engine.__path__):
        finder = info.module_finder
        if info.ispkg and isinstance(finder, importlib.machinery.FileFinder):
            inside = pkgutil.iter_modules([os.path.join(finder.path, info.name)])
            if any(m.name == VENUE_MODULE for m in inside):
                names.append(info.name)
    return sorted(names)


def venue_factory(name: str) -> Callable[..., Venue] | None:
    """``open_venue`` of ``engine.<name>.venue``, or None when there is no such venue."""
    if not name.isidentifier() or name not in _candidates():
        return None
    module = importlib.import_module(f"engine.{name}.{VENUE_MODULE}")
    factory = getattr(module, OPEN, None)
    return factory if callable(factory) else None


def settings_type(name: str) -> type[Any] | None:
    """The settings struct ``engine.<name>.venue`` declares as ``SETTINGS`` (its ``[venues.<name>]`` table), if any."""
    if venue_factory(name) is None:
        return None
    declared = getattr(importlib.import_module(f"engine.{name}.{VENUE_MODULE}"), SETTINGS, None)
    return declared if isinstance(declared, type) and issubclass(declared, msgspec.Struct) else None


def known_venues() -> list[str]:
    """Every venue name the registry finds, sorted."""
    return [n for n in _candidates() if venue_factory(n) is not None]


def unknown_venue_reason(name: str) -> str | None:
    """Why ``name`` cannot be selected (naming the known venues), or None when it is a venue."""
    if venue_factory(name) is not None:
        return None
    return f"unknown venue {name!r} (known: {', '.join(known_venues()) or 'none'})"


def open_venue(cfg: EngineConfig, *, endpoints: Any = None,
               credentials: Callable[[], Any] | None = None) -> Venue:
    """The venue ``[engine] venue`` selects, opened for this run (see the module docstring); an unknown name
    is a ``ConfigError`` naming the known ones."""
    from engine.service.config import ConfigError, ConfigIssue
    from engine.service.secrets import load_credentials

    factory = venue_factory(cfg.engine.venue)
    if factory is None:
        raise ConfigError([ConfigIssue("engine.venue", unknown_venue_reason(cfg.engine.venue) or "")])
    keys = credentials if credentials is not None else functools.partial(load_credentials, cfg)
    return factory(cfg, endpoints=endpoints, credentials=keys)
