"""Replay a recording through the engine: same protocols, book, strategies, gate and router.

Frames are fed in file order to the feeds' protocol objects (``OptionProtocol``, ``StockProtocol``);
each decoded batch moves the recorded market of the in-process exchange, then the engine's book, then
the event clock (which fires strategy timers and the router's price walks). The router's orders go to
``ReplayBroker`` -> the simulator's ``Exchange``; its trade updates come back as ``trade_updates``
frames through ``TradingProtocol`` and the order state machine, like on the live trading stream.

Determinism: events are dispatched synchronously (no bus tasks), and after every frame all order work
is drained (router tasks, exchange updates, the events they cause) before the next frame is read, so
the same file and config always give the same fills; ``fills_hash`` is their SHA-256.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import structlog

from domain.orders import IntentDenied, OrderFilled, OrderIntent
from domain.views import AccountView
from engine.alpaca.decode import order_event
from engine.alpaca.feeds.options.protocol import OptionProtocol
from engine.alpaca.feeds.stocks.protocol import StockProtocol
from engine.alpaca.feeds.trading.protocol import TradeUpdateReceived, TradingProtocol
from engine.kernel.clock import EventClock
from engine.kernel.events import BookUpdated, SurfaceFitted
from engine.kernel.kernel import TradingKernel
from engine.kernel.market_data import KIND_QUOTE, DataBatch
from engine.kernel.request_budget import RequestBudget
from engine.replay.broker import ReplayBroker
from engine.replay.exchange import RecordedMarket, replay_exchange
from engine.replay.format import META, OPTIONS, STOCKS, SURFACE, read_records, recording_files
from engine.replay.timeline import Timeline
from engine.report.stats import mark_check, strategy_stats
from engine.service.config import EngineConfig
from engine.service.settings import kernel_settings
from greeks.calendar import NS_PER_SECOND

log = structlog.get_logger(__name__)

ACCOUNT_REFRESH_NS = 15 * NS_PER_SECOND


class _Meta(msgspec.Struct):
    kind: str
    underlying: str = ""
    symbols: list[str] = []
    open_interest: list[int] = []
    primed: bool = False
    """Written by the recorder: the frames that follow at the same receive time are the book the engine
    primed over REST, not stream events."""


@dataclass(slots=True)
class ReplayResult:
    """What a replay produced."""

    fills: list[OrderFilled]
    approved: list[OrderIntent]
    denials: list[IntentDenied]
    frames: int
    messages: int
    wall_s: float
    summary: dict[str, Any]
    timeline: Timeline
    tick_to_order_ns: list[int] = field(default_factory=list)

    @property
    def fills_hash(self) -> str:
        return fills_hash(self.fills)

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0


def fills_hash(fills: list[OrderFilled]) -> str:
    """SHA-256 over every fill's order id, symbol, side, quantity, price and event time, in order."""
    h = hashlib.sha256()
    for f in fills:
        h.update(f"{f.client_order_id}|{f.symbol}|{f.side.value}|{f.qty:.6f}|{f.price:.6f}|{f.ts_event_ns}\n".encode())
    return h.hexdigest()


