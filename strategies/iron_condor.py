"""Iron condor: sell 15-20 delta put and call spreads at 30-45 DTE; take profit, stop, or leave at 7 DTE or a breach.

Entry (per underlying, at most ``max_open_per_underlying`` structures, checked every
``entry_interval_s`` of event time): the listed expiry in the DTE window closest to its middle;
short legs by |delta| in ``[short_delta_min, short_delta_max]`` nearest the middle; wings at least
``wing_width_pct`` of spot further out; every leg quoted, fresh and liquid; credit at mid at least
``min_credit_ratio`` of the width. Sized by fixed-fractional risk on the exact max loss. Opened as one
4-leg mleg credit order whose limit never accepts less than the minimum credit.

Management on every book update of a fresh book: take profit when the cost to close at mid has
fallen to ``(1 - take_profit_pct)`` of the credit; stop when the loss at mid reaches
``stop_loss_multiple`` times the credit; close at ``exit_dte`` days to expiry or when spot crosses a
short strike. Closed as one 4-leg mleg debit order. A structure holding a leg that expires today
is closed from ``expiry_flat_by`` (``Strategy.expiry_flat_reason``), and none is opened on today's
expiry after it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

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
    StructureStrategy,
    Symbol,
    TermConfig,
    ny_datetime,
)
from strategies.exit_watch import ExitWatch, breach_watch, credit_watches, dte_watch
from strategies.sizing import SizingMode, size_structure
from strategies.structures import Structure, iron_condor
from strategies.tracking import StructureStatus, Tracked


class IronCondorConfig(TermConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    HOT_FIELDS: ClassVar[frozenset[str]] = TermConfig.HOT_FIELDS | {
        "short_delta_min", "short_delta_max", "wing_width_pct", "min_credit_ratio",
        "max_spread_pct", "min_open_interest", "take_profit_pct", "stop_loss_multiple",
        "close_on_breach", "max_open_per_underlying", "risk_per_trade_pct", "max_qty",
        "sizing", "kelly_multiplier", "entry_interval_s",
    }

    underlyings: tuple[Symbol, ...] = ("SPY", "QQQ")
    short_delta_min: Delta = 0.15
    short_delta_max: Delta = 0.20
    wing_width_pct: Annotated[float, msgspec.Meta(gt=0, le=0.2)] = 0.01
    min_credit_ratio: Fraction = 0.15
    max_spread_pct: PositiveFloat = 0.25
    min_open_interest: NonNegInt = 0
    take_profit_pct: Fraction = 0.50
    stop_loss_multiple: PositiveFloat = 2.0
    close_on_breach: bool = True
    max_open_per_underlying: PositiveInt = 1
    risk_per_trade_pct: Fraction = 0.02
    sizing: SizingMode = "fixed_fractional"
    """fixed_fractional: risk ``risk_per_trade_pct`` of equity; kelly: fractional Kelly, capped at that."""
    kelly_multiplier: Fraction = 0.25
    max_qty: PositiveInt = 10
    entry_interval_s: PositiveFloat = 60.0
    open_policy: PolicyConfig = PolicyConfig(walk_every_s=5.0, walk_step_fraction=0.2,
                                             max_concession_fraction=0.6, timeout_s=60.0)


class IronCondor(StructureStrategy[IronCondorConfig]):
    KIND: ClassVar[str] = "iron_condor"
    CONFIG_TYPE = IronCondorConfig

    def __init__(self, strategy_id: str, config: IronCondorConfig) -> None:
        super().__init__(strategy_id, config)
        self._next_entry_ns: dict[str, int] = {}

    # ------------------------------------------------------------------ hooks
    def on_chain(self, chain: ChainView, now: int) -> None:
        for t in self.tracker.active(chain.underlying):
            if t.status is StructureStatus.OPEN:
                self._manage(chain, t, now)
        cfg = self.config
        if not cfg.entries_enabled:
            return
        if now < self._next_entry_ns.get(chain.underlying, 0):
            return
        self._next_entry_ns[chain.underlying] = now + int(cfg.entry_interval_s * NS_PER_SECOND)
        if len(self.tracker.active(chain.underlying)) < cfg.max_open_per_underlying and self.iv_allows_entry(
                chain.underlying):
            self._try_enter(chain, now)

    # ------------------------------------------------------------------ entry
    def select(self, chain: ChainView, now_ns: int) -> Structure | None:
        """The condor the rules pick on this book, or None."""
        cfg = self.config
        today = ny_datetime(now_ns).date()
        expiries = [e for e in sel.expiries_in_window(chain, today, cfg.dte_min, cfg.dte_max)
                    if self.may_open_expiry(e, now_ns)]
        if not expiries:
            return None
        centre = (cfg.dte_min + cfg.dte_max) / 2
        expiry = min(expiries, key=lambda e: abs((e - today).days - centre))
        offered = (sel.expiry_mask(chain, expiry) & sel.offered_mask(chain, now_ns, cfg.max_quote_age_ns)
                   & sel.liquidity_mask(chain, cfg.max_spread_pct, cfg.min_open_interest))
        held = self.ctx.portfolio.positions()
        usable = offered & sel.priced_mask(chain) & sel.unopposed_mask(chain, held, selling=True)
        offered &= sel.unopposed_mask(chain, held, selling=False)  # the wings
        target = (cfg.short_delta_min + cfg.short_delta_max) / 2
        shortable = usable & sel.sellable_mask(chain)
        sp = sel.by_delta(chain, shortable, False, target, cfg.short_delta_min, cfg.short_delta_max)
        sc = sel.by_delta(chain, shortable, True, target, cfg.short_delta_min, cfg.short_delta_max)
        if sp < 0 or sc < 0:
            return None
        width = cfg.wing_width_pct * chain.spot
        lp = sel.wing_row(chain, offered, sp, width)
        lc = sel.wing_row(chain, offered, sc, width)
        if lp < 0 or lc < 0 or chain.strike[sp] >= chain.strike[sc]:
            return None
        return iron_condor(chain, lp, sp, sc, lc)

    def _try_enter(self, chain: ChainView, now: int) -> None:
        cfg = self.config
        structure = self.select(chain, now)
        if structure is None:
            return
        mid, nat = structure.net_prices(chain)
        credit = -mid
        width = structure.width
        if sel.credit_ratio(credit, width) < cfg.min_credit_ratio:
            self.last_action = f"skip {chain.underlying}: credit {credit:.2f} < {cfg.min_credit_ratio:.2f} x {width:g}"
            return
        min_credit = cfg.min_credit_ratio * width
        # Never accept less than the minimum credit; never ask the walk to go past natural.
        limit = round(min(nat, -min_credit), 2)
        qty = size_structure(structure, chain, limit, self.ctx.account().equity, cfg.sizing, cfg.risk_per_trade_pct,
                             cfg.kelly_multiplier, cfg.max_qty)
        if qty <= 0:
            self.last_action = f"skip {chain.underlying}: sized to zero (max loss {structure.max_loss_usd(limit):.0f})"
            return
        intent = self.tracker.open(structure, qty, cfg.open_policy.policy(limit), now, tag="condor_open",
                                   entry_spot=chain.spot)
        self.last_action = f"open {chain.underlying} condor x{qty} credit~{credit:.2f}"
        self.ctx.submit(intent)

    # ------------------------------------------------------------------ management
    def exit_reason(self, chain: ChainView, t: Tracked, now_ns: int) -> str:
        """Why ``t`` should be closed now ("" to keep it); needs fresh quotes on every leg."""
        cfg = self.config
        rows = t.structure.rows(chain)
        if not sel.rows_fresh(chain, rows, now_ns, cfg.max_quote_age_ns):
            return ""
        if self.dte_exit_due(t.structure.expiry, now_ns, cfg.exit_dte):
            return "dte"
        if cfg.close_on_breach:
            short_put = max(leg.strike for leg in t.structure.legs if not leg.is_call and leg.ratio < 0)
            short_call = min(leg.strike for leg in t.structure.legs if leg.is_call and leg.ratio < 0)
            if chain.spot <= short_put or chain.spot >= short_call:
                return "breach"
        credit = -t.entry_net_price
        if not credit > 0:
            return ""
        mid, _ = t.value_per_unit(chain)
        cost_to_close = -mid
        if cost_to_close <= credit * (1.0 - cfg.take_profit_pct):
            return "take_profit"
        if cost_to_close - credit >= cfg.stop_loss_multiple * credit:
            return "stop"
        return ""

    def exit_watch(self, chain: ChainView, t: Tracked, now_ns: int) -> list[ExitWatch]:
        """DTE, breach (when configured), take-profit and stop, as distances (``strategies.exit_watch``)."""
        cfg = self.config
        out = [dte_watch(t, self.schedule(now_ns).day, cfg.exit_dte)]
        if cfg.close_on_breach:
            out.append(breach_watch(t, chain.spot))
        return out + credit_watches(t, chain, cfg.take_profit_pct, cfg.stop_loss_multiple)

    def _manage(self, chain: ChainView, t: Tracked, now: int) -> None:
        if not t.close_retry_due(now, self.config.close_retry_s):
            return
        reason = t.close_reason if t.close_attempts else (self.expiry_flat_reason(t, now)
                                                          or self.exit_reason(chain, t, now))
        if reason:
            self.close_structure(t, reason, now)
