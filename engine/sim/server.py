"""The simulator process: HTTP + websocket servers and the market loop, with a Python API.

    sim = Simulator(SimConfig(seed=7))
    urls = await sim.start()          # SimUrls: trading_url, data_url, ..._stream_url, key, secret
    ...                               # alpaca-py with url_override=urls.trading_url, etc.
    sim.faults.streams["options"].mute = True
    await sim.stop()

The market loop maps wall time to event time (``speed``); with ``speed = 0`` the market only moves
through ``advance(seconds)``, which makes runs reproducible step by step.

With ``state_dir`` the account and its world persist there (``engine/sim/store.py``): a new
simulator on the same directory continues the same account, clock and market.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import structlog
from aiohttp import web
from websockets.asyncio.server import Server, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from engine.sim.clock import SimClock, rfc3339
from engine.sim.config import OrderRulesConfig, SimConfig
from engine.sim.exchange import Exchange
from engine.sim.faults import REST_FAULT_KINDS, Faults, RestFault
from engine.sim.market import Market
from engine.sim.pricing import PRICER
from engine.sim.rest import build_app
from engine.sim.state import StateError
from engine.sim.store import SimStore
from engine.sim.streams import StreamHub
from greeks.calendar import NS_PER_SECOND

log = structlog.get_logger("engine.sim")


class SimUrls(msgspec.Struct, frozen=True):
    """Where the simulator listens and how to authenticate (what the CLI prints)."""

    trading_url: str
    data_url: str
    options_stream_url: str
    stocks_stream_url: str
    trading_stream_url: str
    key: str
    secret: str
    control_url: str


class SimError(Exception):
    """The simulator cannot start as configured."""


class Simulator:
    """An Alpaca-compatible exchange on loopback: market, account, servers and fault injection."""

    def __init__(self, config: SimConfig | None = None, state_dir: str | Path | None = None) -> None:
        self.config = config or SimConfig()
        self.faults = Faults()
        self.rest_log: collections.deque[tuple[str, str, dict[str, str]]] = collections.deque(maxlen=10_000)
        """The newest REST requests (method, path, query): tests check what a client asked for."""
        self.clock = SimClock(self.config.start)
        self.market = Market(self.config, self.clock)
        self.exchange = Exchange(self.config, self.market)
        self.store: SimStore | None = None
        self.resumed = False
        """True when the account was continued from ``state_dir`` (not created)."""
        if state_dir is not None:
            try:
                self.store = SimStore.open(state_dir)
            except StateError as exc:
                raise SimError(str(exc)) from exc
            except (OSError, sqlite3.Error) as exc:
                raise SimError(f"cannot use the state directory {state_dir}: {exc}") from exc
            try:
                self.resumed = self.store.attach(self)
            except StateError as exc:
                self.store.close()
                raise SimError(str(exc)) from exc
            except BaseException:
                self.store.close()
                raise
        self.hub = StreamHub(self)
        self.exchange.listeners.append(self.hub.on_trade_update)
        self.urls: SimUrls | None = None
        self.quotes_sent = 0
        self._runner: web.AppRunner | None = None
        self._ws_server: Server | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._anchor_wall = 0.0
        self._anchor_ns = self.clock.now_ns
        self.held_at_close = False
        """While set, the clock stops at the session close and the session does not roll (``hold_at_close``)."""
        self.paused = False
        """While set, the market loop does not step: the clock and quotes stand still (``pause``)."""

    @property
    def now_ns(self) -> int:
        return self.clock.now_ns

    # ---- life-cycle ----------------------------------------------------------------------------
    async def start(self) -> SimUrls:
        """Bind the servers (port 0 = free port), start the market loop and return the URLs."""
        cfg = self.config
        if not cfg.allow_remote and not _is_loopback(cfg.host):
            raise SimError(f"refusing to bind {cfg.host}: the simulator binds loopback unless allow_remote is set")
        self._warm_up()
        app = build_app(self)
        if self.store is not None:
            app.middlewares.append(self._save_after_request)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        await site.start()
        http_port = self._runner.addresses[0][1]
        self._ws_server = await serve(
            self.hub.handler,
            cfg.host,
            cfg.stream_port,
            process_request=self.hub.process_request,
            max_size=1 << 20,
            ping_interval=20,
            ping_timeout=60,
            write_limit=1 << 20,
            compression=None,
            extensions=[_fast_deflate()],
        )
        ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        http = f"http://{host}:{http_port}"
        ws = f"ws://{host}:{ws_port}"
        self.urls = SimUrls(
            trading_url=http,
            data_url=http,
            options_stream_url=f"{ws}/v1beta1/opra",
            stocks_stream_url=f"{ws}/v2/iex",
            trading_stream_url=f"{ws}/stream",
            key=cfg.key,
            secret=cfg.secret,
            control_url=f"{http}/sim",
        )
        self._anchor_wall = time.monotonic()
        self._anchor_ns = self.clock.now_ns
        self._loop_task = asyncio.create_task(self._market_loop(), name="sim-market")
        self._loop_task.add_done_callback(self._on_loop_done)
        log.info("sim_started", trading_url=http, stream_base=ws, seed=cfg.seed, speed=cfg.speed, pricer=PRICER,
                 account_id=self.exchange.account.account_id, resumed=self.resumed,
                 state_dir=str(self.store.directory) if self.store else None)
        return self.urls

    @web.middleware
    async def _save_after_request(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Commit what a request changed before its response (and the trade updates it queued) can leave."""
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            if request.method != "GET" and self.store is not None:
                self.store.commit(self, force=True)

    def _on_loop_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # a broken invariant in the market: say so loudly; ``wait_failed`` lets the CLI exit non-zero
            log.error("sim_market_loop_crashed", exc_info=task.exception())

    async def wait_failed(self) -> BaseException:
        """Return the exception that stopped the market loop (waits until it happens)."""
        assert self._loop_task is not None, "start() first"
        await asyncio.wait({self._loop_task})
        exc = None if self._loop_task.cancelled() else self._loop_task.exception()
        return exc or RuntimeError("market loop stopped")

    def _warm_up(self) -> None:
        """Load the pricing kernels (Numba) and fill the price cache now, not on the first frames.

        Pricing every listed contract once costs a few hundred ms here; without it the first steps at
        high speed would price thousands of traded contracts each and fall behind the clock.
        """
        from engine.sim.data_api import option_snapshots

        option_snapshots(self, np.arange(min(4, len(self.market.universe))))
        self.market.option_quotes(np.flatnonzero(self.market.universe.active))

    async def stop(self) -> None:
        """Stop the loop and close every connection and server (saving the state last, when persisted)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            # a crash was already logged (and is what ``wait_failed`` returns); stopping must still work
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._ws_server is not None:
            self._ws_server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ws_server.wait_closed(), 5)
            self._ws_server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.store is not None:
            self.store.snapshot(self)
            log.info("sim_state_saved", state_dir=str(self.store.directory), persistence=self.store.stats.as_dict())
            self.store.close()
            self.store = None
        log.info("sim_stopped")

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- market time ---------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        cfg = self.config
        interval = cfg.publish_interval_ms / 1000
        saved_wall = time.monotonic()
        while True:
            if cfg.speed > 0 and not self.paused:
                elapsed = time.monotonic() - self._anchor_wall
                target = self._anchor_ns + int(elapsed * cfg.speed * NS_PER_SECOND)
                if target - self.clock.now_ns >= self.market.tick_ns:
                    self._step_to(target)
                    self._save_step()
            if self.store is not None and time.monotonic() - saved_wall >= 1.0:
                saved_wall = time.monotonic()
                self._save_periodically()
            if interval > 0 or cfg.speed == 0:
                await asyncio.sleep(interval or 0.05)
            else:
                # full speed: produce only as fast as the slowest data client drains
                await asyncio.sleep(0)
                await self.hub.wait_drained(limit=4)

    def _step_to(self, target_ns: int) -> None:
        """Move the market to ``target_ns`` (through closes and into later sessions) and publish once."""
        while True:
            # stop at the expiry-day liquidation instant, so a long jump checks it there and not at the close
            checkpoint = self.exchange.next_checkpoint_ns(self.clock.now_ns)
            stop_ns = target_ns if checkpoint is None else min(target_ns, checkpoint)
            bars = self.market.advance_to(stop_ns)
            self._publish(bars)
            if stop_ns < target_ns and not self.market.at_close():
                continue
            if not self.market.at_close() or self.held_at_close:
                return
            remaining = target_ns - self.clock.now_ns
            self._close_session()
            if remaining <= 0:
                return
            target_ns = self.clock.now_ns + remaining

    def _save_step(self) -> None:
        """After every ``_step_to``, before the event loop runs again: no trade update the step queued can leave
        before the state it shows is saved (cheap when the step changed nothing of the exchange's)."""
        if self.store is not None:
            self.store.commit(self)

    def _save_periodically(self) -> None:
        """Once a wall second: the clock and market (they move without fills) and silent order changes;
        the WAL is folded into the database from a worker thread when it has grown."""
        assert self.store is not None
        store = self.store
        store.commit(self, force=True)
        if store.claim_checkpoint():
            asyncio.get_running_loop().run_in_executor(None, store.checkpoint)

    def _publish(self, bars: list[Any], daily: list[dict[str, Any]] | None = None) -> None:
        market = self.market
        dt_s = max(market.now_ns - market.last_publish_ns, 0) / NS_PER_SECOND
        if dt_s <= 0 and not bars and not daily:
            return
        option_trades = market.option_trades(dt_s)
        stock_trades = market.stock_trades(dt_s)
        self.exchange.on_step()
        self.quotes_sent += self.hub.publish_options(dt_s, option_trades)
        self.hub.publish_stocks(dt_s, stock_trades, bars, daily or [])
        market.last_publish_ns = market.now_ns

    def _close_session(self) -> None:
        """At the close: expiries and day orders, daily bars, then the next session's open."""
        self.exchange.on_close()
        daily = [
            {
                "T": "d",
                "S": u.symbol,
                "o": u.day_open,
                "h": u.day_high,
                "l": u.day_low,
                "c": u.spot,
                "v": int(u.day_volume),
                "t": self.clock.open_ns,
                "n": u.day_trades,
                "vw": round(u.day_pv / u.day_volume, 4) if u.day_volume else u.spot,
            }
            for u in self.market.unds
        ]
        self.hub.publish_stocks(0.0, [], self.market.flush_bars(), daily)
        close_ns = self.clock.close_ns
        self.market.open_next_session()
        self.exchange.on_open()  # the night's early assignments, the ex-date's dividends
        self._anchor_ns += self.clock.now_ns - close_ns  # the closed hours take no wall time
        self.hub.on_new_listings()
        log.info("sim_session_rolled", session=self.clock.today().isoformat())

    def advance(self, seconds: float) -> None:
        """Move event time forward by ``seconds`` now (through closes); the wall anchor follows."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._step_to(self.clock.now_ns + int(seconds * NS_PER_SECOND))
        self._save_step()
        self._anchor_wall = time.monotonic()
        self._anchor_ns = self.clock.now_ns

    # ---- fault injection -----------------------------------------------------------------------
    def drop_streams(self, kind: str) -> int:
        """Cut every connection of a stream kind (``options``, ``stocks``, ``trading``) abruptly."""
        self.faults.count(f"{kind}_drops")
        return self.hub.drop(kind)

    def fail_rest(self, kind: str, count: int = 1, scope: str = "all", hold_s: float = 30.0) -> None:
        """Make the next ``count`` REST calls in ``scope`` return 429/500/504 or hang (``timeout``)."""
        if kind not in REST_FAULT_KINDS:
            raise ValueError(f"unknown REST fault {kind!r}")
        if scope not in ("all", "trading", "data", "orders"):
            raise ValueError(f"unknown scope {scope!r}")
        self.faults.rest.append(RestFault(kind, count, scope, hold_s))  # type: ignore[arg-type]

    def reject_next_orders(self, status: int = 403, count: int = 1, message: str | None = None) -> None:
        """Reject the next ``count`` order submissions with 403 or 422."""
        if status not in (403, 422):
            raise ValueError("status must be 403 or 422")
        text = message or ("insufficient buying power" if status == 403 else "order rejected by the simulator")
        self.exchange.reject_next.extend([(status, text)] * count)

    def delay_fills(self, ms: int) -> None:
        """Report every later fill ``ms`` simulated milliseconds after it is decided."""
        self.exchange.fill_delay_ms = ms

    def assign(self, symbol: str, contracts: int, at: str = "now") -> None:
        """Assign ``contracts`` of a short option position ``now`` or at the ``next_open`` (``OPASN``)."""
        if at not in ("now", "next_open"):
            raise ValueError("at must be 'now' or 'next_open'")
        self.exchange.assign(symbol, contracts, at)  # type: ignore[arg-type]

    def expiry(self) -> dict[str, Any]:
        """The expiration process's state: today's liquidation instant, liquidation orders, pending assignments."""
        return {"liquidation_at": rfc3339(self.exchange.liquidation_ns()), **self.exchange.expiry_state.to_json()}

    def move_underlying(self, symbol: str, relative: float) -> None:
        """Jump an underlying's price by ``relative`` (0.02 = +2 %) now."""
        self.market.jump_spot(symbol, relative)

    def set_order_rules(self, **changes: Any) -> OrderRulesConfig:
        """Switch Alpaca's order rules now (``OrderRulesConfig`` fields, e.g. ``wash_trades=False``); returns them."""
        try:
            self.exchange.rules = msgspec.convert({**msgspec.to_builtins(self.exchange.rules), **changes},
                                                  OrderRulesConfig)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid order rules: {exc}") from None
        return self.exchange.rules

    def hold_at_close(self, hold: bool = True) -> None:
        """Hold the clock at the session close: the market is closed (orders refused, ``/v2/clock`` is_open
        false) and nothing rolls until released; releasing processes the close and opens the next session."""
        self.held_at_close = hold
        if not hold and self.market.at_close():
            self._step_to(self.clock.now_ns)
            self._anchor_wall = time.monotonic()
            self._anchor_ns = self.clock.now_ns

    def pause(self, paused: bool = True) -> None:
        """Stop the market clock (``paused``) or let it run on from the same instant. While paused, nothing
        moves by itself (no steps: quotes, trades and the clock stand still) while REST, the streams and orders
        work as usual; ``advance`` still moves the clock on request. A benchmark uses it to time a client's
        start against a simulator that is not spending its CPU on a high-speed market."""
        if paused == self.paused:
            return
        self.paused = paused
        if not paused:  # no catch-up: the wall time spent paused is not simulated
            self._anchor_wall = time.monotonic()
            self._anchor_ns = self.clock.now_ns

    def clear_faults(self) -> None:
        self.faults.clear()
        self.exchange.reject_next.clear()
        self.exchange.fill_delay_ms = 0

    # ---- inspection ----------------------------------------------------------------------------
    def inspect(self) -> dict[str, Any]:
        """The simulator's view: positions, orders, fills, submissions per client_order_id and the client ids of
        the orders the broker originated itself (expiry-day liquidations)."""
        ex = self.exchange
        return {
            "now": rfc3339(self.now_ns),
            "session": self.clock.today().isoformat(),
            "account_id": ex.account.account_id,
            "cash": ex.account.cash,
            "positions": {s: p.qty for s, p in ex.account.positions.items()},
            "orders": [o.to_json() for o in ex.orders.values() if o.parent is None],
            "fills": list(ex.fills),
            "submissions": dict(ex.submissions),
            "broker_orders": [o.client_order_id for o in ex.orders.values() if o.parent is None and o.by_broker],
            "settlements": [a["id"] for a in ex.account.activities if a["activity_type"] != "FILL"],
        }

    def save(self) -> None:
        """Write the whole state now (the Python API; the simulator also saves by itself)."""
        if self.store is not None:
            self.store.snapshot(self)

    def state(self) -> dict[str, Any]:
        return {
            "account_id": self.exchange.account.account_id,
            "persistence": self.store.stats.as_dict() if self.store is not None else None,
            "now": rfc3339(self.now_ns),
            "session": self.clock.today().isoformat(),
            "speed": self.config.speed,
            "seed": self.config.seed,
            "pricer": PRICER,
            "spots": {u.symbol: u.spot for u in self.market.unds},
            "contracts": len(self.market.universe),
            "quotes_sent": self.quotes_sent,
            "connections": {k: len(v) for k, v in self.hub.sessions.items()},
            "faults_injected": dict(self.faults.injected),
            "held_at_close": self.held_at_close,
            "paused": self.paused,
        }


def _fast_deflate() -> ServerPerMessageDeflateFactory:
    """permessage-deflate (alpaca-py offers it) at zlib level 1: quote frames compress ~4x at a fraction of the cost."""
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"level": 1, "memLevel": 5}
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
