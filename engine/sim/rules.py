"""Alpaca's harsher order rules, each switchable (``OrderRulesConfig``; docs/simulator.md "Alpaca's order rules").

* closing quantities held by open closing orders (a replace of a closing order is refused: Alpaca-API #282);
* option prices on their tick class's grid at the price itself;
* no order from the session close until the next session;
* wash-trade prevention for single-leg orders;
* the limit-price-away sanity check;
* closing-only while a position is worth more than ``closing_only_ratio`` times equity.

A mixin of ``Exchange`` (needs the attributes declared below); every check raises the ``AlpacaError`` Alpaca
answers with, or the closest body we know of where Alpaca does not publish one (the table says which).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.sim.account import Account, Instrument
from engine.sim.config import OrderRulesConfig
from engine.sim.errors import forbidden, unprocessable
from engine.sim.market import Market
from engine.sim.orders import LegRequest, Order, OrderRequest, dec
from engine.sim.ticks import PENNY_ALL, on_grid

CLOSING_INTENTS = ("buy_to_close", "sell_to_close")
WASH_TRADE = "potential wash trade detected. use complex orders"
MARKET_CLOSED = "market is closed: orders are not accepted from the session close until the next session"


class OrderRules:
    """Rule checks over the account and the open orders (all switchable through ``self.rules``)."""

    account: Account
    market: Market
    orders: dict[str, Order]
    rules: OrderRulesConfig
    quote: Callable[[Instrument], tuple[float, float]]
    mark: Callable[[str], float]
    instrument_any: Callable[[str], Instrument]

    # ---- the session -------------------------------------------------------------------------------
    def _check_session(self) -> None:
        """403 at or after the close: the clock sits there only until the session rolls (or while held)."""
        clock = self.market.clock
        if self.rules.closed_market and clock.now_ns >= clock.close_ns:
            raise forbidden(MARKET_CLOSED)

    # ---- ticks -------------------------------------------------------------------------------------
    def _check_option_tick(self, inst: Instrument, name: str, value: float | None) -> None:
        """422 unless ``value`` is a whole number of its class's ticks at that price (pennies when switched off)."""
        if value is None:
            return
        code = int(self.market.tick_class[self.market.universe.und_index[inst.underlying]])
        if not on_grid(code if self.rules.tick_classes else PENNY_ALL, value):
            raise unprocessable(
                f"invalid {name} {dec(value)}. sub-penny increment does not fulfill minimum pricing criteria"
            )

    # ---- closing quantities ------------------------------------------------------------------------
    def _held(self, symbol: str, side: str) -> tuple[float, list[str]]:
        """Contracts of ``symbol`` held by open closing orders on ``side``, and the ids of those orders."""
        held = 0.0
        related: list[str] = []
        for order in self.orders.values():
            if order.parent is not None or not order.is_open:
                continue
            for leg in order.legs or [order]:
                if leg.symbol == symbol and leg.side == side and leg.position_intent in CLOSING_INTENTS:
                    held += leg.qty - leg.filled_qty
                    related.append(order.id)
        return held, related

    def _check_closing(self, intent: str | None, inst: Instrument, qty: float) -> None:
        """403 when a closing order asks for more than the position minus what open closing orders hold."""
        if intent not in CLOSING_INTENTS:
            return
        side = "sell" if intent == "sell_to_close" else "buy"
        pos = self.account.positions.get(inst.symbol)
        existing = pos.qty if pos else 0.0
        closable = max(existing, 0.0) if side == "sell" else max(-existing, 0.0)
        held, related = self._held(inst.symbol, side) if self.rules.closing_qty_held else (0.0, [])
        available = max(closable - held, 0.0)
        if available < qty:
            extra: dict[str, Any] = {"symbol": inst.symbol}
            if held > 0:  # the body Alpaca answers when contracts are held_for_orders
                extra.update(available=dec(available), existing_qty=dec(abs(existing)),
                             held_for_orders=dec(held), related_orders=related)
            raise forbidden(
                f"insufficient qty available for order (requested: {dec(qty)}, available: {dec(available)})",
                **extra,
            )

    def _check_replace_closing(self, old: Order, qty: float) -> None:
        """A replace asks for its legs again while the order being replaced still holds them (Alpaca-API #282)."""
        if not self.rules.closing_qty_held:
            return
        for leg in old.legs or [old]:
            self._check_closing(leg.position_intent, self.instrument_any(leg.symbol), qty * (leg.ratio_qty or 1))

    # ---- wash trades -------------------------------------------------------------------------------
    def _check_wash_trade(self, req: OrderRequest, inst: Instrument, replacing: Order | None = None) -> None:
        """403 when a single-leg order could execute against the account's own working order on its symbol."""
        if not self.rules.wash_trades or req.order_class == "mleg":
            return
        mine = _working_price(req.type, req.limit_price)
        for order in self.orders.values():
            if order.parent is not None or not order.is_open or order is replacing:
                continue
            for leg in order.legs or [order]:
                if leg.symbol != inst.symbol or leg.side == req.side:
                    continue
                if order.order_class == "mleg":
                    if self.rules.wash_trade_mleg_legs:
                        raise forbidden(WASH_TRADE)
                    continue
                theirs = _working_price(order.type, order.limit_price)
                buy, sell = (mine, theirs) if req.side == "buy" else (theirs, mine)
                if buy is None or sell is None or buy >= sell - 1e-9:
                    raise forbidden(WASH_TRADE)

    # ---- limit price away --------------------------------------------------------------------------
    def _check_price_away(self, req: OrderRequest, legs: list[tuple[LegRequest, Instrument]]) -> None:
        """403 when a limit is through the far side of the market by more than the configured distance."""
        fraction = self.rules.limit_price_away_fraction
        if fraction <= 0 or req.limit_price is None or req.type != "limit":
            return
        quotes = [self.quote(inst) for _, inst in legs]
        if any(bid <= 0 or ask <= 0 for bid, ask in quotes):
            return  # no two-sided market to measure against
        signs = [(1.0 if leg.side == "buy" else -1.0) * leg.ratio_qty for leg, _ in legs]
        mid = sum(s * 0.5 * (bid + ask) for s, (bid, ask) in zip(signs, quotes, strict=True))
        natural = sum(s * (ask if s > 0 else bid) for s, (bid, ask) in zip(signs, quotes, strict=True))
        # single legs compare the price paid (buy) or given up (sell); mleg its signed net (+debit/-credit)
        through = req.limit_price - natural if req.order_class == "mleg" else (
            req.limit_price - natural if req.side == "buy" else -natural - req.limit_price)
        allowed = max(fraction * abs(mid), self.rules.limit_price_away_min_usd)
        if through > allowed + 1e-9:
            far = "net natural" if req.order_class == "mleg" else ("ask" if req.side == "buy" else "bid")
            raise forbidden(
                f"limit price {dec(req.limit_price)} is too far away from the market "
                f"({far} {dec(round(abs(natural), 4))}, at most {dec(round(allowed, 4))} through it)"
            )

    # ---- closing-only restriction ------------------------------------------------------------------
    def _check_closing_only(self, req: OrderRequest, legs: list[tuple[LegRequest, Instrument]]) -> None:
        """403 for an opening order while a position's market value exceeds ``closing_only_ratio`` x equity."""
        ratio = self.rules.closing_only_ratio
        if ratio <= 0 or not any(self._opens(leg, inst) for leg, inst in legs):
            return
        values = {s: p.qty * self.mark(s) * p.instrument.multiplier for s, p in self.account.positions.items()}
        equity = self.account.cash + sum(values.values())
        for symbol, value in values.items():
            if abs(value) > ratio * equity:
                raise forbidden(
                    f"account is restricted to closing transactions: the {symbol} position's market value "
                    f"{dec(round(abs(value), 2))} exceeds {dec(ratio * 100)}% of equity {dec(round(equity, 2))}",
                    symbol=symbol,
                )

    def _opens(self, leg: LegRequest, inst: Instrument) -> bool:
        if leg.position_intent is not None:
            return leg.position_intent.endswith("_to_open")
        pos = self.account.positions.get(inst.symbol)
        held = pos.qty if pos else 0.0
        return not ((held > 0 and leg.side == "sell") or (held < 0 and leg.side == "buy"))

    def _check_rules(self, req: OrderRequest, legs: list[tuple[LegRequest, Instrument]],
                     replacing: Order | None = None) -> None:
        """The rules that need the whole order: wash trades, price away, closing-only (in Alpaca's order)."""
        if req.order_class != "mleg":
            self._check_wash_trade(req, legs[0][1], replacing)
        self._check_price_away(req, legs)
        if replacing is None:
            self._check_closing_only(req, legs)


def _working_price(order_type: str, limit: float | None) -> float | None:
    """The price an order could trade at: its limit, or None (any price) for market and stop orders."""
    return limit if order_type in ("limit", "stop_limit") else None

