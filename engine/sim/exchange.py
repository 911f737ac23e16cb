"""The matching engine: order life-cycle, fills against the current quotes, expiry at the close.

One ``Exchange`` owns the orders and the account. REST handlers call ``submit``/``replace``/
``cancel``; the market loop calls ``on_step`` after every step. Every state change is announced to
the listeners as an Alpaca ``trade_updates`` payload, in Alpaca's order (pending_new, new,
partial_fill, fill, canceled, replaced, rejected, expired...).

Fill model (like Alpaca paper): an order fills when marketable against the quote (buy limit >= ask,
sell limit <= bid; mleg: net limit >= the legs' net natural, +debit/-credit), at the quote, with a
random partial fill with probability ``partial_fill_probability``; the rest is re-evaluated on
later steps. With ``fill_latency_ms`` a decided fill is reported later, so a cancel or replace can
race it: the cancel then ends in ``order_cancel_rejected`` and the replacement in ``rejected``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.sim.account import Account, Instrument
from engine.sim.checks import OrderChecks
from engine.sim.clock import rfc3339
from engine.sim.config import OrderRulesConfig, SimConfig
from engine.sim.errors import AlpacaError, forbidden, invalid, not_found, unprocessable
from engine.sim.expiration import ExpiryState
from engine.sim.market import Market
from engine.sim.orders import (
    LegRequest,
    Order,
    OrderRequest,
    dec,
    number,
    parse_order_request,
    text,
    whole,
)
from engine.sim.settlement import Settlement
from engine.sim.universe import contract_id

Listener = Callable[[dict[str, Any]], None]
RULES_OFF = OrderRulesConfig(closing_qty_held=False, tick_classes=False, closed_market=False, wash_trades=False,
                             limit_price_away_fraction=0.0, closing_only_ratio=0.0)


@dataclass(slots=True)
class Execution:
    """A decided fill waiting for its report time (fill latency)."""

    order: Order
    units: float
    leg_prices: list[float]
    due_ns: int


class Exchange(OrderChecks, Settlement):
    """Orders, fills and the account, driven by the market's event time."""

    def __init__(self, config: SimConfig, market: Market) -> None:
        self.config = config
        self.market = market
        self.account = Account(config.initial_cash, config.options_approved_level, market.spot)
        self.account.created_ns = market.now_ns
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self.submissions: Counter[str] = Counter()
        """POST /v2/orders attempts per client_order_id (accepted or not)."""
        self.fills: list[dict[str, Any]] = []
        self.listeners: list[Listener] = []
        self.in_flight: list[Execution] = []
        self.fill_rng = np.random.default_rng([config.seed, 99])
        self.id_rng = np.random.default_rng([config.seed, 98])
        self.fill_delay_ms = 0
        """Extra latency added to fills by fault injection."""
        self.reject_next: list[tuple[int, str]] = []
        """Queued forced rejections: (status 403|422, message)."""
        self.rules: OrderRulesConfig = config.order_rules
        """Alpaca's switchable order rules in force (``engine.sim.rules``); tests change them at run time."""
        self.event_seq = 0
        self.expiry_state = ExpiryState(config.seed)
        """Broker liquidation orders and pending early assignments (engine/sim/expiration.py, assignment.py)."""

    # ---- helpers -------------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(uuid.UUID(bytes=self.id_rng.bytes(16), version=4))

    def instrument(self, symbol: str) -> Instrument:
        """Resolve a symbol (option contract or underlying stock), or 422 like Alpaca."""
        uni = self.market.universe
        row = uni.index.get(symbol)
        if row is not None:
            if not uni.active[row]:
                raise unprocessable(f"asset {symbol} is not active", symbol=symbol)
            return Instrument(
                symbol,
                uni.ids[row],
                "us_option",
                uni.underlyings[uni.und[row]].symbol,
                float(uni.strike[row]),
                bool(uni.is_call[row]),
                uni.expiry_dates[row],
            )
        if symbol in uni.und_index:
            return Instrument(symbol, contract_id(symbol), "us_equity", symbol)
        raise unprocessable(f'asset "{symbol}" not found', symbol=symbol)

    def quote(self, inst: Instrument) -> tuple[float, float]:
        """(bid, ask) of an instrument now."""
        if inst.asset_class == "us_equity":
            bid, ask, *_ = self.market.stock_quote(self.market.universe.und_index[inst.symbol])
            return bid, ask
        q = self.market.option_quotes(np.array([self.market.universe.index[inst.symbol]]))
        return float(q.bid[0]), float(q.ask[0])

    def mark(self, symbol: str) -> float:
        """Mid price used for positions and P&L."""
        bid, ask = self.quote(self.instrument_any(symbol))
        return round((bid + ask) / 2, 4)

    def instrument_any(self, symbol: str) -> Instrument:
        """Like ``instrument`` but also for expired contracts still held (marks at intrinsic)."""
        pos = self.account.positions.get(symbol)
        return pos.instrument if pos is not None else self.instrument(symbol)

    def emit(self, event: str, order: Order, **extra: Any) -> None:
        """Announce a trade update to every listener (a root order, never a leg)."""
        self.event_seq += 1
        data = {
            "event": event,
            "timestamp": rfc3339(self.now_ns),
            "at": rfc3339(self.now_ns),
            "event_id": f"{self.now_ns:020d}{self.event_seq:06d}",
            "order": order.to_json(),
            **extra,
        }
        message = {"stream": "trade_updates", "data": data}
        for listener in list(self.listeners):
            listener(message)

    # ---- submit --------------------------------------------------------------------------------
    def submit(self, body: Any, *, enforce_rules: bool = True) -> dict[str, Any]:
        """POST /v2/orders: validate, accept, try to fill; return the order as first accepted.

        ``enforce_rules=False`` (orders the broker itself originates, such as expiry-day liquidations) skips
        Alpaca's switchable order rules; validation and buying power still apply.
        """
        if not enforce_rules:
            with self._rules_off():
                return self.submit(body)
        coid = body.get("client_order_id") if isinstance(body, dict) else None
        if isinstance(coid, str):
            self.submissions[coid] += 1
        if self.reject_next:
            status, message = self.reject_next.pop(0)
            raise forbidden(message) if status == 403 else unprocessable(message)
        req = parse_order_request(body)
        if req.client_order_id is not None and req.client_order_id in self.by_client_id:
            raise invalid("client_order_id must be unique", client_order_id=req.client_order_id)
        self._check_session()
        if req.order_class == "mleg":
            legs = [(leg, self.instrument(leg.symbol)) for leg in req.legs]
            self._check_mleg(req, legs)
        else:
            assert req.symbol is not None and req.side is not None
            inst = self.instrument(req.symbol)
            self._check_simple(req, inst)
            legs = [(LegRequest(inst.symbol, 1, req.side, req.position_intent), inst)]
        self._check_rules(req, legs)
        self._check_funds(req, legs)
        order = self._create(req, legs)
        self.emit("pending_new", order)
        first = order.to_json()
        order.set_status("new", self.now_ns)
        self.emit("new", order)
        self._try_fill(order)
        return first

    def _create(self, req: OrderRequest, legs: list[tuple[LegRequest, Instrument]]) -> Order:
        now = self.now_ns
        coid = req.client_order_id or self.new_id()
        if req.order_class == "mleg":
            order = Order(
                self.new_id(),
                coid,
                now,
                "mleg",
                req.type,
                req.time_in_force,
                req.qty,
                limit_price=req.limit_price,
                updated_ns=now,
                submitted_ns=now,
            )
            for leg, inst in legs:
                order.legs.append(
                    Order(
                        self.new_id(),
                        self.new_id(),
                        now,
                        "mleg",
                        req.type,
                        req.time_in_force,
                        req.qty * leg.ratio_qty,
                        symbol=inst.symbol,
                        asset_id=inst.asset_id,
                        asset_class=inst.asset_class,
                        side=leg.side,
                        position_intent=leg.position_intent or self._intent(inst, leg.side),
                        ratio_qty=leg.ratio_qty,
                        updated_ns=now,
                        submitted_ns=now,
                        parent=order,
                    )
                )
        else:
            inst = legs[0][1]
            assert req.side is not None
            intent = req.position_intent
            if intent is None and inst.asset_class == "us_option":
                intent = self._intent(inst, req.side)
            order = Order(
                self.new_id(),
                coid,
                now,
                "simple",
                req.type,
                req.time_in_force,
                req.qty,
                symbol=inst.symbol,
                asset_id=inst.asset_id,
                asset_class=inst.asset_class,
                side=req.side,
                position_intent=intent,
                limit_price=req.limit_price,
                stop_price=req.stop_price,
                updated_ns=now,
                submitted_ns=now,
            )
        if req.time_in_force == "day":
            order.expires_ns = self.market.clock.close_ns
            for leg_order in order.legs:
                leg_order.expires_ns = order.expires_ns
        self.orders[order.id] = order
        self.by_client_id[coid] = order
        for leg_order in order.legs:
            self.orders[leg_order.id] = leg_order
        return order

    def _intent(self, inst: Instrument, side: str) -> str:
        pos = self.account.positions.get(inst.symbol)
        held = pos.qty if pos else 0.0
        closing = (held > 0 and side == "sell") or (held < 0 and side == "buy")
        return f"{side}_to_{'close' if closing else 'open'}"

    # ---- matching ------------------------------------------------------------------------------
    def on_step(self) -> None:
        """After a market step: report due fills, then try every working order."""
        now = self.now_ns
        if self.in_flight:
            due = [e for e in self.in_flight if e.due_ns <= now]
            self.in_flight = [e for e in self.in_flight if e.due_ns > now]
            for execution in due:
                self._report(execution)
        for order in list(self.orders.values()):
            if order.parent is None and order.is_open and not order.in_flight:
                self._try_fill(order)
        self.expiry_step()  # Alpaca's expiry-day liquidation (engine/sim/expiration.py)

    def _try_fill(self, order: Order) -> None:
        if order.status not in ("new", "partially_filled") or order.in_flight:
            return
        legs = order.legs or [order]
        insts = [self.instrument_any(o.symbol) for o in legs]
        quotes = [self.quote(i) for i in insts]
        prices = [ask if o.side == "buy" else bid for o, (bid, ask) in zip(legs, quotes, strict=True)]
        if any(p <= 0 for p in prices):
            return  # no bid to sell into
        if order.order_class == "mleg":
            natural = sum(
                (o.ratio_qty or 1) * (p if o.side == "buy" else -p) for o, p in zip(legs, prices, strict=True)
            )
            if order.type == "limit" and order.limit_price is not None and order.limit_price < natural - 1e-9:
                return
        else:
            bid, ask = quotes[0]
            if order.type in ("stop", "stop_limit") and not order.stop_triggered:
                assert order.stop_price is not None
                hit = ask >= order.stop_price if order.side == "buy" else bid <= order.stop_price
                if not hit:
                    return
                order.stop_triggered = True
            if order.limit_price is not None and order.type in ("limit", "stop_limit"):
                if order.side == "buy" and order.limit_price < ask - 1e-9:
                    return
                if order.side == "sell" and order.limit_price > bid + 1e-9:
                    return
        units = order.remaining
        if units > 1 and self.fill_rng.random() < self.config.partial_fill_probability:
            units = float(self.fill_rng.integers(1, int(units))) if units == int(units) else round(units / 2, 6)
        latency = (self.config.fill_latency_ms + self.fill_delay_ms) * 1_000_000
        execution = Execution(order, units, prices, self.now_ns + latency)
        if latency > 0:
            order.in_flight = True
            self.in_flight.append(execution)
        else:
            self._report(execution)

    def _report(self, execution: Execution) -> None:
        order = execution.order
        order.in_flight = False
        if order.status not in ("new", "partially_filled", "pending_cancel", "pending_replace"):
            return
        now = self.now_ns
        units = min(execution.units, order.remaining)
        legs = order.legs or [order]
        leg_execs: list[dict[str, Any]] = []
        position_qtys: dict[str, str] = {}
        net = 0.0
        for leg_order, price in zip(legs, execution.leg_prices, strict=True):
            qty = units * (leg_order.ratio_qty or 1) if order.order_class == "mleg" else units
            inst = self.instrument_any(leg_order.symbol)
            pos_qty = self.account.apply_fill(inst, leg_order.side, qty, price)
            position_qtys[leg_order.symbol] = dec(pos_qty) or "0"
            net += (leg_order.ratio_qty or 1) * (price if leg_order.side == "buy" else -price)
            exec_id = self.new_id()
            if order.order_class == "mleg":
                leg_order.filled_qty += qty
                leg_order.filled_notional += qty * price
                leg_order.filled_ns = now
                leg_execs.append(
                    {
                        "execution_id": exec_id,
                        "qty": dec(qty),
                        "price": dec(price),
                        "order_id": leg_order.id,
                        "symbol": leg_order.symbol,
                        "timestamp": rfc3339(now),
                    }
                )
            self.fills.append(
                {
                    "execution_id": exec_id,
                    "order_id": order.id,
                    "leg_order_id": leg_order.id,
                    "client_order_id": order.client_order_id,
                    "symbol": leg_order.symbol,
                    "side": leg_order.side,
                    "qty": qty,
                    "price": price,
                    "timestamp_ns": now,
                    "position_qty": pos_qty,
                }
            )
        price = net if order.order_class == "mleg" else execution.leg_prices[0]
        order.filled_qty += units
        order.filled_notional += units * price
        full = order.remaining <= 1e-9
        pending = order.status
        order.filled_ns = now
        order.set_status("filled" if full else "partially_filled", now)
        for leg_order in order.legs:
            self.account.record("FILL", now, **self._fill_activity(leg_order, leg_order.filled_qty, full))
        if not order.legs:
            self.account.record("FILL", now, **self._fill_activity(order, units, full, price))
        event = "fill" if full else "partial_fill"
        extra: dict[str, Any] = {"price": dec(price), "qty": dec(units), "execution_id": self.fills[-1]["execution_id"]}
        if order.order_class == "mleg":
            extra["position_qtys"] = position_qtys
            extra["legs"] = leg_execs
        else:
            extra["position_qty"] = position_qtys[order.symbol]
        self.emit(event, order, **extra)
        if pending == "pending_cancel":
            if full:
                self.emit("order_cancel_rejected", order)
            else:
                self._cancel_now(order)
        elif pending == "pending_replace" and order.replaced_by:
            replacement = self.orders[order.replaced_by]
            if full:
                order.replaced_by = None
                replacement.set_status("rejected", now)
                replacement.failed_ns = now
                self.emit("order_replace_rejected", order)
                self.emit("rejected", replacement)
            else:
                self._complete_replace(order, replacement)

    def _fill_activity(self, order: Order, qty: float, full: bool, price: float | None = None) -> dict[str, Any]:
        p = price if price is not None else (order.filled_avg_price or 0.0)
        return {
            "type": "fill" if full else "partial_fill",
            "price": dec(p),
            "qty": dec(qty),
            "side": order.side,
            "symbol": order.symbol,
            "leaves_qty": dec(order.remaining),
            "order_id": order.id,
            "cum_qty": dec(order.filled_qty),
            "order_status": order.status,
        }

    # ---- cancel / replace ----------------------------------------------------------------------
    def get(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found("order not found")
        return order

    def cancel(self, order_id: str) -> None:
        """DELETE /v2/orders/{id}: 204 when accepted, 422 when the order can no longer be canceled."""
        order = self.get(order_id)
        if order.parent is not None:
            order = order.parent
        if order.status not in ("pending_new", "accepted", "new", "partially_filled"):
            raise unprocessable(f"order is not cancelable (status: {order.status})")
        if order.in_flight:
            order.set_status("pending_cancel", self.now_ns)
            self.emit("pending_cancel", order)
            return
        self._cancel_now(order)

    def _cancel_now(self, order: Order) -> None:
        order.canceled_ns = self.now_ns
        order.set_status("canceled", self.now_ns)
        for leg in order.legs:
            leg.canceled_ns = self.now_ns
        self.emit("canceled", order)

    def cancel_all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for order in list(self.orders.values()):
            if order.parent is None and order.is_open:
                try:
                    self.cancel(order.id)
                    out.append({"id": order.id, "status": 200})
                except AlpacaError as exc:
                    out.append({"id": order.id, "status": exc.status, "body": exc.body()})
        return out

    def replace(self, order_id: str, body: Any) -> dict[str, Any]:
        """PATCH /v2/orders/{id}: a new order replaces the old one (new id, ``replaces`` set)."""
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        old = self.get(order_id)
        if old.parent is not None:
            raise invalid("legs of a multi-leg order cannot be replaced; replace the parent order")
        if old.status not in ("new", "partially_filled"):
            raise unprocessable(f"order is not replaceable (status: {old.status})")
        qty = number(body, "qty")
        limit_price = number(body, "limit_price")
        stop_price = number(body, "stop_price")
        tif = text(body, "time_in_force", ("day", "gtc", "opg", "cls", "ioc", "fok"))
        coid = body.get("client_order_id")
        if coid is not None and (not isinstance(coid, str) or len(coid) > 128):
            raise invalid("client_order_id must be a string of at most 128 characters")
        if qty is None and limit_price is None and stop_price is None and tif is None:
            raise invalid("at least one of qty, limit_price, stop_price, time_in_force is required")
        if limit_price is not None and old.type not in ("limit", "stop_limit"):
            raise invalid("limit_price can only be replaced on limit orders")
        if stop_price is not None and old.type not in ("stop", "stop_limit"):
            raise invalid("stop_price can only be replaced on stop orders")
        if limit_price is not None and old.order_class != "mleg" and limit_price <= 0:
            raise invalid("limit_price must be > 0")
        if coid is not None and coid in self.by_client_id:
            raise invalid("client_order_id must be unique", client_order_id=coid)
        new_qty = whole(qty, "qty") if (qty is not None and old.asset_class != "us_equity") else qty
        self._check_session()
        self._check_replace_closing(old, new_qty if new_qty is not None else old.remaining)
        req = OrderRequest(
            order_class=old.order_class,
            type=old.type,
            time_in_force=tif or old.time_in_force,
            qty=new_qty if new_qty is not None else old.remaining,
            symbol=old.symbol or None,
            side=old.side or None,
            limit_price=limit_price if limit_price is not None else old.limit_price,
            stop_price=stop_price if stop_price is not None else old.stop_price,
            client_order_id=coid,
            position_intent=old.position_intent,
            legs=[LegRequest(leg.symbol, leg.ratio_qty or 1, leg.side, leg.position_intent) for leg in old.legs],
        )
        legs = (
            [(leg, self.instrument_any(leg.symbol)) for leg in req.legs]
            if old.legs
            else [(LegRequest(old.symbol, 1, old.side, old.position_intent), self.instrument_any(old.symbol))]
        )
        self._check_replace_prices(req, legs[0][1])
        self._check_rules(req, legs, replacing=old)
        self._check_funds(req, legs, replacing=old)
        new = self._create(req, legs)
        new.replaces = old.id
        old.replaced_by = new.id
        if old.in_flight:
            old.set_status("pending_replace", self.now_ns)
            self.emit("pending_replace", old)
            return new.to_json()
        self._complete_replace(old, new)
        return new.to_json()

    def _check_replace_prices(self, req: OrderRequest, inst: Instrument) -> None:
        """The replacement's prices on their increments, as a new order's would be."""
        if req.order_class == "mleg":
            if req.limit_price is not None and abs(req.limit_price * 100 - round(req.limit_price * 100)) > 1e-6:
                raise unprocessable(
                    f"invalid limit_price {dec(req.limit_price)}. sub-penny increment does not "
                    "fulfill minimum pricing criteria"
                )
        elif inst.asset_class == "us_option":
            self._check_option_tick(inst, "limit_price", req.limit_price)
            self._check_option_tick(inst, "stop_price", req.stop_price)
        else:
            self._check_stock_tick(req.limit_price, req.stop_price)

    @contextlib.contextmanager
    def _rules_off(self) -> Iterator[None]:
        rules = self.rules
        self.rules = RULES_OFF
        try:
            yield
        finally:
            self.rules = rules

    def _complete_replace(self, old: Order, new: Order) -> None:
        now = self.now_ns
        old.replaced_ns = now
        old.set_status("replaced", now)
        self.emit("replaced", old)
        new.set_status("new", now)
        self.emit("new", new)
        self._try_fill(new)
