"""Circuit breakers: daily loss, consecutive losses, stale data and the manual kill switch.

``Breakers`` holds the trips (one per cause) and derives the trading state as the most severe of
them: ACTIVE < REDUCE_ONLY < HALTED. It does no I/O and reads no clock: the engine feeds it event
time and facts (daily P&L after each mark, realized P&L of each closed structure, the time of the
last message per feed, operator commands) and publishes the ``BreakerChange`` values it returns.

The daily breakers reset when the New York trading date changes; stale data clears itself when the
feed speaks again; a manual kill stays until ``resume``.
"""

from __future__ import annotations

import datetime as dt
import enum

import msgspec

from domain.orders import TradingState
from greeks.calendar import ny_date, ny_instant_ns
from risk.limits import BreakerLimits, action_state


class BreakerCode(enum.StrEnum):
    DAILY_LOSS = "daily_loss"
    CONSECUTIVE_LOSSES = "consecutive_losses"
    STALE_DATA = "stale_data"
    MANUAL = "manual"


class BreakerTrip(msgspec.Struct, frozen=True):
    code: BreakerCode
    state: TradingState
    detail: str
    ts_event_ns: int


class BreakerChange(msgspec.Struct, frozen=True):
    """The trading state changed (publish it as an alert)."""

    before: TradingState
    after: TradingState
    code: BreakerCode
    tripped: bool
    """True when ``code`` tripped, False when it cleared."""
    detail: str
    ts_event_ns: int


