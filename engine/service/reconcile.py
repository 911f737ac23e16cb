"""Restart reconciliation, as pure logic: journal state + broker truth -> a plan of actions and alerts.

Inputs are what the journal committed (engine/service/journal.py) and what the broker reports: open orders, recent
(closed) orders, positions and the fills on the account's record, in the kernel's venue types (``BrokerState``;
:func:`decode_broker` builds one from Alpaca's JSON). The output :class:`ReconcilePlan` says what to do:

* orders at the broker whose ``client_order_id`` the journal knows are adopted (the engine resumes managing
  them); unknown open orders are cancelled or adopted by policy, with an alert either way;
* journal orders that ended while we were down get the broker's final state;
* an intent journaled but never seen at the broker is abandoned, never submitted again (it may be stale);
* fills the broker reports (order ``filled_qty``, FILL activities) beyond the journal's are imported from
  the activities, one per activity, with the activity id as execution id. A shortfall no activity explains
  is an alert, never an invented fill;
* positions are the broker's; any difference from the journal's fills, any structure whose legs the broker
  does not hold, and any position no structure explains is an alert;
* open structures are rebuilt from the journal.

Before any of that, :func:`check_account` makes sure the journal and the broker are the same account.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import msgspec

from domain.orders import AssetClass, OrderFilled, OrderStatus, OrderUpdated
from engine.alpaca import decode
from engine.kernel.alerts import Alert
from engine.kernel.attribution import Holder, attribute_broker_fill, is_broker_fill, with_unexplained
from engine.kernel.outputs import StructureRecord
from engine.kernel.portfolio import underlying_of
from engine.kernel.venue_types import Execution, Position, VenueOrder
from engine.service.journal import BoundAccount, JournalOrder, JournalState

_EPS = 1e-9
_REPLACEMENT = re.compile(r"(.+)\.r[0-9]+")


class BrokerState(msgspec.Struct, frozen=True):
    """What the venue reports, in the kernel's venue types."""

    open_orders: list[VenueOrder]
    recent_orders: list[VenueOrder]
    positions: list[Position]
    activities: list[Execution]


def decode_broker(open_orders: Any, recent_orders: Any, positions: Any, activities: Any) -> BrokerState:
    """Alpaca JSON (lists of dicts, as the REST API returns them) -> broker state, through the Alpaca adapter's
    decoder (the one every Alpaca order passes)."""
    return BrokerState(
        decode.orders_from_json(open_orders),
        decode.orders_from_json(recent_orders),
        decode.positions_from_json(positions),
        decode.executions_from_json(activities),
    )


class ReconcilePolicy(msgspec.Struct, frozen=True):
    unknown_orders: Literal["cancel", "adopt"] = "cancel"
    client_order_prefix: str = "oe"


class AdoptOrder(msgspec.Struct, frozen=True):
    """Resume managing a broker order; ``known`` False for one the journal never saw (adopted by policy)."""

    order_id: str
    client_order_id: str
    status: OrderStatus
    qty: float
    filled_qty: float
    known: bool
    strategy_id: str = ""
    structure_id: str = ""
    intent_id: str = ""


class CancelOrder(msgspec.Struct, frozen=True):
    order_id: str
    client_order_id: str
    reason: str


class AbandonIntent(msgspec.Struct, frozen=True):
    intent_id: str
    client_order_id: str


class ReconcilePlan(msgspec.Struct, frozen=True):
    adopt: list[AdoptOrder]
    cancel: list[CancelOrder]
    order_updates: list[OrderUpdated]
    abandon: list[AbandonIntent]
    import_fills: list[OrderFilled]
    structures: list[StructureRecord]
    positions: dict[str, float]
    alerts: list[Alert]


class AccountMismatch(Exception):
    """The journal belongs to another broker account than the one the engine is connected to."""


