"""Which structures a change the broker made on its own belongs to: early assignments, broker liquidations.

The broker acts on the account's net position in a contract; the engine books every fill to a structure. When
the broker closes part of a position by itself (an assignment of ``k`` of ``n`` short contracts, an expiry-day
liquidation order the engine never placed), the contracts are taken from the holders on the side being
reduced, in this order:

1. the quantity no structure explains (an orphan position is the first to go: nobody manages it);
2. then the structures, oldest first (by the time of their first fill; ties by id), each up to what it holds.

Holders on the other side keep their legs (the broker never touches them: the account holds only the net).
A fill split over several holders becomes one fill per holder, each with the quantity taken from it and an
execution id ``<execution id>@<structure id>`` (``@-`` for the unexplained part), so the journal and the
portfolio book each part once; a fill taken from one holder keeps its execution id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec

from domain.orders import OrderFilled, Side
from engine.kernel.portfolio import Portfolio

_EPS = 1e-9
UNEXPLAINED = ""
"""structure_id of the quantity no structure explains."""


class Holder(NamedTuple):
    """One holder of a contract: a structure (or the unexplained rest) and its signed quantity."""

    structure_id: str
    strategy_id: str
    qty: float
    opened_ns: int


def portfolio_holders(
    portfolio: Portfolio, symbol: str, pending: Iterable[OrderFilled] = (), rest_strategy: str = ""
) -> list[Holder]:
    """Every open structure holding ``symbol`` and the rest of the position no structure explains (as strategy
    ``rest_strategy``), with the ``pending`` fills (published, maybe not in the portfolio yet) counted in."""
    qty: dict[str, float] = {}
    owner: dict[str, tuple[str, int]] = {}  # structure -> (strategy, opened)
    for snap in portfolio.structures():
        q = snap.legs.get(symbol, 0.0)
        if abs(q) > _EPS:
            qty[snap.structure_id] = q
            owner[snap.structure_id] = (snap.strategy_id, snap.opened_ns)
    held = portfolio.position(symbol)
    for fill in pending:
        if fill.symbol != symbol or portfolio.has_booked(fill.execution_id):
            continue
        held += fill.signed_qty
        if fill.structure_id:
            qty[fill.structure_id] = qty.get(fill.structure_id, 0.0) + fill.signed_qty
            owner.setdefault(fill.structure_id, (fill.strategy_id, fill.ts_event_ns))
    structures = [Holder(sid, owner[sid][0], q, owner[sid][1]) for sid, q in qty.items() if abs(q) > _EPS]
    return with_unexplained(structures, held, rest_strategy)


def with_unexplained(structures: list[Holder], held: float, strategy_id: str = "") -> list[Holder]:
    """``structures`` plus a holder for what of the position ``held`` they do not explain (if anything)."""
    rest = held - sum(h.qty for h in structures)
    if abs(rest) > _EPS:
        return [*structures, Holder(UNEXPLAINED, strategy_id, rest, -1)]
    return structures


def take(holders: Sequence[Holder], reduce_sign: float, qty: float) -> list[tuple[Holder, float]]:
    """Up to ``qty`` taken from the holders whose quantity has sign ``reduce_sign`` (the side being reduced), in
    the module's order; returns (holder, quantity taken), the total at most ``qty``."""
    side = [h for h in holders if h.qty * reduce_sign > _EPS]
    side.sort(key=lambda h: (h.structure_id != UNEXPLAINED, h.opened_ns, h.structure_id))
    out: list[tuple[Holder, float]] = []
    left = qty
    for h in side:
        if left <= _EPS:
            break
        part = min(abs(h.qty), left)
        out.append((h, part))
        left -= part
    return out


def is_broker_fill(fill: OrderFilled) -> bool:
    """A fill of an order the engine did not place (no strategy, structure or intent: the order's
    client_order_id was never registered by the router)."""
    return not (fill.strategy_id or fill.structure_id or fill.intent_id)


def attribute_broker_fill(fill: OrderFilled, holders: Sequence[Holder]) -> list[OrderFilled]:
    """``fill`` (of an order the engine did not place) booked to the holders it closes: the part that closes
    nobody's position (the broker opened something) stays unexplained."""
    closing = -1.0 if fill.side is Side.BUY else 1.0  # a sell reduces longs, a buy reduces shorts
    parts = take(holders, closing, fill.qty)
    rest = fill.qty - sum(q for _, q in parts)
    owners: list[tuple[str, str, float]] = [(h.structure_id, h.strategy_id, q) for h, q in parts]
    if rest > _EPS:
        owners.append((UNEXPLAINED, "", rest))
    if len(owners) == 1:
        sid, strategy, _ = owners[0]
        return [msgspec.structs.replace(fill, structure_id=sid, strategy_id=strategy)]
    return [
        msgspec.structs.replace(
            fill, execution_id=f"{fill.execution_id}@{sid or '-'}", qty=q, structure_id=sid, strategy_id=strategy
        )
        for sid, strategy, q in owners
    ]
