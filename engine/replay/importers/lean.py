"""Lean minute option chains (``shared/data/lean_minute_options/tidy``) -> a recording.

Each minute bar becomes quotes stamped at the bar's end (bars are [t, t+1 min) in ET): the option bars
of that minute go out as option-stream frames, the underlying's bar as one stock-stream quote. LEAN
writes a bar only when something changed, which is exactly a quote stream's behaviour, so nothing is
carried forward here (the book keeps the last quote). An empty bid or ask is sent as 0 (no bid/offer),
as Alpaca does. Equity quote bars give the underlying's bid/ask; an index (SPX) has only trade bars,
so its value is sent as a zero-width quote.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from engine.replay.importers.frames import QuoteFrameWriter
from greeks.calendar import NS_PER_MINUTE
from greeks.occ import format_occ

NEW_YORK = ZoneInfo("America/New_York")
BAR_NS = NS_PER_MINUTE
# option root -> the underlying symbol the engine books it under
UNDERLYING_OF_ROOT = {"SPXW": "SPX"}


def _bar_end_ns(day: str, hhmmss: pd.Series) -> np.ndarray:
    start = pd.to_datetime(day + " " + hhmmss, format="%Y%m%d %H:%M:%S").dt.tz_localize(NEW_YORK)
    ns: np.ndarray = start.dt.as_unit("ns").astype("int64").to_numpy()
    return ns + BAR_NS


def _underlying_rows(tidy: Path, symbol: str, day: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts_ns, bid, ask) of the underlying's minute bars (quotes if present, else trade closes)."""
    quote = tidy / f"{symbol.lower()}_{day}_underlying_quote_1min.csv.gz"
    if quote.exists():
        df = pd.read_csv(quote, dtype={"bar_start_et": str})
        df = df.dropna(subset=["bid_close", "ask_close"])
        return _bar_end_ns(day, df["bar_start_et"]), df["bid_close"].to_numpy(float), df["ask_close"].to_numpy(float)
    trade = tidy / f"{symbol.lower()}_{day}_underlying_trade_1min.csv.gz"
    if not trade.exists():
        raise FileNotFoundError(f"no underlying bars for {symbol} on {day} in {tidy}")
    df = pd.read_csv(trade, dtype={"bar_start_et": str})
    close = df["close"].to_numpy(float)
    return _bar_end_ns(day, df["bar_start_et"]), close, close


def import_lean_day(tidy: str | Path, root: str, day: str, out: str | Path, *,
                    underlying_root: str | None = None, ohlc_path: bool = False) -> dict[str, int]:
    """Write the ``root`` chain of ``day`` (YYYYMMDD) with its underlying to the recording ``out``.

    ``ohlc_path``: send each bar as four quotes (open, high, low, close of bid and ask, 15 s apart, the
    close at the bar's end) instead of its close only: four times the messages, for load tests.
    """
    tidy = Path(tidy)
    src = tidy / f"{root.lower()}_{day}_option_quotes_1min.csv.gz"
    if not src.exists():
        raise FileNotFoundError(f"{src} not found")
    df = pd.read_csv(src, dtype={"bar_start_et": str, "expiry": str})
    und_symbol = UNDERLYING_OF_ROOT.get(root.upper(), root.upper())
    und_file_symbol = underlying_root or und_symbol
    occ_root = root.upper()
    keys = df[["right", "strike", "expiry"]].drop_duplicates().sort_values(["expiry", "strike", "right"])
    symbols = [format_occ(occ_root, dt.datetime.strptime(e, "%Y%m%d").date(), r == "C", float(k))
               for r, k, e in keys.itertuples(index=False)]
    sym_of = {(r, float(k), e): i for i, (r, k, e) in enumerate(keys.itertuples(index=False))}
    df["row"] = [sym_of[(r, float(k), e)] for r, k, e in zip(df["right"], df["strike"], df["expiry"], strict=True)]
    df["ts"] = _bar_end_ns(day, df["bar_start_et"])
    u_ts, u_bid, u_ask = _underlying_rows(tidy, und_file_symbol, day)
    first = int(df["ts"].min())
    w = QuoteFrameWriter(out, f"lean:{root.lower()}_{day}")
    w.session(first - BAR_NS, underlying=und_symbol, day=day, root=occ_root)
    w.contracts(first - BAR_NS, und_symbol, symbols)
    # the underlying's last bar before the options start primes spot
    keep = u_ts >= first - BAR_NS
    prior = np.nonzero(~keep)[0]
    if prior.size:
        keep[prior[-1]] = True
    u_ts, u_bid, u_ask = u_ts[keep], u_bid[keep], u_ask[keep]
    last_opt = int(df["ts"].max())
    if ohlc_path:
        quarter = BAR_NS // 4
        steps = []
        for k, col in enumerate(("open", "high", "low", "close")):
            step = df[["ts", "row", "bid_size_last", "ask_size_last"]].copy()
            step["ts"] = df["ts"] - BAR_NS + (k + 1) * quarter
            step["bid_close"], step["ask_close"] = df[f"bid_{col}"], df[f"ask_{col}"]
            steps.append(step)
        df = pd.concat(steps, ignore_index=True)
    df = df.sort_values(["ts", "row"], kind="stable")
    ts = df["ts"].to_numpy()
    rows = df["row"].to_numpy()
    bid = df["bid_close"].fillna(0.0).to_numpy(float)
    ask = df["ask_close"].fillna(0.0).to_numpy(float)
    bs = df["bid_size_last"].fillna(0).to_numpy().astype(np.int64)
    asz = df["ask_size_last"].fillna(0).to_numpy().astype(np.int64)
    bs[bid <= 0] = 0
    asz[ask <= 0] = 0
    bounds = np.flatnonzero(np.diff(ts)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(ts)]])
    ui = 0
    for s, e in zip(starts, ends, strict=True):
        t = int(ts[s])
        while ui < len(u_ts) and u_ts[ui] <= t:  # the underlying first: spot is known when options reprice
            w.stock_quote(int(u_ts[ui]), und_symbol, u_bid[ui], u_ask[ui])
            ui += 1
        w.option_quotes(t, rows[s:e], bid[s:e], ask[s:e], bs[s:e], asz[s:e])
    while ui < len(u_ts) and u_ts[ui] <= last_opt:
        w.stock_quote(int(u_ts[ui]), und_symbol, u_bid[ui], u_ask[ui])
        ui += 1
    return w.close()