def check_account(bound: BoundAccount | None, broker: BoundAccount, journal_has_history: bool,
                  journal_path: str) -> bool:
    """Refuse to reconcile a journal against an account it does not belong to.

    Returns True when the journal is not bound yet and should now be bound to ``broker`` (its first use,
    or a journal of a paper/live account from before accounts were recorded). Raises
    :class:`AccountMismatch`, naming both accounts, when it belongs to another one, and for a sim-mode
    journal with history but no account: it was written against a simulated account that was not kept.
    """
    sim = broker.mode == "sim"
    remedy = (
        "start a new simulated account and archive this journal with `options-engine run --fresh`"
        if sim
        else f"point engine.state_dir at the journal of {broker.mode} account {broker.account_id}, or move "
        f"{journal_path} away to start a new journal"
    )
    if bound is None:
        if journal_has_history and sim:
            raise AccountMismatch(
                f"the journal {journal_path} holds the orders and fills of an earlier simulated account that "
                f"was not kept (it names no account), but the simulator is account {broker.account_id}: "
                f"refusing to reconcile against another account; {remedy}"
            )
        return True
    if bound.account_id != broker.account_id:
        raise AccountMismatch(
            f"the journal {journal_path} belongs to {bound.mode} account {bound.account_id}, but the broker is "
            f"{broker.mode} account {broker.account_id}: refusing to reconcile against another account; {remedy}"
        )
    return False


def leg_filled(order: VenueOrder) -> dict[str, float]:
    """Filled quantity per symbol of a broker order (legs for mleg)."""
    if order.legs:
        out: dict[str, float] = collections.defaultdict(float)
        for leg in order.legs:
            out[leg.symbol] += leg.filled_qty
        return dict(out)
    return {order.symbol: order.filled_qty} if order.symbol else {}



