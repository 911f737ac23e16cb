"""0DTE: same-day credit structures on SPY/QQQ inside an entry window, flat by a hard cut-off.

Entry: only between ``entry_start`` and ``entry_end`` (America/New_York), never at or after
``cutoff``; at most ``max_entries_per_day`` structures a day over all underlyings, one open per
underlying, entries on one underlying spaced by ``entry_interval_s``. The structure (``structure``) is an iron condor or
credit spread with short legs by |delta| nearest ``short_delta`` (within ``[short_delta_min,
short_delta_max]``), or an iron fly sold at the money; wings ``wing_width_pct`` of spot further out;
credit at mid at least ``min_credit_ratio`` of the width; every leg fresh and liquid.

Exits, on fresh quotes: take profit at ``take_profit_pct`` of the credit; stop when the loss at mid
reaches ``stop_loss_multiple`` x credit (spread value) or the underlying has moved
``underlying_stop_pct`` from entry; pin risk - from ``pin_check_from`` a short strike within
``pin_distance_pct`` of spot is closed. A timer at ``cutoff`` closes everything still open, and any
structure seen open after the cut-off is closed again until flat.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from risk.model import IntentDenied, OrderFilled, OrderUpdated
from risk.views import ChainView
from strategies import selection as sel
from strategies.base import (
    HHMM,
    Delta,
    Fraction,
    NonNegInt,
    PolicyConfig,
    PositiveFloat,
    PositiveInt,
    Strategy,
    StrategyConfig,
    StrategyContext,
    ny_datetime,
    ny_instant_ns,
    parse_hhmm,
)
from strategies.sizing import SizingMode, size_structure
from strategies.structures import Structure, iron_condor, vertical
from strategies.tracking import StructureStatus, StructureTracker, Tracked

NS_PER_S = 1_000_000_000


class ZeroDteConfig(StrategyConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    HOT_FIELDS: ClassVar[frozenset[str]] = StrategyConfig.HOT_FIELDS | {
        "structure", "short_delta", "short_delta_min", "short_delta_max", "wing_width_pct", "min_credit_ratio",
        "max_spread_pct", "min_open_interest", "entry_start", "entry_end", "cutoff", "max_entries_per_day",
        "entry_interval_s", "take_profit_pct", "stop_loss_multiple", "underlying_stop_pct", "pin_check_from",
        "pin_distance_pct", "risk_per_trade_pct", "max_qty",
        "sizing", "kelly_multiplier", "open_policy", "close_policy", "close_retry_s",
    }

    underlyings: tuple[Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9.]{0,9}$")], ...] = ("SPY", "QQQ")
    structure: Literal["iron_condor", "iron_fly", "put_spread", "call_spread"] = "iron_condor"
    short_delta: Delta = 0.20
    short_delta_min: Delta = 0.10
    short_delta_max: Delta = 0.30
    wing_width_pct: Annotated[float, msgspec.Meta(gt=0, le=0.1)] = 0.003
    min_credit_ratio: Fraction = 0.08
    max_spread_pct: PositiveFloat = 0.40
    min_open_interest: NonNegInt = 0
    entry_start: HHMM = "10:00"
    entry_end: HHMM = "14:30"
    cutoff: HHMM = "15:45"
    max_entries_per_day: PositiveInt = 2
    entry_interval_s: PositiveFloat = 600.0
    take_profit_pct: Fraction = 0.50
    stop_loss_multiple: PositiveFloat = 1.0
    underlying_stop_pct: Fraction = 0.006
    pin_check_from: HHMM = "15:00"
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
        start, end, cut = parse_hhmm(self.entry_start), parse_hhmm(self.entry_end), parse_hhmm(self.cutoff)
        if not start < end <= cut:
            raise ValueError(f"need entry_start < entry_end <= cutoff, got {self.entry_start}, {self.entry_end}, "
                             f"{self.cutoff}")
        if not self.short_delta_min <= self.short_delta <= self.short_delta_max:
            raise ValueError("need short_delta_min <= short_delta <= short_delta_max")


class ZeroDte(Strategy[ZeroDteConfig]):
    KIND: ClassVar[str] = "zero_dte"
    CONFIG_TYPE = ZeroDteConfig

    def __init__(self, strategy_id: str, config: ZeroDteConfig) -> None:
        super().__init__(strategy_id, config)
        self.tracker = StructureTracker(strategy_id)
        self._day: dt.date | None = None
        self._day_start_ns = 0
        self._refunded: set[str] = set()
        self.entries_today = 0
        self._last_entry_ns: dict[str, int] = {}
        self.exits: dict[str, int] = {}

    # ------------------------------------------------------------------ hooks
    def on_start(self, ctx: StrategyContext) -> None:
        super().on_start(ctx)
        if ctx.now_ns > 0:
            self._new_day(ny_datetime(ctx.now_ns).date())

    def on_params(self, config: ZeroDteConfig) -> dict[str, Any]:
        cold = super().on_params(config)
        if self._day is not None:
            self._set_cutoff_timer(self._day)
        return cold

    def dte_range(self) -> tuple[int, int]:
        """Expiries this actor may open: today's only."""
        return 0, 0

    def on_book(self, chain: ChainView) -> None:
        if chain.underlying not in self.config.underlyings:
            return
        now = self.ctx.now_ns
        local = ny_datetime(now)
        if local.date() != self._day:
            self._new_day(local.date())
            self.tracker.expire(local.date(), now)
        cfg = self.config
        after_cutoff = local.time() >= parse_hhmm(cfg.cutoff)
        for t in self.tracker.active(chain.underlying):
            if t.status is StructureStatus.OPEN:
                self._manage(chain, t, now, "cutoff" if after_cutoff else "")
        if after_cutoff or not cfg.entries_enabled:
            return
        if not parse_hhmm(cfg.entry_start) <= local.time() < parse_hhmm(cfg.entry_end):
            return
        if self.entries_today >= cfg.max_entries_per_day:
            return
        last = self._last_entry_ns.get(chain.underlying, 0)
        if last and now - last < cfg.entry_interval_s * NS_PER_S:
            return
        if self.tracker.active(chain.underlying):
            return
        self._try_enter(chain, now, local.date())

    def on_timer(self, name: str, now_ns: int) -> None:
        if not name.startswith("cutoff:"):
            return
        for t in self.tracker.active():
            if t.status is StructureStatus.OPEN:
                chain = self.ctx.market.chain(t.structure.underlying)
                if chain is not None:
                    self._manage(chain, t, now_ns, "cutoff")

    def on_fill(self, fill: OrderFilled) -> None:
        self.tracker.on_fill(fill)

    def on_order_update(self, update: OrderUpdated) -> None:
        self._refund(self.tracker.on_order_update(update))

    def on_denied(self, denied: IntentDenied) -> None:
        self._refund(self.tracker.on_denied(denied))
        self.last_action = f"denied {','.join(denied.reasons)}"

    def stats(self) -> dict[str, float | int | str]:
        return {"open": len(self.tracker.active()), "opened": self.tracker.opened, "closed": self.tracker.closed,
                "entries_today": self.entries_today, "realized_usd": round(self.tracker.realized_usd, 2),
                "last_action": self.last_action, **{f"exit_{k}": v for k, v in self.exits.items()}}

    def _refund(self, t: Tracked | None) -> None:
        """An open that ended with nothing filled does not count toward the day's entries."""
        if (t is not None and t.status is StructureStatus.CANCELLED and t.opened_ns >= self._day_start_ns
                and t.structure_id not in self._refunded):
            self._refunded.add(t.structure_id)
            self.entries_today = max(self.entries_today - 1, 0)

    # ------------------------------------------------------------------ day
    def _new_day(self, day: dt.date) -> None:
        self._day = day
        self._day_start_ns = ny_instant_ns(day, dt.time(0, 0))
        self.entries_today = 0
        self._last_entry_ns.clear()
        self._set_cutoff_timer(day)

    def _set_cutoff_timer(self, day: dt.date) -> None:
        self.ctx.set_timer(f"cutoff:{day.isoformat()}", ny_instant_ns(day, parse_hhmm(self.config.cutoff)))

    # ------------------------------------------------------------------ entry
    def select(self, chain: ChainView, now_ns: int, today: dt.date) -> Structure | None:
        cfg = self.config
        usable = (sel.expiry_mask(chain, today) & sel.quoted_mask(chain, now_ns, cfg.max_quote_age_ms * 1_000_000)
                  & sel.liquidity_mask(chain, cfg.max_spread_pct, cfg.min_open_interest))
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
        lp = sel.wing_row(chain, usable, sp, width) if sp >= 0 else -1
        lc = sel.wing_row(chain, usable, sc, width) if sc >= 0 else -1
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
        if not sel.rows_fresh(chain, t.structure.rows(chain), now_ns, cfg.max_quote_age_ms * 1_000_000):
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
        if ny_datetime(now_ns).time() >= parse_hhmm(cfg.pin_check_from):
            shorts = [leg.strike for leg in t.structure.legs if leg.ratio < 0]
            if any(abs(k - spot) <= cfg.pin_distance_pct * spot for k in shorts):
                return "pin_risk"
        return ""

    def _manage(self, chain: ChainView, t: Tracked, now: int, forced: str) -> None:
        if not t.close_retry_due(now, self.config.close_retry_s):
            return
        reason = forced or (t.close_reason if t.close_attempts else self.exit_reason(chain, t, now))
        if not reason:
            return
        for intent in self.tracker.close(t, self.config.close_policy.policy(None), now, reason):
            self.ctx.submit(intent)
        if t.close_attempts == 1:
            self.exits[reason] = self.exits.get(reason, 0) + 1
        self.last_action = f"close {chain.underlying} 0DTE ({reason})"
