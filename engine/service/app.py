"""The running engine: every part wired together, started in order and stopped in reverse.

Start-up: endpoints (in ``mode = "sim"`` the built-in simulator starts on loopback, continuing the
account it keeps under ``<state_dir>/sim``, and the engine reaches it through the Alpaca venue as it would
Alpaca) -> the venue ``[engine] venue`` selects (``engine.service.venues``: execution client, streams) ->
journal -> account (a journal bound to another account stops the start) -> metrics, Redis -> restart
reconciliation against the journal -> underlying quotes and the option book primed from snapshots within the
subscription budget -> feeds -> strategies -> READY, with Numba's cached kernels loaded in a thread meanwhile
(``engine.service.kernel_warmup``). ``fresh=True`` (``run --fresh``, sim mode) first moves the journal and the
simulator's state into ``<state_dir>/archive-<time>`` and so starts a new account.
Shutdown (SIGTERM, SIGINT or ``--duration``): STOPPING, stop intake, cancel working orders (by
policy), drain, flush the journal and Redis, exit 0 within the configured bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from domain.views import AccountView
from engine.kernel.alerts import Alert
from engine.kernel.bus import Bus
from engine.kernel.clock import EventClock
from engine.kernel.core import TradingCore
from engine.kernel.events import FeedConnected, FeedStale, Topic
from engine.kernel.kernel import TradingKernel
from engine.kernel.market import Market
from engine.kernel.orders import OrderStateMachine
from engine.kernel.portfolio import Portfolio
from engine.kernel.router import Router
from engine.kernel.subscriptions import BudgetConfig, ContractCatalog, SubscriptionBudget, SubscriptionManager
from engine.kernel.venue_types import VenueError
from engine.service.cockpit import Cockpit
from engine.service.commands import CommandListener
from engine.service.config import EngineConfig, state_path
from engine.service.gauges import register_engine_gauges
from engine.service.gc_tuning import restore_after_run, settle_for_running
from engine.service.journal import BoundAccount, Journal
from engine.service.kernel_warmup import load_kernels
from engine.service.logging import redactor
from engine.service.metrics import LoopLagMonitor, Metrics, MetricsServer
from engine.service.publish import Publisher
from engine.service.reconcile import ReconcilePolicy
from engine.service.reload import ConfigChange, ConfigReloader
from engine.service.restart import RestartReconciliation, bind_journal, fetch_account, startup_call
from engine.service.sdnotify import Notifier, Watchdog, watchdog_interval_s
from engine.service.secrets import command_secret, dashboard_token
from engine.service.settings import kernel_settings
from engine.service.venue import Endpoints, archive_for_fresh_start, start_simulator
from engine.service.venues import DataStream, Stream, Venue, VenueClient, open_venue
from engine.service.vitals import run_status, run_summary
from engine.service.vol_history import hand_history, record_session_close
from greeks.calendar import market_calendar, ny_date
from strategies.base import Strategy

log = structlog.get_logger(__name__)


class Engine:
    """One engine run. ``await Engine(cfg, path).run()`` returns the run summary."""

    def __init__(
        self,
        cfg: EngineConfig,
        config_path: str | Path | None = None,
        *,
        duration_s: float | None = None,
        on_tick: Callable[[Engine], None] | None = None,
        tick_interval_s: float = 1.0,
        fresh: bool = False,
    ) -> None:
        self.cfg = cfg
        self.fresh = fresh
        self.config_path = Path(config_path) if config_path else None
        self.duration_s = duration_s
        self._on_tick = on_tick
        self._tick_interval_s = tick_interval_s
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self._gc_threshold: tuple[int, int, int] | None = None  # the collector's, before READY
        self.metrics = Metrics()
        self.notifier = Notifier()
        self.calendar = market_calendar()
        self.clock = EventClock()
        self.bus = Bus()
        self.kernel: TradingKernel | None = None
        """Built once the broker and the account are known (``_build_kernel``)."""
        self.sim: Any = None
        self.endpoints: Endpoints | None = None
        """Where the venue connects when the engine chose: the simulator's in sim mode (else None)."""
        self.venue: Venue | None = None
        """The venue ``[engine] venue`` selects (engine.service.venues)."""
        self.broker: VenueClient | None = None
        """The venue's execution client, as the kernel uses it."""
        self.quote_cap: int | None = None
        """Option quote symbols streamed at most; None: the venue's plan cap (a benchmark may lift it)."""
        self.journal: Journal | None = None
        self.publisher: Publisher | None = None
        self.subscriptions: SubscriptionManager | None = None
        self.option_feed: DataStream | None = None
        self.stock_feed: DataStream | None = None
        self.trading_feed: Stream | None = None
        self.reloader: ConfigReloader | None = None
        self.commands: CommandListener | None = None
        self.metrics_server: MetricsServer | None = None
        self.loop_lag: LoopLagMonitor | None = None
        self.watchdog: Watchdog | None = None
        self.extra_actors: list[Strategy[Any]] = []
        """Actors given in code (benchmarks, tests), beside the configured ones."""
        self.alerts: list[Alert] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.restart: RestartReconciliation | None = None
        self.started_monotonic = 0.0
        self.feeds_connected: set[str] = set()
        self._evicted_day: dt.date | None = None
        self.recorder: Any = None
        """engine.service.record.Recorder when [record] enabled (raw frames for replay)."""
        self.archived_to: Path | None = None
        """Where ``fresh`` moved the previous journal and simulated account."""
        self.broker_account: BoundAccount | None = None
        """The broker account this run trades (its id and the mode)."""

    # ------------------------------------------------------------------------------------ the kernel's parts
    def _kernel(self) -> TradingKernel:
        if self.kernel is None:
            raise RuntimeError("the engine has not built its kernel yet (start() first)")
        return self.kernel

    @property
    def core(self) -> TradingCore | None:
        return self.kernel.core if self.kernel is not None else None

    @property
    def router(self) -> Router | None:
        return self.kernel.router if self.kernel is not None else None

    @property
    def market(self) -> Market:
        return self._kernel().market

    @property
    def portfolio(self) -> Portfolio:
        return self._kernel().portfolio

    @property
    def orders(self) -> OrderStateMachine:
        return self._kernel().orders

    @property
    def actors(self) -> list[Strategy[Any]]:
        return self.kernel.actors if self.kernel is not None else []

    @property
    def reconcile_summary(self) -> dict[str, int]:
        return self.restart.summary if self.restart is not None else {}

    # ------------------------------------------------------------------------------------ run
    async def run(self) -> dict[str, Any]:
        """Start, trade until stopped (signal, command or ``duration_s``), stop; return the summary."""
        try:
            await self.start()
        except BaseException:
            await self.shutdown()
            raise
        return await self.run_started()

    async def run_started(self) -> dict[str, Any]:
        """After ``start``: trade until stopped, then shut down; return the summary."""
        try:
            if self.duration_s is not None:
                remaining = self.duration_s - (time.monotonic() - self.started_monotonic)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), max(remaining, 0.0))
            else:
                await self.stop_event.wait()
        finally:
            await self.shutdown()
        return self.summary()

    def _install_signal_handlers(self, install: bool) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                if install:
                    loop.add_signal_handler(sig, self.request_stop)
                else:
                    loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        self.stop_event.set()

    async def start(self) -> None:
        cfg = self.cfg
        self.started_monotonic = time.monotonic()
        self._install_signal_handlers(True)
        if self.fresh:
            self.archived_to = archive_for_fresh_start(cfg, state_path(cfg, self.config_path))
        self.endpoints = await self._endpoints()
        kernels = asyncio.create_task(load_kernels(), name="kernel-load")  # awaited before READY
        self.venue = open_venue(cfg, endpoints=self.endpoints)
        self.broker = self.venue.execution
        self.journal = Journal.open(state_path(cfg, self.config_path))
        self.journal.start()
        self._start_recorder()
        account = await startup_call(self._fetch_account)
        assert self.journal is not None and self.broker_account is not None
        bind_journal(self.journal, self.broker_account)
        await self._start_observability()
        kernel = self._build_kernel(account)
        assert self.broker is not None
        policy = ReconcilePolicy(cfg.engine.unknown_order_policy, cfg.engine.client_order_prefix)
        self.restart = RestartReconciliation(kernel, self.journal, self.broker, policy, publisher=self.publisher,
                                             alert=self.alert)
        await self.restart.run()
        await self._prime_market()
        self._start_feeds()
        self.bus.subscribe("kernel", kernel.dispatch, (Topic.BOOK, Topic.ORDERS, Topic.FILLS, Topic.DENIALS,
                                                        Topic.FEED),
                           inline=(Topic.BOOK,))  # no loop iteration between a frame and the strategies
        self.bus.subscribe("service", self._on_feed_event, (Topic.FEED,))
        self.bus.subscribe("checkpoint", self.restart.on_event, (Topic.ORDERS, Topic.FILLS, Topic.FEED))
        await self.bus.start()
        hand_history(self)
        kernel.start(self.restart.recovered)
        for event in self.restart.adoption_events:  # fills and updates of adopted orders, booked like any other
            self.bus.publish(event)
        self.restart.adoption_events.clear()
        self._start_periodic()
        await self._wait_feeds()
        if kernel.orders.working_orders():
            # Orders adopted at restart may have filled between the broker snapshot and the trading stream's
            # subscription, and trade_updates does not replay: read them once more now that the stream listens.
            self._tasks.append(asyncio.create_task(kernel.router.reconcile_open_orders(), name="startup-reread"))
        self._tasks.append(asyncio.create_task(self.restart.reread_broker_orders(), name="startup-broker-orders"))
        self._start_service_hooks()
        await kernels
        self._gc_threshold = settle_for_running()
        self.notifier.ready(self.status_line())
        self.ready.set()
        log.info("engine_ready", mode=cfg.engine.mode, strategies=[a.strategy_id for a in self.actors],
                 contracts=sum(len(b) for b in kernel.market.books.values()))

    def _start_recorder(self) -> None:
        from engine.service.record import recorder_for

        self.recorder = recorder_for(self.cfg, state_path(self.cfg, self.config_path))

    async def _endpoints(self) -> Endpoints | None:
        """The built-in simulator's in sim mode; None in paper/live (the venue connects where its config says,
        with the keys from the environment or the credentials file)."""
        if self.cfg.engine.mode == "sim":
            self.sim, endpoints = await start_simulator(self.cfg, state_path(self.cfg, self.config_path))
            return endpoints
        return None

    async def _fetch_account(self) -> AccountView:
        assert self.broker is not None
        account, self.broker_account = await fetch_account(self.broker, self.cfg.engine.mode)
        return account

    async def _start_observability(self) -> None:
        cfg = self.cfg
        self.cockpit = Cockpit(self, dashboard_token(cfg), cfg.engine.metrics_host)
        self.metrics_server = MetricsServer(self.metrics, cfg.engine.metrics_host, cfg.engine.metrics_port,
                                            health=self.health, status=self.status, extend=self.cockpit.install)
        try:
            await self.metrics_server.start()
        except OSError as exc:
            log.warning("metrics_unavailable", error=str(exc), port=cfg.engine.metrics_port)
            self.metrics_server = None
        self.loop_lag = LoopLagMonitor(self.metrics)
        self.loop_lag.start()
        register_engine_gauges(self.metrics, self)
        if cfg.redis.enabled:
            self.publisher = Publisher(cfg.redis.url, cfg.redis.prefix, stream_maxlen=cfg.redis.stream_maxlen,
                                       queue_bound=cfg.redis.queue_bound, alert_buffer=cfg.redis.alert_buffer,
                                       journal=self.journal, redactor=redactor())
            self.publisher.register_metrics(self.metrics)
            self.publisher.start()
            if not await self.publisher.wait_connected(10.0):
                log.warning("redis_not_connected_yet", url=cfg.redis.url)

    def _build_kernel(self, account: AccountView) -> TradingKernel:
        assert self.broker is not None
        self.kernel = kernel = TradingKernel(
            kernel_settings(self.cfg), self.broker, publish=self.bus.publish, account=account, clock=self.clock,
            journal=self.journal, publisher=self.publisher, metrics=self.metrics, alert=self.alert,
            extra_actors=self.extra_actors, surface_worker=True, order_archive=self.journal)
        if self.recorder is not None:
            self.recorder.attach_surfaces(kernel.surfaces)
        return kernel

    async def _prime_market(self) -> None:
        """Underlying quotes first (the clock starts at their time), then the option book within budget."""
        assert self.venue is not None and self.broker is not None and self.option_feed is None
        underlyings = sorted({u for a in self.actors for u in a.underlyings})
        for u in underlyings:
            quote = await self.broker.stock_quote(u)
            if quote is not None and quote.bid > 0 and quote.ask > 0:
                ts = quote.ts_ns or time.time_ns()
                self.market.book(u)
                self.market.on_underlying_quote(u, quote.bid, quote.ask, ts)
                self.clock.advance(ts)
        quotes_cap = self.venue.quote_cap if self.quote_cap is None else self.quote_cap
        if self.cfg.engine.mode == "sim":
            quotes_cap = min(quotes_cap, self.cfg.sim.option_symbol_cap)
        kernel = self._kernel()
        self.option_feed = self.venue.option_stream(self.market.option_index, on_batch=kernel.on_option_batch,
                                                    publish=self.bus.publish, market_open=self._market_open,
                                                    max_quotes=quotes_cap)
        ranges = tuple(sorted({a.dte_range() for a in self.actors})) or ((0, 45),)
        budget = SubscriptionBudget(BudgetConfig(cap=quotes_cap, dte_ranges=ranges))
        catalog = ContractCatalog(self.broker, on_ppind=kernel.router.ticks.observe)
        self.subscriptions = SubscriptionManager(self.broker, self.market, self.option_feed, underlyings,
                                                 budget=budget, catalog=catalog)
        await self._update_subscriptions()

    async def _update_subscriptions(self) -> None:
        if self.subscriptions is None:
            return
        now = self.clock.now_ns() or time.time_ns()
        today = ny_date(now)
        spots = {u: self.market.spot(u) for u in self.subscriptions.underlyings}
        pinned = set(self.portfolio.positions()) | self.orders.working_symbols()
        if today != self._evicted_day:  # first, so the books never hold yesterday's and today's rows at once
            self._evicted_day = today
            dropped = self.market.evict_expired(today, keep=pinned)
            if dropped:
                log.info("expired_contracts_evicted", contracts=dropped, session=today.isoformat())
        try:
            await self.subscriptions.update(today, spots, pinned={s for s in pinned if len(s) > 12})
        except VenueError as exc:
            log.warning("subscription_update_failed", error=str(exc))
        if self.recorder is not None:
            self.recorder.note_book(self.market)

    def _streams(self) -> tuple[DataStream, DataStream, Stream]:
        assert self.option_feed is not None and self.stock_feed is not None and self.trading_feed is not None
        return self.option_feed, self.stock_feed, self.trading_feed

    def _start_feeds(self) -> None:
        assert self.venue is not None and self.option_feed is not None
        kernel = self._kernel()
        self.stock_feed = self.venue.stock_stream(self.market.stock_index, on_batch=kernel.on_stock_batch,
                                                  publish=self.bus.publish, market_open=self._market_open)
        self.stock_feed.set_subscription(sorted(self.market.books))
        self.trading_feed = self.venue.order_stream(on_event=kernel.on_order_event, publish=self.bus.publish)
        if self.recorder is not None:
            from engine.replay.format import OPTIONS, STOCKS, TRADING

            for stream, feed in zip((OPTIONS, STOCKS, TRADING), self._streams(), strict=True):
                feed.on_raw_frame = self.recorder.tap(stream)
        self.option_feed.after_frame = self.stock_feed.after_frame = kernel.order_started
        for name, feed in zip(("options", "stocks", "trading"), self._streams(), strict=True):
            self._tasks.append(asyncio.create_task(feed.run(), name=f"feed-{name}"))

    async def _wait_feeds(self) -> None:
        """Until every feed has finished its handshake (READY=1 must not come before); logs while waiting."""
        feeds = self._streams()
        while True:
            pending = [f.feed for f in feeds if not f.connected.is_set()]
            if not pending:
                return
            failed = [f for f in feeds if f.failure is not None]
            if failed:
                raise SystemExit(f"feed failed for good: {failed[0].failure}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(f.connected.wait() for f in feeds)), 10.0)
            if any(not f.connected.is_set() for f in feeds):
                log.warning("waiting_for_feeds", pending=[f.feed for f in feeds if not f.connected.is_set()])

    def _start_periodic(self) -> None:
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._tasks.append(asyncio.create_task(self._stale_watch(), name="stale-watch"))

    def _start_service_hooks(self) -> None:
        cfg = self.cfg
        if self.config_path is not None:
            self.reloader = ConfigReloader(self.config_path, cfg, self._apply_config, self.alert,
                                           journal=self.journal, notifier=self.notifier,
                                           on_outcome=self.metrics.config_reloads.inc)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.reloader.install_signal_handler()
            self.reloader.start()
        if cfg.redis.enabled:
            secret = command_secret(cfg)
            kernel = self._kernel()
            self.commands = CommandListener(cfg.redis.url, cfg.redis.prefix, secret, {
                "pause": lambda: kernel.set_paused(True),
                "resume": kernel.resume,
                "halt": kernel.halt,
                "flatten": kernel.flatten,
                "reload": self.reloader.request_reload if self.reloader else (lambda: None),
            }, self.alert)
            self.commands.start()
        interval = watchdog_interval_s()
        if interval:
            self.watchdog = Watchdog(self.notifier, interval, lambda: self.health()[0],
                                     cfg.engine.watchdog_max_lag_ms / 1e3)
            self.watchdog.start()

    # ------------------------------------------------------------------------------------ feeds to the kernel
    def _market_open(self) -> bool:
        now = self.clock.now_ns()
        return now == 0 or self.calendar.is_open(now)

    def _on_feed_event(self, event: Any) -> None:
        if isinstance(event, FeedConnected):
            self.feeds_connected.add(event.feed)
            if event.attempt > 1:
                self.metrics.feed_reconnects.inc(event.feed)

    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if len(self.alerts) > 1000:
            del self.alerts[:500]
        log.warning("alert", code=alert.code, severity=alert.severity, message=alert.message)
        if self.publisher is not None:
            self.publisher.publish_alert(alert)

    def _apply_config(self, new: EngineConfig, changes: list[ConfigChange]) -> None:
        """Hot reload: strategy params and risk limits, all or nothing (every change is validated before any is
        applied; a failure raises ConfigError naming the field and rejects the reload)."""
        core = self._kernel().core
        from engine.service.logging import set_level
        from engine.service.reload import stage_hot_changes

        stage_hot_changes(new, self.actors, core.gate, core.breakers)()
        set_level(new.engine.log_level)
        self.cfg = new

    def on_session_close(self) -> None:
        """A session closed: each underlying's surface summary into the IV history, and the kernel told."""
        record_session_close(self)

    # ------------------------------------------------------------------------------------ housekeeping
    async def _housekeeping(self) -> None:
        """Wall-clock chores: subscription re-centre and expiry eviction, order re-reads, settlements, account
        refresh, Greeks, status (the stale-data watch has its own task)."""
        last_sub = last_acct = last_greeks = last_tick = time.monotonic()
        was_open = self._market_open()
        while not self.stop_event.is_set():
            await asyncio.sleep(0.1)
            mono = time.monotonic()
            if mono - last_sub >= 5.0:
                last_sub = mono
                await self._update_subscriptions()
                if self.router is not None and self.orders.working_orders():
                    # trade_updates has no heartbeat: a socket that stays up but goes silent (alpaca-py #740)
                    # would hide fills and cancels for good; re-read working orders over REST instead.
                    await self.router.reconcile_open_orders()
            is_open = self._market_open()
            settlements = self.kernel.settlements if self.kernel is not None else None
            if settlements is not None and (settlements.due() or (was_open and not is_open)):
                await settlements.poll()
            if was_open and not is_open:
                self.on_session_close()
            was_open = is_open
            if mono - last_acct >= 15.0 and self.core is not None:
                last_acct = mono
                with contextlib.suppress(VenueError):
                    self.core.account = await self._fetch_account()
            if self.publisher is not None and mono - last_greeks >= self.cfg.redis.greeks_interval_s:
                last_greeks = mono
                total, by_u = self.core.portfolio_greeks() if self.core else (None, {})
                if total is not None:
                    self.publisher.publish_greeks(self.clock.now_ns(), total, by_u)
            if mono - last_tick >= self._tick_interval_s:
                last_tick = mono
                self.notifier.status(self.status_line())
                if self._on_tick is not None:
                    self._on_tick(self)

    async def _stale_watch(self) -> None:
        """The stale-data watch on its own task: housekeeping awaits REST chores (and the request budget, up
        to a minute after a 429), and a silent feed must trip the gate within its limit all the same."""
        while not self.stop_event.is_set():
            await asyncio.sleep(0.1)
            self._watch_stale(time.monotonic(), self.cfg.risk.breakers.stale_data_after_ms)

    def _watch_stale(self, mono: float, stale_ms: int) -> None:
        """A feed silent (wall time) past the stale limit while the market is open trips the breaker now."""
        if self.core is None or not self._market_open():
            return
        for feed in (self.option_feed, self.stock_feed):
            if feed is None:
                continue
            last = feed.last_data_mono
            if last and (mono - last) * 1000.0 > stale_ms:
                now = self.clock.now_ns()
                silent = mono - last
                self.core.on_feed_stale(FeedStale(feed.feed, silent, now, time.time_ns()))

    # ------------------------------------------------------------------------------------ shutdown
    async def shutdown(self) -> None:
        cfg = self.cfg
        self.notifier.stopping()
        self._install_signal_handlers(False)
        try:
            async with asyncio.timeout(cfg.engine.shutdown_timeout_s):
                await self._shutdown_steps()
        except TimeoutError:
            log.error("shutdown_timed_out", timeout_s=cfg.engine.shutdown_timeout_s)
        restore_after_run(self._gc_threshold)
        self._gc_threshold = None

    async def _shutdown_steps(self) -> None:
        if self.reloader is not None:
            await self.reloader.stop()
        if self.commands is not None:
            await self.commands.stop()
        if self.kernel is not None:
            self.kernel.stop()
        # Housekeeping polls settlements (and may send an unwind) on its own clock: stop it before the
        # cancel below, or an order it sends afterwards could fill after the trading stream closes.
        self.stop_event.set()
        chores = [t for t in self._tasks if t.get_name() == "housekeeping"]
        for task in chores:
            task.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        settlements = self.kernel.settlements if self.kernel is not None else None
        if settlements is not None and await settlements.poll() and self.router is not None:
            # Expiries the broker booked since the last poll; their unwind orders go out while the trading
            # stream still listens, so the fills they make are booked before we stop.
            await self.router.drain(timeout_s=5.0)
        if self.router is not None and self.cfg.engine.cancel_on_shutdown and self.router.working:
            self.router.cancel_all()
            await self.router.drain(timeout_s=5.0)
        if self.router is not None and self.orders.working_orders():
            # A fill can win the race with a cancel and reach the stream after we stop listening: read the
            # orders still working once more over REST so the journal holds every fill the broker made.
            with contextlib.suppress(VenueError):
                await self.router.reconcile_open_orders()
        if self.core is not None and self.broker is not None:
            with contextlib.suppress(VenueError):  # the summary's account as the run leaves it
                self.core.account = await self._fetch_account()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.bus.drain(), 2.0)
        for feed in (self.option_feed, self.stock_feed, self.trading_feed):
            if feed is not None:
                feed.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.router is not None:
            await self.router.drain(timeout_s=2.0)
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        await self.bus.stop()
        if self.watchdog is not None:
            await self.watchdog.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        if self.journal is not None:
            await self.journal.aclose()
        if self.venue is not None:
            await self.venue.close()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        if self.sim is not None:
            await self.sim.stop()

    # ------------------------------------------------------------------------------------ reporting
    def health(self) -> tuple[bool, str]:
        if self.core is None:
            return False, "starting"
        lag = self.loop_lag.last_lag_s if self.loop_lag is not None else 0.0
        if lag > self.cfg.engine.watchdog_max_lag_ms / 1e3:
            return False, f"event loop lag {lag * 1e3:.0f} ms"
        if self._market_open():
            for feed in (self.option_feed, self.stock_feed, self.trading_feed):
                if feed is not None and not feed.connected.is_set():
                    return False, f"{feed.feed} feed disconnected"
        return True, "ok"

    def status_line(self) -> str:
        if self.kernel is None:
            return "starting"
        contracts = sum(len(b) for b in self.kernel.market.books.values())
        open_structures = self.kernel.portfolio.open_structures()
        return f"streaming {contracts} contracts, {len(self.actors)} strategies, {open_structures} open structures"

    def status(self) -> dict[str, Any]:
        return run_status(self)

    def summary(self) -> dict[str, Any]:
        """Per strategy: structures opened and closed, fills, P&L, max |delta|, gate denials by reason."""
        return run_summary(self)
