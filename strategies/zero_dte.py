"""0DTE: same-day credit structures on SPY/QQQ inside an entry window, flat by a hard cut-off.

Every time of day is a session time (``strategies.session_time``): relative to the day's open or
close (``"open+30m"``, ``"close-90m"``) or absolute New York time (``"10:00"``), so a half day keeps
the same windows measured from its 13:00 close.

Entry: only between ``entry_start`` and ``entry_end``, never at or after ``cutoff``; at most
``max_entries_per_day`` structures a day over all underlyings, one open per underlying, entries on one
underlying spaced by ``entry_interval_s``. The structure (``structure``) is an iron condor or
credit spread with short legs by |delta| nearest ``short_delta`` (within ``[short_delta_min,
short_delta_max]``), or an iron fly sold at the money; wings ``wing_width_pct`` of spot further out
(a wing only needs an offer: late in a session the protective strikes are often bid at zero);
credit at mid at least ``min_credit_ratio`` of the width; every leg fresh and liquid.

Exits, on fresh quotes: take profit at ``take_profit_pct`` of the credit; stop when the loss at mid
reaches ``stop_loss_multiple`` x credit (spread value) or the underlying has moved
``underlying_stop_pct`` from entry; pin risk - from ``pin_check_from`` a short strike within
``pin_distance_pct`` of spot is closed. A timer at ``cutoff`` (never later than ``expiry_flat_by``,
which is ahead of the broker's expiry-day liquidation) closes everything still open, and any
structure seen open after the cut-off is closed again until flat.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal

import msgspec

from domain.views import ChainView
from greeks.calendar import NS_PER_SECOND
from strategies import selection as sel
from strategies.base import (
    Delta,
    Fraction,
    NonNegInt,
    PolicyConfig,
    PositiveFloat,
    PositiveInt,
    SessionTimeText,
    StrategyConfig,
    StructureConfig,
    StructureStrategy,
    Symbol,
)
from strategies.exit_watch import ExitWatch, credit_watches, pin_watch, spot_move_watch
from strategies.session_time import DaySchedule, Op
from strategies.sizing import SizingMode, size_structure
from strategies.structures import Structure, iron_condor, vertical
from strategies.tracking import RecoveredStructure, StructureStatus, Tracked


class ZeroDteConfig(StructureConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    HOT_FIELDS: ClassVar[frozenset[str]] = StructureConfig.HOT_FIELDS | {
        "structure", "short_delta", "short_delta_min", "short_delta_max", "wing_width_pct", "min_credit_ratio",
        "max_spread_pct", "min_open_interest", "entry_start", "entry_end", "cutoff", "max_entries_per_day",
        "entry_interval_s", "take_profit_pct", "stop_loss_multiple", "underlying_stop_pct", "pin_check_from",
        "pin_distance_pct", "risk_per_trade_pct", "max_qty",
        "sizing", "kelly_multiplier",
    }
    TIME_FIELDS: ClassVar[tuple[str, ...]] = (
        *StrategyConfig.TIME_FIELDS, "entry_start", "entry_end", "cutoff", "pin_check_from")
    TIME_RULES: ClassVar[tuple[tuple[str, Op, str], ...]] = (
        ("entry_start", "<", "entry_end"), ("entry_end", "<=", "cutoff"), ("pin_check_from", "<=", "cutoff"),
        ("cutoff", "<=", "expiry_flat_by"))

    underlyings: tuple[Symbol, ...] = ("SPY", "QQQ")
    structure: Literal["iron_condor", "iron_fly", "put_spread", "call_spread"] = "iron_condor"
    short_delta: Delta = 0.20
    short_delta_min: Delta = 0.10
    short_delta_max: Delta = 0.30
    wing_width_pct: Annotated[float, msgspec.Meta(gt=0, le=0.1)] = 0.003
    min_credit_ratio: Fraction = 0.08
    max_spread_pct: PositiveFloat = 0.40
    min_open_interest: NonNegInt = 0
    entry_start: SessionTimeText = "open+30m"
    """First entry (10:00 on any session)."""
    entry_end: SessionTimeText = "close-90m"
    """No entry from this time (14:30; 11:30 on a half day)."""
    cutoff: SessionTimeText = "close-60m"
    """Everything still open is closed from this time, retried until flat; at most expiry_flat_by (15:00; 12:00
    on a half day)."""
    max_entries_per_day: PositiveInt = 2
    entry_interval_s: PositiveFloat = 600.0
    take_profit_pct: Fraction = 0.50
    stop_loss_multiple: PositiveFloat = 1.0
    underlying_stop_pct: Fraction = 0.006
    pin_check_from: SessionTimeText = "close-90m"
    """From this time a short strike within pin_distance_pct of spot is closed (14:30; 11:30 on a half day)."""
    pin_distance_pct: Fraction = 0.0015
    risk_per_trade_pct: Fraction = 0.01
    sizing: SizingMode = "fixed_fractional"
    """fixed_fractional: risk ``risk_per_trade_pct`` of equity; kelly: fractional Kelly, capped at that."""
    kelly_multiplier: Fraction = 0.25
    max_qty: PositiveInt = 5
    close_retry_s: PositiveFloat = 5.0
    open_policy: PolicyConfig = PolicyConfig(walk_every_s=3.0, walk_step_fraction=0.25,
                                             max_concession_fraction=0.6, timeout_s=30.0)
    close_policy: PolicyConfig = PolicyConfig(walk_every_s=2.0, walk_step_fraction=0.5,
                                              max_concession_fraction=1.0, timeout_s=20.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.short_delta_min <= self.short_delta <= self.short_delta_max:
            raise ValueError("need short_delta_min <= short_delta <= short_delta_max")


class ZeroDte(StructureStrategy[ZeroDteConfig]):
    KIND: ClassVar[str] = "zero_dte"
    CONFIG_TYPE = ZeroDteConfig

    def __init__(self, strategy_id: str, config: ZeroDteConfig) -> None:
        super().__init__(strategy_id, config)
        self._day_start_ns = 0
        self._refunded: set[str] = set()
        self.entries_today = 0
        self._last_entry_ns: dict[str, int] = {}

    # ------------------------------------------------------------------ hooks
    def trading_day(self, now_ns: int) -> dt.date:
        return self.schedule(now_ns).day  # resolves a new day's session times first

    def on_chain(self, chain: ChainView, now: int) -> None:
        day = self.schedule(now)
        cfg = self.config
        after_cutoff = "cutoff" in day.at and now >= day.at["cutoff"]
        for t in self.tracker.active(chain.underlying):
            if t.status is StructureStatus.OPEN:
                forced = "cutoff" if after_cutoff else self.expiry_flat_reason(t, now)
                self._manage(chain, t, now, forced)
        if after_cutoff or not cfg.entries_enabled or "entry_start" not in day.at:
            return
        if not day.at["entry_start"] <= now < day.at["entry_end"]:
            return
        if self.entries_today >= cfg.max_entries_per_day:
            return
        last = self._last_entry_ns.get(chain.underlying, 0)
        if last and now - last < cfg.entry_interval_s * NS_PER_SECOND:
            return
        if self.tracker.active(chain.underlying) or not self.iv_allows_entry(chain.underlying):
            return
        self._try_enter(chain, now, day.day)

    def on_timer(self, name: str, now_ns: int) -> None:
        super().on_timer(name, now_ns)
        if not name.startswith("cutoff:"):
            return
        for t in self.tracker.active():
            if t.status is StructureStatus.OPEN:
                chain = self.ctx.market.chain(t.structure.underlying)
                if chain is not None:
                    self._manage(chain, t, now_ns, "cutoff")

    def own_stats(self) -> dict[str, float | int | str]:
        return {"entries_today": self.entries_today}

    def on_outcome(self, t: Tracked | None) -> None:
        """An open that ended with nothing filled does not count toward the day's entries."""
        if (t is not None and t.status is StructureStatus.CANCELLED and t.opened_ns >= self._day_start_ns
                and t.structure_id not in self._refunded):
            self._refunded.add(t.structure_id)
            self.entries_today = max(self.entries_today - 1, 0)

    # ------------------------------------------------------------------ day
    def on_new_day(self, schedule: DaySchedule) -> None:
        self._day_start_ns = schedule.start_ns
        self._count_entries()

    def on_recover(self, structures: Sequence[RecoveredStructure]) -> None:
        super().on_recover(structures)
        self._count_entries()

    def _count_entries(self) -> None:
        """Today's entries so far: none on a new day; after a restart, the structures taken back that opened
        today (a restart must not give the day its entries again)."""
        self._last_entry_ns.clear()
        today = [t for t in self.tracker.structures.values()
                 if t.opened_ns >= self._day_start_ns > 0 and t.status is not StructureStatus.CANCELLED]
        self.entries_today = len(today)
        for t in today:
            u = t.structure.underlying
            self._last_entry_ns[u] = max(self._last_entry_ns.get(u, 0), t.opened_ns)

    def day_timers(self, schedule: DaySchedule) -> dict[str, int]:
        timers = super().day_timers(schedule)
        if "cutoff" in schedule.at:
            timers[f"cutoff:{schedule.day.isoformat()}"] = schedule.at["cutoff"]
        return timers

    # ------------------------------------------------------------------ entry
    def select(self, chain: ChainView, now_ns: int, today: dt.date) -> Structure | None:
        cfg = self.config
        offered = (sel.expiry_mask(chain, today) & sel.offered_mask(chain, now_ns, cfg.max_quote_age_ns)
                   & sel.liquidity_mask(chain, cfg.max_spread_pct, cfg.min_open_interest))
        held = self.ctx.portfolio.positions()
        usable = offered & sel.priced_mask(chain) & sel.unopposed_mask(chain, held, selling=True)
        offered &= sel.unopposed_mask(chain, held, selling=False)  # the wings
        width = cfg.wing_width_pct * chain.spot
        if cfg.structure == "iron_fly":
            shortable = usable & sel.sellable_mask(chain)
            sc = sel.atm_row(chain, shortable, True)
            sp = sel.by_strike(chain, shortable, False, float(chain.strike[sc])) if sc >= 0 else -1
            if sc < 0 or sp < 0 or chain.strike[sp] != chain.strike[sc]:
                return None
        else:
            lo, hi, target = cfg.short_delta_min, cfg.short_delta_max, cfg.short_delta
            shortable = usable & sel.sellable_mask(chain)
            sp = sel.by_delta(chain, shortable, False, target, lo, hi) if cfg.structure != "call_spread" else -1
            sc = sel.by_delta(chain, shortable, True, target, lo, hi) if cfg.structure != "put_spread" else -1
        lp = sel.wing_row(chain, offered, sp, width) if sp >= 0 else -1
        lc = sel.wing_row(chain, offered, sc, width) if sc >= 0 else -1
        if cfg.structure == "put_spread":
            return vertical(chain, lp, sp) if lp >= 0 and sp >= 0 else None
        if cfg.structure == "call_spread":
            return vertical(chain, lc, sc) if lc >= 0 and sc >= 0 else None
        if min(lp, sp, sc, lc) < 0 or chain.strike[sp] > chain.strike[sc]:
            return None
        return iron_condor(chain, lp, sp, sc, lc)

    def _try_enter(self, chain: ChainView, now: int, today: dt.date) -> None:
        cfg = self.config
        structure = self.select(chain, now, today)
        if structure is None:
            return
        mid, nat = structure.net_prices(chain)
        credit, width = -mid, structure.width
        if sel.credit_ratio(credit, width) < cfg.min_credit_ratio:
            self.last_action = f"skip {chain.underlying}: credit {credit:.2f} on width {width:g}"
            return
        limit = round(min(nat, -cfg.min_credit_ratio * width), 2)
        qty = size_structure(structure, chain, limit, self.ctx.account().equity, cfg.sizing, cfg.risk_per_trade_pct,
                             cfg.kelly_multiplier, cfg.max_qty)
        if qty <= 0:
            self.last_action = f"skip {chain.underlying}: sized to zero"
            return
        self.entries_today += 1
        self._last_entry_ns[chain.underlying] = now
        intent = self.tracker.open(structure, qty, cfg.open_policy.policy(limit), now, tag="0dte_open",
                                   entry_spot=chain.spot)
        self.last_action = f"open {chain.underlying} 0DTE {structure.kind} x{qty} credit~{credit:.2f}"
        self.ctx.submit(intent)

    # ------------------------------------------------------------------ exits
    def exit_reason(self, chain: ChainView, t: Tracked, now_ns: int) -> str:
        cfg = self.config
        if not sel.rows_fresh(chain, t.structure.rows(chain), now_ns, cfg.max_quote_age_ns):
            return ""
        spot = chain.spot
        if abs(spot / t.entry_spot - 1.0) >= cfg.underlying_stop_pct:
            return "underlying_stop"
        credit = -t.entry_net_price
        if credit > 0:
            cost = -t.value_per_unit(chain)[0]
            if cost - credit >= cfg.stop_loss_multiple * credit:
                return "stop"
            if cost <= credit * (1.0 - cfg.take_profit_pct):
                return "take_profit"
        pin_from = self.schedule(now_ns).at.get("pin_check_from")
        if pin_from is not None and now_ns >= pin_from:
            shorts = [leg.strike for leg in t.structure.legs if leg.ratio < 0]
            if any(abs(k - spot) <= cfg.pin_distance_pct * spot for k in shorts):
                return "pin_risk"
        return ""

    def exit_watch(self, chain: ChainView, t: Tracked, now_ns: int) -> list[ExitWatch]:
        """Underlying stop, stop, take-profit and pin risk, as distances (``strategies.exit_watch``)."""
        cfg = self.config
        pin_from = self.schedule(now_ns).at.get("pin_check_from")
        return [spot_move_watch(t, chain.spot, cfg.underlying_stop_pct),
                *credit_watches(t, chain, cfg.take_profit_pct, cfg.stop_loss_multiple),
                pin_watch(t, chain.spot, cfg.pin_distance_pct, pin_from is not None and now_ns >= pin_from)]

    def _manage(self, chain: ChainView, t: Tracked, now: int, forced: str) -> None:
        if not t.close_retry_due(now, self.config.close_retry_s):
            return
        reason = forced or (t.close_reason if t.close_attempts else self.exit_reason(chain, t, now))
        if reason:
            self.close_structure(t, reason, now)
