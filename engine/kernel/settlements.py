"""Expiry, exercise and assignment: account activities become fills the portfolio and strategies book.

The venue does not send these on its order stream; they appear as account records (``Settlement``: expired
worthless, exercised or assigned, each with the contracts affected in ``qty``; on Alpaca's paper accounts only
the next day). The poller reads them and turns each into settlement fills, booked to
the structures that held the contract (:func:`settlement_fills`; engine/kernel/attribution.py says which):

* the contracts the activity names are closed at 0 (their value left as cash or as shares); an early or
  partial assignment leaves the rest with its structure;
* on exercise or assignment, shares move at the strike (+100 per long call exercised, -100 per short
  call assigned, and the reverse for puts). The shares' own record is not read: the shares follow from the
  contract.

Each settlement fill's ``execution_id`` is derived from the activity id, so a repeated poll or a
restart books it once. Assigned or exercised shares are unwound when the policy says so (``unwind``;
``hold`` keeps them for the operator): one market order per structure for the net shares a batch of
activities moved (a long put exercised and a short put assigned together often net to a few hundred
shares where the gross legs would need the buying power of thousands). The unwind follows state, not
the event: a structure whose options are gone but which still holds shares a settlement gave it, with no
order working for it, is unwound again at the next poll (back-off doubling to 10 minutes), so an unwind
the gate or the broker refused, one cancelled at its timeout, or one lost to a crash between the journal
and the broker, is not forgotten. Shares an early or partial assignment moved into a structure that still holds
options are unwound at once (its strategy never trades them: strategies/tracking.py keeps them apart); if that
unwind fails, they are unwound again once the structure's options are gone.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from domain.orders import (
    CONTRACT_MULTIPLIER,
    AssetClass,
    IntentAction,
    Leg,
    OrderFilled,
    OrderIntent,
    PricePolicy,
    Side,
)
from engine.kernel.attribution import Holder, portfolio_holders, take
from engine.kernel.portfolio import Portfolio, underlying_of
from engine.kernel.ports import ExecutionClient
from engine.kernel.venue_types import Settlement, VenueError
from greeks.calendar import expiry_close_ns
from greeks.occ import OccSymbolError, parse_occ

log = structlog.get_logger(__name__)

SETTLEMENT_STRATEGY = "settlement"
AssignmentPolicy = Literal["unwind", "hold"]


def settlement_fills(activity: Settlement, portfolio: Portfolio, ts_init_ns: int, event_ns: int = 0,
                     pending: Sequence[OrderFilled] = ()) -> list[OrderFilled]:
    """The fills one settlement activity implies (none for a contract the portfolio does not hold).

    The activity's quantity (``qty``: the contracts affected, whatever its sign) is what is settled:

    * an early or partial one (``k`` of the ``n`` contracts held) is taken from the holders on the side of the
      account's net position, the quantity no structure explains first, then the structures oldest first
      (engine/kernel/attribution.py); the rest stays with its structures, managed by their strategies and counted by
      the gate;
    * one at or after the contract's expiry covering the whole position (or one without a quantity) flattens
      every structure holding the contract, on either side: the broker settles the account's net position, but
      two structures may hold the contract on opposite sides, and booking the net to one of them left the other
      with a leg in a contract that no longer exists (a short one counts as unlimited risk and blocked every
      entry after; the kill -9 loop).

    On exercise or assignment each holder also gets its shares at the strike. The fills sum to the broker's
    quantities. ``pending``: fills already published but perhaps not in the portfolio yet (an earlier activity
    of the same batch). Non-trade activities carry a date, not a time: the fills are stamped ``event_ns`` (the
    engine's event clock; wall time is another time base under the simulator)."""
    symbol = activity.symbol or ""
    try:
        occ = parse_occ(symbol)
    except OccSymbolError:
        log.warning("settlement_unknown_symbol", activity_id=activity.id, symbol=symbol)
        return []
    holders = portfolio_holders(portfolio, symbol, pending, rest_strategy=SETTLEMENT_STRATEGY)
    held = sum(h.qty for h in holders)
    if abs(held) < 1e-9:
        return []
    ts = activity.ts_ns or event_ns or ts_init_ns
    qty = activity.qty
    contracts = None if qty is None else abs(qty)
    parts: list[tuple[Holder, float]]
    if contracts is None or (_at_expiry(activity, occ.expiry, ts) and contracts >= abs(held) - 1e-9):
        parts = [(h, h.qty) for h in holders]
    else:
        parts = [(h, math.copysign(q, h.qty)) for h, q in take(holders, math.copysign(1.0, held), contracts)]
        if contracts > sum(abs(q) for _, q in parts) + 1e-9:
            log.warning("settlement_beyond_position", activity_id=activity.id, symbol=symbol, qty=contracts,
                        held=held)
    underlying = _underlying_of(portfolio, symbol, occ.root)
    fills: list[OrderFilled] = []
    for holder, qty in parts:
        structure_id, strategy_id = holder.structure_id, holder.strategy_id
        suffix = f":{structure_id}" if len(parts) > 1 else ""  # one holder: the id earlier versions journaled
        base = dict(order_id=f"activity-{activity.id}", client_order_id="", ts_event_ns=ts, ts_init_ns=ts_init_ns,
                    strategy_id=strategy_id, structure_id=structure_id)
        fills.append(OrderFilled(f"{activity.id}:{symbol}{suffix}", symbol=symbol,
                                 side=Side.SELL if qty > 0 else Side.BUY, qty=abs(qty), price=0.0,
                                 asset_class=AssetClass.OPTION, **base))  # type: ignore[arg-type]
        if activity.kind != "expired":
            shares = qty * CONTRACT_MULTIPLIER * (1 if occ.is_call else -1)
            fills.append(OrderFilled(f"{activity.id}:{underlying}{suffix}", symbol=underlying,
                                     side=Side.BUY if shares > 0 else Side.SELL, qty=abs(shares), price=occ.strike,
                                     asset_class=AssetClass.EQUITY, **base))  # type: ignore[arg-type]
    return fills


def _at_expiry(activity: Settlement, expiry: dt.date, ts_ns: int) -> bool:
    """Whether the activity settles the contract at (or after) its expiry rather than early."""
    if activity.kind == "expired":
        return True
    if activity.date is not None:
        return activity.date >= expiry
    return ts_ns >= expiry_close_ns(expiry)


def offsetting_expiry_fills(portfolio: Portfolio, now_ns: int, spot: Callable[[str], float],
                            ts_init_ns: int) -> list[OrderFilled]:
    """Flatten structure legs in contracts past their expiry that the account as a whole does not hold.

    Structures holding a contract on opposite sides in equal size net to nothing at the broker, which
    therefore settles nothing and sends no activity; each structure's leg is closed here at the contract's
    intrinsic value against the others (the fills sum to zero per contract, so positions and total P&L are
    unchanged). Execution ids are ``expiry:<symbol>:<structure>``: a repeated call or a restart books once."""
    legs: dict[str, list[tuple[str, str, float]]] = {}
    for snap in portfolio.structures():
        for symbol, qty in snap.legs.items():
            if abs(qty) > 1e-9 and len(symbol) > 12:
                legs.setdefault(symbol, []).append((snap.structure_id, snap.strategy_id, qty))
    fills: list[OrderFilled] = []
    for symbol, holders in legs.items():
        try:
            occ = parse_occ(symbol)
        except OccSymbolError:
            continue
        if now_ns < expiry_close_ns(occ.expiry) or abs(portfolio.position(symbol)) > 1e-9:
            continue  # not expired yet, or the broker holds it and its activity will settle it
        s = spot(_underlying_of(portfolio, symbol, occ.root))
        value = 0.0 if not math.isfinite(s) else max(0.0, s - occ.strike if occ.is_call else occ.strike - s)
        for structure_id, strategy_id, qty in holders:
            fills.append(OrderFilled(f"expiry:{symbol}:{structure_id}", f"expiry-{symbol}", "", symbol,
                                     Side.SELL if qty > 0 else Side.BUY, abs(qty), round(value, 4), now_ns,
                                     ts_init_ns, AssetClass.OPTION, strategy_id, structure_id))
    return fills


def unwind_intent(structure_id: str, strategy_id: str, symbol: str, shares: float, seq: int,
                  now_ns: int) -> OrderIntent:
    """A market stock order for ``shares`` (signed: + buys) that gives back what a settlement moved."""
    side = Side.BUY if shares > 0 else Side.SELL
    sid = structure_id or f"{SETTLEMENT_STRATEGY}-{symbol}"
    return OrderIntent(f"{sid}-unwind-{seq}", strategy_id or SETTLEMENT_STRATEGY, sid, symbol,
                       IntentAction.CLOSE, (Leg(symbol, side, 1, None, AssetClass.EQUITY),), round(abs(shares)),
                       PricePolicy(kind="market", timeout_s=300.0), tag="assignment_unwind",
                       ts_event_ns=now_ns, ts_init_ns=time.time_ns())


_UNWIND_SEQ = re.compile(r"-unwind-(\d+)$")
TRANSFER_PREFIX = "transfer-"
_TRANSFER_SEQ = re.compile(r"-(\d+)$")
_RETRY_FIRST_S = 10.0
_RETRY_MAX_S = 600.0
POLL_INTERVAL_S = 10.0
UNHELD_POLLS = 6


@dataclass
class _Unwinding:
    """A structure a settlement gave shares to, watched until it holds none."""

    strategy_id: str
    symbol: str
    attempts: int = 0
    next_try: float = 0.0


@dataclass
class _Holding:
    """A settled structure's shares of one stock, while transfers are matched."""

    strategy_id: str
    structure_id: str
    shares: float


class SettlementPoller:
    """Reads settlement activities after a cursor and hands their fills (and unwind intents) to the engine."""

    def __init__(
        self,
        broker: ExecutionClient,
        portfolio: Portfolio,
        on_fill: Callable[[OrderFilled], object],
        submit: Callable[[OrderIntent], None],
        *,
        policy: AssignmentPolicy = "unwind",
        now_ns: Callable[[], int] = time.time_ns,
        busy: Callable[[str], bool] = lambda structure_id: False,
        monotonic: Callable[[], float] = time.monotonic,
        spot: Callable[[str], float] = lambda underlying: math.nan,
    ) -> None:
        self.broker = broker
        self.portfolio = portfolio
        self.on_fill = on_fill
        self.submit = submit
        self.policy = policy
        self.now_ns = now_ns
        self.busy = busy
        """True while an order for the structure is working (its unwind, or the strategy's own close)."""
        self.monotonic = monotonic
        self.spot = spot
        """Underlying price, for the intrinsic value of offsetting legs closed at expiry."""
        self.seen: set[str] = set()
        self.unheld: dict[str, int] = {}
        """Polls so far that found nothing held for an activity not yet booked, by activity id."""
        self.settled = 0
        self.unwinds = 0
        self.transfers = 0
        self.unwinding: dict[str, _Unwinding] = {}
        """Structures holding settlement shares, by structure id."""
        self.last_poll: float | None = None
        """Monotonic time of the last poll (None before the first)."""

    def due(self, interval_s: float = POLL_INTERVAL_S) -> bool:
        """Whether a poll is due: at once after a start (expiries booked and unwinds lost while the engine was
        down must not wait, and in a crash loop an engine may never live a full interval), then every
        ``interval_s``."""
        return self.last_poll is None or self.monotonic() - self.last_poll >= interval_s

    def resume(self, fills: Iterable[OrderFilled], intent_ids: Iterable[str]) -> list[OrderFilled]:
        """After a restart: watch the structures earlier settlements gave shares to (from the journal's
        fills), and number new unwinds and transfers after the journaled ones (ids must not repeat).

        Returns the fills that complete a share transfer a crash journaled only half of (the caller books
        them like any fill): without them the structures' shares would no longer sum to the account's."""
        transfers: dict[str, list[OrderFilled]] = {}
        for fill in fills:
            if fill.asset_class is AssetClass.EQUITY and fill.order_id.startswith("activity-") and fill.structure_id:
                self.unwinding.setdefault(fill.structure_id, _Unwinding(fill.strategy_id, fill.symbol))
            if fill.order_id.startswith(TRANSFER_PREFIX):
                transfers.setdefault(fill.order_id, []).append(fill)
                m = _TRANSFER_SEQ.search(fill.order_id)
                if m:
                    self.transfers = max(self.transfers, int(m.group(1)))
        for intent_id in intent_ids:
            m = _UNWIND_SEQ.search(intent_id)
            if m:
                self.unwinds = max(self.unwinds, int(m.group(1)))
        return [_other_half(legs[0]) for legs in transfers.values() if len(legs) == 1]

    async def poll(self) -> int:
        """Fetch new settlement activities and book them; the number of activities handled."""
        self.last_poll = self.monotonic()
        try:
            activities = await self.broker.settlements()
        except VenueError as exc:
            log.warning("settlement_poll_failed", error=str(exc))
            return 0
        self.retry_unwinds()  # before apply: this poll's own unwinds are not working yet
        handled = self.apply(activities)
        self.close_offsetting_legs()
        return handled

    def close_offsetting_legs(self) -> int:
        """Book :func:`offsetting_expiry_fills` (legs the broker has nothing to settle); the number of fills."""
        fills = offsetting_expiry_fills(self.portfolio, self.now_ns(), self.spot, time.time_ns())
        for fill in fills:
            self.on_fill(fill)
        if fills:
            log.info("offsetting_expired_legs_closed", fills=len(fills),
                     contracts=sorted({f.symbol for f in fills}))
        return len(fills)

    def apply(self, activities: Iterable[Settlement]) -> int:
        handled = 0
        moved: dict[tuple[str, str, str], float] = {}  # (structure, strategy, symbol) -> signed shares
        booked: list[OrderFilled] = []  # published, not yet in the portfolio (the bus delivers later)
        for activity in activities:
            if activity.id in self.seen:
                continue
            fills = settlement_fills(activity, self.portfolio, time.time_ns(), self.now_ns(), booked)
            if not fills and self._wait_for_holding(activity.id):
                continue
            self.seen.add(activity.id)
            self.unheld.pop(activity.id, None)
            handled += 1
            for fill in fills:
                self.on_fill(fill)
                booked.append(fill)
                if fill.asset_class is AssetClass.EQUITY:
                    key = (fill.structure_id, fill.strategy_id, fill.symbol)
                    moved[key] = moved.get(key, 0.0) + fill.signed_qty
            log.info("settled", kind=activity.kind, symbol=activity.symbol, qty=activity.qty)
        self.settled += handled
        if self.policy == "unwind" and moved:
            for sid, strategy_id, symbol in moved:
                if sid:
                    self.unwinding.setdefault(sid, _Unwinding(strategy_id, symbol)).next_try = (
                        self.monotonic() + _RETRY_FIRST_S)
            booked += self.offset_settled_shares(booked)
            for (sid, strategy_id, symbol), shares in moved.items():
                if sid:  # what the structure holds now (other structures' shares may have offset it) ...
                    held = self._settled_shares(sid, self.unwinding[sid], booked)
                    # ... or, while it still holds options (a partial or early assignment), what this batch moved
                    shares = shares if held is None else held
                if abs(shares) >= 0.5:  # outside any structure: the net this batch moved
                    self._submit_unwind(sid, strategy_id, symbol, -shares)
        return handled

    def _wait_for_holding(self, activity_id: str) -> bool:
        """Whether to look at an activity for a contract the portfolio does not hold again at the next poll.

        The fill that opened the position may still be on its way: an order adopted at a restart, or a
        broker order read again once the stream listens, is published to the bus after the first poll may
        already have read the contract's expiry (the kill -9 loop: the engine kept 5 expired puts the
        broker had settled). An activity the portfolio still has nothing for after ``UNHELD_POLLS`` polls
        is one for a contract the engine never held."""
        polls = self.unheld.get(activity_id, 0) + 1
        self.unheld[activity_id] = polls
        return polls < UNHELD_POLLS

    def offset_settled_shares(self, booked: Sequence[OrderFilled] = ()) -> list[OrderFilled]:
        """Move shares between settled structures that hold the same stock on opposite sides.

        The broker holds only their net, so unwinding each structure gross sends orders that, for the account,
        open new exposure: the broker refuses them for buying power, the gate in REDUCE_ONLY as not reducing
        (the kill -9 loop: +500 and -500 SPY in two 0DTE structures, every unwind refused, trading stopped).
        A transfer is a sell in one structure and a buy in the other at the current spot, with order id
        ``transfer-<symbol>-<n>`` (the two net to zero: positions and total P&L are unchanged); what is left
        has one sign per stock, is what the account holds, and its unwinds reduce the account's position.
        ``booked``: fills this poll published (the bus may deliver them to the portfolio later)."""
        by_symbol: dict[str, list[_Holding]] = {}
        for sid, watch in self.unwinding.items():
            shares = self._settled_shares(sid, watch, booked)
            if shares is not None and abs(shares) >= 0.5 and not self.busy(sid):
                by_symbol.setdefault(watch.symbol, []).append(_Holding(watch.strategy_id, sid, shares))
        fills: list[OrderFilled] = []
        for symbol, holders in by_symbol.items():
            price = self.spot(symbol)
            if not (math.isfinite(price) and price > 0):
                continue  # no price to transfer at: unwind gross rather than book at a made-up price
            longs = [h for h in holders if h.shares > 0]
            shorts = [h for h in holders if h.shares < 0]
            while longs and shorts:
                seller, buyer = longs[0], shorts[0]
                qty = min(seller.shares, -buyer.shares)
                self.transfers += 1
                order_id = f"{TRANSFER_PREFIX}{symbol}-{self.transfers}"
                fills.append(_transfer_fill(order_id, symbol, Side.SELL, qty, round(price, 4), self.now_ns(),
                                            time.time_ns(), (seller.strategy_id, seller.structure_id),
                                            (buyer.strategy_id, buyer.structure_id)))
                fills.append(_other_half(fills[-1]))
                seller.shares -= qty
                buyer.shares += qty
                if seller.shares < 0.5:
                    longs.pop(0)
                if buyer.shares > -0.5:
                    shorts.pop(0)
        for fill in fills:
            self.on_fill(fill)
        if fills:
            log.info("settled_shares_transferred", fills=len(fills), symbols=sorted({f.symbol for f in fills}))
        return fills

    def _settled_shares(self, sid: str, watch: _Unwinding, booked: Sequence[OrderFilled] = ()) -> float | None:
        """Shares a settled structure holds once its options are gone (None while options remain)."""
        snap = self.portfolio.structure(sid)
        legs = dict(snap.legs) if snap is not None else {}
        for fill in booked:
            if fill.structure_id == sid and not self.portfolio.has_booked(fill.execution_id):
                legs[fill.symbol] = legs.get(fill.symbol, 0.0) + fill.signed_qty
        if any(abs(q) > 1e-9 for s, q in legs.items() if s != watch.symbol):
            return None  # options still held: the structure is live and its strategy manages the shares
        return legs.get(watch.symbol, 0.0)

    def retry_unwinds(self) -> None:
        """Unwind again the shares still held by a structure whose options are gone and which has no order
        working; forget structures that hold none. Opposite structures are offset first."""
        if self.policy != "unwind":
            return
        booked = self.offset_settled_shares()
        now = self.monotonic()
        for sid, watch in list(self.unwinding.items()):
            shares = self._settled_shares(sid, watch, booked)
            if shares is not None and abs(shares) < 0.5:
                del self.unwinding[sid]
                continue
            if shares is None or now < watch.next_try or self.busy(sid):
                continue
            watch.attempts += 1
            watch.next_try = now + min(_RETRY_FIRST_S * 2**watch.attempts, _RETRY_MAX_S)
            log.warning("settlement_unwind_retry", structure_id=sid, symbol=watch.symbol, shares=shares,
                        attempt=watch.attempts)
            self._submit_unwind(sid, watch.strategy_id, watch.symbol, -shares)

    def _submit_unwind(self, structure_id: str, strategy_id: str, symbol: str, shares: float) -> None:
        self.unwinds += 1
        self.submit(unwind_intent(structure_id, strategy_id, symbol, shares, self.unwinds, self.now_ns()))


def _transfer_fill(order_id: str, symbol: str, side: Side, qty: float, price: float, now_ns: int, wall_ns: int,
                   owner: tuple[str, str], counterparty: tuple[str, str]) -> OrderFilled:
    """One side of a share transfer; ``client_order_id`` names the counterparty (strategy, structure), so a
    restart can book the other side when a crash journaled only this one."""
    strategy_id, structure_id = owner
    return OrderFilled(f"{order_id}:{side.value}", order_id, f"{counterparty[0]}/{counterparty[1]}", symbol, side,
                       qty, price, now_ns, wall_ns, AssetClass.EQUITY, strategy_id, structure_id)


def _other_half(fill: OrderFilled) -> OrderFilled:
    """The counterparty's side of a transfer fill."""
    strategy_id, _, structure_id = fill.client_order_id.partition("/")
    other = Side.BUY if fill.side is Side.SELL else Side.SELL
    return _transfer_fill(fill.order_id, fill.symbol, other, fill.qty, fill.price, fill.ts_event_ns,
                          fill.ts_init_ns, (strategy_id, structure_id), (fill.strategy_id, fill.structure_id))


def _underlying_of(portfolio: Portfolio, symbol: str, root: str) -> str:
    return underlying_of(symbol) or root
