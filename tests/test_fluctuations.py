"""Loss fluctuations, avalanches and gradient noise."""

from __future__ import annotations

import numpy as np
import pytest
from trajstore.analysis.fluctuations import (
    avalanche_durations,
    gradient_noise,
    loss_fluctuations,
    moving_variance,
)
from trajstore.analysis.tails import fit_power_law_tail

import trajstore


def test_avalanche_durations_are_maximal_runs():
    dl = np.array([0, 5, 5, 0, 5, 0, 0, 5, 5, 5], dtype=float)  # std(|ΔL|) = 2.5
    assert avalanche_durations(dl).tolist() == [2, 1, 3]


def test_moving_variance_matches_direct():
    x = np.random.default_rng(0).normal(size=500).cumsum()
    mv = moving_variance(x, 100)
    assert len(mv) == 401
    np.testing.assert_allclose(mv[[0, 17, 400]], [x[i : i + 100].var() for i in (0, 17, 400)], rtol=1e-9)


def test_discrete_power_law_recovers_known_duration_exponent():
    from scipy import stats

    # exact discrete power law (zeta distribution), P(D = d) = d^-2.5 / ζ(2.5)
    d = stats.zipf.rvs(2.5, size=20000, random_state=1).astype(float)
    fit = fit_power_law_tail(d, discrete=True, xmin=1.0)
    assert fit.alpha == pytest.approx(2.5, abs=2 * fit.sigma + 0.02)
    free = fit_power_law_tail(d, discrete=True)  # x_min chosen by KS
    assert free.alpha == pytest.approx(2.5, abs=0.1)


def test_loss_fluctuations_random_walk_spectrum():
    x = np.random.default_rng(2).normal(size=8192).cumsum()
    r = loss_fluctuations(x)
    assert r.spectrum_slope == pytest.approx(-2.0, abs=0.3)
    assert r.dl_stable.alpha == pytest.approx(2.0, abs=0.15)
    assert len(r.durations) > 100 and r.to_dict()["avalanches"] == len(r.durations)


def test_loss_fluctuations_bad_input():
    with pytest.raises(ValueError, match="constant"):
        loss_fluctuations(np.ones(100))
    with pytest.raises(ValueError, match="at least 3"):
        loss_fluctuations([1.0])


def test_gradient_noise_against_direct(tmp_path):
    rng = np.random.default_rng(3)
    g = rng.standard_t(3, size=(60, 40))
    with trajstore.create(tmp_path / "g.zarr", 40) as w:
        w.append(0, np.zeros(40))
        for s in range(1, 61):
            w.append(s, np.zeros(40), gradients=g[s - 1])
            w.log("epoch", s, (s - 1) // 20)
    t = trajstore.open(tmp_path / "g.zarr")
    r = gradient_noise(t, window=30, samples_per_window=500)
    assert r.epochs.tolist() == [e // 20 for e in range(60)]
    for e in range(3):
        blk = g[20 * e : 20 * e + 20]
        np.testing.assert_allclose(
            r.noise_norm[20 * e : 20 * e + 20], np.linalg.norm(blk - blk.mean(0), axis=1)
        )
    np.testing.assert_allclose(r.grad_norm, np.linalg.norm(g, axis=1))
    assert r.window_t_w.tolist() == [1, 31] and np.all(np.isfinite(r.window_alpha))
    with pytest.raises(KeyError, match="no gradients"):
        with trajstore.create(tmp_path / "n.zarr", 2) as w:
            w.append(0, [0, 0])
        gradient_noise(trajstore.open(tmp_path / "n.zarr"))
