"""Contract selection over a ``ChainView``'s arrays: by DTE window, delta, strike and width, credit, liquidity.

Every helper works on whole columns with numpy (masks and argmin), never one Python call per row, and
returns book rows (``-1`` when nothing qualifies) or boolean masks that compose with ``&``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from domain.views import FLAG_CROSSED, FLAG_NO_QUOTE, FLAG_UNUSABLE, ChainView
from greeks.black import greeks_at_vol

Mask = npt.NDArray[np.bool_]


def dte_days(chain: ChainView, today: dt.date) -> npt.NDArray[np.int64]:
    """Calendar days from ``today`` to each row's expiry."""
    days: npt.NDArray[np.int64] = (chain.expiry.astype("datetime64[D]") - np.datetime64(today, "D")).astype(np.int64)
    return days


def dte_mask(chain: ChainView, today: dt.date, dte_min: int, dte_max: int) -> Mask:
    d = dte_days(chain, today)
    mask: Mask = (d >= dte_min) & (d <= dte_max)
    return mask


def expiries_in_window(chain: ChainView, today: dt.date, dte_min: int, dte_max: int) -> list[dt.date]:
    """Distinct listed expiries with DTE in ``[dte_min, dte_max]``, ascending."""
    sel = chain.expiry[dte_mask(chain, today, dte_min, dte_max)]
    return [np.datetime64(e, "D").item() for e in np.unique(sel)]


def expiry_mask(chain: ChainView, expiry: dt.date) -> Mask:
    mask: Mask = chain.expiry == np.datetime64(expiry, "D")
    return mask


def offered_mask(chain: ChainView, now_ns: int, max_age_ns: int) -> Mask:
    """Rows that can be bought: an offer (the bid may be zero), uncrossed, no older than ``max_age_ns``.

    A row bid at zero has no mid, hence no IV or delta: fine for a protective wing, which is chosen by strike
    (late in a session, and all through a half day, the wings of a same-day structure are often such rows).
    """
    mask: Mask = (
        (chain.bid >= 0) & (chain.ask > 0) & (chain.ask >= chain.bid)
        & ((chain.flags & (FLAG_CROSSED | FLAG_NO_QUOTE)) == 0)
        & (now_ns - chain.quote_ts_ns <= max_age_ns)
    )
    return mask


def priced_mask(chain: ChainView) -> Mask:
    """Rows with a usable IV and delta (from a two-sided quote)."""
    mask: Mask = np.isfinite(chain.iv) & np.isfinite(chain.delta)
    return mask


def quoted_mask(chain: ChainView, now_ns: int, max_age_ns: int) -> Mask:
    """``offered_mask`` rows with a usable IV and delta. Sell only rows that also pass ``sellable_mask``."""
    mask: Mask = offered_mask(chain, now_ns, max_age_ns) & priced_mask(chain)
    return mask


def unopposed_mask(chain: ChainView, positions: Mapping[str, float], selling: bool) -> Mask:
    """Rows the account does not hold on the other side of the trade (no selling what it is long, no buying what
    it is short). Two structures holding opposite sides of one contract are one net position at the broker,
    which then refuses the closing order of either for more than the net ("insufficient qty available"): a
    same-day short left without a way out."""
    mask: Mask = np.ones(len(chain.symbols), dtype=np.bool_)
    for symbol, qty in positions.items():
        if (qty > 0) if selling else (qty < 0):
            row = chain.row_of(symbol)
            if row >= 0:
                mask[row] = False
    return mask


def sellable_mask(chain: ChainView) -> Mask:
    """Rows with a bid to sell into."""
    mask: Mask = chain.bid > 0
    return mask


def liquidity_mask(chain: ChainView, max_spread_pct: float, min_open_interest: int = 0,
                   min_volume: int = 0, spread_floor_usd: float = 0.05) -> Mask:
    """Rows whose spread (over mid, unless at most ``spread_floor_usd`` wide), open interest and volume pass."""
    width = chain.ask - chain.bid
    mid = 0.5 * (chain.bid + chain.ask)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(mid > 0, width / mid, np.inf)
    mask: Mask = (((spread <= max_spread_pct) | (width <= spread_floor_usd + 1e-9))
                  & (chain.open_interest >= min_open_interest) & (chain.volume >= min_volume))
    return mask