def reconcile(state: JournalState, broker: BrokerState, policy: ReconcilePolicy, now_ns: int) -> ReconcilePlan:
    """The reconciliation plan; pure (no I/O, no clock: ``now_ns`` stamps what it creates)."""
    alerts: list[Alert] = []

    def alert(code: str, severity: Any, message: str, **details: Any) -> None:
        alerts.append(Alert(code, severity, message, details, ts_ns=now_ns))

    intents_by_coid = {i.client_order_id: i for i in state.intents.values()}
    broker_by_coid: dict[str, VenueOrder] = {o.client_id: o for o in broker.recent_orders}
    broker_by_coid.update({o.client_id: o for o in broker.open_orders})
    coid_of_order_id: dict[str, str] = {}
    for o in broker_by_coid.values():
        coid_of_order_id[o.id] = o.client_id
        for leg in o.legs:
            coid_of_order_id[leg.id] = o.client_id

    def journal_coid(coid: str) -> str | None:
        """The journaled client_order_id ``coid`` belongs to: itself, or for a replacement ``<id>.r<k>``
        the order chain's base (a crash can land between the broker's replace and its journal entry)."""
        for c in (coid, replacement_base(coid)):
            if c is not None and (c in state.orders or c in intents_by_coid):
                return c
        return None

    def journal_context(coid: str) -> tuple[str, str, str]:
        c = journal_coid(coid)
        j = state.orders.get(c) if c is not None else None
        if j is not None:
            return j.strategy_id, j.structure_id, j.intent_id
        i = intents_by_coid.get(c) if c is not None else None
        if i is not None:
            return i.intent.strategy_id, i.intent.structure_id, i.intent.intent_id
        return "", "", ""

    # 1. open orders at the broker: adopt known ones, cancel or adopt unknown ones by policy
    adopt: list[AdoptOrder] = []
    cancel: list[CancelOrder] = []
    for o in broker.open_orders:
        coid = o.client_id
        known = journal_coid(coid) is not None
        strategy_id, structure_id, intent_id = journal_context(coid)
        if known:
            adopt.append(
                AdoptOrder(
                    o.id,
                    coid,
                    o.status,
                    o.qty or 0.0,
                    o.filled_qty,
                    True,
                    strategy_id,
                    structure_id,
                    intent_id,
                )
            )
            continue
        ours = coid.startswith(policy.client_order_prefix + "-")
        what = (
            "an order with our client_order_id prefix the journal does not know"
            if ours
            else "an order the engine did not place"
        )
        if policy.unknown_orders == "cancel":
            cancel.append(CancelOrder(o.id, coid, "unknown_order"))
            alert(
                "unknown_order_cancelled",
                "warning",
                f"cancelling {what}: {coid}",
                order_id=o.id,
                client_order_id=coid,
                symbol=o.symbol,
            )
        else:
            adopt.append(AdoptOrder(o.id, coid, o.status, o.qty or 0.0, o.filled_qty, False))
            alert(
                "unknown_order_adopted",
                "warning",
                f"adopting {what}: {coid}",
                order_id=o.id,
                client_order_id=coid,
                symbol=o.symbol,
            )

    # 2. journal orders still working when we stopped: take the broker's word for how they ended
    open_coids = {o.client_id for o in broker.open_orders}
    updates: list[OrderUpdated] = []
    for j in state.orders.values():
        if j.status.is_terminal or j.client_order_id in open_coids:
            continue
        b = broker_by_coid.get(j.client_order_id)
        if b is None:
            alert(
                "journal_order_not_at_broker",
                "warning",
                f"order {j.client_order_id} was working in the journal but the broker does not report it",
                client_order_id=j.client_order_id,
                order_id=j.order_id,
            )
            continue
        updates.append(_update_from_broker(j, b, now_ns))

    # 3. intents journaled but never submitted: abandon, never resubmit
    abandon = [
        AbandonIntent(i.intent.intent_id, coid)
        for coid, i in intents_by_coid.items()
        if coid not in state.orders and coid not in broker_by_coid
    ]
    for a in abandon:
        alert(
            "intent_not_submitted",
            "info",
            f"intent {a.intent_id} was journaled but never reached the broker; it is abandoned, not resubmitted",
            intent_id=a.intent_id,
            client_order_id=a.client_order_id,
        )

    # 4. fills: import what the broker's activities show beyond the journal; never invent one. Fills of orders the
    #    engine did not place (the broker's expiry-day liquidations) are booked to the structures they closed.
    def foreign(coid: str) -> bool:
        return journal_coid(coid) is None and not coid.startswith(policy.client_order_prefix + "-")

    imported = _import_fills(state, broker, broker_by_coid, coid_of_order_id, journal_coid, journal_context, alert,
                             now_ns, foreign)
    imported = _attribute_broker_fills(state, imported)

    # 5. positions: the broker's are the truth; report every difference
    expected: dict[str, float] = collections.defaultdict(float, state.positions())
    for f in imported:
        expected[f.symbol] += f.signed_qty
    broker_pos = {p.symbol: p.qty for p in broker.positions if abs(p.qty) > _EPS}
    for symbol in sorted(set(expected) | set(broker_pos)):
        e, held = expected.get(symbol, 0.0), broker_pos.get(symbol, 0.0)
        if abs(e - held) > _EPS:
            alert(
                "position_mismatch",
                "error",
                f"{symbol}: journal fills give {e:g}, broker holds {held:g}",
                symbol=symbol,
                journal_qty=e,
                broker_qty=held,
            )

    # 6. structures: rebuild the open ones; report legs the broker does not hold and unexplained positions
    structures = open_structures(state, imported)
    _check_structures(structures, broker_pos, alert)
    return ReconcilePlan(adopt, cancel, updates, abandon, imported, structures, broker_pos, alerts)


def _update_from_broker(j: JournalOrder, b: VenueOrder, now_ns: int) -> OrderUpdated:
    return OrderUpdated(
        b.id,
        j.client_order_id,
        b.status,
        b.filled_qty,
        b.qty or j.qty,
        now_ns,
        now_ns,
        j.strategy_id,
        j.structure_id,
        j.intent_id,
        b.avg_price,
        b.limit,
        reason="reconciled",
    )


def replacement_base(coid: str) -> str | None:
    """``<id>`` for a replacement's ``<id>.r<k>`` (engine/kernel/router.py names replacements so), else None."""
    m = _REPLACEMENT.fullmatch(coid)
    return m.group(1) if m else None


