"""The pre-trade risk gate: a pure function from (intent, portfolio, market, account, limits, state) to a verdict.

``check_intent`` runs every check and returns ``Approved`` or ``Denied`` with every failing reason as a
machine-readable code (``DenyReason``); it never raises on a bad intent and never mutates its inputs.
The engine publishes a denial as ``IntentDenied`` (``Denied.to_event``), and on approval records the
submission in the ``RateBudget`` it passed in.

Order of checks: trading state, shape, quotes (freshness and validity), then the economic checks
(liquidity, collar, post-trade Greeks, max loss and coverage, structure counts, capital, order rate,
stress). A failed shape or quote check returns at once: the later checks need valid rows.

"Risk-reducing" is judged against the book before the trade: a Greek or stress limit that is already
exceeded does not block a trade that makes it smaller, so hedges and closes always pass those checks.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping

import msgspec
import numpy as np

from domain.orders import (
    CONTRACT_MULTIPLIER,
    AssetClass,
    IntentAction,
    IntentDenied,
    OrderIntent,
    TradingState,
)
from domain.views import (
    FLAG_CROSSED,
    FLAG_NO_QUOTE,
    AccountView,
    ChainView,
    GatePortfolioView,
    MarketView,
    PortfolioGreeks,
)
from greeks.calendar import YEAR_NS
from greeks.occ import OccSymbolError, parse_occ
from risk.limits import GreekLimits, RiskLimits
from risk.payoff import PayoffLeg, loss_and_range_usd, uncovered_short_contracts
from risk.rate import RateBudget
from risk.stress import (
    CLOSE_MATCH_YEARS,
    HeldStressCache,
    StressGrid,
    combine_worst,
    held_pnl,
    offer_only_greeks,
    scenario_pnl,
    stress_inputs,
    usable_iv_rows,
)
from risk.warm import GateCache, StructureShape


class DenyReason(enum.StrEnum):
    """Why the gate refused an intent (stable codes: alerts and summaries count them)."""

    HALTED = "halted"
    REDUCE_ONLY = "reduce_only"
    BAD_QTY = "bad_qty"
    NO_LEGS = "no_legs"
    TOO_MANY_LEGS = "too_many_legs"
    BAD_RATIO = "bad_ratio"
    RATIO_GCD = "ratio_gcd"
    DUPLICATE_SYMBOL = "duplicate_symbol"
    MIXED_UNDERLYING = "mixed_underlying"
    MIXED_ASSET_CLASS = "mixed_asset_class"
    NOT_IN_BOOK = "not_in_book"
    EXPIRED = "expired"
    QUOTE_STALE = "quote_stale"
    QUOTE_INVALID = "quote_invalid"
    SPREAD_TOO_WIDE = "spread_too_wide"
    OPEN_INTEREST_LOW = "open_interest_low"
    VOLUME_LOW = "volume_low"
    MARKET_ORDER_OPTION = "market_order_option"
    COLLAR_PRICE = "collar_price"
    COLLAR_POLICY = "collar_policy"
    DELTA_LIMIT_UNDERLYING = "delta_limit_underlying"
    GAMMA_LIMIT_UNDERLYING = "gamma_limit_underlying"
    VEGA_LIMIT_UNDERLYING = "vega_limit_underlying"
    THETA_LIMIT_UNDERLYING = "theta_limit_underlying"
    DELTA_LIMIT_TOTAL = "delta_limit_total"
    GAMMA_LIMIT_TOTAL = "gamma_limit_total"
    VEGA_LIMIT_TOTAL = "vega_limit_total"
    THETA_LIMIT_TOTAL = "theta_limit_total"
    UNCOVERED_SHORT = "uncovered_short"
    MAX_LOSS_STRUCTURE = "max_loss_structure"
    MAX_OPEN_STRUCTURES = "max_open_structures"
    MAX_OPEN_STRUCTURES_UNDERLYING = "max_open_structures_underlying"
    CONCENTRATION_UNDERLYING = "concentration_underlying"
    OPTIONS_ALLOCATION = "options_allocation"
    OPTIONS_BUYING_POWER = "options_buying_power"
    ACCOUNT_EQUITY = "account_equity"
    RATE_LIMIT = "rate_limit"
    STRESS_LOSS = "stress_loss"
    STRESS_UNPRICEABLE = "stress_unpriceable"


class Approved(msgspec.Struct, frozen=True):
    """The intent may go to the router; carries what the gate computed, for the journal."""

    intent_id: str
    max_loss_usd: float
    greeks_after: PortfolioGreeks
    worst_stress_pnl_usd: float


class Denied(msgspec.Struct, frozen=True):
    """The intent must not go out: every failing check's code, and a human-readable detail."""

    intent_id: str
    reasons: tuple[str, ...]
    detail: str

    def to_event(self, intent: OrderIntent, ts_event_ns: int, ts_init_ns: int) -> IntentDenied:
        """The event the engine publishes for this denial."""
        return IntentDenied(intent.intent_id, intent.strategy_id, intent.structure_id, self.reasons, self.detail,
                            ts_event_ns, ts_init_ns)


