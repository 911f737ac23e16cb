"""SVI smile fit and surface: parameter recovery, arbitrage checks, the calendar constraint, last-good state."""

from __future__ import annotations

import math
import pickle

import numpy as np

from greeks.black import black_scholes_price
from greeks.surface import ExpiryQuotes, SmileInputs, SurfaceFitter, surface_arbitrage_free
from greeks.svi import (
    FIT_OK,
    FIT_TOO_FEW,
    SviParams,
    SviWings,
    check_butterfly,
    check_calendar,
    check_grid,
    european_equivalent_iv,
    fit_svi,
    implied_vol_from_svi,
    shape_wings,
    total_variance,
    total_variance_and_slope,
)

TRUE = SviParams(0.01, 0.1, -0.6, 0.02, 0.08)


def test_recovers_known_parameters() -> None:
    k = np.linspace(-0.4, 0.2, 100)
    fit = fit_svi(k, implied_vol_from_svi(TRUE, k, 0.25), 0.25)
    assert fit.status == FIT_OK
    assert np.allclose(fit.params, TRUE, atol=1e-5)


def test_recovers_from_noisy_quotes_within_the_band() -> None:
    rng = np.random.default_rng(7)
    k = np.linspace(-0.3, 0.15, 60)
    iv = implied_vol_from_svi(TRUE, k, 0.25) + rng.normal(0.0, 0.0005, k.shape)
    fit = fit_svi(k, iv, 0.25)
    assert fit.status == FIT_OK
    assert np.max(np.abs(implied_vol_from_svi(fit.params, k, 0.25) - implied_vol_from_svi(TRUE, k, 0.25))) < 0.001


def test_checks_flag_arbitrage() -> None:
    grid = check_grid(-0.5, 0.5)
    assert check_butterfly(TRUE, grid)
    steep = SviParams(-0.01, 1.5, 0.9, 0.0, 0.02)  # right wing slope 2.85 > 2: g < 0
    assert not check_butterfly(steep, grid)
    lower = TRUE._replace(a=TRUE.a - 0.005)
    assert check_calendar(lower, TRUE, grid)
    assert not check_calendar(TRUE, lower, grid)
    crossing = TRUE._replace(rho=0.0)
    assert not (check_calendar(TRUE, crossing, grid) and check_calendar(crossing, TRUE, grid))


def test_arbitrageable_smile_is_fitted_arbitrage_free() -> None:
    """Quotes from a butterfly-arbitrageable smile: the fit stays free of arbitrage (g >= 0) and says so."""
    k = np.linspace(-0.3, 0.3, 50)
    steep = SviParams(-0.01, 1.5, 0.9, 0.0, 0.02)
    iv = np.sqrt(total_variance(steep, k) / 0.5)
    fit = fit_svi(k, iv, 0.5)
    if fit.status == FIT_OK:
        assert check_butterfly(fit.params, check_grid(-0.3, 0.3))


def test_calendar_constraint_holds_against_previous_expiry() -> None:
    k = np.linspace(-0.3, 0.2, 60)
    grid = check_grid(-0.3, 0.2)
    short = SviParams(0.004, 0.05, -0.7, 0.0, 0.05)
    later = SviParams(0.001, 0.05, 0.3, 0.05, 0.1)  # crosses below `short` on the left
    assert not check_calendar(short, later, grid)
    fit = fit_svi(k, implied_vol_from_svi(later, k, 0.1), 0.1, previous=short, grid=grid)
    assert fit.status == FIT_OK
    assert check_calendar(short, fit.params, grid)
    assert check_butterfly(fit.params, grid)


def _g_numeric(p: SviParams, k: np.ndarray, h: float = 1e-4) -> np.ndarray:
    w = total_variance(p, k)
    w1 = (total_variance(p, k + h) - total_variance(p, k - h)) / (2.0 * h)
    w2 = (total_variance(p, k + h) - 2.0 * w + total_variance(p, k - h)) / (h * h)
    return np.asarray((1.0 - k * w1 / (2.0 * w)) ** 2 - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2)


