"""The venue seam: ``[engine] venue`` picks a package ``engine/<name>/`` whose ``venue`` module defines
``open_venue``; the registry finds it by that module name, and the engine's wiring uses only the seam.

The test venue is a real package written to a temporary directory that joins the ``engine`` package's
search path: the registry discovers it exactly as it discovers ``engine/alpaca/``, and no engine file is
edited for it.
"""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import engine
from engine.service import venues
from engine.service.app import Engine
from engine.service.config import ConfigError, parse_config_text

FAKE_VENUE = '''
"""A venue that lives in memory: an account with cash, no orders, streams that connect and idle."""

import asyncio

import msgspec

from engine.kernel import venue_types as v

OPENED = []


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The venue's own [venues.fakevenue] table."""

    account_id: str = "fake-account"
    quote_cap: int = 7

SETTINGS = Settings


class Stream:
    on_raw_frame = None
    after_frame = None
    frame_arrival_ns = 0
    last_data_mono = 0.0
    failure = None

    def __init__(self, feed):
        self.feed = feed
        self.connected = asyncio.Event()
        self.ran = self.stopped = False
        self._stop = asyncio.Event()

    def set_subscription(self, quotes, trades=()):
        return len(list(quotes)), len(list(trades))

    async def run(self):
        self.ran = True
        self.connected.set()
        await self._stop.wait()

    def stop(self):
        self.stopped = True
        self._stop.set()


class Execution:
    def __init__(self, account_id):
        self.account_id = account_id

    async def account(self):
        return v.Account(id=self.account_id, equity=50_000.0, cash=50_000.0, buying_power=50_000.0)

    async def orders(self, status="open", after_ns=None):
        return []

    async def positions(self):
        return []

    async def executions(self, after_ns=None):
        return []

    async def settlements(self):
        return []

    async def order(self, order_id):
        raise v.NotFound(order_id, status=404)

    async def order_by_client_id(self, client_id):
        return None

    async def submit(self, request):
        raise v.Unavailable("the fake venue takes no orders")

    async def replace(self, order_id, *, limit, client_id):
        raise v.Unavailable("the fake venue takes no orders")

    async def cancel(self, order_id):
        raise v.NotFound(order_id, status=404)

    async def listed_contracts(self, underlying, first, last):
        return v.Listing(contracts=[])

    async def option_snapshots(self, symbols):
        return {}

    async def stock_quote(self, symbol):
        return None


class FakeVenue:
    name = "fakevenue"

    def __init__(self, cfg, endpoints, credentials):
        self.cfg, self.endpoints, self.credentials = cfg, endpoints, credentials
        self.settings = cfg.venue_settings()
        self.quote_cap = self.settings.quote_cap
        self.execution = Execution(self.settings.account_id)
        self.streams = {}
        self.max_quotes = None
        self.closed = False

    def option_stream(self, index, *, on_batch, publish, market_open, max_quotes):
        self.max_quotes = max_quotes
        return self.streams.setdefault("options", Stream("options"))

    def stock_stream(self, index, *, on_batch, publish, market_open):
        return self.streams.setdefault("stocks", Stream("stocks"))

    def order_stream(self, *, on_event, publish):
        return self.streams.setdefault("trading", Stream("trading"))

    async def close(self):
        self.closed = True


def open_venue(cfg, *, endpoints, credentials):
    venue = FakeVenue(cfg, endpoints, credentials)
    OPENED.append(venue)
    return venue
'''


