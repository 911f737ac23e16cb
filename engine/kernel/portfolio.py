"""Positions per leg and per structure, P&L at mid and at natural, and portfolio Greeks in trader units.

``Portfolio`` consumes ``OrderFilled`` events (deduplicated by ``execution_id``, so a replayed or
duplicated trade update never double-counts) and re-marks the held contracts of an underlying on
every book update (``on_book(chain)``). It implements ``domain.views.PortfolioView`` and the gate's
``RiskCapitalView``.

Units: option quantities in contracts, stock in shares; money in dollars. Greeks in trader units:
delta in shares, gamma in shares per $1, vega in $ per vol point, theta in $ per calendar day.

A structure is every fill carrying its ``structure_id`` (a condor's four legs, a straddle and the
stock that hedges it); it is open while any of its legs is non-zero and is closed - with its realized
P&L reported once - when all are flat again.

Memory stays flat over months: the newest ``CLOSED_KEPT`` closed structures are kept whole, older ones
only as per-strategy totals; the execution ids of a closed structure's fills join a window of the newest
``RECENT_EXECUTIONS`` (the journal and the order state machine recognise older duplicates before they
get here); and a flat leg of an expired contract leaves at the day's roll, its realized P&L kept in a total.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType

import msgspec

from domain.orders import CONTRACT_MULTIPLIER, AssetClass, OrderFilled
from domain.views import FLAG_CROSSED, FLAG_NO_QUOTE, FLAG_STALE, FLAG_UNUSABLE, ChainView, PortfolioGreeks
from engine.kernel.book import OptionBook
from engine.kernel.retention import RecentIds
from engine.kernel.vol_surface import option_value, theo_price
from greeks.calendar import ny_date, ny_instant_ns
from greeks.occ import OccSymbolError, parse_occ
from risk.payoff import PayoffLeg, summarize

ROOT_ALIASES: dict[str, str] = {"SPXW": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX"}
_EPS = 1e-9
CLOSED_KEPT = 512
RECENT_EXECUTIONS = 8192
_EMPTY: Mapping[str, float] = MappingProxyType({})


class Mark(msgspec.Struct):
    """Last quote and per-share Greeks of one held contract (or the underlying, for stock)."""

    bid: float = math.nan
    ask: float = math.nan
    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    strike: float = math.nan
    is_call: bool = False
    expiry_ord: int = 0
    theo: float = math.nan
    """The surface value, when the quote is not good enough to mark at (NaN otherwise)."""
    anchor_bid: float = math.nan
    """The last good quote, with the spot, surface IV, years to expiry and delta then (``anchor_*``)."""
    anchor_ask: float = math.nan
    anchor_delta: float = 0.0
    anchor_spot: float = math.nan
    anchor_iv: float = math.nan
    anchor_t: float = math.nan
    anchor_fwd: float = math.nan
    residual: float = math.nan
    """The anchor's mid less the surface value at the anchor (worked out once the quote turns bad)."""

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)

    @property
    def from_surface(self) -> bool:
        return not math.isnan(self.theo)

    @property
    def value(self) -> float:
        """The mark: the quote mid, or the surface value when the quote was stale, one-sided, crossed or wide."""
        return self.theo if not math.isnan(self.theo) else self.mid


