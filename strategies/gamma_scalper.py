"""Gamma scalper: long an ATM straddle, delta-hedged with stock whenever net delta leaves a band.

Entry: among listed expiries in the DTE window, the ATM straddle (strike nearest the forward) with the
best score = (gamma per unit of theta) / (1 + ``spread_cost_weight`` x straddle spread over mid), both
legs quoted, fresh and within ``max_spread_pct``. Bought as one 2-leg mleg debit order.

Hedging: net delta (the straddle's contracts plus the structure's own shares) is compared with a band
- ``hedge_mode = "fixed"``: ``hedge_band_shares``;
- ``hedge_mode = "gamma"``: the delta a ``band_move_pct`` spot move would create (gamma x spot x move),
  at least ``min_band_shares``.
Out of the band, one stock order brings delta back to zero. Never on stale data (the underlying and
both legs must be fresher than ``max_quote_age_ms``), never with a hedge already working, and at most
one per ``min_hedge_interval_s``. Hedging P&L is tracked against the theta paid.

Exit: loss (options at mid plus hedges) at ``max_loss_usd``; ``exit_dte`` days to expiry; or the
straddle's IV up ``exit_vol_gain_pts`` from entry (the vol target); from ``expiry_flat_by`` on the
day its legs expire (with ``exit_dte = 0``, or after a close that kept failing). The straddle
is sold as one mleg and the shares flattened with one stock order.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from domain.orders import CONTRACT_MULTIPLIER, OrderFilled
from domain.views import ChainView
from greeks.calendar import NS_PER_DAY, NS_PER_SECOND
from strategies import selection as sel
from strategies.base import (
    Dte,
    Fraction,
    NonNegFloat,
    PolicyConfig,
    PositiveFloat,
    PositiveInt,
    StructureStrategy,
    Symbol,
    TermConfig,
    ny_datetime,
)
from strategies.exit_watch import ExitWatch, dte_watch
from strategies.structures import Structure, straddle
from strategies.tracking import StructureStatus, Tracked


class GammaScalperConfig(TermConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    HOT_FIELDS: ClassVar[frozenset[str]] = TermConfig.HOT_FIELDS | {
        "qty", "max_spread_pct", "spread_cost_weight", "hedge_mode", "hedge_band_shares",
        "band_move_pct", "min_band_shares", "min_hedge_interval_s", "max_loss_usd",
        "exit_vol_gain_pts", "reentry_cooldown_s",
    }

    underlyings: tuple[Symbol, ...] = ("SPY",)
    dte_min: Dte = 14
    dte_max: Dte = 60
    qty: PositiveInt = 2
    """Straddles to hold."""
    max_spread_pct: PositiveFloat = 0.15
    spread_cost_weight: NonNegFloat = 5.0
    hedge_mode: Literal["fixed", "gamma"] = "gamma"
    hedge_band_shares: PositiveFloat = 10.0
    band_move_pct: Fraction = 0.002
    min_band_shares: PositiveFloat = 2.0
    min_hedge_interval_s: NonNegFloat = 30.0
    max_loss_usd: PositiveFloat = 2_000.0
    exit_vol_gain_pts: PositiveFloat = 4.0
    reentry_cooldown_s: NonNegFloat = 300.0
    open_policy: PolicyConfig = PolicyConfig(walk_every_s=5.0, walk_step_fraction=0.25,
                                             max_concession_fraction=0.8, timeout_s=60.0)


class GammaScalper(StructureStrategy[GammaScalperConfig]):
    KIND: ClassVar[str] = "gamma_scalper"
    CONFIG_TYPE = GammaScalperConfig

    def __init__(self, strategy_id: str, config: GammaScalperConfig) -> None:
        super().__init__(strategy_id, config)
        self._last_hedge_ns: dict[str, int] = {}
        self._last_book_ns: dict[str, int] = {}
        self._next_entry_ns: dict[str, int] = {}
        self.hedges_sent = 0
        self.hedges_skipped_stale = 0
        self.theta_paid_usd = 0.0

    # ------------------------------------------------------------------ hooks
    def on_chain(self, chain: ChainView, now: int) -> None:
        u = chain.underlying
        active = self.tracker.active(u)
        for t in active:
            if t.status is StructureStatus.OPEN:
                self._accrue_theta(chain, t, now)
                if not self._maybe_exit(chain, t, now):
                    self._maybe_hedge(chain, t, now)
        self._last_book_ns[u] = now
        if not active and self.config.entries_enabled and now >= self._next_entry_ns.get(u, 0):
            self._next_entry_ns[u] = now + 10 * NS_PER_SECOND
            if self.iv_allows_entry(u):
                self._try_enter(chain, now)

    def on_fill(self, fill: OrderFilled) -> None:
        t = self.tracker.on_fill(fill)
        if t is not None and t.status is StructureStatus.CLOSED:
            self._next_entry_ns[t.structure.underlying] = fill.ts_event_ns + int(
                self.config.reentry_cooldown_s * NS_PER_SECOND)

    def own_stats(self) -> dict[str, float | int | str]:
        hedge_pnl = self.tracker.retired_stock_cash_usd
        for t in self.tracker.structures.values():
            hedge_pnl += t.stock_cash_usd
            if abs(t.shares) > 0:
                chain = self.ctx.market.chain(t.structure.underlying)
                hedge_pnl += t.shares * (chain.spot if chain is not None else math.nan)
        return {"hedges": self.hedges_sent, "hedges_skipped_stale": self.hedges_skipped_stale,
                "hedge_pnl_usd": round(hedge_pnl, 2), "theta_paid_usd": round(self.theta_paid_usd, 2)}

    # ------------------------------------------------------------------ entry
    def select(self, chain: ChainView, now_ns: int) -> Structure | None:
        """The best-scoring ATM straddle in the DTE window, or None."""
        cfg = self.config
        today = ny_datetime(now_ns).date()
        usable = (sel.quoted_mask(chain, now_ns, cfg.max_quote_age_ns)
                  & sel.liquidity_mask(chain, cfg.max_spread_pct)
                  & sel.unopposed_mask(chain, self.ctx.portfolio.positions(), selling=False))
        best: tuple[float, int, int] | None = None
        for expiry in sel.expiries_in_window(chain, today, cfg.dte_min, cfg.dte_max):
            if not self.may_open_expiry(expiry, now_ns):
                continue
            m = usable & sel.expiry_mask(chain, expiry)
            c = sel.atm_row(chain, m, True)
            if c < 0:
                continue
            p = sel.by_strike(chain, m, False, float(chain.strike[c]))
            if p < 0 or chain.strike[p] != chain.strike[c]:
                continue
            gamma = float(chain.gamma[c] + chain.gamma[p])
            theta = abs(float(chain.theta[c] + chain.theta[p]))
            mid = sel.mid(chain, c) + sel.mid(chain, p)
            spread = float(chain.ask[c] - chain.bid[c] + chain.ask[p] - chain.bid[p]) / mid if mid > 0 else math.inf
            if not (gamma > 0 and theta > 0 and math.isfinite(spread)):
                continue
            score = (gamma / theta) / (1.0 + cfg.spread_cost_weight * spread)
            if best is None or score > best[0]:
                best = (score, c, p)
        if best is None:
            return None
        return straddle(chain, best[1], best[2])

    def _try_enter(self, chain: ChainView, now: int) -> None:
        structure = self.select(chain, now)
        if structure is None:
            return
        _, nat = structure.net_prices(chain)
        rows = structure.rows(chain)
        iv = float(sum(chain.iv[r] for r in rows) / len(rows))
        intent = self.tracker.open(structure, self.config.qty, self.config.open_policy.policy(round(nat, 2)), now,
                                   tag="straddle_open", entry_spot=chain.spot, entry_iv=iv)
        self.last_action = f"open {chain.underlying} straddle {structure.legs[0].strike:g} x{self.config.qty}"
        self.ctx.submit(intent)

    # ------------------------------------------------------------------ hedging
    def net_delta(self, chain: ChainView, t: Tracked) -> tuple[float, float]:
        """(delta in shares, gamma in shares per $1) of the structure's options and shares."""
        d, g = t.shares, 0.0
        for sym, q in t.filled.items():
            r = chain.row_of(sym)
            if r >= 0 and q:
                d += q * CONTRACT_MULTIPLIER * float(chain.delta[r])
                g += q * CONTRACT_MULTIPLIER * float(chain.gamma[r])
        return d, g

    def band(self, chain: ChainView, gamma: float) -> float:
        cfg = self.config
        if cfg.hedge_mode == "fixed":
            return cfg.hedge_band_shares
        return max(cfg.min_band_shares, abs(gamma) * chain.spot * cfg.band_move_pct)

    def _maybe_hedge(self, chain: ChainView, t: Tracked, now: int) -> None:
        cfg = self.config
        since_hedge = now - self._last_hedge_ns.get(t.structure_id, 0)
        if t.pending_hedge or since_hedge < cfg.min_hedge_interval_s * NS_PER_SECOND:
            return
        delta, gamma = self.net_delta(chain, t)
        if not math.isfinite(delta) or abs(delta) <= self.band(chain, gamma):
            return  # NaN: a leg without Greeks (IV not solvable on this quote); never hedge a guess
        if not sel.rows_fresh(chain, t.structure.rows(chain), now, cfg.max_quote_age_ns):
            self.hedges_skipped_stale += 1
            return
        shares = -round(delta)
        if shares == 0:
            return
        self._last_hedge_ns[t.structure_id] = now
        self.hedges_sent += 1
        self.last_action = f"hedge {chain.underlying} {shares:+d} (delta {delta:+.1f})"
        self.ctx.submit(self.tracker.stock_intent(t, float(shares), now))

    def _accrue_theta(self, chain: ChainView, t: Tracked, now: int) -> None:
        last = self._last_book_ns.get(chain.underlying, now)
        if now <= last:
            return
        theta_day = 0.0
        for sym, q in t.filled.items():
            r = chain.row_of(sym)
            if r >= 0 and q:
                theta_day += q * CONTRACT_MULTIPLIER * float(chain.theta[r]) / 365.0
        if math.isfinite(theta_day):
            self.theta_paid_usd += -theta_day * (now - last) / NS_PER_DAY

    # ------------------------------------------------------------------ exit
    def exit_reason(self, chain: ChainView, t: Tracked, now_ns: int) -> str:
        cfg = self.config
        rows = t.structure.rows(chain)
        if not sel.rows_fresh(chain, rows, now_ns, cfg.max_quote_age_ns):
            return ""
        if self.dte_exit_due(t.structure.expiry, now_ns, cfg.exit_dte):
            return "dte"
        pnl = t.pnl_usd(chain)
        if pnl <= -cfg.max_loss_usd:
            return "max_loss"
        iv = float(sum(chain.iv[r] for r in rows) / len(rows))
        if math.isfinite(t.entry_iv) and iv >= t.entry_iv + cfg.exit_vol_gain_pts / 100.0:
            return "vol_target"
        return ""

    def exit_watch(self, chain: ChainView, t: Tracked, now_ns: int) -> list[ExitWatch]:
        """DTE, max loss and the vol target, as distances (``strategies.exit_watch``)."""
        cfg = self.config
        pnl = t.pnl_usd(chain)
        rows = t.structure.rows(chain)
        iv = float(sum(chain.iv[r] for r in rows) / len(rows)) if rows and min(rows) >= 0 else math.nan
        gain = cfg.exit_vol_gain_pts / 100.0
        return [dte_watch(t, self.schedule(now_ns).day, cfg.exit_dte),
                ExitWatch("max_loss", -pnl / cfg.max_loss_usd, f"P&L {pnl:.0f} vs -{cfg.max_loss_usd:.0f}"),
                ExitWatch("vol_target", (iv - t.entry_iv) / gain,
                          f"IV {100 * iv:.2f} vs target {100 * (t.entry_iv + gain):.2f}")]

    def _maybe_exit(self, chain: ChainView, t: Tracked, now: int) -> bool:
        if not t.close_retry_due(now, self.config.close_retry_s):
            return True
        reason = t.close_reason if t.close_attempts else (self.expiry_flat_reason(t, now)
                                                          or self.exit_reason(chain, t, now))
        if not reason:
            return False
        self.close_structure(t, reason, now)
        return True
