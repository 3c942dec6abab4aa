"""Tail fits against known exponents and the powerlaw package; α-stable estimators."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from trajstore.analysis.tails import fit_power_law_tail, fit_stable, mohammadi_alpha


def test_pareto_tail_exponent_and_powerlaw_agreement():
    import powerlaw

    rng = np.random.default_rng(0)
    alpha = 2.5
    body = rng.lognormal(0.0, 0.4, 4000)
    tail = 2.0 * (1 - rng.random(3000)) ** (-1 / (alpha - 1))  # Pareto, p(x) ∝ x^-α for x ≥ 2
    x = np.concatenate([body, tail])
    fit = fit_power_law_tail(x)
    assert fit.alpha == pytest.approx(alpha, abs=3 * fit.sigma + 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(x, verbose=False)
    assert fit.xmin == ref.xmin
    assert fit.alpha == pytest.approx(ref.alpha, rel=0.01)
    assert fit.ks == pytest.approx(ref.D, rel=1e-6)
    exp_test = {t.alternative: t for t in fit.tests}["exponential"]
    R, p = ref.distribution_compare("power_law", "exponential", normalized_ratio=True)
    # powerlaw fits the exponential numerically, we in closed form: same verdict, similar size
    assert exp_test.R > 0 and R > 0 and exp_test.p < 0.05 and p < 0.05
    assert exp_test.normalized_R == pytest.approx(R, rel=0.2)


def test_large_sample_uses_coarse_then_exact_search():
    rng = np.random.default_rng(1)
    x = (1 - rng.random(200_000)) ** (-1 / 1.8)  # α = 2.8, x_min = 1
    fit = fit_power_law_tail(x)
    assert fit.alpha == pytest.approx(2.8, abs=0.05)
    assert fit.n == 200_000


def test_discrete_fit_recovers_exponent_and_matches_powerlaw():
    import powerlaw

    rng = np.random.default_rng(2)
    # discrete power law by inversion of the continuous one, then floor: exponent 2.2 tail
    d = np.floor(5 * (1 - rng.random(20000)) ** (-1 / 1.2))
    fit = fit_power_law_tail(d, discrete=True)
    assert fit.alpha == pytest.approx(2.2, abs=0.08)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(d, discrete=True, verbose=False)
    assert fit.alpha == pytest.approx(ref.alpha, rel=0.01)
    assert fit.xmin == ref.xmin


def test_exponential_data_prefers_exponential():
    x = np.random.default_rng(3).exponential(1.0, 5000) + 1.0
    fit = fit_power_law_tail(x, xmin=1.0)
    assert {t.alternative: t for t in fit.tests}["exponential"].R < 0


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.8])
def test_stable_and_mohammadi_recover_alpha(alpha):
    x = stats.levy_stable.rvs(alpha, 0.0, size=40000, random_state=4)
    assert fit_stable(x).alpha == pytest.approx(alpha, abs=0.1)
    assert mohammadi_alpha(x) == pytest.approx(alpha, abs=0.25)


def test_tail_bad_input():
    with pytest.raises(ValueError, match="at least 10"):
        fit_power_law_tail([1.0, 2.0])
    with pytest.raises(ValueError, match="all values are equal"):
        fit_power_law_tail(np.ones(100))
    with pytest.raises(ValueError, match="integer"):
        fit_power_law_tail(np.linspace(1, 2, 50), discrete=True)
    with pytest.raises(ValueError, match="all values are equal"):
        fit_stable(np.ones(100))