@pytest.fixture
def fake_venue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A venue package ``engine.fakevenue`` in a directory on the ``engine`` package's path."""
    root = tmp_path / "venues"
    package = root / "fakevenue"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A venue written by a test."""\n')
    (package / "venue.py").write_text(textwrap.dedent(FAKE_VENUE))
    monkeypatch.setattr(engine, "__path__", [*engine.__path__, str(root)])
    importlib.invalidate_caches()
    yield "fakevenue"
    for name in [m for m in sys.modules if m == "engine.fakevenue" or m.startswith("engine.fakevenue.")]:
        del sys.modules[name]


def test_alpaca_is_the_default_venue_and_the_registry_finds_it() -> None:
    from engine.alpaca import venue as alpaca_venue

    assert parse_config_text("").engine.venue == "alpaca"
    assert "alpaca" in venues.known_venues()
    assert venues.venue_factory("alpaca") is alpaca_venue.open_venue
    assert "service" not in venues.known_venues()  # engine/service/venue.py defines no open_venue
    assert venues.venue_factory("kernel") is None


def test_an_unknown_venue_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text('[engine]\nmode = "paper"\nvenue = "nasdaq"\n')
    [issue] = err.value.issues
    assert issue.path == "engine.venue"
    assert issue.reason == f"unknown venue 'nasdaq' (known: {', '.join(venues.known_venues())})"
    assert "alpaca" in issue.reason
    with pytest.raises(ConfigError, match="venue"):
        parse_config_text('[engine]\nvenue = "Not-A-Module"\n')
    cfg = parse_config_text("")
    bad = msgspec.structs.replace(cfg, engine=msgspec.structs.replace(cfg.engine, venue="nasdaq"))
    with pytest.raises(ConfigError, match="unknown venue 'nasdaq'"):  # and when the engine opens it
        venues.open_venue(bad)


def test_the_alpaca_venue_opens_on_the_simulators_endpoints() -> None:
    from engine.alpaca.venue import AlpacaVenue
    from engine.service.venue import Endpoints

    cfg = parse_config_text('[alpaca]\noptions_feed = "opra"\n')
    endpoints = Endpoints("http://127.0.0.1:1", "http://127.0.0.1:1", "ws://127.0.0.1:1/o", "ws://127.0.0.1:1/s",
                          "ws://127.0.0.1:1/t", "key", "secret")

    def no_keys() -> None:
        raise AssertionError("sim endpoints need no credentials")

    venue = venues.open_venue(cfg, endpoints=endpoints, credentials=no_keys)
    assert isinstance(venue, AlpacaVenue)
    assert venue.name == "alpaca" and venue.quote_cap == 1000  # the OPRA plan's cap
    assert venue.execution.client.option_feed == "opra"


def test_a_venue_package_is_picked_up_by_config_alone(fake_venue: str) -> None:
    assert fake_venue in venues.known_venues()
    cfg = parse_config_text(f'[engine]\nmode = "paper"\nvenue = "{fake_venue}"\n')
    venue = venues.open_venue(cfg, credentials=lambda: None)
    assert type(venue).__module__ == "engine.fakevenue.venue"
    assert venue.name == "fakevenue" and venue.cfg is cfg
    assert venue.endpoints is None  # paper: the venue connects on its own
    with pytest.raises(ConfigError, match="simulator"):  # the built-in simulator speaks Alpaca only
        parse_config_text(f'[engine]\nmode = "sim"\nvenue = "{fake_venue}"\n')


def test_a_venue_package_brings_its_own_settings_table(fake_venue: str) -> None:
    cfg = parse_config_text(f'[engine]\nmode = "paper"\nvenue = "{fake_venue}"\n'
                            f'[venues.{fake_venue}]\naccount_id = "acct-9"\nquote_cap = 3\n')
    venue = venues.open_venue(cfg, credentials=lambda: None)
    assert (venue.settings.account_id, venue.quote_cap) == ("acct-9", 3)
    with pytest.raises(ConfigError) as err:  # checked against the venue's SETTINGS like any section
        parse_config_text(f'[engine]\nmode = "paper"\nvenue = "{fake_venue}"\n'
                          f'[venues.{fake_venue}]\nquote_cap = "many"\nsurprise = 1\n')
    assert sorted(i.path for i in err.value.issues) == [f"venues.{fake_venue}.quote_cap",
                                                       f"venues.{fake_venue}.surprise"]
    with pytest.raises(ConfigError, match="unknown venue 'nasdaq'"):
        parse_config_text('[venues.nasdaq]\nurl = "x"\n')


async def test_the_engine_runs_on_a_venue_it_has_never_heard_of(fake_venue: str, tmp_path: Path) -> None:
    cfg = parse_config_text(f'[engine]\nmode = "paper"\nvenue = "{fake_venue}"\nstate_dir = "{tmp_path / "state"}"\n'
                            "metrics_port = 0\n")
    engine_run = Engine(cfg, duration_s=0.5)
    summary = await engine_run.run()
    opened = importlib.import_module(f"engine.{fake_venue}.venue").OPENED
    assert len(opened) == 1 and engine_run.venue is opened[0]
    venue = opened[0]
    assert engine_run.broker is venue.execution
    assert venue.max_quotes == 7  # the venue's plan cap
    assert sorted(venue.streams) == ["options", "stocks", "trading"]
    assert all(s.ran and s.stopped for s in venue.streams.values())
    assert venue.closed
    assert summary["account"]["id"] == "fake-account" and summary["account"]["mode"] == "paper"


def test_the_engine_wiring_imports_no_venue_package() -> None:
    source = Path(sys.modules[Engine.__module__].__file__ or "").read_text()
    imported = {n.module or "" for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m.startswith("engine.alpaca")]
    assert len(source.splitlines()) <= 600