def _import_fills(
    state: JournalState,
    broker: BrokerState,
    broker_by_coid: dict[str, VenueOrder],
    coid_of_order_id: dict[str, str],
    journal_coid: Callable[[str], str | None],
    journal_context: Any,
    alert: Any,
    now_ns: int,
    foreign: Callable[[str], bool] = lambda coid: False,
) -> list[OrderFilled]:
    journal_qty: dict[tuple[str, str], float] = collections.defaultdict(float)
    journal_execs = set()
    for f in state.fills:
        journal_qty[(f.fill.client_order_id, f.fill.symbol)] += f.fill.qty
        journal_execs.add(f.fill.execution_id)
    acts: dict[tuple[str, str], list[Execution]] = collections.defaultdict(list)
    for a in sorted(broker.activities, key=lambda a: (a.ts_ns, a.id)):
        coid = coid_of_order_id.get(a.order_id)
        if coid is None:
            known = any(f.fill.order_id == a.order_id for f in state.fills)
            if not known:
                alert(
                    "unknown_fill_at_broker",
                    "warning",
                    f"broker reports a fill of {a.symbol} on an order the engine does not know",
                    activity_id=a.id,
                    order_id=a.order_id,
                    symbol=a.symbol,
                    qty=a.qty,
                )
            continue
        acts[(coid, a.symbol)].append(a)

    imported: list[OrderFilled] = []
    for coid, order in broker_by_coid.items():
        broker_order = foreign(coid)
        if journal_coid(coid) is None and not broker_order:
            continue
        strategy_id, structure_id, intent_id = journal_context(coid)
        for symbol, broker_filled in leg_filled(order).items():
            have = journal_qty.get((coid, symbol), 0.0)
            if broker_filled <= have + _EPS:
                continue
            missing = broker_filled - have
            skip = have  # activities are in time order; the journal holds the earliest ones
            n_before = len(imported)
            for a in acts.get((coid, symbol), []):
                if missing <= _EPS:
                    break
                if a.id in journal_execs:
                    skip -= a.qty
                    continue
                if skip > _EPS:
                    used = min(skip, a.qty)
                    skip -= used
                    if a.qty - used <= _EPS:
                        continue
                    qty = a.qty - used
                else:
                    qty = a.qty
                qty = min(qty, missing)
                missing -= qty
                imported.append(
                    OrderFilled(
                        a.id,
                        a.order_id,
                        coid,
                        symbol,
                        a.side,
                        qty,
                        a.price,
                        a.ts_ns or now_ns,
                        now_ns,
                        AssetClass.OPTION if len(symbol) > 6 else AssetClass.EQUITY,
                        strategy_id,
                        structure_id,
                        intent_id,
                        parent_order_id=order.id,
                    )
                )
            if len(imported) > n_before and broker_order:
                alert(
                    "broker_order_fills_imported",
                    "warning",
                    f"{coid} {symbol}: fills of an order the engine did not place (a broker liquidation?) imported "
                    "from broker activities and booked to the structures holding the contract",
                    client_order_id=coid,
                    symbol=symbol,
                    order_id=order.id,
                )
            elif len(imported) > n_before:
                alert(
                    "fill_recovered_from_broker",
                    "warning",
                    f"{coid} {symbol}: fills missing from the journal imported from broker activities",
                    client_order_id=coid,
                    symbol=symbol,
                )
            if missing > _EPS:
                alert(
                    "fills_missing",
                    "error",
                    f"{coid} {symbol}: broker filled {broker_filled:g}, journal has "
                    f"{have:g} and no activity explains {missing:g}; not inventing a fill",
                    client_order_id=coid,
                    symbol=symbol,
                    broker_filled=broker_filled,
                    journal_filled=have,
                )
    return imported


class _Holdings:
    """What each structure holds per symbol, from fills (the journal's, then the imported ones in time order)."""

    def __init__(self, fills: Iterable[OrderFilled]) -> None:
        self.total: dict[str, float] = collections.defaultdict(float)
        self.legs: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
        self.owner: dict[str, tuple[str, int]] = {}
        for fill in fills:
            self.add(fill)

    def add(self, fill: OrderFilled) -> None:
        self.total[fill.symbol] += fill.signed_qty
        if fill.structure_id:
            self.legs[fill.symbol][fill.structure_id] += fill.signed_qty
            self.owner.setdefault(fill.structure_id, (fill.strategy_id, fill.ts_event_ns))

    def holders(self, symbol: str) -> list[Holder]:
        structures = [Holder(sid, self.owner[sid][0], q, self.owner[sid][1])
                      for sid, q in self.legs[symbol].items() if abs(q) > _EPS]
        return with_unexplained(structures, self.total[symbol])


