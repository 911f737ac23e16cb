"""The subscription budget: which option contracts to stream, within the plan's quote cap.

Per underlying the engine streams a window of expiries (those inside the DTE ranges the enabled
strategies need, nearest first) times strikes around the money, calls and puts, plus - always -
every contract held or with a working order ("pinned"). The window is centred on spot and only
re-centred when spot has moved more than ``recenter_fraction`` of the window's half-width
(hysteresis, so a spot wiggling at a strike does not churn subscriptions). The total never exceeds
the cap (200 indicative, 1000 opra; the server would answer 405): pinned contracts are taken first,
the rest of the cap is split between underlyings. A change goes out as one unsubscribe and one
subscribe diff (``MarketDataProtocol.set_subscription``).

``ContractCatalog`` discovers contracts through the venue's listing (``ReferenceData.listed_contracts``) and
caches them; ``SubscriptionManager`` ties catalog, budget, book and stream together and fills new rows from
snapshots (``ReferenceData.option_snapshots``) before their quotes stream.

The re-plan runs every few seconds beside the quote flood, so it never holds the loop for long: the pure
planning (``SubscriptionBudget.plan`` over thousands of listed contracts) runs in a worker thread, and the
book changes are applied on the loop in slices (``PRIME_SLICE`` new rows, then snapshots, then the IVs of
``REPRICE_SLICE`` rows at a time), yielding between them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Callable, Iterable, Mapping

import msgspec
import structlog

from engine.kernel.market import Market
from engine.kernel.market_data import QuoteFeed
from engine.kernel.ports import ReferenceData
from engine.kernel.venue_types import Contract

__all__ = ["BudgetConfig", "Contract", "ContractCatalog", "SubscriptionBudget", "SubscriptionManager"]

log = structlog.get_logger(__name__)
PRIME_SLICE = 100
"""New rows (and snapshots) put into the book between two yields to the loop."""
REPRICE_SLICE = 250
"""Rows whose IV a snapshot load solves per loop step (American IVs: some 10 us a row)."""


class BudgetConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cap: int = 200
    """Plan quote cap: 200 on the indicative feed, 1000 on opra."""
    dte_ranges: tuple[tuple[int, int], ...] = ((0, 45),)
    """Days-to-expiry ranges (inclusive) the enabled strategies trade; each range gets its own expiries."""
    expiries_per_range: int = 1
    """Expiries streamed from each DTE range (the nearest ones inside it)."""
    max_expiries: int = 4
    window_sigmas: float = 2.0
    """Strike window per expiry: +- this many standard deviations of the underlying to that expiry."""
    assumed_vol: float = 0.25
    """Volatility used to size the strike windows (a generous guess: wider windows are sampled, not cut)."""
    recenter_fraction: float = 0.5
    """Re-centre when spot moved more than this fraction of the nearest expiry's window half-width."""
    weights: dict[str, float] = {}
    """Share of the free cap per underlying (default: equal)."""


