"""MSL / Hurst exponent on landscapes with known roughness, and loss-weight pairing."""

from __future__ import annotations

import numpy as np
import pytest
from trajstore.analysis.fbm import fbm
from trajstore.analysis.landscape import MSL_ARRAYS, pair_distances, paired_losses, windowed_msl
from trajstore.analysis.toy import fbm_surface

import trajstore


def walk_store(path, positions: np.ndarray, losses: np.ndarray):
    with trajstore.create(path, positions.shape[1], mode="w") as w:
        for t, (p, loss) in enumerate(zip(positions, losses, strict=True)):
            w.append(t, p.astype(np.float32))
            w.log("loss", t, float(loss), evaluated_at="post_step")
    return trajstore.open(path)


WALKS, STEPS = 4, 2000  # independent walks, one window each; H is their mean


def lattice_walks(rng, dims: int, sigma: float, start: int, low: int, high: int) -> np.ndarray:
    """WALKS lattice random walks of STEPS points, started far apart, concatenated."""
    walks = []
    for k in range(WALKS):
        origin = start + (k - WALKS // 2) * (high - low) // (2 * WALKS)
        steps = np.round(rng.normal(0, sigma, (STEPS, dims)))
        walks.append(np.clip(origin + np.cumsum(steps, axis=0), low, high).astype(int))
    return np.concatenate(walks)


@pytest.mark.parametrize("hurst", [0.3, 0.5, 0.8])
def test_msl_recovers_hurst_on_1d_fbm_profile(tmp_path, hurst):
    rng = np.random.default_rng(int(hurst * 10))
    n = 2**16
    profile = fbm(n, hurst, rng=rng)[:, 0]
    x = lattice_walks(rng, 1, 4.0, n // 2, 0, n - 1)  # distances are whole grid steps: exact fBm
    t = walk_store(tmp_path / "w1.zarr", x - n // 2, profile[x[:, 0]])
    res = windowed_msl(t, window=STEPS)
    assert len(res) == WALKS
    determined = [r for r in res if r.hurst is not None]
    assert len(determined) >= WALKS - 1, [r.undetermined for r in res]  # a short walk may say why not
    assert abs(np.mean([r.hurst for r in determined]) - hurst) < 0.1, [r.hurst for r in determined]
    r = determined[0]
    assert r.hurst_ci[0] < r.hurst < r.hurst_ci[1]
    assert r.dimension_profile == pytest.approx(2 - r.hurst)


@pytest.mark.parametrize("hurst", [0.3, 0.5, 0.8])
def test_msl_recovers_hurst_on_2d_fbm_surface(tmp_path, hurst):
    rng = np.random.default_rng(int(hurst * 100))
    z = fbm_surface(2049, hurst, seed=int(hurst * 100))
    p = lattice_walks(rng, 2, 3.0, 1024, 0, 2048)
    t = walk_store(tmp_path / "w2.zarr", p - 1024, z[p[:, 0], p[:, 1]])
    res = windowed_msl(t, window=STEPS)
    determined = [r.hurst for r in res if r.hurst is not None]
    assert len(determined) >= WALKS - 1, [r.undetermined for r in res]
    assert abs(np.mean(determined) - hurst) < 0.1, determined


def test_smooth_landscape_gives_two(tmp_path):
    rng = np.random.default_rng(7)
    p = 0.5 + np.cumsum(rng.normal(0, 1e-3, (2000, 2)), axis=0)
    loss = np.sum(p**2, axis=1)
    t = walk_store(tmp_path / "s.zarr", p, loss)
    r = windowed_msl(t, window=2000)[0]
    assert r.slope == pytest.approx(2.0, abs=0.1)
    assert len(r.msl_contour) > 3


def test_pre_step_losses_pair_with_previous_weights(tmp_path):
    with trajstore.create(tmp_path / "p.zarr", 1) as w:
        for s in range(5):
            w.append(s, [float(s)])
            if s:
                w.log("loss", s, 10.0 * s, evaluated_at="pre_step")
                w.log("acc", s, float(s))
    t = trajstore.open(tmp_path / "p.zarr")
    np.testing.assert_array_equal(paired_losses(t), [10, 20, 30, 40, np.nan])
    np.testing.assert_array_equal(paired_losses(t, "acc"), [np.nan, 1, 2, 3, 4])


def test_pair_distances_in_blocks(tmp_path):
    rng = np.random.default_rng(0)
    w = (100 + np.cumsum(rng.normal(size=(150, 300)), axis=0)).astype(np.float32)
    with trajstore.create(tmp_path / "g.h5", 300, chunk_records=16, chunk_params=64) as wr:
        for i in range(150):
            wr.append(i, w[i])
    t = trajstore.open(tmp_path / "g.h5")
    # The MSL's arrays fit; the reads of the Gram pass get ~0.5 MB: blocks of 192 of 300 columns
    d2 = pair_distances(t, slice(0, 150), memory_limit=MSL_ARRAYS * 150 * 150 * 8 + 200_000)
    x = t.weights[:].astype(np.float64)
    ref = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(d2, ref, rtol=1e-9, atol=1e-9)


def test_landscape_bad_input(tmp_path):
    t = walk_store(tmp_path / "c.zarr", np.cumsum(np.ones((200, 1)), axis=0), np.ones(200))
    with pytest.raises(ValueError, match="constant"):
        windowed_msl(t, window=200)
    with trajstore.create(tmp_path / "n.zarr", 1) as w:
        for s in range(10):
            w.append(s, [float(s)])
    with pytest.raises(KeyError, match="no observable 'loss'"):
        windowed_msl(trajstore.open(tmp_path / "n.zarr"))


def test_noise_floor_is_measured_and_the_fit_starts_above_it(tmp_path):
    """A known minibatch-like noise (σ = 0.3, so 2σ² = 0.18 on every ΔL²) on a gentle H = 0.5
    landscape: the plateau gives the floor within 25 %, the fit range starts where MSL ≥ 3F,
    and the exponent (too little range above the floor here) is undetermined, not a number."""
    rng = np.random.default_rng(0)
    n = 2**16
    profile = 0.05 * fbm(n, 0.5, rng=rng)[:, 0]
    x = np.clip(n // 2 + np.cumsum(np.round(rng.normal(0, 20.0, 2000))), 0, n - 1).astype(int)
    noisy = profile[x] + rng.normal(0, 0.3, len(x))
    r = windowed_msl(walk_store(tmp_path / "n.zarr", (x - n // 2)[:, None], noisy), window=2000)[0]
    assert r.noise_floor == pytest.approx(0.18, rel=0.25)
    lo = r.fit_range[0]
    assert r.msl[r.centers >= lo][0] >= 3 * r.noise_floor
    assert r.hurst is None and r.dimension_profile is None and "dynamic range" in r.undetermined
    clean = windowed_msl(walk_store(tmp_path / "c.zarr", (x - n // 2)[:, None], profile[x]), window=2000)[0]
    assert clean.noise_floor is None and clean.noise_floor_upper < 0.18 / 5  # no plateau: no floor

