"""A strategy's own view of its structures: opening, open, closing, closed; driven by its order outcomes.

Each actor keeps a ``StructureTracker``. It builds the open and close intents (deterministic ids, so
the router's ``client_order_id`` is stable across retries), and folds fills (deduplicated by
``execution_id``), order updates and denials into each structure's state:

    OPENING --fill--> OPEN --close intent--> CLOSING --all legs flat--> CLOSED
    OPENING --terminal, nothing filled / denied--> CANCELLED
    OPENING --terminal, partly filled--> OPEN (with the filled units)
    CLOSING --terminal or denied with legs left--> OPEN (the actor retries)
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

import msgspec

from domain.orders import (
    CONTRACT_MULTIPLIER,
    AssetClass,
    IntentAction,
    IntentDenied,
    Leg,
    OrderFilled,
    OrderIntent,
    OrderUpdated,
    PositionIntent,
    PricePolicy,
    Side,
)
from domain.views import ChainView
from greeks.calendar import NS_PER_SECOND
from greeks.occ import parse_occ
from strategies.structures import Structure, StructureKind, StructureLeg

_EPS = 1e-9


class StructureStatus(enum.StrEnum):
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Tracked(msgspec.Struct):
    """One structure this strategy opened (or is opening)."""

    structure_id: str
    structure: Structure
    qty: int
    status: StructureStatus = StructureStatus.OPENING
    filled: dict[str, float] = msgspec.field(default_factory=dict)
    """Signed contracts held per option symbol."""
    shares: float = 0.0
    """Stock held by this structure (hedges)."""
    settled_shares: float = 0.0
    """Stock an exercise or assignment moved into the structure, and the engine's unwind of it (stock fills of no
    intent of this structure): the engine's to unwind, never the strategy's to close or hedge with."""
    option_cash_usd: float = 0.0
    stock_cash_usd: float = 0.0
    opened_ns: int = 0
    closed_ns: int = 0
    entry_spot: float = math.nan
    entry_iv: float = math.nan
    close_reason: str = ""
    close_attempts: int = 0
    last_close_ns: int = 0
    pending_hedge: str = ""
    hedge_count: int = 0
    intents: list[str] = msgspec.field(default_factory=list)
    working: set[str] = msgspec.field(default_factory=set)
    """Intents submitted and not yet ended (terminal order state or denial)."""
    executions: set[str] = msgspec.field(default_factory=set)
    """Execution ids applied (a repeated one is ignored)."""

    def close_retry_due(self, now_ns: int, base_s: float) -> bool:
        """True when a failed close may be retried: ``base_s`` doubling per attempt, at most 32x."""
        if not self.close_attempts:
            return True
        wait_s = base_s * min(1 << (self.close_attempts - 1), 32)
        return now_ns - self.last_close_ns >= wait_s * NS_PER_SECOND

    @property
    def units(self) -> float:
        """Whole structure units held (min over legs of |held| / |ratio|)."""
        return self.units_of(self.structure.legs)

    def units_of(self, legs: Iterable[StructureLeg]) -> float:
        """Units held of ``legs`` (min over them of |held| / |ratio|; 0 for none)."""
        vals = [abs(self.filled.get(leg.symbol, 0.0)) / abs(leg.ratio) for leg in legs]
        return min(vals) if vals else 0.0

    @property
    def is_flat(self) -> bool:
        return all(abs(q) <= _EPS for q in self.filled.values()) and abs(self.shares) <= _EPS

    @property
    def entry_net_price(self) -> float:
        """Net price paid per unit to open (+debit/-credit), from the option fills."""
        u = self.units
        return -self.option_cash_usd / (u * CONTRACT_MULTIPLIER) if u > 0 else math.nan

    def value_per_unit(self, chain: ChainView) -> tuple[float, float]:
        """(mid, natural-to-close) value per unit of the held legs (long positive, short negative).

        A leg without a two-sided quote has no mid: it is marked at its closing side (a long at the bid, a
        short at the ask), so a vanished bid never makes a take-profit look reached.
        """
        mid = nat = 0.0
        for leg in self.structure.legs:
            r = chain.row_of(leg.symbol)
            if r < 0:
                return math.nan, math.nan
            bid, ask = float(chain.bid[r]), float(chain.ask[r])
            closing_side = bid if leg.ratio > 0 else ask
            two_sided = 0 < bid <= ask
            mid += leg.ratio * (0.5 * (bid + ask) if two_sided else closing_side)
            nat += leg.ratio * closing_side
        return mid, nat

    def pnl_usd(self, chain: ChainView) -> float:
        """Open P&L at mid: option legs, plus the stock hedge marked at spot."""
        option_value = 0.0
        for sym, q in self.filled.items():
            if abs(q) <= _EPS:
                continue
            r = chain.row_of(sym)
            if r < 0:
                return math.nan
            option_value += q * 0.5 * (float(chain.bid[r]) + float(chain.ask[r])) * CONTRACT_MULTIPLIER
        shares = self.shares + self.settled_shares
        return self.option_cash_usd + option_value + self.stock_cash_usd + shares * chain.spot


def option_cash_usd(fill: OrderFilled, first_symbol: str, first_ratio: int) -> float:
    """Cash of one option leg execution (+received, -paid).

    A leg execution without a price (an mleg fill rebuilt from cumulative totals) is valued through its
    parent's net price: the whole net is booked on the structure's first leg, zero on the others.
    """
    if not math.isnan(fill.price):
        return -fill.signed_qty * fill.price * CONTRACT_MULTIPLIER
    if fill.parent_net_price is None or fill.symbol != first_symbol:
        return 0.0
    units = fill.qty / abs(first_ratio)
    return -fill.parent_net_price * units * CONTRACT_MULTIPLIER


class RecoveredStructure(msgspec.Struct, frozen=True):
    """A structure a strategy held when the engine stopped, as the journal knows it at the next start."""

    open_intent: OrderIntent
    """The intent that opened it: its legs and ratios are the structure's."""
    intent_ids: tuple[str, ...]
    """Every intent of the structure, in the order they were made (new ones are numbered after them)."""
    fills: tuple[OrderFilled, ...]
    """Every fill booked to the structure, in event-time order."""
    kind: str = ""
    entry_spot: float = math.nan
    entry_iv: float = math.nan