class SubscriptionBudget:
    """Pure selection logic; remembers each underlying's window centre for hysteresis."""

    def __init__(self, config: BudgetConfig = BudgetConfig()) -> None:
        self.config = config
        self.centers: dict[str, float] = {}

    def expiries(self, contracts: Iterable[Contract], today: dt.date) -> list[dt.date]:
        """Expiries to stream, at most ``max_expiries``: first the nearest ``expiries_per_range`` inside each DTE
        range (so every strategy's window is covered), then the next-nearest inside any range."""
        listed = sorted({c.expiry for c in contracts})
        ranges = self.config.dte_ranges
        chosen: list[dt.date] = []
        for lo, hi in ranges:
            inside = [e for e in listed if lo <= (e - today).days <= hi and e not in chosen]
            chosen.extend(inside[: self.config.expiries_per_range])
        chosen = chosen[: self.config.max_expiries]
        for e in listed:
            if len(chosen) >= self.config.max_expiries:
                break
            if e not in chosen and any(lo <= (e - today).days <= hi for lo, hi in ranges):
                chosen.append(e)
        return sorted(chosen)

    def half_width(self, spot: float, expiry: dt.date, today: dt.date) -> float:
        """Half-width of the strike window of ``expiry``: ``window_sigmas`` standard deviations to expiry."""
        years = max((expiry - today).days, 0.5) / 365.0
        return self.config.window_sigmas * self.config.assumed_vol * math.sqrt(years) * spot

    def center(self, underlying: str, spot: float, half_width: float) -> float:
        """The window centre: the previous one unless spot left the hysteresis band."""
        old = self.centers.get(underlying)
        if old is None or abs(spot - old) > self.config.recenter_fraction * half_width:
            self.centers[underlying] = spot
            return spot
        return old

    def select(self, underlying: str, contracts: list[Contract], spot: float, today: dt.date, budget: int) -> list[str]:
        """Up to ``budget`` contracts of one underlying: per expiry, calls and puts on strikes spread over its window.

        Each expiry gets an equal share. When its window holds more strikes than the share pays for, the
        strikes are sampled evenly outward from the one nearest the centre, so a far expiry still reaches
        the wings a condor needs (about one standard deviation out) instead of only the nearest strikes.
        """
        expiries = self.expiries(contracts, today)
        if budget <= 0 or not expiries or not spot > 0:
            return []
        by_expiry: dict[dt.date, dict[float, list[Contract]]] = {e: {} for e in expiries}
        for c in contracts:
            if c.expiry in by_expiry:
                by_expiry[c.expiry].setdefault(c.strike, []).append(c)
        centre = self.center(underlying, spot, self.half_width(spot, expiries[0], today))
        chosen: list[str] = []
        leftover = budget
        for i, expiry in enumerate(expiries):
            share = leftover // (len(expiries) - i)
            strikes = self._sample(by_expiry[expiry], centre, self.half_width(spot, expiry, today), share)
            take = [c for k in strikes for c in sorted(by_expiry[expiry][k], key=lambda c: not c.is_call)][:share]
            chosen.extend(c.symbol for c in take)
            leftover -= len(take)
        return chosen

    @staticmethod
    def _sample(by_strike: Mapping[float, list[Contract]], centre: float, half_width: float, share: int) -> list[float]:
        """Strikes for ``share`` contracts, nearest the centre first: all of the window's strikes when they fit
        (topped up with the nearest outside it), else the window thinned evenly outward from the centre."""
        per_strike = max(1, max((len(v) for v in by_strike.values()), default=1))
        room = max(1, -(-share // per_strike))  # the last strike may contribute only its call
        inside = sorted(k for k in by_strike if abs(k - centre) <= half_width)
        if len(inside) <= room:
            return sorted(by_strike, key=lambda k: (abs(k - centre), k))[:room]
        atm = min(range(len(inside)), key=lambda j: abs(inside[j] - centre))
        stride = math.ceil(len(inside) / room)
        picked = [inside[atm]]
        step = stride
        while len(picked) < room and (atm - step >= 0 or atm + step < len(inside)):
            for j in (atm + step, atm - step):
                if 0 <= j < len(inside) and len(picked) < room:
                    picked.append(inside[j])
            step += stride
        if len(picked) < room:  # the stride ran off one side of the window: fill in nearest the centre
            rest = sorted((k for k in inside if k not in picked), key=lambda k: abs(k - centre))
            picked.extend(rest[: room - len(picked)])
        return picked

    def plan(
        self,
        universe: Mapping[str, list[Contract]],
        spots: Mapping[str, float],
        today: dt.date,
        pinned: Iterable[str] = (),
    ) -> set[str]:
        """The whole desired quote set, never larger than the cap; pinned contracts first."""
        cap = self.config.cap
        pinned_list = sorted(set(pinned))
        if len(pinned_list) > cap:
            log.error("subscription_pinned_over_cap", pinned=len(pinned_list), cap=cap)
            pinned_list = pinned_list[:cap]
        desired = set(pinned_list)
        free = cap - len(desired)
        names = sorted(universe)
        weights = {u: self.config.weights.get(u, 1.0) for u in names}
        total_w = sum(weights.values()) or 1.0
        for u in names:
            share = int(free * weights[u] / total_w)
            # Ask for extra rows so that picks overlapping the pinned set do not shrink this share.
            picks = self.select(u, universe[u], spots.get(u, float("nan")), today, share + len(pinned_list))
            for s in picks:
                if len(desired) >= cap or share <= 0:
                    break
                if s not in desired:
                    desired.add(s)
                    share -= 1
        return desired


class ContractCatalog:
    """Option contracts per underlying from the venue's listing, cached for ``ttl_s``."""

    def __init__(
        self,
        broker: ReferenceData,
        *,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        on_ppind: Callable[[str, bool | None], None] | None = None,
    ) -> None:
        self._broker = broker
        self._on_ppind = on_ppind
        """Told each underlying's penny program indicator as listed (the router's tick classes)."""
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, dt.date, int], tuple[float, list[Contract]]] = {}

    async def contracts(self, underlying: str, today: dt.date, max_dte: int) -> list[Contract]:
        key = (underlying, today, max_dte)
        hit = self._cache.get(key)
        if hit is not None and self._clock() - hit[0] < self._ttl_s:
            return hit[1]
        # Keep only what can still be asked for (a key per trading day, never evicted, grew the engine by a
        # day's listings at every session roll), and let go of it before the new listing is decoded.
        now = self._clock()
        for old in [k for k, (at, _) in self._cache.items() if k[1] != today or now - at >= self._ttl_s]:
            del self._cache[old]
        listing = await self._broker.listed_contracts(underlying, today, today + dt.timedelta(days=max_dte))
        contracts = listing.contracts
        if self._on_ppind is not None and listing.listed:
            self._on_ppind(underlying, listing.penny)  # the penny program is per class (underlying)
        del listing
        self._cache[key] = (self._clock(), contracts)
        log.info("contracts_loaded", underlying=underlying, contracts=len(contracts))
        return contracts


