"""A library of days to test on: simulated sessions recorded at full speed, real days imported, each with a manifest.

Simulated days come from the simulator's own market model (``engine.sim.market.Market``: seeded Heston spot and
variance with jumps, the same option quotes ``options-engine sim`` streams), stepped in event time without waiting
on the wall clock and written as the byte-exact stream frames a live recording holds (``QuoteFrameWriter``). The
same seed, date and regime give the same file.

Each day ``<name>.oerec`` has a manifest ``<name>.json`` (``engine.replay.manifest``: underlyings, date, source,
regime, cadence), which maps a config's strategies onto the day's underlyings and quote cadence.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import numpy as np

from engine.replay.importers.frames import QuoteFrameWriter
from engine.replay.manifest import Manifest, write_manifest
from engine.sim.clock import SimClock
from engine.sim.config import SimConfig, UnderlyingConfig
from engine.sim.market import Market

Regime = Literal["calm", "trending", "volatility_spike", "gap_open"]
REGIMES: tuple[Regime, ...] = ("calm", "trending", "volatility_spike", "gap_open")


def _underlying(symbol: str, spot: float, vol: float, regime: Regime) -> UnderlyingConfig:
    """The simulator's parameters of one underlying in a regime."""
    if regime == "calm":
        return UnderlyingConfig(symbol=symbol, spot=spot, atm_vol=vol * 0.75, vol_of_vol=0.3, jumps_per_day=0.0)
    if regime == "trending":  # frequent small up-jumps: a drift the Heston process itself does not have
        return UnderlyingConfig(symbol=symbol, spot=spot, atm_vol=vol, jumps_per_day=40.0, jump_mean=0.0006,
                                jump_std=0.0004)
    if regime == "volatility_spike":
        return UnderlyingConfig(symbol=symbol, spot=spot, atm_vol=vol * 2.0, vol_of_vol=1.6, jumps_per_day=4.0,
                                jump_mean=-0.008, jump_std=0.01)
    return UnderlyingConfig(symbol=symbol, spot=spot, atm_vol=vol * 1.2)


SPOTS = {"SPY": (600.0, 0.16), "QQQ": (520.0, 0.20)}


def record_sim_day(out: Path, *, day: dt.date, seed: int, regime: Regime, underlyings: tuple[str, ...] = ("SPY",),
                   cadence_s: float = 60.0, max_dte: int = 50, moneyness: float = 0.05) -> Manifest:
    """Record one simulated session (open to close) of ``underlyings`` in ``regime`` at full speed."""
    unds = tuple(_underlying(s, *SPOTS.get(s, (100.0, 0.25)), regime) for s in underlyings)
    cfg = SimConfig(seed=seed, speed=0.0, start=dt.datetime.combine(day, dt.time(9, 30)), underlyings=unds,
                    tick_ms=1000)
    clock = SimClock(cfg.start)
    market = Market(cfg, clock)
    if regime == "gap_open":  # overnight news: every name opens 2.5 % away from yesterday's close
        for u in unds:
            market.jump_spot(u.symbol, -0.025 if seed % 2 else 0.025)
    uni = market.universe
    days_left = (uni.expiry_ns - clock.open_ns) / 86_400e9
    # the expiries the strategies trade: same day and the next two (0DTE), then Fridays out to max_dte
    friday = np.array([d.weekday() == 4 for d in uni.expiry_dates], dtype=bool) if uni.expiry_dates else False
    keep = (days_left <= 3) | (friday & (days_left <= max_dte))
    rows = []
    writer = QuoteFrameWriter(out, "sim")
    writer.session(clock.now_ns, regime=regime, seed=seed, date=clock.session_date.isoformat())
    for ui, und in enumerate(unds):
        spot = market.spots[ui]
        mine = np.flatnonzero((uni.und == ui) & keep
                              & (np.abs(np.log(uni.strike / spot)) <= moneyness))
        writer.contracts(clock.now_ns, und.symbol, [uni.symbols[i] for i in mine])
        rows.append(mine)
    chain = np.concatenate(rows)
    which = np.arange(len(chain))
    step_ns = int(cadence_s * 1e9)
    last_bid = last_ask = np.full(len(chain), np.nan)
    while True:
        now = clock.now_ns
        for ui, und in enumerate(unds):
            bid, ask, bs, asz, _, _ = market.stock_quote(ui)
            writer.stock_quote(now, und.symbol, bid, ask, bs, asz)
        q = market.option_quotes(chain)
        # like the feed: a contract's quote goes out when its price changes, not on every step
        moved = np.flatnonzero((q.bid != last_bid) | (q.ask != last_ask))
        writer.option_quotes(now, which[moved], q.bid[moved], q.ask[moved], q.bid_size[moved], q.ask_size[moved])
        last_bid, last_ask = q.bid, q.ask
        if market.at_close():
            break
        market.advance_to(now + step_ns)
    writer.close()
    manifest = Manifest(underlyings=list(underlyings), date=clock.session_date.isoformat(), source="sim",
                        regime=regime, cadence_s=cadence_s, seed=seed)
    write_manifest(out, manifest)
    return manifest


def record_library(folder: Path, *, days: int, seed: int = 1, start: dt.date = dt.date(2026, 11, 2),
                   underlyings: tuple[str, ...] = ("SPY",), cadence_s: float = 60.0) -> list[Path]:
    """``days`` consecutive sessions from ``start``, the regimes in turn, seeds ``seed``, ``seed + 1``, ..."""
    from greeks.calendar import market_calendar

    folder.mkdir(parents=True, exist_ok=True)
    cal = market_calendar()
    session = cal.session_on_or_after(start)
    out = []
    for i in range(days):
        regime = REGIMES[i % len(REGIMES)]
        path = folder / f"sim_{session.day:%Y%m%d}_{regime}.oerec"
        record_sim_day(path, day=session.day, seed=seed + i, regime=regime, underlyings=underlyings,
                       cadence_s=cadence_s)
        out.append(path)
        session = cal.next_session(session.day)
    return out