RETIRE_AFTER_EXPIRY_DAYS = 7
"""Days after its expiry a closed structure is kept for settlement activities booked to it."""


class StructureTracker:
    """The structures of one strategy, by id, and which intent belongs to which structure."""

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        self.structures: dict[str, Tracked] = {}
        self._by_intent: dict[str, tuple[str, IntentAction]] = {}
        self._seq = 0
        self.opened = 0
        self.closed = 0
        self.realized_usd = 0.0
        self.retired = 0
        """Structures dropped from ``structures`` once nothing more can happen to them (``expire``)."""
        self.retired_stock_cash_usd = 0.0
        """Their stock cash (hedges), which the gamma scalper's hedge P&L keeps counting."""
        self._swept_day: dt.date | None = None

    # ---- queries
    def active(self, underlying: str | None = None) -> list[Tracked]:
        """Structures opening, open or closing (optionally on one underlying)."""
        return [t for t in self.structures.values()
                if t.status in (StructureStatus.OPENING, StructureStatus.OPEN, StructureStatus.CLOSING)
                and (underlying is None or t.structure.underlying == underlying)]

    def new_id(self, underlying: str, now_ns: int) -> str:
        self._seq += 1
        return f"{self.strategy_id}-{underlying}-{now_ns // NS_PER_SECOND}-{self._seq}"

    def recover(self, rec: RecoveredStructure) -> Tracked:
        """Take back a structure held across a restart: its legs from the opening intent, its state from its
        fills replayed in order (the same path as live), OPEN; new intents are numbered after the journal's."""
        intent = rec.open_intent
        legs = tuple(StructureLeg(leg.symbol, (occ := parse_occ(leg.symbol)).strike, occ.is_call, occ.expiry,
                                  leg.side.sign * leg.ratio) for leg in intent.legs)
        structure = Structure(_kind(rec.kind, legs), intent.underlying, legs)
        t = Tracked(intent.structure_id, structure, intent.qty, status=StructureStatus.OPEN,
                    opened_ns=rec.fills[0].ts_event_ns if rec.fills else intent.ts_event_ns,
                    entry_spot=rec.entry_spot, entry_iv=rec.entry_iv, intents=list(rec.intent_ids))
        self.structures[t.structure_id] = t
        for fill in rec.fills:
            self.on_fill(fill)
        return t

    # ---- intents
    def open(self, structure: Structure, qty: int, policy: PricePolicy, now_ns: int, tag: str = "",
             entry_spot: float = math.nan, entry_iv: float = math.nan) -> OrderIntent:
        """Register a new structure and return the intent that opens it."""
        sid = self.new_id(structure.underlying, now_ns)
        t = Tracked(sid, structure, qty, opened_ns=now_ns, entry_spot=entry_spot, entry_iv=entry_iv)
        self.structures[sid] = t
        return self._intent(t, IntentAction.OPEN, structure.open_legs(), qty, policy, now_ns, tag)

    def close(self, t: Tracked, policy: PricePolicy, now_ns: int, reason: str,
              unsellable: AbstractSet[str] = frozenset()) -> list[OrderIntent]:
        """Intents that flatten ``t``: one mleg for the option legs held, one stock order for any shares.

        Long legs named in ``unsellable`` (bid at zero: no order can sell them) are left out and kept: worth at
        most their offer, they expire or are sold on a later try. With nothing else to close, nothing is sent
        and ``t`` is left as it was.
        """
        out: list[OrderIntent] = []
        legs = [leg for leg in t.structure.legs if not (leg.ratio > 0 and leg.symbol in unsellable)]
        units = t.units_of(legs)
        if units >= 1 and len(legs) > 1:
            closing = tuple(leg for leg in t.structure.close_legs() if any(k.symbol == leg.symbol for k in legs))
            out.append(self._intent(t, IntentAction.CLOSE, closing, round(units), policy, now_ns, reason))
        else:
            for leg in legs:  # odd lots left by a partial fill (or one leg left): close leg by leg
                q = t.filled.get(leg.symbol, 0.0)
                if abs(q) > _EPS:
                    side = Side.SELL if q > 0 else Side.BUY
                    pi = PositionIntent.SELL_TO_CLOSE if q > 0 else PositionIntent.BUY_TO_CLOSE
                    out.append(self._intent(t, IntentAction.CLOSE, (Leg(leg.symbol, side, 1, pi),),
                                            round(abs(q)), policy, now_ns, reason))
        if abs(t.shares) >= 1:
            out.append(self.stock_intent(t, -t.shares, now_ns, IntentAction.CLOSE, reason))
        if not out:
            return out
        t.status = StructureStatus.CLOSING
        t.close_reason = reason
        t.close_attempts += 1
        t.last_close_ns = now_ns
        return out

    def stock_intent(self, t: Tracked, shares: float, now_ns: int, action: IntentAction = IntentAction.HEDGE,
                     tag: str = "hedge") -> OrderIntent:
        """A market stock order of ``shares`` (signed) booked to structure ``t``."""
        qty = round(abs(shares))
        leg = Leg(t.structure.underlying, Side.BUY if shares > 0 else Side.SELL, 1, None, AssetClass.EQUITY)
        intent = self._intent(t, action, (leg,), qty, PricePolicy(kind="market", timeout_s=30.0), now_ns, tag)
        if action is IntentAction.HEDGE:
            t.pending_hedge = intent.intent_id
        return intent

    def _intent(self, t: Tracked, action: IntentAction, legs: tuple[Leg, ...], qty: int, policy: PricePolicy,
                now_ns: int, tag: str) -> OrderIntent:
        iid = f"{t.structure_id}-{action.value}-{len(t.intents) + 1}"
        t.intents.append(iid)
        t.working.add(iid)
        self._by_intent[iid] = (t.structure_id, action)
        return OrderIntent(iid, self.strategy_id, t.structure_id, t.structure.underlying, action, legs, qty,
                           policy, tag=tag, ts_event_ns=now_ns, ts_init_ns=now_ns)

    # ---- outcomes
    def on_fill(self, fill: OrderFilled) -> Tracked | None:
        """Apply a fill to its structure (ignores duplicates and fills of other strategies)."""
        t = self._find(fill.structure_id, fill.intent_id)
        if t is None or fill.execution_id in t.executions:
            return None
        t.executions.add(fill.execution_id)
        dq = fill.signed_qty
        if fill.asset_class is AssetClass.EQUITY:
            cash = -dq * fill.price
            if fill.intent_id and fill.intent_id in t.intents:
                t.shares += dq
            else:
                t.settled_shares += dq
            t.stock_cash_usd += cash
            t.hedge_count += 1 if fill.intent_id == t.pending_hedge else 0
        else:
            t.filled[fill.symbol] = t.filled.get(fill.symbol, 0.0) + dq
            cash = option_cash_usd(fill, t.structure.legs[0].symbol, t.structure.legs[0].ratio)
            t.option_cash_usd += cash
        if t.status is StructureStatus.CLOSED:
            self.realized_usd += cash  # a settlement (or its unwind) after the strategy let the structure go
        if t.status is StructureStatus.OPENING:
            t.status = StructureStatus.OPEN
            self.opened += 1
        if t.status in (StructureStatus.OPEN, StructureStatus.CLOSING) and t.is_flat:
            self._mark_closed(t, fill.ts_event_ns)
        return t

    def on_order_update(self, update: OrderUpdated) -> Tracked | None:
        """Settle a structure when its order ends without (complete) fills."""
        if not update.status.is_terminal:
            return None
        return self._end(update.structure_id, update.intent_id)

    def on_denied(self, denied: IntentDenied) -> Tracked | None:
        return self._end(denied.structure_id, denied.intent_id)

    def _end(self, structure_id: str, intent_id: str) -> Tracked | None:
        t = self._find(structure_id, intent_id)
        if t is None:
            return None
        entry = self._by_intent.pop(intent_id, None)  # an intent ends once: a repeated terminal update is a no-op
        if entry is not None:
            self._intent_ended(t, entry[1], intent_id)
        return t

    def _intent_ended(self, t: Tracked, action: IntentAction, intent_id: str) -> None:
        t.working.discard(intent_id)
        if intent_id == t.pending_hedge:
            t.pending_hedge = ""
        if action is IntentAction.OPEN and t.status is StructureStatus.OPENING:
            if all(abs(q) <= _EPS for q in t.filled.values()):
                t.status = StructureStatus.CANCELLED
            else:
                t.status = StructureStatus.OPEN
                self.opened += 1
        elif (action is IntentAction.CLOSE and t.status is StructureStatus.CLOSING and not t.is_flat
              and not any(self._by_intent[i][1] is IntentAction.CLOSE for i in t.working)):
            t.status = StructureStatus.OPEN  # every close order ended with legs left: the actor retries

    def expire(self, today: dt.date, now_ns: int) -> list[Tracked]:
        """Close structures whose expiry date has passed (settled by the broker: expiry, exercise or
        assignment arrive as account activities, which the engine books in the portfolio). Once a day, drop the
        structures nothing more can happen to, so the tracker holds days of structures, not the whole run."""
        if today != self._swept_day:
            self._swept_day = today
            self._retire(today)
        out: list[Tracked] = []
        for t in self.active():
            if t.structure.expiry < today and t.status is not StructureStatus.OPENING:
                t.close_reason = t.close_reason or "expired"
                self._mark_closed(t, now_ns)
                out.append(t)
        return out

    def _retire(self, today: dt.date) -> None:
        """Drop entries that never filled, and closed structures flat in stock a week past their expiry (the
        broker's settlement activities, booked to them as late fills, are in by then)."""
        settled_by = today - dt.timedelta(days=RETIRE_AFTER_EXPIRY_DAYS)
        for sid, t in list(self.structures.items()):
            if t.working or abs(t.shares) > _EPS or abs(t.settled_shares) > _EPS:
                continue
            never_filled = t.status is StructureStatus.CANCELLED and all(abs(q) <= _EPS for q in t.filled.values())
            if never_filled or (t.status is StructureStatus.CLOSED and t.structure.expiry < settled_by):
                del self.structures[sid]
                self.retired += 1
                self.retired_stock_cash_usd += t.stock_cash_usd

    def _mark_closed(self, t: Tracked, ts_ns: int) -> None:
        t.status = StructureStatus.CLOSED
        t.closed_ns = ts_ns
        self.closed += 1
        self.realized_usd += t.option_cash_usd + t.stock_cash_usd

    def _find(self, structure_id: str, intent_id: str) -> Tracked | None:
        t = self.structures.get(structure_id)
        if t is None and intent_id in self._by_intent:
            t = self.structures.get(self._by_intent[intent_id][0])
        return t


def _kind(recorded: str, legs: tuple[StructureLeg, ...]) -> StructureKind:
    """The structure kind the journal recorded, or the one its legs make (journals written before the record)."""
    if recorded in StructureKind.__members__.values():
        return StructureKind(recorded)
    if len(legs) == 4:
        strikes = sorted(leg.strike for leg in legs if leg.ratio < 0)
        return StructureKind.IRON_BUTTERFLY if strikes[0] == strikes[-1] else StructureKind.IRON_CONDOR
    if len({leg.expiry for leg in legs}) > 1:
        return StructureKind.CALENDAR
    if len(legs) == 2 and legs[0].is_call != legs[1].is_call:
        return StructureKind.STRADDLE if legs[0].strike == legs[1].strike else StructureKind.STRANGLE
    return StructureKind.VERTICAL
