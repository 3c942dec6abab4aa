"""MSD and exponents against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import tidynamics
from trajstore.analysis.exponents import fit_power_law, fit_two_regime, local_slope, usable_lags
from trajstore.analysis.fbm import fbm, fgn_autocovariance
from trajstore.analysis.msd import fixed_origin_tamsd, two_time_displacement, windowed_msd
from trajstore.analysis.windows import iter_windows

import trajstore


def write(path, w, steps=None, layout=None, **kw):
    with trajstore.create(path, layout or w.shape[1], **kw) as wr:
        for i, row in enumerate(w):
            wr.append(int(steps[i]) if steps is not None else i, row)
    return trajstore.open(path)


def brute_msd(x: np.ndarray) -> np.ndarray:
    """The original code's all-pairs definition, in float64."""
    x = x.astype(np.float64)
    T = len(x)
    out = np.zeros(T)
    for tau in range(1, T):
        d = x[tau:] - x[:-tau]
        out[tau] = np.mean(np.sum(d * d, axis=1))
    return out


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_fft_msd_equals_all_pairs_and_tidynamics(tmp_path, suffix):
    rng = np.random.default_rng(0)
    w = np.cumsum(rng.standard_t(3, size=(400, 53)), axis=0).astype(np.float32)
    layout = {"a": (4, 5), "b": (33,)}
    t = write(tmp_path / f"r{suffix}", w, layout=layout, chunk_records=32, chunk_params=16)
    # a small memory limit (0.7 MiB of per-window sums + a few columns) forces many parameter
    # blocks, narrower than a chunk (4 and 8 columns)
    res = windowed_msd(t, window=200, memory_limit={".zarr": 800_000, ".h5": 850_000}[suffix])
    assert len(res) == 2
    for k, r in enumerate(res):
        x = t.weights[200 * k : 200 * (k + 1)]
        ref = brute_msd(x)
        np.testing.assert_allclose(r.msd[1:], ref[1:], rtol=1e-9)
        tid = sum(tidynamics.msd(x[:, j].astype(np.float64)) for j in range(x.shape[1]))
        np.testing.assert_allclose(r.msd[1:], tid[1:], rtol=1e-9)
        np.testing.assert_allclose(r.msd_tensor["a"][1:], brute_msd(x[:, :20])[1:], rtol=1e-9)
        np.testing.assert_allclose(r.msd_tensor["a"] + r.msd_tensor["b"], r.msd, rtol=1e-12)
        assert r.origins[1] == 199 and r.t_w == 200 * k