class MarkPolicy(msgspec.Struct, frozen=True):
    """How a held contract is marked.

    * At its quote mid when the quote is fresh, two-sided, not crossed and no wider than
      ``max(max_spread_usd, max_spread_pct * mid)``; that quote becomes the leg's anchor.
    * Otherwise at the surface value moved to the anchor: surface value now + (anchor mid - surface value at the
      anchor's spot, surface IV and time). The surface carries the move (spot, vol, time), the market keeps the
      level: a leg the market priced 0.50 over the surface stays 0.50 over it while its quote is bad, so the mark
      does not jump by the surface's own error (on GOOG 2015-12-24 the book's 4 % rate puts ITM calls about 1 USD
      over their market). Without an anchor (no good quote since the leg was bought), the plain surface value.
    * Kept inside the anchor's bid/ask shifted by its delta times the spot move since: a refit on a chain whose
      quotes have just gone one-sided can move the surface by a vol point in a minute, which no trade supports;
      the last two-sided market, rolled along its delta, does.
    * Kept inside the live side(s) of a fresh, uncrossed quote (last, so it wins): nobody marks a leg under a bid
      it could be sold at, or over an ask it could be bought at.
    """

    max_spread_pct: float = 0.5
    max_spread_usd: float = 0.10

    def quote_ok(self, bid: float, ask: float, flags: int) -> bool:
        if flags & FLAG_UNUSABLE or not (bid > 0.0 and ask >= bid):
            return False
        return ask - bid <= max(self.max_spread_usd, self.max_spread_pct * 0.5 * (bid + ask))

    @staticmethod
    def inside_quote(value: float, bid: float, ask: float, flags: int) -> float:
        """``value`` moved inside the live side(s) of a fresh, uncrossed quote (unchanged otherwise)."""
        if flags & (FLAG_STALE | FLAG_CROSSED | FLAG_NO_QUOTE) or (bid > 0.0 and ask > 0.0 and ask < bid):
            return value
        if bid > 0.0:
            value = max(value, bid)
        if ask > 0.0:
            value = min(value, ask)
        return value


class LegPosition(msgspec.Struct):
    """Net position in one symbol with average-cost accounting."""

    symbol: str
    underlying: str
    asset_class: AssetClass
    qty: float = 0.0
    avg_price: float = 0.0
    realized_usd: float = 0.0

    @property
    def multiplier(self) -> int:
        return CONTRACT_MULTIPLIER if self.asset_class is AssetClass.OPTION else 1


class StructureState(msgspec.Struct):
    """One structure: its legs' quantities and the cash it has paid (-) or received (+)."""

    structure_id: str
    strategy_id: str
    underlying: str
    legs: dict[str, float]
    cash_usd: float = 0.0
    opened_ns: int = 0
    closed_ns: int = 0
    fills: int = 0
    risk_capital_usd: float = 0.0
    executions: list[str] = []
    """Execution ids of its fills while it is open (they leave the portfolio's set when it closes)."""

    @property
    def is_open(self) -> bool:
        return any(abs(q) > _EPS for q in self.legs.values())


class StructureSnapshot(msgspec.Struct, frozen=True):
    """A structure as strategies and the summary read it."""

    structure_id: str
    strategy_id: str
    underlying: str
    legs: dict[str, float]
    is_open: bool
    pnl_mid_usd: float
    pnl_natural_usd: float
    realized_usd: float
    risk_capital_usd: float
    greeks: PortfolioGreeks
    opened_ns: int
    closed_ns: int
    pnl_quote_mid_usd: float = math.nan
    """As ``pnl_mid_usd`` but every leg at its raw quote mid, surface re-marks ignored."""


class StrategySummary(msgspec.Struct, frozen=True):
    """One strategy's structures and P&L (mid), with the Greeks of its open structures."""

    strategy_id: str
    structures_opened: int
    structures_closed: int
    fills: int
    realized_usd: float
    pnl_usd: float
    """Realized plus open P&L at the marks (``Mark.value``: mid, or the surface value for a bad quote)."""
    greeks: PortfolioGreeks
    pnl_quote_mid_usd: float = math.nan
    """Realized plus open P&L at the raw quote mids (no surface re-marks): differs from ``pnl_usd`` exactly
    when an open leg is surface-marked."""


class StructureClosed(msgspec.Struct, frozen=True):
    """A structure went flat: feed ``realized_pnl_usd`` to the consecutive-loss breaker."""

    structure_id: str
    strategy_id: str
    underlying: str
    realized_pnl_usd: float
    ts_event_ns: int


class FillResult(msgspec.Struct, frozen=True):
    """What applying one fill did."""

    applied: bool
    """False for a duplicate ``execution_id`` (nothing changed)."""
    position_qty: float
    structure_closed: StructureClosed | None = None