class Replay:
    """One replay run of ``path`` (a file or a directory of rotated files) under ``cfg``."""

    def __init__(
        self,
        cfg: EngineConfig,
        path: str | Path,
        *,
        speed: float | None = None,
        sample_every_s: float = 60.0,
        coalesce_ms: float = 0.0,
        on_intent_approved: Callable[[OrderIntent], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.files = recording_files(path)
        self.speed = speed
        self.coalesce_ns = int(coalesce_ms * 1_000_000)
        """Frames received within this of the first of a group are applied before the engine reacts. The live
        engine reacts to every frame (the core takes book updates inline), so the default is 0: one reaction
        per frame; a positive value trades fidelity for speed on very dense recordings."""
        self._on_approved_hook = on_intent_approved
        self.clock = EventClock()
        self.events: collections.deque[Any] = collections.deque()
        self._books: dict[str, BookUpdated] = {}
        self.recorded = RecordedMarket()
        sim = cfg.sim
        self.exchange = replay_exchange(self.recorded, initial_cash=sim.initial_cash,
                                        options_level=sim.options_approved_level,
                                        seed=sim.seed)
        self.broker = ReplayBroker(self.exchange)
        self.kernel = TradingKernel(kernel_settings(cfg), self.broker, publish=self._publish, account=self._account(),
                                    clock=self.clock, quote_clock=self.clock.now_ns, alert=self._alert,
                                    request_budget=RequestBudget(1e12, burst=1e12), settlements=False)
        """The same kernel class the live engine runs; only the clock, the queue and the exchange differ."""
        self.market, self.orders, self.portfolio = self.kernel.market, self.kernel.orders, self.kernel.portfolio
        self.router, self.core, self.actors = self.kernel.router, self.kernel.core, self.kernel.actors
        self.options = OptionProtocol("", "", self.market.option_index)
        self.stocks = StockProtocol("", "", self.market.stock_index)
        self.trading = TradingProtocol("", "")
        self.core.on_intent_approved = self._approved
        self.core.on_intent_denied = self._denied
        self.fills: list[OrderFilled] = []
        self.approved: list[OrderIntent] = []
        self.denials: list[IntentDenied] = []
        self.alerts: list[Any] = []
        self.timeline = Timeline([a.strategy_id for a in self.actors], int(sample_every_s * NS_PER_SECOND),
                                 self.market)
        self.frames = 0
        self.messages = 0
        self.setup_s = 0.0
        """Wall time spent registering contracts (META records), left out of the replay speed."""
        self._next_account_ns = 0

    # ------------------------------------------------------------------------------------ run

    async def run(self) -> ReplayResult:
        """Feed every record; frames received at the same instant are applied together, then the engine reacts."""
        self.kernel.start()
        await self._settle()
        wall0 = time.perf_counter()
        pace_wall0 = time.monotonic()
        pace_ev0 = 0
        pending = False
        group_ns = -1
        snapshot_ns = -1
        for path in self.files:
            for stream, recv_ns, frame in read_records(path, prefetch=4):
                if pending and recv_ns - group_ns > self.coalesce_ns:
                    await self._react()
                    pending = False
                if not pending:
                    group_ns = recv_ns
                if self.speed is not None and recv_ns:
                    pace_ev0 = pace_ev0 or recv_ns
                    ahead = (recv_ns - pace_ev0) / NS_PER_SECOND / self.speed - (time.monotonic() - pace_wall0)
                    if ahead > 0.001:
                        await asyncio.sleep(ahead)
                if stream == SURFACE:  # a fit the live engine put in force here, after the frames before it
                    if pending:
                        await self._react()
                        pending = False
                    self.kernel.surfaces.apply_recorded(frame)
                    continue
                if stream == META:
                    t_meta = time.perf_counter()
                    if self._on_meta(frame):
                        snapshot_ns = recv_ns
                    self.setup_s += time.perf_counter() - t_meta
                    continue
                if stream == OPTIONS:
                    data = self._on_option_frame(frame)
                elif stream == STOCKS:
                    data = self._on_stock_frame(frame)
                else:
                    continue  # TRADING: the live session's own trade updates; the replay exchange makes its own
                # book state primed over REST (written with the META record) is no event of its own: the
                # next frame's update carries it to the strategies, as in the live engine
                pending = pending or (data and recv_ns != snapshot_ns)
        if pending:
            await self._react()
        wall = time.perf_counter() - wall0 - self.setup_s
        self.kernel.stop()
        await self._settle()
        self.timeline.sample(self.clock.now_ns(), self.portfolio, force=True)
        return ReplayResult(self.fills, self.approved, self.denials, self.frames, self.messages, wall,
                            self.summary(), self.timeline, self.tick_to_order_ns)

    async def _react(self) -> None:
        """After the frames of one instant: timers due, exchange matching, then the engine's reactions."""
        now = self.recorded.clock.now_ns
        if now >= self._next_account_ns:
            self._next_account_ns = now + ACCOUNT_REFRESH_NS
            self.core.account = self._account()
        self.clock.advance(now)  # strategy timers and the router's walks due by now fire here
        if self._open_orders():
            self.exchange.on_step()
        await self._settle()
        self.timeline.sample(now, self.portfolio)

    def _open_orders(self) -> bool:
        return any(o.parent is None and o.is_open for o in self.exchange.orders.values())

    # ------------------------------------------------------------------------------------ frames

    def _on_option_frame(self, frame: bytes) -> bool:
        self.frames += 1
        data = False
        for ev in self.options.receive(frame):
            if isinstance(ev, DataBatch) and ev.n:
                self.messages += ev.n
                self.recorded.on_option_batch(ev)
                self.recorded.clock.move(ev.last_ts_ns)
                self.market.apply(ev, time.time_ns())
                data = True
        return data

    def _on_stock_frame(self, frame: bytes) -> bool:
        self.frames += 1
        data = False
        for ev in self.stocks.receive(frame):
            if isinstance(ev, DataBatch) and ev.n:
                self.messages += ev.n
                index = self.market.stock_index
                for i in range(ev.n):
                    g = int(ev.gid[i])
                    if ev.kind[i] == KIND_QUOTE and g >= 0:
                        self.recorded.on_stock_quote(index.symbol(g), float(ev.bid[i]), float(ev.ask[i]))
                self.recorded.clock.move(ev.last_ts_ns)
                self.market.apply_stock_batch(ev, time.time_ns())
                data = True
        return data

    def _on_meta(self, frame: bytes) -> bool:
        """Apply a META record; True when it announces REST-primed book state."""
        try:
            meta = msgspec.json.decode(frame, type=_Meta)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("replay_bad_meta_record", error=str(exc))
            return False
        if meta.kind == "surfaces":  # the live fits are in the recording: apply those, fit nothing here
            self.kernel.surfaces.recorded = True
        if meta.kind == "contracts" and meta.underlying:
            oi = dict(zip(meta.symbols, meta.open_interest, strict=False))
            fresh = [s for s in meta.symbols if self.market.option_index.id_of(s) < 0]
            self.market.book(meta.underlying)
            self.recorded.add_underlying(meta.underlying)
            if fresh:
                self.market.add_contracts(meta.underlying, fresh, [oi.get(s, 0) for s in fresh] if oi else None)
                gids = [self.market.option_index.id_of(s) for s in fresh]
                self.recorded.add_contracts(gids, fresh, meta.underlying)
        return meta.primed

    # ------------------------------------------------------------------------------------ draining

    async def _settle(self) -> None:
        """Dispatch every queued event and finish all order work it causes (deterministic order).

        As on the bus: lossless events (orders, fills, denials) first, then the newest book update per
        underlying (conflated).
        """
        tasks = self.router._tasks  # the router's in-flight order work (each task finishes without real I/O here)
        books = self._books
        while True:
            if self.events:
                while self.events:
                    self._dispatch(self.events.popleft())
                continue
            if books:
                update = books.pop(next(iter(books)))
                self.kernel.dispatch(update)
                continue
            if tasks:
                await asyncio.sleep(0)
                continue
            if self.broker.stream:
                frame = self.broker.stream.popleft()
                for ev in self.trading.receive(frame):
                    if isinstance(ev, TradeUpdateReceived):
                        self.kernel.on_order_event(order_event(ev.update), time.time_ns())
                continue
            return

    def _publish(self, event: Any) -> None:
        if isinstance(event, BookUpdated):
            self._books.pop(event.underlying, None)
            self._books[event.underlying] = event
        else:
            self.events.append(event)

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, SurfaceFitted):
            self.timeline.on_surface(event)
        self.kernel.dispatch(event)
        if isinstance(event, OrderFilled):
            self.fills.append(event)
            self.timeline.on_fill(event, self.portfolio)  # after booking: the structure's state includes it

    # ------------------------------------------------------------------------------------ hooks

    def _approved(self, intent: OrderIntent, _trigger_wall_ns: int) -> None:
        self.approved.append(intent)
        if self._on_approved_hook is not None:
            self._on_approved_hook(intent)

    def _denied(self, denied: IntentDenied) -> None:
        self.denials.append(denied)
        self.timeline.on_denied(denied)

    def _alert(self, alert: Any) -> None:
        self.alerts.append(alert)

    def _account(self) -> AccountView:
        acct = self.exchange.account
        equity = acct.cash
        for sym, pos in acct.positions.items():
            bid, ask = self.exchange.quote(pos.instrument)
            mark = 0.5 * (bid + ask) if bid > 0 and ask > 0 else pos.avg_entry_price
            equity += pos.qty * mark * pos.instrument.multiplier
            del sym
        bp = acct.buying_power()
        return AccountView(equity, acct.cash, bp, bp, acct.options_level)

    # ------------------------------------------------------------------------------------ summary

    @property
    def tick_to_order_ns(self) -> list[int]:
        return list(self.kernel.tick_to_order_ns)

    def summary(self) -> dict[str, Any]:
        """Per strategy: structures, fills, P&L, intents, approvals and gate denials (as ``Engine.summary``)."""
        out: dict[str, Any] = {"strategies": self.kernel.strategy_summary()}
        out["router"] = dict(self.router.counters)
        out["trading_state"] = self.core.breakers.state.name
        out["alerts"] = len(self.alerts)
        out["frames"], out["messages"] = self.frames, self.messages
        out["malformed_frames"] = self.options.malformed_frames + self.stocks.malformed_frames
        out["surface"] = self.kernel.surface_summary()
        out["marks"] = self.mark_check()
        return out

    def mark_check(self) -> dict[str, Any]:
        """The P&L curves' largest jumps (surface-marked, raw mids), the largest true fill P&L change and the max
        drawdowns, per strategy and over all (``engine.report.stats`` defines each)."""
        tl = self.timeline
        per = {sid: strategy_stats([], [v for _, v in tl.pnl[sid]], tl.every_ns / NS_PER_SECOND,
                                   raw_curve=[v for _, v in tl.pnl_raw[sid]],
                                   realized_curve=[v for _, v in tl.realized[sid]]) for sid in tl.strategies}
        check = mark_check(list(per.values()))
        return {"largest_jump_usd": round(check.largest_jump_usd, 2),
                "largest_jump_raw_usd": None if check.largest_jump_raw_usd is None
                else round(check.largest_jump_raw_usd, 2),
                "largest_fill_change_usd": round(check.largest_fill_change_usd, 2), "ok": check.ok,
                "leg_samples": tl.leg_samples, "surface_leg_samples": tl.surface_leg_samples,
                "strategies": {sid: {"max_drawdown_usd": round(s.max_drawdown_usd, 2),
                                     "max_drawdown_raw_usd": round(s.max_drawdown_raw_usd or 0.0, 2),
                                     "largest_jump_usd": round(s.largest_jump_usd, 2),
                                     "largest_jump_raw_usd": round(s.largest_jump_raw_usd or 0.0, 2),
                                     "largest_fill_change_usd": round(s.largest_fill_change_usd, 2)}
                               for sid, s in per.items()}}

    def session_data(self, *, title: str) -> Any:
        """The report's input for this run (call after ``run``)."""
        return self.timeline.session(self.portfolio, title=title, source=", ".join(str(f) for f in self.files),
                                     latency_ns=self.tick_to_order_ns, summary=self.summary(),
                                     now_ns=self.clock.now_ns())