def test_fft_msd_tiny_steps_on_large_weights(tmp_path):
    """Δr²(1)/‖w‖² ≈ 1e-7: centring and float64 keep the FFT exact."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=1000) * 3.0
    w = (base + np.cumsum(rng.normal(size=(300, 1000)) * 3e-3 * np.sqrt(1e-1), axis=0)).astype(np.float32)
    t = write(tmp_path / "tiny.zarr", w)
    r = windowed_msd(t)[0]
    x = t.weights[:]
    ratio = r.msd[1] / np.sum(x[0].astype(np.float64) ** 2)
    assert 1e-8 < ratio < 1e-6
    np.testing.assert_allclose(r.msd[1:], brute_msd(x)[1:], rtol=1e-9)


def test_strided_steps_give_lags_in_steps(tmp_path):
    rng = np.random.default_rng(2)
    w = np.cumsum(rng.normal(size=(50, 4)), axis=0)
    t = write(tmp_path / "s.zarr", w, steps=np.arange(50) * 10)
    stats = next(iter_windows(t))
    assert stats.uniform_stride == 10
    np.testing.assert_allclose(stats.lag_steps[1:5], [10, 20, 30, 40])
    t2 = write(tmp_path / "irr.zarr", w, steps=np.cumsum(np.arange(1, 51)))
    s2 = next(iter_windows(t2))
    assert s2.uniform_stride is None and s2.pairs is not None
    steps = t2.steps
    # not equally spaced: the lags are the step lags that occur, each with its pairs (earlier
    # versions gave the mean step lag of each record lag, mixing pairs of different step lags)
    diffs = (steps[None, :] - steps[:, None])[np.triu_indices(50, 1)]
    lags, counts = np.unique(diffs, return_counts=True)
    assert s2.lag_steps[1:].tolist() == lags.tolist() and s2.origins[1:].tolist() == counts.tolist()


def test_fixed_origin_and_two_time(tmp_path):
    rng = np.random.default_rng(3)
    w = np.cumsum(rng.normal(size=(120, 7)), axis=0)
    t = write(tmp_path / "f.h5", w)
    x = t.weights[:].astype(np.float64)
    lags = np.array([1, 5, 40, 100])
    got = fixed_origin_tamsd(t, 10, lags, n_origins=20, memory_limit=8 * 20 * 2 * 3)
    for g, tau in zip(got, lags, strict=True):
        if 10 + tau + 20 > 120:
            assert np.isnan(g)
        else:
            assert g == pytest.approx(
                np.mean(np.sum((x[10 + tau : 30 + tau] - x[10:30]) ** 2, axis=1)), rel=1e-12
            )
    dsteps, delta = two_time_displacement(t, 30, memory_limit=8 * 30 * 3)
    np.testing.assert_allclose(delta, np.sum((x[30:] - x[30]) ** 2, axis=1), rtol=1e-12)
    assert dsteps[0] == 0 and dsteps[-1] == 89


def test_davies_harte_covariance():
    h = 0.3
    paths = fbm(64, h, size=20000, rng=np.random.default_rng(4))
    t = np.arange(64.0)
    emp = np.cov(paths)
    theory = 0.5 * (
        t[:, None] ** (2 * h) + t[None, :] ** (2 * h) - np.abs(t[:, None] - t[None, :]) ** (2 * h)
    )
    assert np.max(np.abs(emp - theory)) < 0.06 * theory.max()
    assert fgn_autocovariance(3, 0.5).tolist() == [1.0, 0.0, 0.0]  # H = 1/2: white increments


@pytest.mark.parametrize("alpha", [0.3, 0.6, 1.0, 1.4, 1.7])
def test_fbm_exponent_recovered(tmp_path, alpha):
    rng = np.random.default_rng(int(alpha * 10))
    w = fbm(1000, alpha / 2, size=100, rng=rng).astype(np.float32)
    t = write(tmp_path / "fbm.zarr", w)
    r = windowed_msd(t, window=1000)[0]
    lags = usable_lags(len(r.msd))
    fit = fit_power_law(lags, r.msd[lags], msd_groups=r.msd_groups[:, lags])
    assert abs(fit.alpha - alpha) < 0.1, fit
    assert fit.alpha_ci[0] < fit.alpha < fit.alpha_ci[1]
    assert fit_power_law(lags, r.msd[lags]).alpha_ci is None  # no blocks, no interval


def test_two_regime_fit_recovers_a_broken_power_law():
    tau = np.arange(1, 1001, dtype=float)
    tau0 = 60.0
    msd = np.where(tau < tau0, tau**1.4, tau0**1.4 * (tau / tau0) ** 0.7)
    msd *= np.exp(np.random.default_rng(5).normal(0, 0.01, len(tau)))
    f = fit_two_regime(tau, msd)
    assert f.alpha_short == pytest.approx(1.4, abs=0.05)
    assert f.alpha_long == pytest.approx(0.7, abs=0.05)
    assert f.tau0 == pytest.approx(tau0, rel=0.2)
    assert f.tau0_ci is None and f.supported is None and "no parameter blocks" in f.ci_method


def test_local_slope_of_pure_power_law():
    tau = np.arange(0, 300, dtype=float)
    x, b = local_slope(tau, tau**1.3)
    np.testing.assert_allclose(b, 1.3, rtol=1e-12)
    assert x[0] == 1


def test_dask_windows_equal_serial(tmp_path):
    pytest.importorskip("dask")
    from trajstore.analysis.parallel import windowed_msd_dask

    rng = np.random.default_rng(9)
    t = write(tmp_path / "d.zarr", np.cumsum(rng.normal(size=(600, 30)), axis=0).astype(np.float32))
    serial = windowed_msd(t, window=200)
    for scheduler in ("threads", "processes"):
        par = windowed_msd_dask(tmp_path / "d.zarr", window=200, scheduler=scheduler)
        assert [p.t_w for p in par] == [s.t_w for s in serial]
        for p, s in zip(par, serial, strict=True):
            np.testing.assert_array_equal(p.msd, s.msd)


def test_two_regime_rss_is_the_residual_sum_of_squares():
    """The reported RSS is Σ residual² of the reported fit to round-off, also for a curve far from
    the origin (|Y|² − |projection|² used to cancel to ~4 digits there)."""
    from trajstore.analysis.exponents import _hinge_scan

    rng = np.random.default_rng(0)
    x = np.linspace(0, 6, 30)
    grid = np.linspace(x[2], x[-3], 50)
    y = 1000.0 + 1.5 * x - 0.8 * np.maximum(0, x - 3.0) + 1e-3 * rng.normal(size=x.size)
    best, coef, rss = _hinge_scan(x, y[None], grid)
    fitted = coef[0, 0] + coef[0, 1] * x + coef[0, 2] * np.maximum(0.0, x - grid[best[0]])
    assert rss[0] == pytest.approx(np.sum((y - fitted) ** 2), rel=1e-9)
