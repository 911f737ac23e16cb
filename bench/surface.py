"""SVI smile and surface fit speed and quality on real SPX chains, against QuantLib's SVI smile section.

    PYTHONPATH=. .venv/bin/python bench/surface.py [--days 5] [--json]

Data: Cboe SPX May 2019 daily chains (every 4th day by default; loaded as in tests/greeks/surface_data.py), strikes
with call delta in [0.05, 0.95] and a two-sided quote. Figures:
- ``fit_expiry_ms``: median wall time of ``fit_svi`` (weighted as ``fit_weights``, reweighted, butterfly-
  constrained, with the previous expiry as calendar constraint on the whole grid, so |rho| <= 1 and no wing
  terms) on the expiries with 80 to 120 such strikes (``n_expiries_100``);
- ``surface_ms``: median wall time of ``SurfaceFitter.fit`` over a whole day (``surface_expiries`` expiries);
- ``ql_fit_ms``: QuantLib ``SviInterpolatedSmileSection`` (Levenberg-Marquardt, 5 free parameters) on the same
  strikes and mid IVs, from the same two starting points for (m, sigma) (the strike of lowest variance and the
  middle of the range; sigma a tenth of the range; a = half the lowest variance, b = 0.1, rho = -0.5), the better
  of the two kept, per smile; ``ratio_vs_quantlib`` = ql_fit_ms / ours per smile over all expiries of the sample;
- ``rmse_volpts`` / ``rmse_volpts_quantlib``: median per-expiry RMSE of fitted vs mid IV in vol points on those
  expiries: ours of the smiles ``SurfaceFitter`` publishes (arbitrage-free on the surface's check grid, wing
  terms included), QuantLib's unconstrained (its butterfly violations counted); ``rmse_volpts_fit_svi_chain`` of
  the timed ``fit_svi`` chain (each expiry above the previous fit on the whole grid, no wing terms, no
  later-expiry ceilings).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from benchlib import print_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "greeks"))
from surface_data import load_spx_day, spx_days

from greeks.surface import SmileInputs, SurfaceFitter, surface_arbitrage_free
from greeks.svi import SviParams, check_butterfly, check_grid, fit_svi, implied_vol_from_svi


def _rmse(fit: np.ndarray, mid: np.ndarray) -> float:
    return 100.0 * float(np.sqrt(np.mean((fit - mid) ** 2)))


def _ql_fit(inp: SmileInputs, t: float) -> tuple[float, SviParams | None]:
    import QuantLib as ql

    today = ql.Date(1, 5, 2019)
    ql.Settings.instance().evaluationDate = today
    days = round(t * 365.0)
    fwd = 100.0
    strikes = [float(fwd * math.exp(k)) for k in inp.k]
    vols = [float(v) for v in inp.iv_mid]
    atm = float(np.interp(0.0, inp.k, inp.iv_mid))
    v = inp.iv_mid**2 * t
    span = float(inp.k.max() - inp.k.min())
    best: tuple[float, SviParams | None] = (math.inf, None)
    for m0 in (float(inp.k[int(np.argmin(v))]), float(0.5 * (inp.k.min() + inp.k.max()))):
        try:
            sec = ql.SviInterpolatedSmileSection(
                today + days, fwd, strikes, False, atm, vols, 0.5 * float(v.min()), 0.1, 0.1 * span, -0.5, m0,
                False, False, False, False, False, False, ql.EndCriteria(1000, 100, 1e-10, 1e-10, 1e-10),
                ql.LevenbergMarquardt(), ql.Actual365Fixed(),
            )  # fmt: skip
            fit = np.array([sec.volatility(s) for s in strikes])
        except RuntimeError:
            continue
        err = _rmse(fit, inp.iv_mid)
        if err < best[0]:
            best = (err, SviParams(sec.a(), sec.b(), sec.rho(), sec.m(), sec.sigma()))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=5, help="days of May 2019 (spread over the month)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    files = spx_days()
    files = files[:: max(1, len(files) // args.days)][: args.days]
    surfaces = []
    for f in files:
        exps = sorted(load_spx_day(f), key=lambda e: e.t)
        sel = [
            e._replace(inputs=SmileInputs(*(x[(e.inputs.call_delta >= 0.05) & (e.inputs.call_delta <= 0.95)]
                                            for x in e.inputs)))
            for e in exps
        ]  # fmt: skip
        surfaces.append([e for e in sel if e.inputs.k.shape[0] >= 8])
    fitter = SurfaceFitter()
    fitter.fit(surfaces[0], 0.0)  # compile
    surface_ms, fly_cal, n_exp, pub_rmse = [], [0, 0], [], []
    for rep in range(3):
        for i, s in enumerate(surfaces):
            t0 = time.perf_counter()
            pub = fitter.fit(s, float(i))
            surface_ms.append(1e3 * (time.perf_counter() - t0))
            if rep == 0:
                f, c = surface_arbitrage_free(pub, fitter.grid)
                fly_cal[0] += f
                fly_cal[1] += c
                n_exp.append(len(s))
                for e, p in zip(s, pub, strict=True):
                    if p.params is not None:
                        pub_rmse.append(_rmse(implied_vol_from_svi(p.params, e.inputs.k, e.t), e.inputs.iv_mid))
    ours_ms, ql_ms, ours_rmse, ql_rmse, per100 = [], [], [], [], []
    ql_fly = ql_fail = 0
    for s in surfaces:
        prev: SviParams | None = None
        grid = check_grid(min(float(e.inputs.k.min()) for e in s), max(float(e.inputs.k.max()) for e in s))
        for e in s:
            inp = e.inputs
            reps = []
            for _ in range(5):
                t0 = time.perf_counter()
                fit = fit_svi(inp.k, inp.iv_mid, e.t, inp.weights, prev, grid)
                reps.append(1e3 * (time.perf_counter() - t0))
            ms = statistics.median(reps)
            ours_ms.append(ms)
            if 80 <= inp.k.shape[0] <= 120:
                per100.append(ms)
            if fit.status == 0:
                prev = fit.params
            ours_rmse.append(_rmse(implied_vol_from_svi(fit.params, inp.k, e.t), inp.iv_mid))
            t0 = time.perf_counter()
            err, qp = _ql_fit(inp, e.t)
            ql_ms.append(1e3 * (time.perf_counter() - t0))
            if math.isfinite(err) and qp is not None:
                ql_rmse.append(err)
                ql_fly += 0 if check_butterfly(qp, grid) else 1
            else:
                ql_fail += 1
    result = {
        "fit_expiry_ms": round(statistics.median(per100), 4),
        "n_expiries_100": len(per100),
        "surface_ms": round(statistics.median(surface_ms), 3),
        "surface_expiries": int(statistics.median(n_exp)),
        "surface_ms_per_40": round(statistics.median(surface_ms) * 40.0 / statistics.median(n_exp), 3),
        "ours_fit_ms_mean": round(statistics.fmean(ours_ms), 4),
        "ql_fit_ms_mean": round(statistics.fmean(ql_ms), 4),
        "ratio_vs_quantlib": round(sum(ql_ms) / sum(ours_ms), 2),
        "rmse_volpts": round(statistics.median(pub_rmse), 4),
        "rmse_volpts_fit_svi_chain": round(statistics.median(ours_rmse), 4),
        "rmse_volpts_quantlib": round(statistics.median(ql_rmse), 4),
        "quantlib_failures": ql_fail,
        "quantlib_butterfly_violations": ql_fly,
        "butterfly_violations": fly_cal[0],
        "calendar_violations": fly_cal[1],
        "days": len(files),
        "expiries": len(ours_ms),
    }
    return print_result(result, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