def test_wing_terms_leave_the_quoted_range_raw_and_are_checked() -> None:
    p = SviWings(0.01, 0.1, -0.6, 0.02, 0.08, -0.3, 0.05, 0.1, 0.2, -0.02, 0.1)
    raw = SviParams(*p)
    assert len(p) == 5 and isinstance(p, SviParams) and pickle.loads(pickle.dumps(p)).wings() == p.wings()
    assert p._replace(a=0.02).wings() == p.wings() and p._replace(a=0.02).a == 0.02
    inside = np.linspace(-0.3, 0.2, 51)
    assert np.array_equal(total_variance(p, inside), total_variance(raw, inside))
    outside = np.array([-0.6, -0.4, 0.3, 0.6])
    assert np.allclose(total_variance(p, outside) - total_variance(raw, outside),
                       [0.05 * 0.3**3 / (0.09 + 0.01), 0.05 * 0.1**3 / (0.01 + 0.01),
                        -0.02 * 0.1**3 / (0.01 + 0.01), -0.02 * 0.4**3 / (0.16 + 0.01)])  # fmt: skip
    # the checks evaluate the wing terms: the analytic g matches a numerical one, and a wing bent down below
    # zero slope (w unbounded below past the grid) or rising faster than Lee's bound fails
    grid = check_grid(-0.4, 0.4)
    k = np.linspace(-0.9, 0.9, 37) + 0.0123  # off the edges, where the numerical w'' straddles the onset
    from greeks.svi import _gx, params_array

    pa = params_array(p)
    assert np.allclose([_gx(x, pa)[0] for x in k], _g_numeric(p, k), atol=1e-4)
    assert check_butterfly(p, grid)
    for x in (-0.5, 0.0, 0.45):
        w, w1 = total_variance_and_slope(p, x)
        assert math.isclose(w, float(total_variance(p, x)), rel_tol=1e-12)
        assert math.isclose(w1, float(total_variance(p, x + 1e-6) - total_variance(p, x - 1e-6)) / 2e-6, rel_tol=1e-6)
    assert not check_butterfly(SviWings(*raw, -0.3, 0.05, 0.1, 0.2, -0.2, 0.1), grid)
    assert not check_butterfly(SviWings(*raw, -0.3, 2.0, 0.1, 0.2, 0.0, 0.1), grid)


def test_quotes_wanting_rho_below_minus_one_get_winged_fit() -> None:
    """A smile straight in w through the money and falling after (rho < -1 inside the quotes): the fit keeps
    the raw formula there and lifts the right wing beyond the quotes to a slope >= 0, butterfly-free."""
    true = SviParams(0.02, 0.1, -1.3, 0.0, 0.05)
    k = np.linspace(-0.3, 0.08, 60)
    t = 0.1
    fit = fit_svi(k, implied_vol_from_svi(true, k, t), t)
    assert fit.status == FIT_OK
    assert isinstance(fit.params, SviWings) and fit.params.rho < -1.0 and fit.params.lift_right > 0.0
    assert np.max(np.abs(implied_vol_from_svi(fit.params, k, t) - implied_vol_from_svi(true, k, t))) < 1e-4
    wide = check_grid(-1.0, 1.0)
    assert check_butterfly(fit.params, wide)
    assert np.all(total_variance(fit.params, wide) > 0.0)