class SubscriptionManager:
    """Keeps the option stream's subscription equal to the budget's plan, with the book primed first."""

    def __init__(
        self,
        broker: ReferenceData,
        market: Market,
        stream: QuoteFeed,
        underlyings: Iterable[str],
        *,
        budget: SubscriptionBudget | None = None,
        catalog: ContractCatalog | None = None,
    ) -> None:
        self._broker = broker
        self._market = market
        self._stream = stream
        self.underlyings = tuple(underlyings)
        self.budget = budget or SubscriptionBudget()
        self.catalog = catalog or ContractCatalog(broker)
        self.current: set[str] = set()
        self.updates = 0
        for u in self.underlyings:
            market.book(u)

    async def update(self, today: dt.date, spots: Mapping[str, float], pinned: Iterable[str] = ()) -> tuple[int, int]:
        """Recompute the plan; add new contracts to the book from snapshots; send one diff. (added, removed)."""
        max_dte = max(hi for _, hi in self.budget.config.dte_ranges)
        universe = {u: await self.catalog.contracts(u, today, max_dte) for u in self.underlyings}
        desired, fresh, unknown = await asyncio.to_thread(self._plan, universe, dict(spots), today, set(pinned),
                                                          set(self.current))
        if unknown:
            log.warning("subscription_pinned_not_in_catalog", symbols=unknown[:10], count=len(unknown))
        for u, contracts in fresh.items():
            for i in range(0, len(contracts), PRIME_SLICE):
                part = contracts[i:i + PRIME_SLICE]
                self._market.add_contracts(u, [c.symbol for c in part], [c.open_interest for c in part])
                await asyncio.sleep(0)
        await self._prime(sorted(c.symbol for cs in fresh.values() for c in cs))
        added, removed = self._stream.set_subscription(sorted(desired))
        self.current = desired
        self.updates += 1
        if added or removed:
            log.info("subscription_changed", added=added, removed=removed, total=len(desired))
        return added, removed

    def _plan(self, universe: Mapping[str, list[Contract]], spots: Mapping[str, float], today: dt.date,
              pinned: set[str], current: set[str]) -> tuple[set[str], dict[str, list[Contract]], list[str]]:
        """The pure part of ``update`` (a worker thread): the desired set, the new contracts per underlying in
        symbol order, and pinned symbols the catalog does not list."""
        desired = self.budget.plan(universe, spots, today, pinned)
        new = desired - current
        fresh: dict[str, list[Contract]] = {}
        if not new:
            return desired, fresh, []
        by_symbol = {c.symbol: c for cs in universe.values() for c in cs if c.symbol in new}
        for symbol in sorted(by_symbol):
            contract = by_symbol[symbol]
            if contract.underlying in self.underlyings:
                fresh.setdefault(contract.underlying, []).append(contract)
        return desired, fresh, sorted(new - by_symbol.keys())

    async def _prime(self, symbols: list[str]) -> None:
        """Fill new rows from snapshots so the book is usable before the first streamed quote."""
        if not symbols:
            return
        snaps = await self._broker.option_snapshots(symbols)
        touched: set[str] = set()
        for i, (symbol, q) in enumerate(snaps.items()):
            if i and i % PRIME_SLICE == 0:
                await asyncio.sleep(0)
            for u, book in self._market.books.items():
                if book.row_of(symbol) >= 0:
                    book.load_snapshot(symbol, q.bid, q.ask, q.bid_size, q.ask_size, q.ts_ns, q.last)
                    touched.add(u)
        for u in touched:
            for _ in self._market.snapshot_loaded_steps(u, REPRICE_SLICE):
                await asyncio.sleep(0)
