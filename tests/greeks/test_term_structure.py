"""Term structure of a published surface: 30-day ATM IV, RR25 and BF25, term slope (hand-built and real smiles)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from support.shared_data import CBOE_SPX_EOD
from surface_data import load_spx_day

from greeks.black import black_scholes_greeks
from greeks.surface import PublishedSmile, SurfaceFitter
from greeks.svi import FIT_OK, SviParams, implied_vol_from_svi
from greeks.term_structure import T_30D, T_90D, Z_25, strike_at_delta, term_metrics, vols_at


def flat(vol: float, t: float) -> SviParams:
    """A flat smile of volatility ``vol`` at maturity ``t``: w(k) = vol^2 t (b = 0)."""
    return SviParams(vol * vol * t, 0.0, 0.0, 0.0, 0.1)


def smile(expiry: str, t: float, params: SviParams | None) -> PublishedSmile:
    return PublishedSmile(expiry, t, params, FIT_OK, 0.0, 0.0)


def test_flat_smile_gives_its_vol_and_no_skew() -> None:
    m = term_metrics([smile("a", 20 / 365, flat(0.2, 20 / 365)), smile("b", 60 / 365, flat(0.2, 60 / 365))], 7)
    assert m is not None
    assert m.ts_ns == 7
    assert m.atm_iv_30d == pytest.approx(0.2, abs=1e-12)
    assert m.rr25 == pytest.approx(0.0, abs=1e-12)
    assert m.bf25 == pytest.approx(0.0, abs=1e-12)
    assert m.term_slope == pytest.approx(0.0, abs=1e-12)  # flat beyond 60 days
    assert m.extrapolated and m.expiries == 2


def test_interpolates_linearly_in_total_variance() -> None:
    t1, t2 = 20 / 365, 45 / 365
    m = term_metrics([smile("a", t1, flat(0.30, t1)), smile("b", t2, flat(0.20, t2)),
                      smile("c", 120 / 365, flat(0.25, 120 / 365))], 0)  # fmt: skip
    assert m is not None
    w1, w2 = 0.30**2 * t1, 0.20**2 * t2
    by_hand = math.sqrt((w1 + (w2 - w1) * (T_30D - t1) / (t2 - t1)) / T_30D)  # 0.2578...
    assert m.atm_iv_30d == pytest.approx(by_hand, rel=1e-12)
    assert not m.extrapolated
    w3 = 0.25**2 * 120 / 365
    at90 = math.sqrt((w2 + (w3 - w2) * (T_90D - t2) / (120 / 365 - t2)) / T_90D)
    assert m.term_slope == pytest.approx(at90 - by_hand, rel=1e-12)
    # a simple average of the vols would give another number: the test tells the two apart
    assert abs(by_hand - (0.30 + (0.20 - 0.30) * (T_30D - t1) / (t2 - t1))) > 1e-3


def test_extrapolates_flat_in_vol_outside_the_published_expiries() -> None:
    short = vols_at([smile("a", 60 / 365, flat(0.22, 60 / 365))], T_30D)
    assert short is not None and short.extrapolated
    assert short.atm == pytest.approx(0.22)
    long = vols_at([smile("a", 5 / 365, flat(0.4, 5 / 365)), smile("b", 10 / 365, flat(0.3, 10 / 365))], T_90D)
    assert long is not None and long.atm == pytest.approx(0.3) and long.extrapolated


def test_skips_unpublished_smiles_and_returns_none_without_any() -> None:
    assert term_metrics([smile("a", T_30D, None)], 0) is None
    m = term_metrics([smile("a", 20 / 365, None), smile("b", T_30D, flat(0.17, T_30D))], 0)
    assert m is not None and m.atm_iv_30d == pytest.approx(0.17) and m.expiries == 1


def test_strike_at_delta_matches_black_scholes_delta() -> None:
    t = 0.25
    p = SviParams(0.01, 0.1, -0.6, 0.02, 0.08)
    for z, delta in ((Z_25, 0.25), (-Z_25, 0.75)):
        k = strike_at_delta(p, z)
        vol = float(implied_vol_from_svi(p, [k], t)[0])
        g = black_scholes_greeks(1.0, math.exp(k), t, 0.0, 0.0, vol, True)
        assert float(np.asarray(g.delta)) == pytest.approx(delta, abs=1e-10)


@pytest.mark.parametrize("rho", [-0.7, 0.5])
def test_risk_reversal_takes_the_sign_of_the_skew(rho: float) -> None:
    t = T_30D
    p = SviParams(0.003, 0.04, rho, 0.0, 0.1)
    m = term_metrics([smile("a", t, p)], 0)
    assert m is not None
    assert math.copysign(1.0, m.rr25) == math.copysign(1.0, rho)
    kc, kp = strike_at_delta(p, Z_25), strike_at_delta(p, -Z_25)
    call, put, atm = implied_vol_from_svi(p, [kc, kp, 0.0], t)
    assert m.rr25 == pytest.approx(call - put, rel=1e-12)
    assert m.bf25 == pytest.approx(0.5 * (call + put) - atm, rel=1e-12)
    assert m.bf25 > 0.0  # a convex smile has wings above ATM


def test_wings_interpolate_in_total_variance_at_constant_delta() -> None:
    t1, t2 = 14 / 365, 50 / 365
    p1, p2 = SviParams(0.002, 0.05, -0.6, 0.0, 0.05), SviParams(0.006, 0.06, -0.4, 0.01, 0.1)
    m = term_metrics([smile("b", t2, p2), smile("a", t1, p1)], 0)  # any order
    assert m is not None
    lam = (T_30D - t1) / (t2 - t1)

    def at30(z: float) -> float:
        w1 = float(implied_vol_from_svi(p1, [strike_at_delta(p1, z)], t1)[0]) ** 2 * t1
        w2 = float(implied_vol_from_svi(p2, [strike_at_delta(p2, z)], t2)[0]) ** 2 * t2
        return math.sqrt((w1 + lam * (w2 - w1)) / T_30D)

    assert m.rr25 == pytest.approx(at30(Z_25) - at30(-Z_25), rel=1e-10)
    assert m.rr25 < 0.0


def test_forty_expiries_take_under_a_millisecond() -> None:
    smiles = [smile(str(i), (i + 1) * 9 / 365, SviParams(0.002 * (i + 1), 0.05, -0.5, 0.0, 0.1)) for i in range(40)]
    term_metrics(smiles, 0)
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        term_metrics(smiles, 0)
    assert (time.perf_counter() - start) / n < 1e-3


def test_spx_may_2019_levels_are_plausible() -> None:
    if not CBOE_SPX_EOD.exists():
        pytest.skip(f"real data not present: {CBOE_SPX_EOD} (the shared data folder sits beside the repository)")
    for path in sorted(CBOE_SPX_EOD.glob("SPX_2019*.csv.gz"))[::5]:
        published = SurfaceFitter().fit(load_spx_day(path), 0.0)
        m = term_metrics(published, 0)
        assert m is not None and not m.extrapolated
        assert 0.10 < m.atm_iv_30d < 0.25, path.name
        assert -0.15 < m.rr25 < 0.0, path.name  # SPX puts over calls
        assert 0.0 < m.bf25 < 0.05, path.name