class Breakers:
    """The breaker state machine (see module docstring)."""

    def __init__(self, limits: BreakerLimits | None = None) -> None:
        self.limits = limits or BreakerLimits()
        self._trips: dict[BreakerCode, BreakerTrip] = {}
        self._date: dt.date | None = None
        self._day_ns = (0, 0)
        """[start, end) of ``_date`` in New York, epoch ns: most inputs fall inside it and need no date."""
        self._consecutive_losses = 0
        self._feed_last_ns: dict[str, int] = {}
        self._declared_only: set[str] = set()
        """Feeds watched only because their client declared them stale (no event-time data watch)."""

    # ---- reading
    @property
    def state(self) -> TradingState:
        """The most severe state over all active trips."""
        worst = TradingState.ACTIVE
        for trip in self._trips.values():
            if trip.state > worst:
                worst = trip.state
        return worst

    @property
    def trips(self) -> tuple[BreakerTrip, ...]:
        return tuple(self._trips.values())

    @property
    def consecutive_losses(self) -> int:
        return self._consecutive_losses

    def set_limits(self, limits: BreakerLimits) -> None:
        """Apply reloaded limits; they take effect at the next input."""
        self.limits = limits

    # ---- inputs
    def on_daily_pnl(self, pnl_usd: float, now_ns: int) -> BreakerChange | None:
        """Feed the day's P&L (realized + unrealized at mid) after a mark or a fill."""
        change = self._roll_day(now_ns)
        if pnl_usd <= -self.limits.max_daily_loss_usd:
            state = action_state(self.limits.daily_loss_action)
            detail = f"daily P&L {pnl_usd:.2f} <= -{self.limits.max_daily_loss_usd:.2f}"
            return self._trip(BreakerCode.DAILY_LOSS, state, detail, now_ns) or change
        return change

    def on_structure_closed(self, realized_pnl_usd: float, now_ns: int) -> BreakerChange | None:
        """Count a closed structure's result toward the consecutive-loss streak (a win resets it)."""
        change = self._roll_day(now_ns)
        if realized_pnl_usd < 0:
            self._consecutive_losses += 1
        else:
            self._consecutive_losses = 0
        if self._consecutive_losses >= self.limits.max_consecutive_losses:
            state = action_state(self.limits.consecutive_losses_action)
            detail = f"{self._consecutive_losses} consecutive losing structures"
            return self._trip(BreakerCode.CONSECUTIVE_LOSSES, state, detail, now_ns) or change
        return change

    def on_feed_data(self, feed: str, ts_ns: int) -> BreakerChange | None:
        """A feed delivered data at event time ``ts_ns``; clears the stale trip once every feed is fresh."""
        last = self._feed_last_ns.get(feed, 0)
        if ts_ns > last:
            self._feed_last_ns[feed] = ts_ns
        return self.check_stale(ts_ns)

    def on_feed_stale(self, feed: str, now_ns: int, detail: str = "") -> BreakerChange | None:
        """The feed client declared ``feed`` stale (a mute socket): trip at once."""
        if feed not in self._feed_last_ns:
            self._declared_only.add(feed)
        self._feed_last_ns[feed] = min(self._feed_last_ns.get(feed, 0), now_ns - self._stale_ns() - 1)
        return self.check_stale(now_ns, detail)

    def on_feed_recovered(self, feed: str, ts_ns: int) -> BreakerChange | None:
        """Data again from a feed that was only declared stale: drop the declaration (and clear if all fresh).

        Cheap when nothing was declared, so the engine calls it for every batch of an unwatched feed (stocks).
        """
        if feed not in self._declared_only:
            return None
        self._declared_only.discard(feed)
        self._feed_last_ns.pop(feed, None)
        return self.check_stale(ts_ns)

    def check_stale(self, now_ns: int, detail: str = "") -> BreakerChange | None:
        """Trip or clear the stale-data breaker from each watched feed's last data time."""
        limit_ns = self._stale_ns()
        if all(now_ns - last <= limit_ns for last in self._feed_last_ns.values()):  # every book update: fresh
            return self._clear(BreakerCode.STALE_DATA, now_ns, "all feeds fresh")
        stale = sorted(f for f, last in self._feed_last_ns.items() if now_ns - last > limit_ns)
        if stale:
            state = action_state(self.limits.stale_data_action)
            text = detail or f"no data from {', '.join(stale)} for more than {self.limits.stale_data_after_ms} ms"
            return self._trip(BreakerCode.STALE_DATA, state, text, now_ns)
        return self._clear(BreakerCode.STALE_DATA, now_ns, "all feeds fresh")

    def kill(self, state: TradingState, now_ns: int, detail: str = "manual kill") -> BreakerChange | None:
        """Operator command: force HALTED or REDUCE_ONLY (ACTIVE clears the manual trip)."""
        if state is TradingState.ACTIVE:
            return self.resume(now_ns)
        return self._trip(BreakerCode.MANUAL, state, detail, now_ns)

    def resume(self, now_ns: int) -> BreakerChange | None:
        """Operator command: clear the manual trip (other trips stay)."""
        return self._clear(BreakerCode.MANUAL, now_ns, "manual resume")

    def reset(self, code: BreakerCode, now_ns: int) -> BreakerChange | None:
        """Operator command: clear one trip (the loss streak too, for CONSECUTIVE_LOSSES)."""
        if code is BreakerCode.CONSECUTIVE_LOSSES:
            self._consecutive_losses = 0
        return self._clear(code, now_ns, "reset by operator")

    # ---- internals
    def _stale_ns(self) -> int:
        return self.limits.stale_data_after_ms * 1_000_000

    def _roll_day(self, now_ns: int) -> BreakerChange | None:
        start, end = self._day_ns
        if start <= now_ns < end:
            return None
        day = ny_date(now_ns)
        self._day_ns = (ny_instant_ns(day, dt.time()), ny_instant_ns(day + dt.timedelta(days=1), dt.time()))
        if self._date is None:
            self._date = day
            return None
        if day == self._date:
            return None
        self._date = day
        self._consecutive_losses = 0
        a = self._clear(BreakerCode.DAILY_LOSS, now_ns, "new trading day")
        b = self._clear(BreakerCode.CONSECUTIVE_LOSSES, now_ns, "new trading day")
        return b or a

    def _trip(self, code: BreakerCode, state: TradingState, detail: str, now_ns: int) -> BreakerChange | None:
        existing = self._trips.get(code)
        if existing is not None and existing.state >= state:
            return None
        before = self.state
        self._trips[code] = BreakerTrip(code, state, detail, now_ns)
        return BreakerChange(before, self.state, code, True, detail, now_ns)

    def _clear(self, code: BreakerCode, now_ns: int, detail: str) -> BreakerChange | None:
        if code not in self._trips:
            return None
        before = self.state
        del self._trips[code]
        return BreakerChange(before, self.state, code, False, detail, now_ns)