def selection_deltas(chain: ChainView) -> npt.NDArray[np.float64]:
    """The deltas strikes are picked by: a row's own delta while its quote is usable; the forward delta at its
    surface IV where the quote is stale, one-sided, crossed or empty, or its IV did not solve. (A row with a good
    quote keeps its own: the live surface comes from a worker at moments of its own, and a pick that moved with it
    would make a replay of the session decide differently.)"""
    siv, fwd = chain.surface_iv, chain.surface_fwd
    unusable = ((chain.flags & FLAG_UNUSABLE) != 0) | (chain.status != 0)
    have = unusable & np.isfinite(siv) & (siv > 0) & (chain.t_years > 0) & (fwd > 0)
    if not have.any():
        return chain.delta
    g = greeks_at_vol(np.where(have, fwd, 1.0), chain.strike, chain.t_years, 0.0, 0.0, np.where(have, siv, 0.2),
                      chain.is_call, mask=have)
    out: npt.NDArray[np.float64] = np.where(have & np.isfinite(g.delta), g.delta, chain.delta)
    return out


def by_delta(chain: ChainView, mask: Mask, is_call: bool, target: float, lo: float = 0.0, hi: float = 1.0) -> int:
    """Row with |delta| closest to ``target`` among ``mask`` rows of the right with lo <= |delta| <= hi (deltas on
    the surface: ``selection_deltas``)."""
    ad = np.abs(selection_deltas(chain))
    sel = mask & (chain.is_call == is_call) & (ad >= lo) & (ad <= hi)
    if not sel.any():
        return -1
    score = np.where(sel, np.abs(ad - target), np.inf)
    return int(np.argmin(score))


def by_strike(chain: ChainView, mask: Mask, is_call: bool, strike: float, mode: str = "nearest") -> int:
    """Row of the right nearest ``strike`` (``mode``: nearest, at_or_above, at_or_below) among ``mask``."""
    sel = mask & (chain.is_call == is_call)
    if mode == "at_or_above":
        sel = sel & (chain.strike >= strike - 1e-9)
    elif mode == "at_or_below":
        sel = sel & (chain.strike <= strike + 1e-9)
    elif mode != "nearest":
        raise ValueError(f"unknown strike mode {mode!r}")
    if not sel.any():
        return -1
    return int(np.argmin(np.where(sel, np.abs(chain.strike - strike), np.inf)))


def atm_row(chain: ChainView, mask: Mask, is_call: bool) -> int:
    """Row of the right whose strike is nearest its expiry's forward (spot when the forward is unknown)."""
    ref = np.where(np.isfinite(chain.forward) & (chain.forward > 0), chain.forward, chain.spot)
    sel = mask & (chain.is_call == is_call)
    if not sel.any():
        return -1
    return int(np.argmin(np.where(sel, np.abs(chain.strike - ref), np.inf)))


def wing_row(chain: ChainView, mask: Mask, short_row: int, width: float) -> int:
    """The protective leg ``width`` beyond a short leg (further OTM): at least that far, nearest such strike."""
    is_call = bool(chain.is_call[short_row])
    k = float(chain.strike[short_row])
    same = mask & (chain.expiry == chain.expiry[short_row])
    if is_call:
        return by_strike(chain, same & (chain.strike > k), True, k + width, "at_or_above")
    return by_strike(chain, same & (chain.strike < k), False, k - width, "at_or_below")


def mid(chain: ChainView, row: int) -> float:
    return 0.5 * (float(chain.bid[row]) + float(chain.ask[row]))


def credit_ratio(credit: float, width: float) -> float:
    """Credit received over the spread's width (0 when the width is not positive)."""
    return credit / width if width > 0 else 0.0


def rows_fresh(chain: ChainView, rows: list[int], now_ns: int, max_age_ns: int) -> bool:
    """Every row is in the book with a usable quote no older than ``max_age_ns`` (and spot is that fresh)."""
    if now_ns - chain.spot_ts_ns > max_age_ns or not (chain.spot > 0):
        return False
    for r in rows:
        if r < 0 or now_ns - int(chain.quote_ts_ns[r]) > max_age_ns:
            return False
        if chain.flags[r] & (FLAG_CROSSED | FLAG_NO_QUOTE) or not (chain.ask[r] > 0):
            return False
    return True
