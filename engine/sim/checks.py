"""Pre-trade checks of the matching engine: options level, mleg shape, price increments, buying power.

A mixin of ``Exchange`` (kept apart so each file holds one concept); every check raises the
``AlpacaError`` Alpaca would answer with. Alpaca's switchable order rules (closing quantities, tick classes,
wash trades...) live in ``engine.sim.rules``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.sim.account import MULTIPLIER, Account, Instrument
from engine.sim.errors import forbidden, invalid, unprocessable
from engine.sim.market import Market
from engine.sim.orders import LegRequest, Order, OrderRequest, dec, whole
from engine.sim.rules import OrderRules


class OrderChecks(OrderRules):
    """Validation against the market and the account (needs the attributes declared below)."""

    account: Account
    market: Market
    orders: dict[str, Order]
    quote: Callable[[Instrument], tuple[float, float]]
    instrument_any: Callable[[str], Instrument]
    _intent: Callable[[Instrument, str], str]

    def _check_simple(self, req: OrderRequest, inst: Instrument) -> None:
        if inst.asset_class == "us_option":
            req.qty = whole(req.qty, "qty")
            if req.time_in_force not in ("day", "gtc"):
                raise invalid("options orders only support time_in_force day or gtc")
            if req.extended_hours:
                raise invalid("extended hours are not supported for options orders")
            level = self.account.options_level
            if level == 0:
                raise forbidden("account is not authorized to trade options")
            if req.side == "buy" and level < 2 and (req.position_intent or "").endswith("open"):
                raise forbidden("options level 2 is required to buy options")
            self._check_option_tick(inst, "limit_price", req.limit_price)
            self._check_option_tick(inst, "stop_price", req.stop_price)
        else:
            if req.qty != int(req.qty) and not (req.type == "market" and req.time_in_force == "day"):
                raise invalid("fractional orders must be market orders with time_in_force day")
            self._check_stock_tick(req.limit_price, req.stop_price)
        self._check_closing(req.position_intent, inst, req.qty)

    @staticmethod
    def _check_stock_tick(limit_price: float | None, stop_price: float | None) -> None:
        tick = 0.01 if (limit_price or stop_price or 1.0) >= 1 else 0.0001
        for name, value in (("limit_price", limit_price), ("stop_price", stop_price)):
            if value is not None and abs(value / tick - round(value / tick)) > 1e-6:
                raise unprocessable(
                    f"invalid {name} {dec(value)}. sub-penny increment does not fulfill minimum pricing criteria"
                )

    def _check_mleg(self, req: OrderRequest, legs: list[tuple[LegRequest, Instrument]]) -> None:
        if self.account.options_level < 3:
            raise forbidden("options level 3 is required for multi-leg orders")
        if req.time_in_force not in ("day", "gtc"):
            raise invalid("options orders only support time_in_force day or gtc")
        if any(inst.asset_class != "us_option" for _, inst in legs):
            raise invalid("multi-leg orders only support option legs (no stock legs)")
        if len({inst.underlying for _, inst in legs}) != 1:
            raise invalid("all legs of a multi-leg order must have the same underlying")
        for right in (True, False):
            # closing legs need no cover (the position they close is their cover): only what the order opens
            signed = sum(
                leg.ratio_qty * (1 if leg.side == "buy" else -1)
                for leg, inst in legs
                if inst.is_call == right and not (leg.position_intent or self._intent(inst, leg.side)).endswith("close")
            )
            if signed < 0:
                kind = "call" if right else "put"
                raise invalid(
                    f"uncovered short {kind} leg: every leg of a multi-leg order must be covered within the order"
                )
        if req.limit_price is not None and abs(req.limit_price * 100 - round(req.limit_price * 100)) > 1e-6:
            raise unprocessable(
                f"invalid limit_price {dec(req.limit_price)}. sub-penny increment does not "
                "fulfill minimum pricing criteria"
            )
        for leg, inst in legs:
            self._check_closing(leg.position_intent, inst, req.qty * leg.ratio_qty)

    def _check_funds(
        self, req: OrderRequest, legs: list[tuple[LegRequest, Instrument]], replacing: Order | None = None
    ) -> None:
        """403 when the order (with every open order but ``replacing``) would leave negative buying power and
        less of it than without the order: an order that reduces risk (buying back assigned short shares)
        is never refused for buying power, however short of it the account already is."""
        extra: list[tuple[Instrument, float]] = []
        cash_delta = 0.0
        for order in self.orders.values():
            if order.is_open and order.parent is None and order is not replacing:
                for leg_order in order.legs or [order]:
                    rem = leg_order.qty - leg_order.filled_qty
                    extra.append((self.instrument_any(leg_order.symbol), rem if leg_order.side == "buy" else -rem))
                cash_delta -= self._reserved_cash(order)
        bp_without = self.account.buying_power(extra, cash_delta)
        for leg, inst in legs:
            qty = req.qty * leg.ratio_qty
            extra.append((inst, qty if leg.side == "buy" else -qty))
        bid_ask = [self.quote(inst) for _, inst in legs]
        mult = legs[0][1].multiplier
        if req.order_class == "mleg":
            natural = sum(
                leg.ratio_qty * (ask if leg.side == "buy" else -bid)
                for (leg, _), (bid, ask) in zip(legs, bid_ask, strict=True)
            )
            # +debit is paid, -credit received (Alpaca: cost basis = margin + net debit/credit)
            price = req.limit_price if req.limit_price is not None else natural
        elif req.side == "buy":
            bid, ask = bid_ask[0]
            price = req.limit_price if req.limit_price is not None else (req.stop_price or ask)
            price = max(price, ask) if req.type == "market" else price
        else:
            bid, ask = bid_ask[0]
            price = -(min(req.limit_price, bid) if req.limit_price is not None else bid)  # proceeds
        cost = price * req.qty * mult
        bp_before = self.account.buying_power()
        bp = self.account.buying_power(extra, cash_delta - cost)
        if math.isinf(bp):
            raise forbidden("account is not eligible to trade uncovered option contracts")  # naked calls
        if bp < min(0.0, bp_without):
            raise forbidden(
                "insufficient buying power",
                buying_power=dec(round(max(bp_before, 0.0), 2)),
                cost_basis=dec(round(bp_before - bp, 2)),
            )

    def _reserved_cash(self, order: Order) -> float:
        """Cash an open order may still pay: its limit (or the current natural) times what is left."""
        if order.order_class == "mleg":
            price = order.limit_price
            if price is None:
                price = sum(
                    (o.ratio_qty or 1)
                    * (
                        self.quote(self.instrument_any(o.symbol))[1]
                        if o.side == "buy"
                        else -self.quote(self.instrument_any(o.symbol))[0]
                    )
                    for o in order.legs
                )
            return max(price, 0.0) * order.remaining * MULTIPLIER
        if order.side != "buy":
            return 0.0
        inst = self.instrument_any(order.symbol)
        price = order.limit_price or order.stop_price or self.quote(inst)[1]
        return price * order.remaining * inst.multiplier