Verdict = Approved | Denied
_Deny = Callable[[DenyReason, str], None]

# Option roots that trade on another underlying's book (PM-settled index weeklies).
ROOT_ALIASES: dict[str, str] = {"SPXW": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX"}


class _Leg:
    """One intent leg resolved against the book (internal, short-lived)."""

    __slots__ = ("qty", "ratio", "reduces", "row", "sign", "symbol")

    def __init__(self, symbol: str, row: int, sign: int, ratio: int, qty: float, reduces: bool) -> None:
        self.symbol, self.row, self.sign, self.ratio, self.qty, self.reduces = symbol, row, sign, ratio, qty, reduces




def _root_underlying(symbol: str) -> str | None:
    try:
        root = parse_occ(symbol).root
    except OccSymbolError:
        return None
    return ROOT_ALIASES.get(root, root)


class RiskGate:
    """``check_intent`` with the scenario grid of the current limits built once (rebuilt on reload)."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.grid = StressGrid(limits.stress)
        self.cache = HeldStressCache()
        self.warm = GateCache()

    def set_limits(self, limits: RiskLimits) -> None:
        """Apply reloaded limits (the scenario grid is rebuilt, which also invalidates the stress cache)."""
        self.limits = limits
        if limits.stress != self.grid.limits:
            self.grid = StressGrid(limits.stress)
            self.cache = HeldStressCache()

    def check(self, intent: OrderIntent, portfolio: GatePortfolioView, market: MarketView, account: AccountView,
              state: TradingState, now_ns: int, rate: RateBudget) -> Verdict:
        return check_intent(intent, portfolio, market, account, self.limits, state, now_ns, rate, self.grid,
                            self.cache, self.warm)


def check_intent(
    intent: OrderIntent,
    portfolio: GatePortfolioView,
    market: MarketView,
    account: AccountView,
    limits: RiskLimits,
    state: TradingState,
    now_ns: int,
    rate: RateBudget,
    grid: StressGrid | None = None,
    cache: HeldStressCache | None = None,
    warm: GateCache | None = None,
) -> Verdict:
    """Run every pre-trade check on ``intent`` against the post-trade book (see the module docstring)."""
    iid = intent.intent_id
    if state is TradingState.HALTED:
        return Denied(iid, (DenyReason.HALTED,), "trading is halted: only cancels go out")
    reasons: list[str] = []
    details: list[str] = []

    def deny(code: DenyReason, detail: str) -> None:
        if code not in reasons:
            reasons.append(code)
        details.append(detail)

    u = intent.underlying
    held = portfolio.positions_of(u)
    chain = market.chain(u)
    shape = warm.shape(intent, chain, limits.max_legs) if warm is not None else None
    if shape is not None:
        legs: list[_Leg] | None = _shaped_legs(intent, shape, chain, held, now_ns, deny)
    else:
        legs = _check_shape(intent, chain, held, now_ns, limits.max_legs, deny)
        if warm is not None and not reasons and legs is not None:
            warm.keep_shape(intent, chain, limits.max_legs, [leg.row for leg in legs])
    if reasons:
        return Denied(iid, tuple(reasons), "; ".join(details))
    assert legs is not None
    max_age_ns = limits.max_quote_age_ms * 1_000_000
    spot = market.spot(u)
    if intent.is_stock:
        age = now_ns - market.spot_ts_ns(u)
        if not (spot > 0):
            deny(DenyReason.QUOTE_INVALID, f"no price for {u}")
        elif age > max_age_ns:
            deny(DenyReason.QUOTE_STALE, f"{u} quote is {age / 1e6:.0f} ms old")
        scan = _Scan(sum(leg.qty for leg in legs))
    else:
        assert chain is not None
        scan = _scan_legs(chain, legs, now_ns, max_age_ns, limits, deny)
    if scan.quote_failed or (reasons and intent.is_stock):
        return Denied(iid, tuple(reasons), "; ".join(details))

    closing = all(leg.reduces for leg in legs)
    d_greeks = scan.greeks()
    pre_u = portfolio.greeks(u)
    pre_t = portfolio.greeks(None)
    post_u = pre_u + d_greeks
    post_t = pre_t + d_greeks

    if state is TradingState.REDUCE_ONLY and not closing and not _reduces_greeks(pre_u, post_u):
        deny(DenyReason.REDUCE_ONLY, "reduce-only: the intent neither closes positions nor reduces |delta|, "
                                     "|gamma| or |vega| without raising another")

    if not intent.is_stock:
        _check_collar(intent, scan.mid, scan.nat, limits, deny)
    elif intent.price_policy.kind != "market" and intent.price_policy.limit_price is not None:
        lim = intent.price_policy.limit_price
        if spot > 0 and abs(lim - spot) > spot * 0.02:
            deny(DenyReason.COLLAR_PRICE, f"stock limit {lim:.2f} is more than 2% from {spot:.2f}")

    if not closing:  # closing positions only ever removes exposure, even when a leg's Greeks are unknown (NaN)
        _check_greeks(pre_u, post_u, limits.per_underlying, "underlying", deny)
        _check_greeks(pre_t, post_t, limits.total, "total", deny)

    max_loss = 0.0
    payoff_range = math.inf
    opening = intent.action in (IntentAction.OPEN, IntentAction.ADJUST) and not closing
    revision: int | None = getattr(portfolio, "revision", None)
    if chain is not None:
        # Selling shares can uncover short calls as surely as selling a long call can.
        naked_before, naked_after = _coverage(chain, held, legs, scan.unit_legs, u, warm, revision)
        if naked_after > naked_before and not limits.allow_naked_short:
            deny(DenyReason.UNCOVERED_SHORT, f"{naked_after:g} short contracts would be uncovered")
    if not intent.is_stock and opening:
        max_loss, payoff_range = _structure_max_loss(intent, scan)
        if max_loss > limits.max_loss_per_structure_usd:
            deny(DenyReason.MAX_LOSS_STRUCTURE,
                 f"max loss {max_loss:.2f} > {limits.max_loss_per_structure_usd:.2f} per structure")

    if intent.action is IntentAction.OPEN and not closing:
        n_all = portfolio.open_structures()
        if n_all >= limits.max_open_structures:
            deny(DenyReason.MAX_OPEN_STRUCTURES, f"{n_all} structures open (max {limits.max_open_structures})")
        n_u = portfolio.open_structures(underlying=u)
        if n_u >= limits.max_open_structures_per_underlying:
            deny(DenyReason.MAX_OPEN_STRUCTURES_UNDERLYING,
                 f"{n_u} structures open on {u} (max {limits.max_open_structures_per_underlying})")

    if opening and max_loss > 0:
        _check_capital(portfolio, account, u, max_loss, limits, deny)

    if not rate.allows(now_ns, limits.max_orders_per_minute, limits.max_orders_per_second):
        deny(DenyReason.RATE_LIMIT, "order-rate budget spent")

    worst = 0.0
    if not closing and chain is not None:
        worst = _check_stress(chain, held, legs, intent, spot, limits,
                              grid if grid is not None else StressGrid(limits.stress), cache,
                              revision, _stress_bound(scan, payoff_range, limits),
                              deny)

    if reasons:
        return Denied(iid, tuple(reasons), "; ".join(details))
    return Approved(iid, max_loss, post_u, worst)


# ---------------------------------------------------------------------------------------------- checks


def _check_shape(intent: OrderIntent, chain: ChainView | None, held: Mapping[str, float], now_ns: int,
                 max_legs: int, deny: _Deny) -> list[_Leg] | None:
    if intent.qty <= 0:
        deny(DenyReason.BAD_QTY, f"quantity {intent.qty} is not positive")
    n = len(intent.legs)
    if n == 0:
        deny(DenyReason.NO_LEGS, "intent has no legs")
        return None
    if n > max_legs:
        deny(DenyReason.TOO_MANY_LEGS, f"{n} legs (max {max_legs})")
    g = 0
    bad_ratio = has_stock = False
    seen: set[str] = set()
    for leg in intent.legs:
        if leg.ratio <= 0:
            bad_ratio = True
        g = math.gcd(g, leg.ratio)
        seen.add(leg.symbol)
        has_stock = has_stock or leg.asset_class is AssetClass.EQUITY
    if bad_ratio:
        deny(DenyReason.BAD_RATIO, f"non-positive ratio in {[leg.ratio for leg in intent.legs]}")
    elif g != 1:
        deny(DenyReason.RATIO_GCD, f"ratios {[leg.ratio for leg in intent.legs]} share a factor: divide them and "
                                   "scale qty instead")
    if len(seen) != n:
        deny(DenyReason.DUPLICATE_SYMBOL, "a symbol appears in more than one leg")
    if has_stock and n > 1:
        deny(DenyReason.MIXED_ASSET_CLASS, "a stock leg must be an order of its own")
    u = intent.underlying
    out: list[_Leg] = []
    for leg in intent.legs:
        qty = float(leg.side.sign * leg.ratio * intent.qty)
        pos = held.get(leg.symbol, 0.0)
        reduces = pos != 0.0 and (pos > 0) != (qty > 0) and abs(qty) <= abs(pos) + 1e-9
        if leg.asset_class is AssetClass.EQUITY:
            if leg.symbol != u:
                deny(DenyReason.MIXED_UNDERLYING, f"stock leg {leg.symbol} on an intent for {u}")
            out.append(_Leg(leg.symbol, -1, leg.side.sign, leg.ratio, qty, reduces))
            continue
        row = chain.row_of(leg.symbol) if chain is not None else -1
        if row < 0:
            root = _root_underlying(leg.symbol)
            if root is not None and root != u:
                deny(DenyReason.MIXED_UNDERLYING, f"{leg.symbol} is not on {u}")
            else:
                deny(DenyReason.NOT_IN_BOOK, f"{leg.symbol} is not in the {u} book")
            continue
        assert chain is not None
        # t_years is as of the book's last reprice; age it to now.
        if not (chain.t_years.item(row) - (now_ns - chain.ts_ns) / YEAR_NS > 0.0):
            deny(DenyReason.EXPIRED, f"{leg.symbol} has expired")
        out.append(_Leg(leg.symbol, row, leg.side.sign, leg.ratio, qty, reduces))
    return out


def _shaped_legs(intent: OrderIntent, shape: StructureShape, chain: ChainView | None, held: Mapping[str, float],
                 now_ns: int, deny: _Deny) -> list[_Leg]:
    """``_check_shape`` for legs that passed its static checks on this book before: only the checks that read
    the quantity, the positions and the time are run again (same order, same codes)."""
    if intent.qty <= 0:
        deny(DenyReason.BAD_QTY, f"quantity {intent.qty} is not positive")
    out: list[_Leg] = []
    for symbol, is_stock, sign, ratio, row in shape.legs:
        qty = float(sign * ratio * intent.qty)
        pos = held.get(symbol, 0.0)
        reduces = pos != 0.0 and (pos > 0) != (qty > 0) and abs(qty) <= abs(pos) + 1e-9
        if not is_stock:
            assert chain is not None
            if not (chain.t_years.item(row) - (now_ns - chain.ts_ns) / YEAR_NS > 0.0):
                deny(DenyReason.EXPIRED, f"{symbol} has expired")
        out.append(_Leg(symbol, row, sign, ratio, qty, reduces))
    return out


class _Scan:
    """What one pass over an intent's option legs learns: net prices, Greeks, payoff legs, quote health."""

    __slots__ = ("d", "g", "mid", "nat", "quote_failed", "th", "unit_legs", "unpriced", "v")

    def __init__(self, delta_shares: float = 0.0) -> None:
        self.mid = self.nat = 0.0
        self.d, self.g, self.v, self.th = delta_shares, 0.0, 0.0, 0.0
        self.unit_legs: list[PayoffLeg] = []
        self.quote_failed = False
        self.unpriced = False

    def greeks(self) -> PortfolioGreeks:
        """The intent's Greeks in trader units."""
        return PortfolioGreeks(self.d, self.g, self.v / 100.0, self.th / 365.0)


def _scan_legs(chain: ChainView, legs: list[_Leg], now_ns: int, max_age_ns: int, limits: RiskLimits,
               deny: _Deny) -> _Scan:
    """Quote freshness and validity, liquidity of opening legs, net prices, Greeks: one read per row."""
    scan = _Scan()
    for leg in legs:
        r = leg.row
        bid, ask = chain.bid.item(r), chain.ask.item(r)
        if chain.flags.item(r) & (FLAG_CROSSED | FLAG_NO_QUOTE) or not (ask > 0) or not (bid >= 0) or bid > ask:
            deny(DenyReason.QUOTE_INVALID, f"{leg.symbol} quote {bid}/{ask} is not usable")
            scan.quote_failed = True
        elif leg.sign < 0 and not leg.reduces and not (bid > 0):
            deny(DenyReason.QUOTE_INVALID, f"{leg.symbol} has no bid to sell into")
            scan.quote_failed = True
        age = now_ns - chain.quote_ts_ns.item(r)
        if age > max_age_ns:
            deny(DenyReason.QUOTE_STALE, f"{leg.symbol} quote is {age / 1e6:.0f} ms old")
            scan.quote_failed = True
        if not leg.reduces:  # getting out is never blocked for liquidity
            width = ask - bid
            spread_pct = width / (0.5 * (bid + ask)) if bid + ask > 0 else math.inf
            if spread_pct > limits.max_spread_pct and width > limits.spread_floor_usd + 1e-9:
                deny(DenyReason.SPREAD_TOO_WIDE,
                     f"{leg.symbol} spread {100 * spread_pct:.1f}% > {100 * limits.max_spread_pct:.1f}%")
            oi = chain.open_interest.item(r)
            if oi < limits.min_open_interest:
                deny(DenyReason.OPEN_INTEREST_LOW, f"{leg.symbol} open interest {oi} < {limits.min_open_interest}")
            vol = chain.volume.item(r)
            if vol < limits.min_volume:
                deny(DenyReason.VOLUME_LOW, f"{leg.symbol} volume {vol} < {limits.min_volume}")
        s = leg.sign * leg.ratio
        scan.mid += s * 0.5 * (bid + ask)
        scan.nat += s * (ask if s > 0 else bid)
        q = leg.qty * CONTRACT_MULTIPLIER
        d, g, v, th = chain.delta.item(r), chain.gamma.item(r), chain.vega.item(r), chain.theta.item(r)
        if not math.isfinite(chain.iv.item(r)):
            scan.unpriced = True
            if leg.sign > 0 and not (bid > 0) and not math.isfinite(d):
                d, g, v, th = offer_only_greeks(chain, r, limits.stress.rate)
        scan.d += q * d
        scan.g += q * g
        scan.v += q * v
        scan.th += q * th
        # Time to expiry orders expiries as well as the date does, and reading it costs no conversion.
        scan.unit_legs.append(PayoffLeg(float(s), chain.strike.item(r), chain.is_call.item(r), chain.t_years.item(r)))
    return scan


def _check_collar(intent: OrderIntent, mid: float, nat: float, limits: RiskLimits, deny: _Deny) -> None:
    policy = intent.price_policy
    if policy.kind == "market":
        deny(DenyReason.MARKET_ORDER_OPTION, "market orders are not allowed for options")
        return
    half = nat - mid  # >= 0: natural is always the worse side in signed net terms
    tol = limits.collar_pct_of_spread * 2.0 * half + limits.collar_min_usd
    if policy.limit_price is not None and policy.limit_price > nat + tol + 1e-12:
        deny(DenyReason.COLLAR_PRICE,
             f"limit {policy.limit_price:.2f} is worse than natural {nat:.2f} by more than {tol:.2f}")
    if policy.max_concession_fraction > 1.0 and (policy.max_concession_fraction - 1.0) * half > tol + 1e-12:
        deny(DenyReason.COLLAR_POLICY,
             f"price walk may concede {policy.max_concession_fraction:.2f}x the half-spread, past natural + {tol:.2f}")


def _reduces_greeks(pre: PortfolioGreeks, post: PortfolioGreeks) -> bool:
    """At least one of |delta|, |gamma|, |vega| smaller and none larger."""
    pairs = ((pre.delta_shares, post.delta_shares), (pre.gamma_shares_per_usd, post.gamma_shares_per_usd),
             (pre.vega_usd_per_vol_pt, post.vega_usd_per_vol_pt))
    eps = 1e-9
    smaller = any(abs(b) < abs(a) - eps for a, b in pairs)
    larger = any(abs(b) > abs(a) + eps for a, b in pairs)
    return smaller and not larger


_GREEK_CODES = {
    "underlying": (DenyReason.DELTA_LIMIT_UNDERLYING, DenyReason.GAMMA_LIMIT_UNDERLYING,
                   DenyReason.VEGA_LIMIT_UNDERLYING, DenyReason.THETA_LIMIT_UNDERLYING),
    "total": (DenyReason.DELTA_LIMIT_TOTAL, DenyReason.GAMMA_LIMIT_TOTAL, DenyReason.VEGA_LIMIT_TOTAL,
              DenyReason.THETA_LIMIT_TOTAL),
}


def _check_greeks(pre: PortfolioGreeks, post: PortfolioGreeks, lim: GreekLimits, scope: str, deny: _Deny) -> None:
    cd, cg, cv, ct = _GREEK_CODES[scope]
    for code, a, b, cap, name in (
        (cd, pre.delta_shares, post.delta_shares, lim.max_abs_delta_shares, "delta"),
        (cg, pre.gamma_shares_per_usd, post.gamma_shares_per_usd, lim.max_abs_gamma_shares_per_usd, "gamma"),
        (cv, pre.vega_usd_per_vol_pt, post.vega_usd_per_vol_pt, lim.max_abs_vega_usd_per_vol_pt, "vega"),
    ):
        if not math.isfinite(b) or (abs(b) > cap and abs(b) > abs(a) + 1e-9):
            deny(code, f"post-trade {scope} {name} {b:.1f} beyond +-{cap:g}")
    if not math.isfinite(post.theta_usd_per_day) or (
        post.theta_usd_per_day < -lim.max_theta_burn_usd_per_day
        and post.theta_usd_per_day < pre.theta_usd_per_day - 1e-9
    ):
        deny(ct, f"post-trade {scope} theta {post.theta_usd_per_day:.1f}/day below -{lim.max_theta_burn_usd_per_day:g}")


def _payoff_leg(chain: ChainView, row: int, qty: float) -> PayoffLeg:
    # Time to expiry orders expiries as well as the date does, and reading it costs no conversion.
    return PayoffLeg(qty, chain.strike.item(row), chain.is_call.item(row), chain.t_years.item(row))


def _coverage(chain: ChainView, held: Mapping[str, float], legs: list[_Leg], unit_legs: list[PayoffLeg],
              u: str, warm: GateCache | None = None, revision: int | None = None) -> tuple[float, float]:
    """Naked short contracts on the underlying before and after the trade."""
    # Selling nothing that is held long: a structure covered by its own legs cannot uncover anything.
    if not any(leg.reduces and leg.qty < 0 for leg in legs) and _self_covered(unit_legs):
        return 0.0, 0.0
    after: dict[str, float] = dict(held)
    for leg in legs:
        after[leg.symbol] = after.get(leg.symbol, 0.0) + leg.qty
    if not any(q < 0 for s, q in after.items() if s != u):
        return 0.0, 0.0
    naked_after = _naked(chain, after, u)
    if naked_after == 0.0:
        return 0.0, 0.0
    before = warm.naked_before(chain, held, u, revision, _naked) if warm is not None else _naked(chain, held, u)
    return before, naked_after


def _self_covered(unit_legs: list[PayoffLeg]) -> bool:
    """Every short is matched by longs of its right expiring no earlier than the right's latest short."""
    for is_call in (True, False):
        short = long_ok = 0.0
        latest = -math.inf
        for leg in unit_legs:
            if leg.is_call is is_call and leg.qty < 0:
                short -= leg.qty
                latest = max(latest, leg.expiry_key)
        if short == 0.0:
            continue
        for leg in unit_legs:
            if leg.is_call is is_call and leg.qty > 0 and leg.expiry_key >= latest:
                long_ok += leg.qty
        if long_ok < short:
            return uncovered_short_contracts(unit_legs) == 0.0
    return True


def _naked(chain: ChainView, positions: Mapping[str, float], u: str) -> float:
    legs: list[PayoffLeg] = []
    for sym, q in positions.items():
        if sym == u or q == 0:
            continue
        r = chain.row_of(sym)
        if r >= 0:
            legs.append(_payoff_leg(chain, r, q))
        elif q < 0:
            return math.inf  # a short we cannot see is treated as naked
    return uncovered_short_contracts(legs, positions.get(u, 0.0))


def _structure_max_loss(intent: OrderIntent, scan: _Scan) -> tuple[float, float]:
    """Exact max loss of the intent's structure at the worst price its policy may pay, and its payoff range."""
    policy = intent.price_policy
    if policy.limit_price is not None:
        worst = policy.limit_price
    else:
        worst = scan.mid + min(policy.max_concession_fraction, 1.0) * (scan.nat - scan.mid)
    return loss_and_range_usd(scan.unit_legs, worst, float(intent.qty))


def _check_capital(portfolio: GatePortfolioView, account: AccountView, u: str, new_risk: float,
                   limits: RiskLimits, deny: _Deny) -> None:
    equity = account.equity
    if not (equity > 0):
        deny(DenyReason.ACCOUNT_EQUITY, f"account equity {equity} is not positive")
        return
    on_u = portfolio.risk_capital_usd(u) + new_risk
    if on_u > limits.max_underlying_risk_pct * equity:
        deny(DenyReason.CONCENTRATION_UNDERLYING,
             f"capital at risk on {u} {on_u:.0f} > {100 * limits.max_underlying_risk_pct:.0f}% of equity")
    total = portfolio.risk_capital_usd(None) + new_risk
    if total > limits.max_options_allocation_pct * equity:
        deny(DenyReason.OPTIONS_ALLOCATION,
             f"capital at risk {total:.0f} > {100 * limits.max_options_allocation_pct:.0f}% of equity")
    if new_risk > account.options_buying_power:
        deny(DenyReason.OPTIONS_BUYING_POWER,
             f"requires {new_risk:.0f}, options buying power is {account.options_buying_power:.0f}")


def _stress_bound(scan: _Scan, payoff_range: float, limits: RiskLimits) -> float:
    """Most the structure can lose in any scenario: its payoff range, for one expiry, widened for discounting.

    A same-expiry structure's model value lies between its discounted min and max payoff in every
    scenario, so a move changes it by at most (max - min) x (2 - exp(-r t)).
    """
    legs = scan.unit_legs
    if not legs or scan.unpriced or not math.isfinite(payoff_range):
        return math.inf
    t = legs[0].expiry_key
    if any(leg.expiry_key != t for leg in legs):
        return math.inf
    return payoff_range * (2.0 - math.exp(-max(limits.stress.rate, 0.0) * max(t, 0.0)))


def _check_stress(chain: ChainView, held: Mapping[str, float], legs: list[_Leg], intent: OrderIntent, spot: float,
                  limits: RiskLimits, grid: StressGrid, cache: HeldStressCache | None, revision: int | None,
                  bound_usd: float, deny: _Deny) -> float:
    """Deny when the post-trade book's worst scenario loses more than the limit (and more than before).

    ``bound_usd`` caps how much the intent alone can lose in any scenario (inf when unknown); when the
    held book's worst plus that cap stays within the limit, the intent's legs are not repriced and the
    returned worst P&L is that lower bound.
    """
    u = intent.underlying
    s, to_close = stress_inputs(chain, spot)
    if cache is not None:
        pnl_before, same_day = cache.held_pnl(chain, held, u, s, to_close, grid, revision)
    else:
        _, pnl_before, same_day = held_pnl(chain, held, u, s, to_close, grid)
    rows: list[int] = []
    qty: list[float] = []
    shares = 0.0
    for leg in legs:
        if leg.row < 0:
            shares += leg.qty
            continue
        rows.append(leg.row)
        qty.append(leg.qty)
        if to_close > 0 and abs(chain.t_years.item(leg.row) - to_close) < CLOSE_MATCH_YEARS:
            same_day = True
    n = grid.n_max if same_day else grid.n_grid
    if math.isfinite(bound_usd):
        bound = float(pnl_before[:n].min()) - bound_usd  # NaN (unpriceable) fails the test below
        if bound >= -limits.stress.max_loss_usd:
            return bound
    # The legs' own columns, gathered: the kernel reads the same values without a copy of the whole IV column.
    idx = np.array(rows, dtype=np.int64)
    delta = scenario_pnl(grid, chain.forward[idx], chain.strike[idx], chain.t_years[idx], usable_iv_rows(chain, idx),
                         chain.is_call[idx], np.arange(idx.shape[0], dtype=np.int64), np.array(qty, dtype=np.float64),
                         s, shares, to_close)
    worst_after, worst_at, worst_before = combine_worst(pnl_before, delta, n)
    if math.isnan(worst_after):
        deny(DenyReason.STRESS_UNPRICEABLE, "a leg of the post-trade book has no usable IV or forward")
        return math.nan
    if -worst_after > limits.stress.max_loss_usd and worst_after < worst_before - 1e-6:
        label = grid.labels(n > grid.n_grid)[worst_at]
        deny(DenyReason.STRESS_LOSS,
             f"stress loss {-worst_after:.0f} in {label} > {limits.stress.max_loss_usd:.0f}")
    return worst_after
