"""Cboe SPX daily chains (``shared/data/cboe_spx_eod_2019``) -> a recording.

Each file is one delayed-quote snapshot of the whole SPX + SPXW chain, taken in the afternoon (the
source does not say when; the README takes it as about 15:00 ET). Every day becomes: a META
``contracts`` record for the contracts new that day, one stock-stream quote of ``underlying_last``
(an index: zero width) and option-stream frames with every contract's bid/ask, all stamped at
``snapshot_time`` ET. Days follow each other in one file, so a replay walks the month day by day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from engine.replay.importers.frames import QuoteFrameWriter

NEW_YORK = ZoneInfo("America/New_York")


def import_cboe_days(files: Iterable[str | Path], out: str | Path, *, snapshot_time: dt.time = dt.time(15, 0),
                     underlying: str = "SPX") -> dict[str, int]:
    """Write the snapshots of ``files`` (``SPX_YYYYMMDD.csv[.gz]``, any order) to the recording ``out``."""
    paths = sorted(Path(f) for f in files)
    if not paths:
        raise FileNotFoundError("no Cboe files given")
    w = QuoteFrameWriter(out, "cboe:spx_eod")
    known: dict[str, int] = {}
    first = True
    for path in paths:
        df = pd.read_csv(path)
        day = dt.datetime.strptime(str(df["quotedate"].iloc[0]), "%m/%d/%Y").date()
        ts = int(dt.datetime.combine(day, snapshot_time, NEW_YORK).timestamp()) * 1_000_000_000
        if first:
            w.session(ts, underlying=underlying, first_day=day.isoformat())
            first = False
        symbols = df["optionroot"].astype(str).tolist()
        fresh = [s for s in dict.fromkeys(symbols) if s not in known]
        if fresh:
            base = len(w.symbols)
            w.contracts(ts, underlying, fresh)
            known.update({s: base + i for i, s in enumerate(fresh)})
        spot = float(df["underlying_last"].iloc[0])
        w.stock_quote(ts, underlying, spot, spot)
        rows = np.array([known[s] for s in symbols], dtype=np.int64)
        bid = df["bid"].fillna(0.0).to_numpy(float)
        ask = df["ask"].fillna(0.0).to_numpy(float)
        size = np.where((bid > 0) | (ask > 0), 1, 0)
        w.option_quotes(ts, rows, bid, ask, size * (bid > 0), size * (ask > 0))
    return w.close()
