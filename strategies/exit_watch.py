"""How near each exit rule of an open structure is to firing, for the operator's dashboard.

Each rule reports ``progress``: 0 where the structure started (entry spot, entry credit, entry IV, the
opening day) and 1 where the rule fires; above 1 it would fire at the next fresh quotes, below 0 the
structure moved away from it. NaN when it cannot be told (no quote, no entry reference). Nothing here
decides anything: the strategies' own ``exit_reason`` does; these are the same comparisons as distances.
"""

from __future__ import annotations

import datetime as dt
import math

import msgspec

from domain.views import ChainView
from greeks.calendar import ny_date
from strategies.tracking import Tracked


class ExitWatch(msgspec.Struct, frozen=True):
    """One exit rule of one structure: its name, how near it is (1 = fires) and the numbers behind it."""

    rule: str
    progress: float
    detail: str


def nearest(watches: list[ExitWatch]) -> ExitWatch | None:
    """The rule nearest to firing (largest finite progress), or None when none can be told."""
    known = [w for w in watches if math.isfinite(w.progress)]
    return max(known, key=lambda w: w.progress) if known else None


def dte_watch(t: Tracked, today: dt.date, exit_dte: int) -> ExitWatch:
    """The days-to-expiry exit: progress from the opening day to the day it falls due."""
    expiry = t.structure.expiry
    due = expiry - dt.timedelta(days=exit_dte)
    opened = ny_date(t.opened_ns) if t.opened_ns else today
    span = (due - opened).days
    progress = 1.0 if today >= due else ((today - opened).days / span if span > 0 else math.nan)
    return ExitWatch("dte", progress, f"{(due - today).days} days to exit at {exit_dte} DTE")


def credit_watches(t: Tracked, chain: ChainView, take_profit_pct: float, stop_loss_multiple: float) -> list[ExitWatch]:
    """Take-profit and stop of a credit structure, on the cost to close at mid against the entry credit."""
    credit = -t.entry_net_price
    if not credit > 0:
        return []
    cost = -t.value_per_unit(chain)[0]
    return [
        ExitWatch("take_profit", (credit - cost) / (credit * take_profit_pct),
                  f"cost {cost:.2f} vs target {credit * (1.0 - take_profit_pct):.2f} (credit {credit:.2f})"),
        ExitWatch("stop", (cost - credit) / (stop_loss_multiple * credit),
                  f"cost {cost:.2f} vs stop {credit * (1.0 + stop_loss_multiple):.2f}"),
    ]


def breach_watch(t: Tracked, spot: float) -> ExitWatch:
    """Spot against the short strikes of a condor: 0 at the entry spot, 1 on a short strike."""
    short_put = max((leg.strike for leg in t.structure.legs if not leg.is_call and leg.ratio < 0), default=math.nan)
    short_call = min((leg.strike for leg in t.structure.legs if leg.is_call and leg.ratio < 0), default=math.nan)
    e = t.entry_spot
    up = (spot - e) / (short_call - e) if short_call > e else math.nan
    down = (e - spot) / (e - short_put) if e > short_put else math.nan
    progress = max((p for p in (up, down) if math.isfinite(p)), default=math.nan)
    return ExitWatch("breach", progress, f"spot {spot:.2f} between short strikes {short_put:g} / {short_call:g}")


def spot_move_watch(t: Tracked, spot: float, stop_pct: float) -> ExitWatch:
    """An underlying stop: the relative move from the entry spot over the stop's move."""
    move = abs(spot / t.entry_spot - 1.0)
    return ExitWatch("underlying_stop", move / stop_pct, f"spot moved {100 * move:.2f}% of {100 * stop_pct:.2f}%")


def pin_watch(t: Tracked, spot: float, pin_pct: float, armed: bool) -> ExitWatch:
    """Pin risk: the nearest short strike's distance from spot against ``pin_pct`` of spot (0 until armed)."""
    dist = min((abs(leg.strike - spot) for leg in t.structure.legs if leg.ratio < 0), default=math.nan)
    progress = (pin_pct * spot / dist if dist > 0 else math.inf) if armed else 0.0
    return ExitWatch("pin_risk", progress, f"nearest short strike {dist:.2f} from spot"
                     + ("" if armed else " (not armed yet)"))