def underlying_of(symbol: str, asset_class: AssetClass = AssetClass.OPTION) -> str:
    """The underlying of an option symbol (root, with index-weekly aliases) or of a stock symbol (itself)."""
    if asset_class is AssetClass.EQUITY:
        return symbol
    try:
        root = parse_occ(symbol).root
    except OccSymbolError:
        return symbol
    return ROOT_ALIASES.get(root, root)


class Portfolio:
    """Positions, P&L and Greeks (see the module docstring)."""

    def __init__(self, marks: MarkPolicy | None = None) -> None:
        self.mark_policy = marks or MarkPolicy()
        self.surface_marks = 0
        """Leg re-marks that took the surface value (the quote was not good enough), since start."""
        self._legs: dict[str, LegPosition] = {}
        self._by_underlying: dict[str, dict[str, LegPosition]] = {}
        self._held: dict[str, dict[str, float]] = {}
        self._structures: dict[str, StructureState] = {}
        self._marks: dict[str, Mark] = {}
        self._rows: dict[str, int] = {}
        self._seen_exec: set[str] = set()
        """Execution ids of fills of open structures."""
        self._recent_exec = RecentIds(RECENT_EXECUTIONS)
        """The newest other execution ids (closed structures', fills without a structure)."""
        self._closed: deque[str] = deque()
        self._retired: dict[str, list[float]] = {}
        """Per strategy: structures retired, their fills and realized cash (``strategy_summary``)."""
        self._realized_retired = 0.0
        self._greeks: dict[str, PortfolioGreeks] = {}
        self._day: dt.date | None = None
        self._realized_sod = 0.0
        self._unrealized_sod = 0.0
        self.fills_applied = 0
        self.duplicate_fills = 0
        self.unpriced_fills = 0
        self.revision = 0
        """Bumped on every applied fill: positions changed (the gate's stress cache keys on it)."""
        self._open_ids: set[str] = set()

    # ------------------------------------------------------------------ PortfolioView
    def position(self, symbol: str) -> float:
        leg = self._legs.get(symbol)
        return leg.qty if leg is not None else 0.0

    def positions(self) -> Mapping[str, float]:
        return {s: p.qty for s, p in self._legs.items() if abs(p.qty) > _EPS}

    def positions_of(self, underlying: str) -> Mapping[str, float]:
        """Non-zero positions on ``underlying`` (a read-only live view: copy it to keep a snapshot)."""
        held = self._held.get(underlying)
        return MappingProxyType(held) if held is not None else _EMPTY

    def greeks(self, underlying: str | None = None) -> PortfolioGreeks:
        if underlying is not None:
            return self._greeks.get(underlying, PortfolioGreeks())
        total = PortfolioGreeks()
        for g in self._greeks.values():
            total = total + g
        return total

    def open_structures(self, strategy_id: str | None = None, underlying: str | None = None) -> int:
        if strategy_id is None and underlying is None:
            return len(self._open_ids)
        n = 0
        for sid in self._open_ids:
            s = self._structures[sid]
            if strategy_id is not None and s.strategy_id != strategy_id:
                continue
            if underlying is None or s.underlying == underlying:
                n += 1
        return n

    def open_delta_shares(self, strategy_id: str) -> float:
        """Delta (shares) of ``strategy_id``'s open structures: ``strategy_summary(...).greeks.delta_shares``
        without valuing every structure it ever held (the core reads it on every book update)."""
        d = 0.0
        for sid in self._open_ids:
            s = self._structures[sid]
            if s.strategy_id != strategy_id:
                continue
            for sym, q in s.legs.items():
                m = self._marks.get(sym)
                if m is not None and abs(q) > _EPS:
                    d += q * self._legs[sym].multiplier * m.delta
        return d

    def daily_pnl_usd(self) -> float:
        return (self.realized_usd() - self._realized_sod) + (self.unrealized_usd() - self._unrealized_sod)

    def risk_capital_usd(self, underlying: str | None = None) -> float:
        total = 0.0
        for sid in self._open_ids:
            s = self._structures[sid]
            if underlying is None or s.underlying == underlying:
                total += s.risk_capital_usd
        return total

    # ------------------------------------------------------------------ P&L
    def realized_usd(self) -> float:
        return self._realized_retired + sum(p.realized_usd for p in self._legs.values())

    def unrealized_usd(self, natural: bool = False) -> float:
        """Open P&L at mid (or at natural: longs at the bid, shorts at the ask); unmarked legs count 0."""
        total = 0.0
        for sym, p in self._legs.items():
            if abs(p.qty) <= _EPS:
                continue
            price = self._mark_price(sym, p.qty, natural)
            if math.isfinite(price):
                total += (price - p.avg_price) * p.qty * p.multiplier
        return total

    def _mark_price(self, symbol: str, qty: float, natural: bool, raw: bool = False) -> float:
        m = self._marks.get(symbol)
        if m is None:
            return math.nan
        if natural:
            return m.bid if qty > 0 else m.ask
        return m.mid if raw else m.value

    # ------------------------------------------------------------------ structures
    def surface_marked(self) -> list[str]:
        """Held contracts whose current mark is the surface value, not their quote."""
        return [sym for sym, p in self._legs.items() if abs(p.qty) > _EPS and (m := self._marks.get(sym)) is not None
                and m.from_surface]

    def leg(self, symbol: str) -> LegPosition | None:
        """The position in ``symbol`` (quantity, average price, realized P&L), or None if never held."""
        return self._legs.get(symbol)

    def mark(self, symbol: str) -> Mark | None:
        """The last mark of ``symbol`` (quote, Greeks, the value it is carried at), or None before the first."""
        return self._marks.get(symbol)

    def has_booked(self, execution_id: str) -> bool:
        """Whether the fill with ``execution_id`` is already in the positions."""
        return execution_id in self._seen_exec or execution_id in self._recent_exec

    def structure(self, structure_id: str) -> StructureSnapshot | None:
        s = self._structures.get(structure_id)
        return self._snapshot(s) if s is not None else None

    def structures(self, strategy_id: str | None = None, open_only: bool = True) -> list[StructureSnapshot]:
        return [self._snapshot(s) for s in self._structures.values()
                if (not open_only or s.is_open) and (strategy_id is None or s.strategy_id == strategy_id)]

    def strategy_summary(self, strategy_id: str) -> StrategySummary:
        """Per-strategy totals for the live table and the run summary (structures, fills, P&L, Greeks)."""
        opened = closed = fills = 0
        realized = pnl = pnl_raw = 0.0
        retired = self._retired.get(strategy_id)
        if retired is not None:
            opened = closed = int(retired[0])
            fills = int(retired[1])
            realized = pnl = pnl_raw = retired[2]
        greeks = PortfolioGreeks()
        for s in self._structures.values():
            if s.strategy_id != strategy_id:
                continue
            opened += 1
            fills += s.fills
            snap = self._snapshot(s)
            pnl += snap.pnl_mid_usd
            pnl_raw += snap.pnl_quote_mid_usd
            if s.is_open:
                greeks = greeks + snap.greeks
            else:
                closed += 1
                realized += s.cash_usd
        return StrategySummary(strategy_id, opened, closed, fills, realized, pnl, greeks, pnl_raw)

    def _snapshot(self, s: StructureState) -> StructureSnapshot:
        value_mid = value_nat = value_raw = 0.0
        d = g = v = th = 0.0
        for sym, q in s.legs.items():
            if abs(q) <= _EPS:
                continue
            leg = self._legs[sym]
            mult, cost = leg.multiplier, leg.avg_price
            # A leg not marked yet (filled after its book's last update) is carried at its cost, as in
            # ``unrealized_usd``: valuing it at 0 would swing the structure by its whole premium for a moment.
            mid, nat = self._mark_price(sym, q, False), self._mark_price(sym, q, True)
            raw = self._mark_price(sym, q, False, raw=True)
            value_mid += q * mult * (mid if math.isfinite(mid) else cost)
            value_nat += q * mult * (nat if math.isfinite(nat) else cost)
            value_raw += q * mult * (raw if math.isfinite(raw) else cost)
            m = self._marks.get(sym)
            if m is not None:
                d += q * mult * m.delta
                g += q * mult * m.gamma
                v += q * mult * m.vega
                th += q * mult * m.theta
        realized = s.cash_usd if not s.is_open else 0.0
        return StructureSnapshot(s.structure_id, s.strategy_id, s.underlying, dict(s.legs), s.is_open,
                                 s.cash_usd + value_mid, s.cash_usd + value_nat, realized, s.risk_capital_usd,
                                 PortfolioGreeks(d, g, v / 100.0, th / 365.0), s.opened_ns, s.closed_ns,
                                 s.cash_usd + value_raw)

    # ------------------------------------------------------------------ inputs
    def on_fill(self, fill: OrderFilled) -> FillResult:
        """Apply one execution (idempotent on ``execution_id``)."""
        if self.has_booked(fill.execution_id):
            self.duplicate_fills += 1
            return FillResult(False, self.position(fill.symbol))
        (self._seen_exec.add if fill.structure_id else self._recent_exec.add)(fill.execution_id)
        self.fills_applied += 1
        self.revision += 1
        self._roll_day(fill.ts_event_ns)
        pos = self._legs.get(fill.symbol)
        if pos is None:
            u = underlying_of(fill.symbol, fill.asset_class)
            pos = LegPosition(fill.symbol, u, fill.asset_class)
            self._legs[fill.symbol] = pos
            self._by_underlying.setdefault(u, {})[fill.symbol] = pos
        price = fill.price
        if math.isnan(price):
            # A leg execution rebuilt from cumulative totals carries no price (and no ratio to split the
            # parent's net price by): cost it at the mark and count it, so P&L stays finite.
            mark = self._marks.get(fill.symbol)
            price = mark.mid if mark is not None and math.isfinite(mark.mid) else 0.0
            self.unpriced_fills += 1
        self._apply_to_leg(pos, fill.signed_qty, price)
        held = self._held.setdefault(pos.underlying, {})
        if abs(pos.qty) > _EPS:
            held[fill.symbol] = pos.qty
        else:
            held.pop(fill.symbol, None)
        closed = None
        if fill.structure_id:
            closed = self._apply_to_structure(fill, pos, price)
        self._refresh_greeks(pos.underlying)
        return FillResult(True, pos.qty, closed)

    def _apply_to_leg(self, pos: LegPosition, dq: float, price: float) -> None:
        q0 = pos.qty
        mult = pos.multiplier
        if q0 == 0 or (q0 > 0) == (dq > 0):
            new = q0 + dq
            pos.avg_price = (pos.avg_price * q0 + price * dq) / new if abs(new) > _EPS else 0.0
            pos.qty = new
            return
        closing = min(abs(dq), abs(q0)) * (1 if dq > 0 else -1)
        # Closing ``closing`` units bought/sold at ``price`` against an average of ``avg_price``.
        pos.realized_usd += -closing * (price - pos.avg_price) * mult
        new = q0 + dq
        if abs(new) <= _EPS:
            pos.qty, pos.avg_price = 0.0, 0.0
        elif (new > 0) == (q0 > 0):
            pos.qty = new
        else:
            pos.qty, pos.avg_price = new, price  # flipped through zero: the remainder opens at this price

    def _apply_to_structure(self, fill: OrderFilled, pos: LegPosition, price: float) -> StructureClosed | None:
        s = self._structures.get(fill.structure_id)
        if s is None:
            s = StructureState(fill.structure_id, fill.strategy_id, pos.underlying, {}, opened_ns=fill.ts_event_ns)
            self._structures[fill.structure_id] = s
        was_open = s.is_open
        if not was_open and s.fills:
            s.opened_ns, s.closed_ns, s.cash_usd = fill.ts_event_ns, 0, 0.0  # re-opened under the same id
        s.legs[fill.symbol] = s.legs.get(fill.symbol, 0.0) + fill.signed_qty
        s.cash_usd -= fill.signed_qty * price * pos.multiplier
        s.fills += 1
        s.risk_capital_usd = self._structure_risk(s)
        s.executions.append(fill.execution_id)
        if s.is_open:
            self._open_ids.add(s.structure_id)
        else:
            self._open_ids.discard(s.structure_id)
            self._on_closed(s)
        if was_open and not s.is_open:
            s.closed_ns = fill.ts_event_ns
            return StructureClosed(s.structure_id, s.strategy_id, s.underlying, s.cash_usd, fill.ts_event_ns)
        return None

    def _on_closed(self, s: StructureState) -> None:
        """A structure went flat: its execution ids to the recent window; the oldest closed structures retire."""
        for execution_id in s.executions:
            self._seen_exec.discard(execution_id)
            self._recent_exec.add(execution_id)
        s.executions = []
        self._closed.append(s.structure_id)
        while len(self._closed) > CLOSED_KEPT:
            sid = self._closed.popleft()
            old = self._structures.get(sid)
            if old is None or old.is_open or sid in self._closed:
                continue  # re-opened since, or closed again later (retired at that turn)
            del self._structures[sid]
            totals = self._retired.setdefault(old.strategy_id, [0.0, 0.0, 0.0])
            totals[0] += 1
            totals[1] += old.fills
            totals[2] += old.cash_usd

    def _structure_risk(self, s: StructureState) -> float:
        """Exact max loss of the structure's current legs given the cash it has taken in or paid."""
        if not s.is_open:
            return 0.0
        legs: list[PayoffLeg] = []
        for sym, q in s.legs.items():
            if abs(q) <= _EPS:
                continue
            if self._legs[sym].asset_class is AssetClass.EQUITY:
                legs.append(PayoffLeg(q, 0.0, False, 0, True))
                continue
            try:
                occ = parse_occ(sym)
            except OccSymbolError:
                return math.inf
            legs.append(PayoffLeg(q, occ.strike, occ.is_call, float(occ.expiry.toordinal())))
        premium = -s.cash_usd / CONTRACT_MULTIPLIER
        return summarize(legs, premium, 1.0).max_loss_usd

    def on_book(self, chain: ChainView) -> None:
        """Re-mark every held contract of ``chain.underlying`` and refresh that underlying's Greeks."""
        u = chain.underlying
        self._roll_day(chain.ts_ns)
        legs = self._by_underlying.get(u)
        if not legs:
            return
        for sym, p in legs.items():
            if p.asset_class is AssetClass.EQUITY:
                stock_mark = self._marks.setdefault(sym, Mark(delta=1.0))
                stock_mark.bid = stock_mark.ask = chain.spot
                continue
            row = self._rows.get(sym, -1)
            if row < 0 or row >= len(chain) or chain.symbols[row] != sym:
                row = chain.row_of(sym)
                self._rows[sym] = row
                if row < 0:
                    continue
            m = self._marks.get(sym)
            if m is None:
                m = Mark(strike=float(chain.strike[row]), is_call=bool(chain.is_call[row]))
                self._marks[sym] = m
            m.bid, m.ask = float(chain.bid[row]), float(chain.ask[row])
            m.theo = math.nan
            flags = int(chain.flags[row])
            if isinstance(chain, OptionBook):
                if self.mark_policy.quote_ok(m.bid, m.ask, flags):
                    m.anchor_bid, m.anchor_ask, m.anchor_spot = m.bid, m.ask, chain.spot
                    m.anchor_iv, m.anchor_t = float(chain.surface_iv[row]), float(chain.t_years[row])
                    m.anchor_fwd = float(chain.surface_fwd[row]) * chain.surface_spot_move()
                    m.anchor_delta, m.residual = _finite(chain.delta[row], m.delta), math.nan
                else:
                    m.theo = self._surface_mark(chain, row, m, flags)
                    self.surface_marks += not math.isnan(m.theo)
            # A row whose IV cannot be solved this frame (say a quote below intrinsic) keeps its last good
            # Greeks: dropping it to zero would hide real exposure from the gate and the hedger.
            m.delta, m.gamma = _finite(chain.delta[row], m.delta), _finite(chain.gamma[row], m.gamma)
            m.vega, m.theta = _finite(chain.vega[row], m.vega), _finite(chain.theta[row], m.theta)
        self._refresh_greeks(u)

    def _surface_mark(self, book: OptionBook, row: int, m: Mark, flags: int) -> float:
        """The surface value of a leg with a bad quote, moved to its anchor and kept inside its live sides."""
        theo = theo_price(book, row)
        if math.isnan(theo):
            return theo
        if math.isfinite(m.anchor_bid):
            if math.isnan(m.residual):
                then = option_value(book.underlying, m.anchor_spot, m.anchor_fwd, m.strike, m.anchor_t,
                                    float(book.rate_arr[row]), m.anchor_iv, m.is_call)
                m.residual = 0.5 * (m.anchor_bid + m.anchor_ask) - then if math.isfinite(then) else 0.0
            shift = m.anchor_delta * (book.spot - m.anchor_spot)
            theo = min(max(theo + m.residual, m.anchor_bid + shift), m.anchor_ask + shift)
        return self.mark_policy.inside_quote(max(theo, 0.0), m.bid, m.ask, flags)

    def on_spot(self, underlying: str, spot: float, ts_ns: int) -> None:
        """Mark stock positions of ``underlying`` at a new underlying price (between book updates)."""
        self._roll_day(ts_ns)
        pos = self._legs.get(underlying)
        if pos is not None and pos.asset_class is AssetClass.EQUITY:
            m = self._marks.setdefault(underlying, Mark(delta=1.0))
            m.bid = m.ask = spot

    def _refresh_greeks(self, underlying: str) -> None:
        d = g = v = th = 0.0
        for sym, p in self._by_underlying.get(underlying, {}).items():
            if abs(p.qty) <= _EPS:
                continue
            if p.asset_class is AssetClass.EQUITY:
                d += p.qty
                continue
            m = self._marks.get(sym)
            if m is None:
                continue
            q = p.qty * CONTRACT_MULTIPLIER
            d += q * m.delta
            g += q * m.gamma
            v += q * m.vega
            th += q * m.theta
        self._greeks[underlying] = PortfolioGreeks(d, g, v / 100.0, th / 365.0)

    def _roll_day(self, ts_ns: int) -> None:
        if ts_ns <= 0:
            return
        day = ny_date(ts_ns) if self._day is None or ts_ns >= self._next_day_ns else self._day
        if day != self._day:
            self._day = day
            self._retire_expired_legs(day)
            self._next_day_ns = ny_instant_ns(day + dt.timedelta(days=1), dt.time(0))
            self._realized_sod = self.realized_usd()
            self._unrealized_sod = self.unrealized_usd()

    _next_day_ns = 0

    def _retire_expired_legs(self, day: dt.date) -> None:
        """Flat legs of contracts expired before ``day`` leave (their realized P&L stays in a total)."""
        held = {sym for sid in self._open_ids for sym, q in self._structures[sid].legs.items() if abs(q) > _EPS}
        for sym, p in list(self._legs.items()):
            if abs(p.qty) > _EPS or p.asset_class is not AssetClass.OPTION or sym in held:
                continue
            try:
                expired = parse_occ(sym).expiry < day
            except OccSymbolError:
                continue
            if expired:
                self._realized_retired += p.realized_usd
                del self._legs[sym]
                self._by_underlying.get(p.underlying, {}).pop(sym, None)
                self._marks.pop(sym, None)
                self._rows.pop(sym, None)

    def sizes(self) -> dict[str, int]:
        """How many records are held in memory (the soak and the endurance tests watch these)."""
        return {"structures": len(self._structures), "executions": len(self._seen_exec) + len(self._recent_exec),
                "legs": len(self._legs), "marks": len(self._marks)}


def _finite(x: float, fallback: float = 0.0) -> float:
    v = float(x)
    return v if math.isfinite(v) else fallback