def _attribute_broker_fills(state: JournalState, imported: list[OrderFilled]) -> list[OrderFilled]:
    """The imported fills in time order, each of an order the engine did not place split over the structures
    it closed (engine/kernel/attribution.py), as the running engine books them off the stream."""
    if not any(is_broker_fill(f) for f in imported):
        return imported
    holdings = _Holdings(jf.fill for jf in state.fills)
    out: list[OrderFilled] = []
    for fill in sorted(imported, key=lambda f: (f.ts_event_ns, f.execution_id)):
        for part in attribute_broker_fill(fill, holdings.holders(fill.symbol)) if is_broker_fill(fill) else [fill]:
            holdings.add(part)
            out.append(part)
    return out


def open_structures(state: JournalState, imported: Iterable[OrderFilled] = ()) -> list[StructureRecord]:
    """The structures the journaled (and imported) fills leave holding something. Fills carry their structure,
    so they are the record the portfolio itself is rebuilt from; the structures table only adds what a strategy
    needs to take a structure back (``structure_records``)."""
    legs: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    owner: dict[str, OrderFilled] = {}
    for fill in [jf.fill for jf in state.fills] + list(imported):
        if fill.structure_id:
            legs[fill.structure_id][fill.symbol] += fill.signed_qty
            owner.setdefault(fill.structure_id, fill)
    out: list[StructureRecord] = []
    for sid, by_symbol in legs.items():
        held = {sym: q for sym, q in by_symbol.items() if abs(q) > _EPS}
        if not held:
            continue
        first = owner[sid]
        out.append(StructureRecord(sid, first.strategy_id, underlying_of(first.symbol, first.asset_class), "open",
                                    held, first.ts_event_ns))
    return out


def _check_structures(structures: Sequence[StructureRecord], broker_pos: dict[str, float], alert: Any) -> None:
    wanted: dict[str, float] = collections.defaultdict(float)
    for s in structures:
        if s.state == "pending":
            continue
        for symbol, qty in s.legs.items():
            wanted[symbol] += qty
        held = [
            sym
            for sym, q in s.legs.items()
            if abs(broker_pos.get(sym, 0.0)) > _EPS and (broker_pos[sym] > 0) == (q > 0)
        ]
        if len(held) < len(s.legs):
            alert(
                "structure_incomplete",
                "warning",
                f"structure {s.structure_id} ({s.strategy_id}): the broker "
                f"does not hold legs {sorted(set(s.legs) - set(held))}",
                structure_id=s.structure_id,
                strategy_id=s.strategy_id,
            )
    for symbol, qty in broker_pos.items():
        if abs(wanted.get(symbol, 0.0)) <= _EPS:
            alert(
                "unattributed_position",
                "warning",
                f"broker holds {qty:g} {symbol} that no open structure explains",
                symbol=symbol,
                broker_qty=qty,
            )


def abandoned_update(abandon: AbandonIntent, state: JournalState, now_ns: int) -> OrderUpdated:
    """The terminal order record to journal for an abandoned intent, so the next start does not see it again."""
    intent = state.intents[abandon.intent_id].intent
    return OrderUpdated(
        "",
        abandon.client_order_id,
        OrderStatus.CANCELED,
        0.0,
        float(intent.qty),
        now_ns,
        now_ns,
        intent.strategy_id,
        intent.structure_id,
        intent.intent_id,
        reason="abandoned at restart: never reached the broker",
    )


def summarize(plan: ReconcilePlan) -> dict[str, int]:
    """Counts for the start-up log line."""
    return {
        "adopted": len(plan.adopt),
        "cancelled": len(plan.cancel),
        "updated": len(plan.order_updates),
        "abandoned": len(plan.abandon),
        "fills_imported": len(plan.import_fills),
        "structures": len(plan.structures),
        "alerts": len(plan.alerts),
    }


def alerts_by_code(alerts: Iterable[Alert]) -> dict[str, int]:
    return dict(collections.Counter(a.code for a in alerts))
