"""The running engine: every part wired together, started in order and stopped in reverse.

Start-up: endpoints (in ``mode = "sim"`` the built-in simulator starts on loopback, continuing the
account it keeps under ``<state_dir>/sim``, and the engine reaches it through the same REST and
websocket clients it uses for Alpaca) -> journal -> broker and account (a journal bound to another
account stops the start) -> metrics, Redis -> restart reconciliation against the journal -> underlying
quotes and the option book primed from snapshots within the subscription budget -> feeds -> strategies
-> READY. ``fresh=True`` (``run --fresh``, sim mode) first moves the journal and the simulator's state
into ``<state_dir>/archive-<time>`` and so starts a new account.
Shutdown (SIGTERM, SIGINT or ``--duration``): STOPPING, stop intake, cancel working orders (by
policy), drain, flush the journal and Redis, exit 0 within the configured bound.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import gc
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from domain.orders import IntentDenied, OrderFilled, OrderUpdated, TradingState
from domain.views import AccountView
from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.endpoints import Endpoints, alpaca_endpoints
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.marketdata import DataBatch
from engine.alpaca.feeds.options.client import option_client
from engine.alpaca.feeds.options.protocol import PLAN_QUOTE_CAPS
from engine.alpaca.feeds.stocks.client import stock_client
from engine.alpaca.feeds.trading.client import TradingStreamClient
from engine.kernel.alerts import Alert
from engine.kernel.attribution import attribute_broker_fill, is_broker_fill, portfolio_holders
from engine.kernel.bus import Bus
from engine.kernel.clock import EventClock
from engine.kernel.core import TradingCore
from engine.kernel.events import (
    BookUpdated,
    FeedConnected,
    FeedStale,
    Topic,
)
from engine.kernel.market import Market
from engine.kernel.orders import OrderStateMachine, OrderTags
from engine.kernel.portfolio import Portfolio
from engine.kernel.router import Router, RouterConfig
from engine.kernel.settlements import SettlementPoller
from engine.kernel.subscriptions import BudgetConfig, ContractCatalog, SubscriptionBudget, SubscriptionManager
from engine.kernel.venue_types import OrderEvent, RateLimited, VenueError
from engine.service.commands import CommandListener
from engine.service.config import EngineConfig, state_path
from engine.service.journal import BoundAccount, Journal, journal_files
from engine.service.metrics import LoopLagMonitor, Metrics, MetricsServer
from engine.service.publish import Publisher
from engine.service.reconcile import (
    AccountMismatch,
    BrokerState,
    ReconcilePolicy,
    abandoned_update,
    check_account,
    reconcile,
)
from engine.service.recovery import recovered_structures
from engine.service.reload import ConfigChange, ConfigReloader
from engine.service.sdnotify import Notifier, Watchdog, watchdog_interval_s
from engine.service.secrets import command_secret, load_credentials
from greeks.calendar import market_calendar, ny_date, ny_datetime
from risk.breakers import Breakers
from risk.gate import RiskGate
from strategies.base import Strategy
from strategies.registry import build_strategy
from strategies.tracking import RecoveredStructure

log = structlog.get_logger(__name__)

NS_PER_S = 1_000_000_000
SIM_STATE_DIR = "sim"
"""Where, under ``engine.state_dir``, sim mode keeps the simulated account."""


class StartupError(Exception):
    """The engine cannot start as configured (the message says why and what to do)."""


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
        self.metrics = Metrics()
        self.notifier = Notifier()
        self.calendar = market_calendar()
        self.clock = EventClock()
        self.bus = Bus()
        self.market = Market(publish=self.bus.publish, now_ns=time.time_ns, rate=self._rate(),
                             div_yields=self._div_yields())
        self.orders = OrderStateMachine()
        self.portfolio = Portfolio()
        self.sim: Any = None
        self.endpoints: Endpoints | None = None
        self.journal: Journal | None = None
        self.broker: AlpacaExecution | None = None
        self.publisher: Publisher | None = None
        self.core: TradingCore | None = None
        self.router: Router | None = None
        self.subscriptions: SubscriptionManager | None = None
        self.option_feed: Any = None
        self.stock_feed: Any = None
        self.trading_feed: TradingStreamClient | None = None
        self.reloader: ConfigReloader | None = None
        self.commands: CommandListener | None = None
        self.metrics_server: MetricsServer | None = None
        self.loop_lag: LoopLagMonitor | None = None
        self.watchdog: Watchdog | None = None
        self.actors: list[Strategy[Any]] = []
        self.alerts: list[Alert] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._adoption_events: list[OrderUpdated | OrderFilled] = []
        self._journaled_at_start: dict[str, list[OrderFilled]] = {}
        self._recovered: dict[str, list[RecoveredStructure]] = {}
        """Per strategy, the structures it held when the engine stopped (handed back once the core starts)."""
        """The journal's fills by order at the restart's read, for the re-read of broker orders after it."""
        """What reading the orders adopted at restart showed, published once the core listens."""
        self._started_wall = 0.0
        self.feeds_connected: set[str] = set()
        self.reconcile_summary: dict[str, int] = {}
        self._evicted_day: dt.date | None = None
        self.settlements: SettlementPoller | None = None
        self.tick_to_order_ns: collections.deque[int] = collections.deque(maxlen=100_000)
        self._intents_seen = 0
        self.recorder: Any = None
        """engine.service.record.Recorder when [record] enabled (raw frames for replay)."""
        self.archived_to: Path | None = None
        """Where ``fresh`` moved the previous journal and simulated account."""
        self.broker_account: BoundAccount | None = None
        """The broker account this run trades (the venue's account id and the mode)."""

    # ------------------------------------------------------------------------------------ config bits

    def _rate(self) -> float:
        return float(getattr(self.cfg.sim, "risk_free_rate", 0.04)) if self.cfg.engine.mode == "sim" else 0.04

    def _div_yields(self) -> dict[str, float]:
        if self.cfg.engine.mode != "sim":
            return {}
        return {u.symbol: u.dividend_yield for u in getattr(self.cfg.sim, "underlyings", ())}

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
                remaining = self.duration_s - (time.monotonic() - self._started_wall)
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
        self._started_wall = time.monotonic()
        self._install_signal_handlers(True)
        if self.fresh:
            self._archive_for_fresh_start()
        self.endpoints = await self._endpoints()
        self.journal = Journal.open(state_path(cfg, self.config_path))
        self.journal.start()
        self._start_recorder()
        self.broker = AlpacaExecution(AlpacaBroker(
            self.endpoints.trading_url, self.endpoints.data_url, self.endpoints.key, self.endpoints.secret,
            option_feed=cfg.alpaca.options_feed, stock_feed=cfg.alpaca.stock_feed,
        ))
        account = await self._startup_call(self._fetch_account)
        self._check_account()
        await self._start_observability()
        self._build_trading(account)
        await self._reconcile()
        await self._prime_market()
        self._start_feeds()
        self.bus.subscribe("core", self._on_event, (Topic.BOOK, Topic.ORDERS, Topic.FILLS, Topic.DENIALS, Topic.FEED),
                           inline=(Topic.BOOK,))  # no loop iteration between a frame and the strategies
        await self.bus.start()
        assert self.core is not None
        self.core.start()
        for actor in self.actors:  # before any book: each strategy manages what it held from the first tick on
            recovered = self._recovered.pop(actor.strategy_id, [])
            if recovered:
                self.core.recover(actor, recovered)
        for event in self._adoption_events:  # fills and updates of adopted orders, booked like any other
            self.bus.publish(event)
        self._adoption_events.clear()
        self._start_periodic()
        await self._wait_feeds()
        if self.router is not None and self.orders.working_orders():
            # Orders adopted at restart may have filled between the broker snapshot and the trading stream's
            # subscription, and trade_updates does not replay: read them once more now that the stream listens.
            self._tasks.append(asyncio.create_task(self.router.reconcile_open_orders(), name="startup-reread"))
        self._tasks.append(asyncio.create_task(self._reread_broker_orders(), name="startup-broker-orders"))
        self._start_service_hooks()
        # Start-up objects (modules, Numba, the book) leave the collector's view: a full collection over them
        # stopped the loop for ~0.3 s now and then; what the running engine allocates is still collected.
        gc.collect()
        gc.freeze()
        self.notifier.ready(self.status_line())
        self.ready.set()
        log.info("engine_ready", mode=cfg.engine.mode, strategies=[a.strategy_id for a in self.actors],
                 contracts=sum(len(b) for b in self.market.books.values()))

    def _start_recorder(self) -> None:
        from engine.service.record import recorder_for

        self.recorder = recorder_for(self.cfg, state_path(self.cfg, self.config_path))
        if self.recorder is not None:
            self.recorder.start()

    def _archive_for_fresh_start(self) -> None:
        """``--fresh``: move the journal and the simulator's saved account aside (never deleted) and say where."""
        if self.cfg.engine.mode != "sim":
            raise StartupError(f"--fresh starts a new simulated account; in {self.cfg.engine.mode} mode the account "
                               "is Alpaca's (point engine.state_dir elsewhere for a new journal)")
        from engine.sim.state import StateError
        from engine.sim.store import archive, archive_dir_name, unused

        state_dir = state_path(self.cfg, self.config_path)
        into = archive_dir_name(state_dir)
        try:
            with unused(state_dir / SIM_STATE_DIR):
                moved = archive([*journal_files(state_dir), state_dir / SIM_STATE_DIR], into)
        except StateError as exc:
            raise StartupError(f"cannot archive for --fresh: {exc}") from exc
        if moved:
            self.archived_to = into
            log.info("state_archived", archived_to=str(into), files=[p.name for p in moved])
        else:
            log.info("fresh_start", state_dir=str(state_dir), archived_to=None)

    def _check_account(self) -> None:
        """The journal must belong to the account the broker reports; bind a journal on its first use."""
        assert self.journal is not None and self.broker_account is not None
        try:
            first_use = check_account(self.journal.bound_account(), self.broker_account, self.journal.has_history(),
                                      str(self.journal.path))
        except AccountMismatch as exc:
            raise StartupError(str(exc)) from exc
        if first_use:
            self.journal.bind_account(self.broker_account)
            log.info("journal_bound_to_account", account_id=self.broker_account.account_id,
                     mode=self.broker_account.mode)

    async def _endpoints(self) -> Endpoints:
        cfg = self.cfg
        if cfg.engine.mode == "sim":
            from engine.sim.server import SimError, Simulator

            try:
                self.sim = Simulator(cfg.sim, state_dir=state_path(cfg, self.config_path) / SIM_STATE_DIR)
            except SimError as exc:
                raise StartupError(str(exc)) from exc
            urls = await self.sim.start()
            return Endpoints(urls.trading_url, urls.data_url, urls.options_stream_url, urls.stocks_stream_url,
                             urls.trading_stream_url, urls.key, urls.secret)
        creds = load_credentials(cfg)
        if creds is None:
            raise SystemExit(f"{cfg.engine.mode} mode needs API keys: set ${cfg.alpaca.key_id_env} and "
                             f"${cfg.alpaca.secret_key_env} or [alpaca] credentials_file")
        return alpaca_endpoints(cfg.alpaca, cfg.engine.mode, creds.key_id.reveal(), creds.secret_key.reveal())

    async def _startup_call(self, call: Callable[[], Any], attempts: int = 5) -> Any:
        """A start-up REST call that waits out 429s (a restart must not die on the rate limit it shares with
        the run before it): up to ``attempts`` tries, each after the broker's reset (at most 65 s).
        Other errors still fail the start."""
        for attempt in range(attempts):
            try:
                return await call()
            except RateLimited as exc:
                if attempt == attempts - 1:
                    raise
                wait = min(max(exc.retry_after, 0.5), 65.0)
                log.warning("startup_rate_limited", retry_in_s=round(wait, 1), attempt=attempt + 1)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _fetch_account(self) -> AccountView:
        assert self.broker is not None
        acct = await self.broker.account()
        self.broker_account = BoundAccount(acct.id, self.cfg.engine.mode)
        equity = acct.equity
        return AccountView(equity, acct.cash, acct.buying_power,
                           equity if acct.options_buying_power is None else acct.options_buying_power,
                           3 if acct.options_level is None else acct.options_level)

    async def _start_observability(self) -> None:
        cfg = self.cfg
        self.metrics_server = MetricsServer(self.metrics, cfg.engine.metrics_host, cfg.engine.metrics_port,
                                            health=self.health, status=self.status)
        try:
            await self.metrics_server.start()
        except OSError as exc:
            log.warning("metrics_unavailable", error=str(exc), port=cfg.engine.metrics_port)
            self.metrics_server = None
        self.loop_lag = LoopLagMonitor(self.metrics)
        self.loop_lag.start()
        if cfg.redis.enabled:
            from engine.service.logging import redactor

            self.publisher = Publisher(cfg.redis.url, cfg.redis.prefix, stream_maxlen=cfg.redis.stream_maxlen,
                                       queue_bound=cfg.redis.queue_bound, alert_buffer=cfg.redis.alert_buffer,
                                       journal=self.journal, redactor=redactor())
            self.publisher.register_metrics(self.metrics)
            self.publisher.start()
            if not await self.publisher.wait_connected(10.0):
                log.warning("redis_not_connected_yet", url=cfg.redis.url)

    def _build_trading(self, account: AccountView) -> None:
        cfg = self.cfg
        assert self.broker is not None
        for name, scfg in cfg.strategy_configs().items():
            if getattr(scfg, "enabled", True):
                self.actors.append(build_strategy(name, scfg))
        self.router = Router(self.broker, self.orders, self.market, self.clock, self.bus.publish,
                             journal=self.journal, client_order_prefix=cfg.engine.client_order_prefix,
                             rules=cfg.orders, config=RouterConfig(requests_per_minute=cfg.orders.requests_per_minute))
        self.settlements = SettlementPoller(self.broker, self.portfolio, self.bus.publish, self._submit_engine_intent,
                                            now_ns=self.clock.now_ns, busy=self._structure_busy,
                                            spot=self.market.spot)
        prefix_len = len(cfg.engine.client_order_prefix) + 1
        self.router.on_order_written = lambda cid, wall: self._order_written(cid[prefix_len:], wall)
        self.core = TradingCore(
            clock=self.clock, market=self.market, portfolio=self.portfolio, router=self.router,
            gate=RiskGate(cfg.risk), breakers=Breakers(cfg.risk.breakers), actors=self.actors, account=account,
            journal=self.journal, publisher=self.publisher, metrics=self.metrics, alert=self.alert,
        )

    async def _reconcile(self) -> None:
        """Journal vs broker after a restart: adopt, cancel, import; rebuild the portfolio from fills."""
        assert self.journal is not None and self.broker is not None and self.router is not None
        state = self.journal.read_state()
        broker = self.broker
        open_orders = await self._startup_call(lambda: broker.orders("open"))
        recent = await self._startup_call(lambda: broker.orders("all"))
        positions = await self._startup_call(broker.positions)
        activities = await self._startup_call(broker.executions)  # every page (one page only missed fills)
        now = time.time_ns()
        plan = reconcile(state, BrokerState(open_orders, recent, positions, activities),
                         ReconcilePolicy(self.cfg.engine.unknown_order_policy, self.cfg.engine.client_order_prefix),
                         now)
        for cancel in plan.cancel:
            with contextlib.suppress(VenueError):
                await broker.cancel(cancel.order_id)
        journaled: dict[str, list[OrderFilled]] = {}
        for fill in [jf.fill for jf in state.fills] + list(plan.import_fills):  # the imports are journaled below
            journaled.setdefault(fill.parent_order_id or fill.order_id, []).append(fill)
        self._journaled_at_start = journaled
        for adopt in plan.adopt:
            self.orders.expect(adopt.client_order_id, OrderTags(adopt.strategy_id, adopt.structure_id,
                                                                adopt.intent_id))
            self.orders.preload(adopt.order_id, journaled.get(adopt.order_id, ()))
            with contextlib.suppress(VenueError):
                # The order may have filled since the open-orders snapshot: what this read shows is counted by
                # the state machine now and must be booked, or no later read would ever book it again.
                self._adoption_events.extend(self.orders.on_order(await broker.order(adopt.order_id), now))
        for update in plan.order_updates:
            self.journal.record_order(update)
        for abandon in plan.abandon:
            self.journal.record_order(abandoned_update(abandon, state, now))
        for jf in state.fills:
            self.portfolio.on_fill(jf.fill)
        completed: list[OrderFilled] = []
        if self.settlements is not None:
            completed = self.settlements.resume([jf.fill for jf in state.fills],
                                                [i.intent.intent_id for i in state.intents.values()])
        for fill, source in [(f, "broker_activity") for f in plan.import_fills] + [(f, "engine") for f in completed]:
            seq = self.journal.record_fill(fill, source=source)
            if seq is not None:
                self.portfolio.on_fill(fill)
                if self.publisher is not None:  # the fills stream must carry every journaled fill
                    self.publisher.publish_fill(seq, fill)
        open_ids = [s.structure_id for s in self.portfolio.structures() if s.is_open]
        fills = [jf.fill for jf in state.fills] + list(plan.import_fills) + completed
        self._recovered = recovered_structures(state, fills, open_ids)
        for alert in plan.alerts:
            self.alert(alert)
        self.reconcile_summary = {"adopted": len(plan.adopt), "cancelled": len(plan.cancel),
                                  "imported_fills": len(plan.import_fills), "alerts": len(plan.alerts),
                                  "journal_fills": len(state.fills)}
        log.info("reconciled", **self.reconcile_summary)

    async def _reread_broker_orders(self) -> None:
        """Orders the broker placed itself (an expiry-day liquidation) can fill between the restart's reads and the
        trading stream's subscription, and trade_updates does not replay: once the stream listens, read the recent
        ones again, each through the order state machine preloaded with what the journal holds, so only what the
        journal lacks is booked (and the stream's report of it, if it comes, is absorbed)."""
        journaled, self._journaled_at_start = self._journaled_at_start, {}
        assert self.broker is not None
        broker = self.broker
        try:
            orders = await self._startup_call(lambda: broker.orders("all"))
        except VenueError as exc:
            log.warning("broker_orders_reread_failed", error=str(exc))
            return
        ours = self.cfg.engine.client_order_prefix + "-"
        now = time.time_ns()
        for order in orders:
            if order.client_id.startswith(ours) or not order.filled_qty > 0.0:
                continue
            if self.orders.get(order.id) is None:
                self.orders.preload(order.id, journaled.get(order.id, ()))
            for event in self.orders.on_order(order, now):
                self.bus.publish(event)

    async def _prime_market(self) -> None:
        """Underlying quotes first (the clock starts at their time), then the option book within budget."""
        assert self.broker is not None and self.option_feed is None
        underlyings = sorted({u for a in self.actors for u in a.underlyings})
        for u in underlyings:
            quote = await self.broker.stock_quote(u)
            if quote is not None and quote.bid > 0 and quote.ask > 0:
                ts = quote.ts_ns or time.time_ns()
                self.market.book(u)
                self.market.on_underlying_quote(u, quote.bid, quote.ask, ts)
                self.clock.advance(ts)
        quotes_cap = PLAN_QUOTE_CAPS[self.cfg.alpaca.options_feed]
        if self.cfg.engine.mode == "sim":
            quotes_cap = min(quotes_cap, int(getattr(self.cfg.sim, "option_symbol_cap", quotes_cap)))
        feed_cfg = FeedConfig()
        self.option_feed = option_client(
            self.endpoints.options_stream_url if self.endpoints else "", self.endpoints.key if self.endpoints else "",
            self.endpoints.secret if self.endpoints else "", self.market.option_index,
            on_batch=self._on_option_batch, publish=self.bus.publish, max_quotes=quotes_cap, config=feed_cfg,
            market_open=self._market_open,
        )
        ranges = tuple(sorted({a.dte_range() for a in self.actors})) or ((0, 45),)
        budget = SubscriptionBudget(BudgetConfig(cap=quotes_cap, dte_ranges=ranges))
        catalog = ContractCatalog(self.broker, on_ppind=self.router.ticks.observe if self.router else None)
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

    def _start_feeds(self) -> None:
        assert self.endpoints is not None
        ep = self.endpoints
        underlyings = sorted(self.market.books)
        self.stock_feed = stock_client(ep.stocks_stream_url, ep.key, ep.secret, self.market.stock_index,
                                       on_batch=self._on_stock_batch, publish=self.bus.publish,
                                       market_open=self._market_open)
        self.stock_feed.set_subscription(underlyings)
        self.trading_feed = TradingStreamClient(ep.trading_stream_url, ep.key, ep.secret,
                                                on_update=self._on_trade_update, publish=self.bus.publish)
        if self.recorder is not None:
            from engine.replay.format import OPTIONS, STOCKS, TRADING

            for stream, feed in ((OPTIONS, self.option_feed), (STOCKS, self.stock_feed), (TRADING, self.trading_feed)):
                feed.on_raw_frame = self.recorder.tap(stream)
        self.option_feed.after_frame = self.stock_feed.after_frame = self._order_started
        for name, feed in (("options", self.option_feed), ("stocks", self.stock_feed),
                           ("trading", self.trading_feed)):
            self._tasks.append(asyncio.create_task(feed.run(), name=f"feed-{name}"))

    async def _wait_feeds(self) -> None:
        """Until every feed has finished its handshake (READY=1 must not come before); logs while waiting."""
        feeds = [self.option_feed, self.stock_feed, self.trading_feed]
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
            self.commands = CommandListener(cfg.redis.url, cfg.redis.prefix, secret, {
                "pause": lambda: self._set_paused(True),
                "resume": self._resume,
                "halt": lambda: self.core.set_state(TradingState.HALTED, "halt command") if self.core else None,
                "flatten": self._flatten,
                "reload": self.reloader.request_reload if self.reloader else (lambda: None),
            }, self.alert)
            self.commands.start()
        interval = watchdog_interval_s()
        if interval:
            self.watchdog = Watchdog(self.notifier, interval, lambda: self.health()[0],
                                     cfg.engine.watchdog_max_lag_ms / 1e3)
            self.watchdog.start()

    def _flatten(self) -> None:
        if self.core is not None:
            self.core.flatten()

    def _order_written(self, intent_id: str, wall_ns: int) -> None:
        if self.core is not None:
            latency = self.core.on_order_written(intent_id, wall_ns)
            if latency is not None:
                self.tick_to_order_ns.append(latency)

    def _order_started(self) -> bool:
        """True once per new intent the router took: the feed then lets its POST out before the next frame."""
        n = self.router.counters["intents"] if self.router is not None else 0
        if n == self._intents_seen:
            return False
        self._intents_seen = n
        return True

    def _structure_busy(self, structure_id: str) -> bool:
        """An order of the structure is in the router or working at the broker (adopted ones included)."""
        working = self.router.working.values() if self.router is not None else ()
        if any(wo.intent.structure_id == structure_id for wo in working):
            return True
        return any(o.tags.structure_id == structure_id for o in self.orders.working_orders())

    def _submit_engine_intent(self, intent: Any) -> None:
        if self.core is not None:
            self.core.submit(intent)

    def _set_paused(self, paused: bool) -> None:
        if self.core is not None:
            self.core.paused = paused

    def _resume(self) -> None:
        self._set_paused(False)
        if self.core is not None:
            self.core.set_state(TradingState.ACTIVE, "resume command")

    # ------------------------------------------------------------------------------------ hot path

    def _on_option_batch(self, batch: DataBatch) -> None:
        self.market.apply(batch, self.option_feed.frame_arrival_ns or time.time_ns())
        self.clock.advance(batch.last_ts_ns)

    def _on_stock_batch(self, batch: DataBatch) -> None:
        self.market.apply_stock_batch(batch, self.stock_feed.frame_arrival_ns or time.time_ns())
        self.clock.advance(batch.last_ts_ns)
        if self.core is not None:
            self.core.on_feed_recovered("stocks", batch.last_ts_ns)

    def _on_trade_update(self, update: OrderEvent) -> None:
        for event in self.orders.on_event(update, time.time_ns()):
            self.bus.publish(event)

    def _market_open(self) -> bool:
        now = self.clock.now_ns()
        return now == 0 or self.calendar.is_open(now)

    # ------------------------------------------------------------------------------------ events

    def _on_event(self, event: Any) -> None:
        core = self.core
        if core is None:
            return
        if isinstance(event, BookUpdated):
            core.on_book(event)
        elif isinstance(event, OrderFilled):
            if is_broker_fill(event):  # an order the engine did not place: a broker liquidation, an operator
                for part in self._attribute(event):
                    core.on_fill(part)
            else:
                core.on_fill(event)
        elif isinstance(event, OrderUpdated):
            core.on_order_update(event)
        elif isinstance(event, IntentDenied):
            core.on_denied(event)
        elif isinstance(event, FeedStale):
            core.on_feed_stale(event)
        elif isinstance(event, FeedConnected):
            self.feeds_connected.add(event.feed)
            if event.attempt > 1:
                self.metrics.feed_reconnects.inc(event.feed)
            if event.feed == "trading" and event.attempt > 1 and self.router is not None:
                asyncio.get_running_loop().create_task(self.router.reconcile_open_orders())

    def _attribute(self, fill: OrderFilled) -> list[OrderFilled]:
        """A fill of an order the engine did not place, booked to the structures it closed
        (engine/kernel/attribution.py).
        The order state machine passes each execution once (by execution id), so each is split once."""
        parts = attribute_broker_fill(fill, portfolio_holders(self.portfolio, fill.symbol))
        log.warning("broker_order_fill", order_id=fill.order_id, client_order_id=fill.client_order_id,
                    symbol=fill.symbol, side=str(fill.side), qty=fill.qty,
                    structures=[p.structure_id for p in parts])
        return parts

    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if len(self.alerts) > 1000:
            del self.alerts[:500]
        log.warning("alert", code=alert.code, severity=alert.severity, message=alert.message)
        if self.publisher is not None:
            self.publisher.publish_alert(alert)

    def _apply_config(self, new: EngineConfig, changes: list[ConfigChange]) -> None:
        """Hot reload: strategy params and risk limits, all or nothing (an exception rejects the reload)."""
        assert self.core is not None
        cfgs = new.strategy_configs()
        for actor in self.actors:
            scfg = cfgs.get(actor.strategy_id)
            if scfg is not None:
                actor.on_params(scfg)
        self.core.gate.set_limits(new.risk)
        self.core.breakers.set_limits(new.risk.breakers)
        from engine.service.logging import set_level

        set_level(new.engine.log_level)
        self.cfg = new

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
            if self.settlements is not None and (self.settlements.due() or (was_open and not is_open)):
                await self.settlements.poll()
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
            last = getattr(feed, "_last_data_mono", 0.0)
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
        gc.unfreeze()  # the process may go on (tests, embedding): this run's objects become collectable again

    async def _shutdown_steps(self) -> None:
        if self.reloader is not None:
            await self.reloader.stop()
        if self.commands is not None:
            await self.commands.stop()
        if self.core is not None:
            self.core.stop()
        # Housekeeping polls settlements (and may send an unwind) on its own clock: stop it before the
        # cancel below, or an order it sends afterwards could fill after the trading stream closes.
        self.stop_event.set()
        chores = [t for t in self._tasks if t.get_name() == "housekeeping"]
        for task in chores:
            task.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        if self.settlements is not None and await self.settlements.poll() and self.router is not None:
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
        if self.broker is not None:
            await self.broker.close()
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
        contracts = sum(len(b) for b in self.market.books.values())
        open_structures = self.portfolio.open_structures()
        return f"streaming {contracts} contracts, {len(self.actors)} strategies, {open_structures} open structures"

    def status(self) -> dict[str, Any]:
        return {"status": self.status_line(), "mode": self.cfg.engine.mode, "summary": self.summary(),
                "trading_state": self.core.breakers.state.name if self.core else "STARTING",
                "positions": dict(self.portfolio.positions()), "process": _process_stats(),
                "tick_to_order": _latency_stats(self.tick_to_order_ns)}

    def summary(self) -> dict[str, Any]:
        """Per strategy: structures opened and closed, fills, P&L, max |delta|, gate denials by reason."""
        out: dict[str, Any] = {"strategies": {}, "event_time": _iso(self.clock.now_ns()),
                               "wall_s": round(time.monotonic() - self._started_wall, 1) if self._started_wall else 0}
        core = self.core
        for actor in self.actors:
            sid = actor.strategy_id
            s = self.portfolio.strategy_summary(sid)
            tally = core.tally.get(sid) if core else None
            out["strategies"][sid] = {
                "structures_opened": s.structures_opened, "structures_closed": s.structures_closed, "fills": s.fills,
                "pnl": round(s.pnl_usd, 2), "realized_pnl": round(s.realized_usd, 2),
                "max_abs_delta": round(tally.max_abs_delta, 2) if tally else 0.0,
                "intents": tally.intents if tally else 0, "approved": tally.approved if tally else 0,
                "gate_denials": dict(tally.denials) if tally else {}, "stats": _plain(actor.stats()),
            }
        if self.router is not None:
            out["router"] = dict(self.router.counters)
        out["trading_state"] = core.breakers.state.name if core else "STARTING"
        if self.broker_account is not None:
            out["account"] = {"id": self.broker_account.account_id, "mode": self.broker_account.mode,
                              "cash": core.account.cash if core else None,
                              "equity": core.account.equity if core else None}
        out["positions"] = {s: q for s, q in sorted(self.portfolio.positions().items()) if abs(q) > 1e-9}
        if self.archived_to is not None:
            out["archived_to"] = str(self.archived_to)
        out["reconcile"] = self.reconcile_summary
        out["alerts"] = len(self.alerts)
        return out


def _iso(ts_ns: int) -> str:
    if not ts_ns:
        return ""
    return ny_datetime(ts_ns).isoformat(timespec="seconds")


def _process_stats() -> dict[str, int]:
    """Resource counts the soak watches for leaks: RSS, asyncio tasks, open file descriptors and sockets."""
    import os

    rss = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    fds = sockets = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            fds += 1
            with contextlib.suppress(OSError):
                sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return {"rss_bytes": rss, "asyncio_tasks": len(asyncio.all_tasks()), "open_fds": fds, "open_sockets": sockets}


def _latency_stats(samples: collections.deque[int], last: int = 1000) -> dict[str, float]:
    """Tick-to-order latency over the last ``last`` orders (microseconds) and the count ever kept."""
    recent = list(samples)[-last:]
    if not recent:
        return {"n": 0, "p50_us": 0.0, "p99_us": 0.0}
    recent.sort()
    return {"n": len(samples), "p50_us": recent[len(recent) // 2] / 1e3,
            "p99_us": recent[min(len(recent) - 1, int(len(recent) * 0.99))] / 1e3}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}

