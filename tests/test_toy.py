"""The toy model: landscapes, dynamics, stores, and the toy/compare commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tidynamics
from trajstore.analysis.exponents import fit_power_law
from trajstore.analysis.fbm import fbm
from trajstore.analysis.msd import tamsd
from trajstore.analysis.toy import (
    Dynamics,
    Landscape,
    bowl,
    cone,
    diamond_square,
    fbm_surface,
    make_landscape,
    shuffled,
    simulate,
    structure_function_hurst,
    write_toy_store,
)
from trajstore.analysis.toy_phases import descent_end, phase_exponents, phase_msd, read_toy_paths

import trajstore

from .conftest import run_cli, write_store


def test_diamond_square_structure_and_roughness():
    z = diamond_square(9, seed=1, clip_border=True, floor=-0.1)  # the preview's clipped variant
    assert z.shape == (513, 513)
    assert z.min() == pytest.approx(-0.1) and (z >= -0.1).all()
    assert (z[0] <= 0).all() and (z[:, -1] <= 0).all()
    # the paper's default is raw, as the authors' generator returns it: values below −0.1 and
    # positive borders (their saved landscape: minimum −0.48, border maximum +1.10)
    r = diamond_square(10, seed=1)
    assert r.min() < -0.1 and max(r[0].max(), r[-1].max(), r[:, 0].max(), r[:, -1].max()) > 0
    assert 2.0 < np.ptp(r) < 5.0
    np.testing.assert_array_equal(
        make_landscape("diamond-square", size=513, seed=1), diamond_square(9, seed=1)
    )
    np.testing.assert_array_equal(make_landscape("diamond-square-clipped", size=513, seed=1), z)
    raw = [structure_function_hurst(diamond_square(10, seed=s)) for s in range(3)]
    clipped = [
        structure_function_hurst(diamond_square(10, seed=s, clip_border=True, floor=-0.1)) for s in range(3)
    ]
    # halving the amplitude per level implies H = 1 at the finest scales; over lags 1 … 64 px the
    # measured exponent is about 0.85 unclipped and 0.8 with the per-level clipping of the
    # authors' generator (they report an effective H ≈ 0.8)
    assert 0.75 < np.mean(raw) < 0.95
    assert 0.7 < np.mean(clipped) < 0.9 and np.mean(clipped) < np.mean(raw)


@pytest.mark.parametrize("hurst", [0.3, 0.5, 0.8])
def test_fbm_surface_has_its_hurst_exponent(hurst):
    h = np.mean([structure_function_hurst(fbm_surface(513, hurst, seed=s)) for s in range(3)])
    assert abs(h - hurst) < 0.1


def test_controls():
    c = cone(65)
    assert c[32, 32] == pytest.approx(1.0) and c[0, 32] == pytest.approx(0.5)
    b = bowl(65)
    assert b[32, 32] == pytest.approx(10.0)
    z = diamond_square(6)
    s = shuffled(z, sigma=2)
    assert s.min() == pytest.approx(z.min()) and s.max() == pytest.approx(z.max())
    assert structure_function_hurst(s, 4) != pytest.approx(structure_function_hurst(z, 4), abs=0.05)


def test_gradient_has_x_on_axis_0():
    x = np.linspace(-1, 1, 65)
    z = np.broadcast_to(3.0 * x[:, None], (65, 65)).copy()  # z rises with x only: U = 10 − 3x
    land = Landscape(z)
    g = land.grad(np.array([[0.1, -0.3], [0.5, 0.5]]))
    np.testing.assert_allclose(g, [[-3.0, 0.0], [-3.0, 0.0]], atol=1e-8)
    assert land.loss(np.array([0.5, 0.0])) == pytest.approx(10 - 1.5)


def test_dynamics_descends_stays_inside_and_is_seeded():
    land = Landscape(bowl(129))
    dyn = Dynamics(steps=400, repeats=7, seed=3)
    pos, loss = simulate(land, dyn)
    assert pos.shape == (401, 7, 2) and loss.shape == (401, 7)
    assert np.abs(pos).max() <= 1.0
    assert loss[-1].mean() < 0.05 < loss[0].mean()  # reaches the bowl's minimum U = 0
    pos2, _ = simulate(land, dyn)
    np.testing.assert_array_equal(pos, pos2)
    # vectorised over repeats = each repeat alone, with the same noise (no boundary hits here)
    start = np.zeros((2, 2))
    p_both, _ = simulate(land, Dynamics(steps=50, repeats=2, seed=1, noise=0.0), start=start)
    p_one, _ = simulate(land, Dynamics(steps=50, repeats=1, seed=1, noise=0.0), start=start[:1])
    np.testing.assert_allclose(p_both[:, 0], p_one[:, 0])


def test_toy_parameters_out_of_range():
    with pytest.raises(ValueError, match="lr must be positive"):
        Dynamics(lr=0)
    with pytest.raises(ValueError, match="Hurst"):
        fbm_surface(65, 1.5)
    with pytest.raises(ValueError, match="unknown landscape"):
        make_landscape("volcano")
    with pytest.raises(ValueError, match="2\\^k \\+ 1"):
        make_landscape("diamond-square", size=500)


def test_toy_store_is_an_ordinary_store(tmp_path):
    path = write_toy_store(
        tmp_path / "t.zarr", "fbm", size=129, hurst=0.6, dynamics=Dynamics(steps=300, repeats=3)
    )
    with trajstore.open(path) as t:
        pos, loss = read_toy_paths(t)
        assert t.n_records == 301 and t.layout.names == ["r0", "r1", "r2"]
        assert t.metadata["toy"]["landscape"] == "fbm" and t.metadata["toy"]["dynamics"]["lr"] == 0.02
        s, v = t.observable("loss_r1")
        assert s[0] == 1 and len(v) == 300
        s, mean = t.observable("loss")
        np.testing.assert_allclose(mean, np.mean([t.observable(f"loss_r{k}")[1] for k in range(3)], axis=0))
    ref_pos, ref_loss = simulate(
        Landscape(make_landscape("fbm", size=129, hurst=0.6)), Dynamics(steps=300, repeats=3)
    )
    np.testing.assert_allclose(pos, ref_pos[1:], rtol=1e-6)  # float32 in the store
    np.testing.assert_allclose(loss, ref_loss[1:])
    write_store(tmp_path / "plain.zarr")
    with trajstore.open(tmp_path / "plain.zarr") as t, pytest.raises(ValueError, match="not a toy store"):
        read_toy_paths(t)


def test_toy_and_compare_cli(tmp_path):
    a, b = tmp_path / "fbm.zarr", tmp_path / "bowl.h5"
    assert (
        run_cli(
            "toy", "--landscape", "fbm", "--hurst", "0.5", "--size", "129", "--steps", "400", "-o", a
        ).returncode
        == 0
    )
    p = run_cli("toy", "--landscape", "bowl", "--size", "129", "--steps", "400", "-o", b)
    assert p.returncode == 0 and "near-minimum alpha 0." in p.stderr, p.stderr
    p = run_cli("toy", "--lr", "-1", "-o", tmp_path / "bad.zarr")
    assert p.returncode == 2 and "Invalid value for '--lr'" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("toy", "--size", "129", "-o", a)
    assert p.returncode == 1 and "exists" in p.stderr
    out = tmp_path / "cmp"
    p = run_cli("compare", a, b, "-o", out, "--window", "200")
    assert p.returncode == 0, p.stderr
    s = json.loads((out / "summary.json").read_text())
    assert [r["label"] for r in s["runs"]] == ["fbm.zarr", "bowl.h5"]
    assert {row["run"] for row in s["table"]} == {"fbm.zarr", "bowl.h5"} and len(s["table"]) == 4
    with trajstore.open(b) as t:
        near = t.metadata["toy"]["phases"]["near_minimum"]["alpha"]
    assert [r["near_minimum_alpha"] for r in s["table"] if r["run"] == "bowl.h5"] == [near, near]
    assert (out / "overlay.png").stat().st_size > 1000 and "α short" in (out / "index.html").read_text()
    assert (out / "toy_phases.png").stat().st_size > 1000 and "toy_phases.png" in (
        out / "index.html"
    ).read_text()


def test_in_memory_tamsd_equals_all_pairs_and_tidynamics():
    rng = np.random.default_rng(4)
    x = 1e3 + np.cumsum(rng.normal(size=(300, 3)), axis=0)  # far from the origin: centring matters
    brute = [np.mean(np.sum((x[t:] - x[:-t]) ** 2, axis=1)) for t in range(1, 300)]
    np.testing.assert_allclose(tamsd(x)[1:], brute, rtol=1e-9)
    tid = sum(tidynamics.msd(x[:, j]) for j in range(3))  # uncentred FFT: round-off ~1e-7 at lag 0
    np.testing.assert_allclose(tamsd(x)[1:], tid[1:], rtol=1e-8)
    with pytest.raises(ValueError, match="shape"):
        tamsd(np.zeros(5))


def test_descent_end_rule():
    t = np.arange(1001.0)
    loss = 1.0 + 9.0 * np.clip(1 - t / 300, 0, None)  # falls from 10 to 1 over 300 steps
    assert descent_end(loss) == 270  # first U ≤ U_f + 0.1 (U(0) − U_f) = 1.9
    assert descent_end(loss, fraction=0.5) == 150
    assert descent_end(loss[::-1]) == 0  # rising loss: no descent


def test_phase_exponents_recover_ballistic_then_fbm():
    """Walkers that move in a straight line while their loss falls, then wander as fBm with
    H = 0.25 near the bottom: α = 2 in the descent, 2H = 0.5 near the minimum."""
    rng = np.random.default_rng(7)
    t = np.arange(1001.0)
    loss = np.tile((1.0 + 9.0 * np.clip(1 - t / 400, 0, None))[:, None], (1, 12))
    t_star = descent_end(loss[:, 0])
    pos = np.empty((1001, 12, 2))
    heading = rng.normal(size=(12, 2))
    pos[: t_star + 1] = t[: t_star + 1, None, None] * 0.01 * heading
    walk = fbm(1001 - t_star, 0.25, size=24, rng=rng).reshape(-1, 12, 2) * 0.01
    pos[t_star:] = pos[t_star] + walk
    ph = phase_exponents(pos, loss)
    assert ph["descent"].alpha == pytest.approx(2.0, abs=0.01) and ph["descent"].n_walkers == 12
    assert ph["near_minimum"].alpha == pytest.approx(0.5, abs=0.1)
    assert ph["descent"].direction_cos == pytest.approx(1.0) and ph["near_minimum"].direction_cos < 0
    with pytest.raises(ValueError, match="need pos"):
        phase_exponents(pos[:, :, 0], loss)
    curves = phase_msd(pos, loss)
    lags, msd = curves["descent"]
    assert lags[0] == 1 and np.polyfit(np.log(lags), np.log(msd), 1)[0] == pytest.approx(2.0, abs=0.01)
    lags, msd = curves["near_minimum"]
    assert np.polyfit(np.log(lags), np.log(msd), 1)[0] == pytest.approx(0.5, abs=0.1)


# The paper's Fig. 4 as assertions: paper parameters (η = 0.02, σ = 0.01, 1000 steps, uniform
# starts), 513² landscapes, several landscape-and-noise seeds, 20 walkers each.
FIG4_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def fig4_runs():
    runs = {}
    for kind in ("diamond-square", "bowl", "cone", "shuffled"):
        runs[kind] = [
            simulate(Landscape(make_landscape(kind, size=513, seed=s)), Dynamics(repeats=20, seed=s))
            for s in FIG4_SEEDS
        ]
    return runs


def _alpha(path, max_lag):
    return fit_power_law(np.arange(1, max_lag + 1), tamsd(path)[1 : max_lag + 1]).alpha


def test_fig4_fractal_walkers_are_subdiffusive_near_their_minimum(fig4_runs):
    for pos, loss in fig4_runs["diamond-square"]:
        ph = phase_exponents(pos, loss)
        assert ph["near_minimum"].alpha < 0.7
        assert ph["descent"].alpha > ph["near_minimum"].alpha + 0.2  # the exponent attenuates
        # Gradient descent on a surface rough at the step's scale overshoots: steps reverse.
        assert ph["near_minimum"].direction_cos < -0.05 and ph["descent"].direction_cos < 0


def test_fig4_controls_show_no_superdiffusion(fig4_runs):
    # the Gaussian bowl (a commented-out line in the authors' code): its first 144 steps
    for pos, _ in fig4_runs["bowl"]:
        assert np.median([_alpha(pos[:145, k], 36) for k in range(pos.shape[1])]) < 1.05
        assert np.median([_alpha(pos[:, k], 250) for k in range(pos.shape[1])]) < 0.7
    for pos, loss in fig4_runs["shuffled"]:
        assert np.median([_alpha(pos[:, k], 250) for k in range(pos.shape[1])]) < 0.6
        # subdiffusive near the minimum: 0.01–0.10 on the clipped landscape of earlier versions,
        # up to 0.5 on the raw one the shuffle now starts from (issue 11)
        assert phase_exponents(pos, loss)["near_minimum"].alpha < 0.7


def test_fig4_cone_descends_ballistically(fig4_runs):
    """A constant slope: drift η·|∇U| = 0.01 per step, as large as the noise, so the descent is
    ballistic and the tip traps. (Why the cone is no control for the paper's contrast.)"""
    for pos, loss in fig4_runs["cone"]:
        ph = phase_exponents(pos, loss)
        assert ph["descent"].alpha > 1.4 and ph["near_minimum"].alpha < 0.3


@pytest.mark.xfail(
    strict=True,
    reason="the paper's Fig. 4b: not reproduced by the model as specified (docs/analysis.md, The toy model)",
)
def test_fig4_fractal_descent_is_superdiffusive(fig4_runs):
    for pos, loss in fig4_runs["diamond-square"]:
        assert phase_exponents(pos, loss)["descent"].alpha > 1.0


def test_fig4_study_example_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "toy_fig4_study.py"
    args = ["--landscapes", "diamond-square,cone", "--seeds", "1", "--size", "129", "--walkers", "4"]
    p = subprocess.run([sys.executable, script, *args, "--scheme", "table"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rows = [line.split("|")[1:-1] for line in p.stdout.splitlines() if line.startswith("| cone")]
    assert len(rows) == 1 and float(rows[0][2]) > 1.2  # the cone's descent is ballistic in this scheme too