def test_shape_wings_lifts_a_longer_expiry_over_a_shorter_one_beyond_its_quotes() -> None:
    grid = check_grid(-0.6, 0.4)
    short = SviParams(0.002, 0.05, 0.0, 0.0, 0.05)  # symmetric: its right wing rises
    longer = SviParams(0.01, 0.06, -0.9, 0.0, 0.1)  # flat right wing, below `short` past k = 0.2
    assert not check_calendar(short, longer, grid)
    assert check_calendar(short, longer, grid[grid <= 0.1])
    lifted = shape_wings(longer, grid, -0.3, 0.1, floor=short)
    assert isinstance(lifted, SviWings) and lifted.lift_right > 0.0 and lifted.lift_left == 0.0
    assert check_calendar(short, lifted, grid) and check_butterfly(lifted, grid)
    inside = grid[(grid >= -0.3) & (grid <= 0.1)]
    assert np.array_equal(total_variance(lifted, inside), total_variance(longer, inside))
    # and a shorter expiry's wing bends down under a later one's beyond its quotes, staying above its floor
    cap = total_variance(longer, grid)
    bent = shape_wings(short, grid, -0.1, 0.05, cap=cap)
    assert isinstance(bent, SviWings) and bent.lift_right < 0.0
    assert check_butterfly(bent, grid)
    assert np.max(total_variance(bent, grid) - cap) < np.max(total_variance(short, grid) - cap)
    # below the floor inside the quotes: no wing term helps
    assert shape_wings(short, grid, -0.3, 0.1, floor=longer) is None


def test_too_few_points_is_not_published_and_last_good_stays() -> None:
    k = np.linspace(-0.2, 0.1, 30)

    def quotes(params: SviParams, t: float, n: int) -> ExpiryQuotes:
        iv = implied_vol_from_svi(params, k[:n], t)
        inp = SmileInputs(k[:n], iv, iv - 0.002, iv + 0.002, np.ones(n), np.full(n, 0.5))
        return ExpiryQuotes(f"T{t}", t, inp)

    near, far = SviParams(0.002, 0.04, -0.5, 0.0, 0.05), SviParams(0.01, 0.06, -0.5, 0.0, 0.08)
    fitter = SurfaceFitter()
    first = fitter.fit([quotes(near, 0.05, 30), quotes(far, 0.2, 30)], now=100.0)
    assert [p.status for p in first] == [FIT_OK, FIT_OK]
    second = fitter.fit([quotes(near, 0.05, 30), quotes(far, 0.2, 3)], now=160.0)
    assert second[1].status == FIT_TOO_FEW
    assert second[1].params == first[1].params and second[1].age == 60.0
    assert second[0].age == 0.0
    assert surface_arbitrage_free(second, fitter.grid) == (0, 0)


def test_european_equivalent_iv_of_american_put() -> None:
    spot, strike, t, r, q, sigma = 100.0, np.array([90.0, 100.0, 110.0]), 0.5, 0.05, 0.0, 0.25
    from greeks.american import american_price

    amer = american_price(spot, strike, t, r, q, sigma, False)
    euro_iv = european_equivalent_iv(amer, spot, strike, t, r, q, False)
    assert np.allclose(euro_iv, sigma, atol=2e-4)
    naive = black_scholes_price(spot, strike, t, r, q, sigma, False)
    assert np.all(amer > naive) and not math.isnan(float(euro_iv.sum()))


def test_a_winged_smile_survives_its_record_fields() -> None:
    """Events and reports carry a smile as numbers (``wing_fields``); rebuilt, it is the same smile past its quotes."""
    from greeks.svi import SviWings, smile_from_fields, total_variance, wing_fields

    winged = SviWings(0.01, 0.1, -0.5, 0.0, 0.1, k_left=-0.2, lift_left=0.02, width_left=0.05, k_right=0.15,
                      lift_right=-0.01, width_right=0.08)
    k = np.linspace(-0.6, 0.6, 121)
    rebuilt = smile_from_fields(tuple(winged), wing_fields(winged))
    np.testing.assert_array_equal(total_variance(rebuilt, k), total_variance(winged, k))
    plain = SviParams(*tuple(winged))
    assert wing_fields(plain) == () and not np.allclose(total_variance(plain, k), total_variance(winged, k))
