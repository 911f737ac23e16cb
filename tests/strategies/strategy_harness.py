"""A small event-time driver for one actor: real gate, real portfolio, synthetic book, instant fills.

It implements ``StrategyContext``: ``submit`` runs the real risk gate; an approved intent fills at once
(per leg at mid, or not at all with ``fill=False`` or when it sells a leg bid at zero, which the simulator
never fills either: it stays working), producing the same ``OrderFilled`` and
``OrderUpdated`` events the engine would; a denial comes back as ``IntentDenied``. Events are
delivered after the hook that caused them returns (never re-entrantly). ``advance`` moves event time,
fires due timers in order, reprices the books and calls ``on_book``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from support.synthetic import SyntheticChain, SyntheticMarket

from domain.orders import (
    AssetClass,
    IntentDenied,
    OrderFilled,
    OrderIntent,
    OrderStatus,
    OrderUpdated,
    Side,
    TradingState,
)
from domain.views import AccountView
from engine.kernel.portfolio import Portfolio
from risk.gate import Approved, Denied, RiskGate
from risk.limits import RiskLimits
from risk.rate import RateBudget


class Harness:
    def __init__(self, strategy: Any, chains: list[SyntheticChain], now_ns: int, equity: float = 100_000.0,
                 limits: RiskLimits | None = None, fill: bool = True) -> None:
        self.strategy = strategy
        self._now = now_ns
        self._market = SyntheticMarket(*chains)
        self._portfolio = Portfolio()
        self.gate = RiskGate(limits or RiskLimits())
        self.rate = RateBudget()
        self.state = TradingState.ACTIVE
        self.fill = fill
        self._account = AccountView(equity, equity, 2 * equity, equity)
        self._timers: dict[str, int] = {}
        self._queue: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)
        self.submitted: list[OrderIntent] = []
        self.approved: list[OrderIntent] = []
        self.denied: list[IntentDenied] = []
        self.fills: list[OrderFilled] = []
        self.working: list[OrderIntent] = []
        self.timer_log: list[tuple[str, int]] = []
        strategy.on_start(self)
        self._drain()

    # ---- StrategyContext
    @property
    def now_ns(self) -> int:
        return self._now

    @property
    def market(self) -> SyntheticMarket:
        return self._market

    @property
    def portfolio(self) -> Portfolio:
        return self._portfolio

    def account(self) -> AccountView:
        return self._account

    def submit(self, intent: OrderIntent) -> None:
        self.submitted.append(intent)
        self._queue.append(("intent", intent))

    def cancel(self, intent_id: str) -> None:
        for intent in list(self.working):
            if intent.intent_id == intent_id:
                self.working.remove(intent)
                self._queue.append(("update", self._update(intent, OrderStatus.CANCELED, 0.0)))

    def set_timer(self, name: str, at_ns: int) -> None:
        self._timers[name] = at_ns

    def cancel_timer(self, name: str) -> None:
        self._timers.pop(name, None)

    # ---- driving
    def chain(self, underlying: str = "SPY") -> SyntheticChain:
        c = self._market.chain(underlying)
        assert c is not None
        return c

    def advance(self, to_ns: int, spot: dict[str, float] | float | None = None, vol_shift: float | None = None,
                quotes: bool = True) -> None:
        """Move event time to ``to_ns`` (firing due timers), reprice every book, deliver ``on_book``.

        ``quotes=False`` moves spot and Greeks but leaves every option quote at its old time (stale).
        """
        while True:
            due = sorted((at, name) for name, at in self._timers.items() if at <= to_ns)
            if not due:
                break
            at, name = due[0]
            del self._timers[name]
            self._now = max(self._now, at)
            self.timer_log.append((name, at))
            self.strategy.on_timer(name, at)
            self._drain()
        self._now = to_ns
        for u, chain in self._market.chains.items():
            s = spot.get(u) if isinstance(spot, dict) else spot
            if quotes:
                chain.reprice(s, to_ns, vol_shift)
            else:
                chain.reprice(s, to_ns, vol_shift, rows=np.zeros(len(chain), dtype=np.bool_))
            self._portfolio.on_book(chain)
            self.strategy.on_book(chain)
            self._drain()

    def give_shares(self, symbol: str, qty: float, price: float) -> None:
        """Book ``qty`` shares of ``symbol`` held by another strategy (stock the account owns anyway)."""
        self._portfolio.on_fill(OrderFilled(f"x{next(self._ids)}", "o-shares", "shares", symbol, Side.BUY, qty, price,
                                            self._now, self._now, AssetClass.EQUITY, "other", "other-shares"))

    def set_account(self, equity: float, cash: float | None = None) -> None:
        self._account = AccountView(equity, equity if cash is None else cash, 2 * equity, equity)

    def expire_working(self) -> None:
        """End every working order unfilled (the router's timeout)."""
        for intent in list(self.working):
            self.working.remove(intent)
            self._queue.append(("update", self._update(intent, OrderStatus.CANCELED, 0.0)))
        self._drain()

    def fill_working(self) -> None:
        for intent in list(self.working):
            self.working.remove(intent)
            self._fill(intent)
        self._drain()

    # ---- internals
    def _drain(self) -> None:
        while self._queue:
            kind, item = self._queue.pop(0)
            if kind == "intent":
                self._process(item)
            elif kind == "fill":
                self._portfolio.on_fill(item)
                self.strategy.on_fill(item)
            elif kind == "update":
                self.strategy.on_order_update(item)
            elif kind == "denied":
                self.strategy.on_denied(item)

    def _process(self, intent: OrderIntent) -> None:
        verdict = self.gate.check(intent, self._portfolio, self._market, self._account, self.state, self._now,
                                  self.rate)
        if isinstance(verdict, Denied):
            ev = verdict.to_event(intent, self._now, self._now)
            self.denied.append(ev)
            self._queue.append(("denied", ev))
            return
        assert isinstance(verdict, Approved)
        self.rate.record(self._now)
        self.approved.append(intent)
        if self.fill and self._marketable(intent):
            self._fill(intent)
        else:
            self.working.append(intent)

    def _marketable(self, intent: OrderIntent) -> bool:
        """False when a leg is sold into no bid: like the simulator (and an exchange), no fill, the order works on."""
        chain = self._market.chain(intent.underlying)
        assert chain is not None
        return all(leg.asset_class is AssetClass.EQUITY or leg.side is Side.BUY
                   or chain.bid[chain.row_of(leg.symbol)] > 0 for leg in intent.legs)

    def _fill(self, intent: OrderIntent) -> None:
        chain = self._market.chain(intent.underlying)
        assert chain is not None
        order_id = f"o{next(self._ids)}"
        prices: list[float] = []
        for leg in intent.legs:
            if leg.asset_class is AssetClass.EQUITY:
                prices.append(chain.spot)
            else:
                r = chain.row_of(leg.symbol)
                prices.append(0.5 * (float(chain.bid[r]) + float(chain.ask[r])))
        net = sum(leg.side.sign * leg.ratio * p for leg, p in zip(intent.legs, prices, strict=True))
        for leg, price in zip(intent.legs, prices, strict=True):
            fill = OrderFilled(f"x{self.now_ns}-{next(self._ids)}", order_id, intent.intent_id, leg.symbol, leg.side,
                               float(leg.ratio * intent.qty), price, self._now, self._now, leg.asset_class,
                               intent.strategy_id, intent.structure_id, intent.intent_id,
                               parent_net_price=net if intent.is_multi_leg else None)
            self.fills.append(fill)
            self._queue.append(("fill", fill))
        self._queue.append(("update", self._update(intent, OrderStatus.FILLED, float(intent.qty))))

    def _update(self, intent: OrderIntent, status: OrderStatus, filled: float) -> OrderUpdated:
        return OrderUpdated(f"o-{intent.intent_id}", intent.intent_id, status, filled, float(intent.qty), self._now,
                            self._now, intent.strategy_id, intent.structure_id, intent.intent_id)


class BookContext:
    """A ``StrategyContext`` over any market view (e.g. the engine's own book): records intents and timers,
    fills nothing; the account is ``equity`` in cash."""

    def __init__(self, market: Any, now_ns: int, equity: float = 100_000.0) -> None:
        self.market = market
        self.portfolio = Portfolio()
        self.now_ns = now_ns
        self.intents: list[OrderIntent] = []
        self.timers: dict[str, int] = {}
        self._account = AccountView(equity, equity, 2 * equity, equity)

    def account(self) -> AccountView:
        return self._account

    def submit(self, intent: OrderIntent) -> None:
        self.intents.append(intent)

    def cancel(self, intent_id: str) -> None: ...

    def set_timer(self, name: str, at_ns: int) -> None:
        self.timers[name] = at_ns

    def cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)
