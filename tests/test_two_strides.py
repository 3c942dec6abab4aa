"""Runs recorded at two strides: every step, then (after a resume with ``--every 10``) every
10th step. Each window is equally spaced, so its MSD and fits are indexed by record lag; every
number and figure must nevertheless give lags in optimizer steps, and nothing that depends on
the stride (step lengths) may be mixed or compared across strides without saying so.

The stores are real zarr stores written through trajstore.create, with weights of known truth:
exact Gaussian paths with stationary increments whose MSD crosses over from α 1.6 to 0.6 at
100 steps (analysis/fbm.py), or Brownian walks (MSD = N·τ in steps).
"""

from __future__ import annotations

import html

import numpy as np
import pytest
from trajstore.analysis.fbm import crossover_msd, stationary_increment_paths
from trajstore.analysis.msd_figure import msd_curves
from trajstore.analysis.pipeline import analyze

import trajstore

N_STEPS = 11_000
STEPS = np.r_[np.arange(0, 1000), np.arange(1000, N_STEPS, 10)]  # 2000 records
N_PARAMS = 64
TAU0 = 100.0


def _at(exact: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """The exact MSD (per integer step lag) at non-integer lags, interpolated on log-log axes."""
    k = np.arange(1, len(exact))
    return np.exp(np.interp(np.log(lags), np.log(k), np.log(exact[1:])))


def _write(path, steps, weights) -> None:
    with trajstore.create(path, weights.shape[1], mode="w") as w:
        for s in steps:
            w.append(int(s), weights[s].astype(np.float32))


@pytest.fixture(scope="module")
def crossover(tmp_path_factory):
    """(store path, the paths' exact MSD per step lag (summed over parameters), its Analysis)."""
    target = crossover_msd(np.arange(float(N_STEPS)), 1.6, 0.6, TAU0)
    paths, exact = stationary_increment_paths(target, size=N_PARAMS, rng=np.random.default_rng(0))
    path = tmp_path_factory.mktemp("two") / "two.zarr"
    _write(path, STEPS, paths)
    with trajstore.open(path) as t:
        a = analyze(t, window=500, progress=False)
    return path, N_PARAMS * exact, a


def test_msd_figure_draws_every_window_against_steps(crossover):
    """msd.png drew each window's MSD against its record lag: the stride-10 windows' curves sat
    10× too far left (their record lag 1 is 10 steps), and so did their fitted lines and τ0
    (τ0 ≈ 10 'records' beside the stride-1 windows' ≈ 100). Every curve is now in steps: on the
    exact MSD, the fitted line follows it, and τ0 is near the true 100 steps in every window."""
    _, exact, a = crossover
    curves = msd_curves(a)
    assert [c.stride for c in curves] == [1, 1, 10, 10]
    for c, w in zip(curves, a.summary()["windows"], strict=True):
        assert c.lag_steps[0] == c.stride and np.all(c.lag_steps % c.stride == 0)
        usable = c.lag_steps <= 0.75 * 500 * c.stride
        ratio = c.msd[usable] / exact[c.lag_steps[usable].astype(int)]
        assert np.all(np.abs(ratio - 1) < 0.3), (c.t_w, ratio.min(), ratio.max())
        assert c.fit == "two" and w["regimes"] == "two"
        assert c.tau0_steps == pytest.approx(w["tau0_steps"])
        assert 50 < c.tau0_steps < 200, (c.t_w, c.tau0_steps)  # truth: 100 steps
        lo, hi = w["two_regime_lag_range_steps"]
        assert c.fit_lag_steps[0] == pytest.approx(lo) and c.fit_lag_steps[-1] == pytest.approx(hi)
        line = c.fit_msd / _at(exact, c.fit_lag_steps)
        assert np.all(np.abs(line - 1) < 0.35), (c.t_w, line.min(), line.max())
        # the inset's local slope: its lags in steps too (β ≈ 0.6 well above τ0)
        assert c.slope_lag_steps[0] == c.stride


def test_single_fit_prefactor_is_converted_to_steps(tmp_path):
    """The dashed single power law D·τ^α was drawn with D fitted against record lags: at stride
    10 it is D_steps · 10^α. A Brownian walk (MSD = N·τ in steps) gives D ≈ N in steps in every
    window, the fitted line lies on the curve, and the fitted lag range is in steps."""
    walk = np.cumsum(np.random.default_rng(1).normal(size=(N_STEPS, N_PARAMS)), axis=0)
    _write(tmp_path / "bm.zarr", STEPS, walk)
    with trajstore.open(tmp_path / "bm.zarr") as t:
        a = analyze(t, window=500, progress=False)
    windows = a.summary()["windows"]
    for c, w in zip(msd_curves(a), windows, strict=True):
        assert c.fit == "one" and w["regimes"] == "one"
        assert c.prefactor_steps == pytest.approx(N_PARAMS, rel=0.3), (c.t_w, c.stride, c.prefactor_steps)
        np.testing.assert_allclose(c.fit_msd, N_PARAMS * c.fit_lag_steps, rtol=0.3)
        assert w["alpha_lag_range_steps"][0] == c.stride * w["alpha_lag_range"][0]
        assert f"{w['alpha_lag_range_steps'][1]:.3g} steps" in w["verdict"], w["verdict"]


def test_report_gives_fitted_lags_in_steps(crossover, tmp_path):
    """The report's diffusion table gave the fitted lags of a stride-10 window in records
    ('1–346') beside the lags-and-pairs table's steps ('10–3750'); both are in steps now, and
    τ0's interval is given in steps as well."""
    from trajstore.analysis.report import write_report

    _, _, a = crossover
    summary = write_report(a, tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "lags fitted (steps)" in page
    for w in summary["windows"]:
        lo, hi = w["two_regime_lag_range_steps"]
        assert w["two_regime_lag_range_steps"] == [w["stride"] * x for x in w["two_regime_lag_range"]]
        assert w["tau0_ci_steps"] == [w["stride"] * x for x in w["tau0_ci"]]
        r = w["alpha_lag_range_steps"]
        assert f"{r[0]:.3g}–{r[1]:.3g}" in page
    # the stride-10 windows' record lags 1–346 were shown; only the stride-1 windows' remain
    assert page.count(">1–346<") == sum(w["stride"] == 1 for w in summary["windows"]) == 2
    # the α-stable table's note said 'w_k(t+1) − w_k(t)' whatever the stride
    assert "over each window's stride s (1, 10 steps)" in html.unescape(page)


def test_compare_labels_step_lengths_of_different_strides(tmp_path):
    """compare overlaid the 1-step and 10-step step-length CCDFs (and the tail α of a run
    recorded at 10 steps beside one at 1 step) without a word, and its per-layer table lined up
    the runs' k-th windows under the window index although they started at different steps. Now:
    each CCDF is labelled with its stride, the table gives each tail's stride, a note says the
    strides differ, a run recorded at two strides has one CCDF per stride (no pooled tail, with
    the reason), and the per-layer rows give t_w."""
    import json

    from trajstore.analysis.compare import compare, step_length_curves

    walk = np.cumsum(np.random.default_rng(2).normal(size=(4000, 32)), axis=0)
    _write(tmp_path / "every1.zarr", np.arange(400), walk)
    _write(tmp_path / "every10.zarr", np.arange(0, 4000, 10), walk)
    _write(tmp_path / "both.zarr", np.r_[np.arange(200), np.arange(200, 2200, 10)], walk)
    stores = [str(tmp_path / f"{n}.zarr") for n in ("every1", "every10", "both")]
    s = compare(stores, tmp_path / "cmp", window=200, progress=False)
    rows = {(r["run"], r["t_w"]): r for r in s["table"]}
    assert rows[("every1.zarr", 0)]["tail_stride_steps"] == 1
    assert rows[("every10.zarr", 0)]["tail_stride_steps"] == 10
    both = rows[("both.zarr", 0)]
    assert both["tail_alpha"] is None and "several strides" in both["undetermined"]["tail_alpha"]
    strides_note = [n for n in s["notes"] if "step lengths span different numbers" in n]
    assert len(strides_note) == 1 and "every 10 steps" in strides_note[0], s["notes"]
    # the first windows (200 records each) cover steps 0–199 and 0–1990: said, not hidden
    span = [n for n in s["notes"] if "cover different stretches of training" in n]
    assert len(span) == 1 and "every10.zarr: steps 0–1990" in span[0], s["notes"]
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert "tail stride (steps)" in page and "not comparable across strides" in page
    # the overlay's curves: one per run and stride, each of its own stride's lengths
    run = {
        r["label"]: r["summary"] for r in json.loads((tmp_path / "cmp" / "summary.json").read_text())["runs"]
    }
    assert [w["stride"] for w in run["both.zarr"]["windows"]] == [1, 10]
    from trajstore.analysis.pipeline import analyze as _analyze

    with trajstore.open(tmp_path / "both.zarr") as t:
        a = _analyze(t, window=200, progress=False)
    curves = step_length_curves(a)
    assert [c[0] for c in curves] == [1, 10]
    inc = np.diff(walk, axis=0)
    one_step = np.sqrt(np.sum(inc[:199] ** 2, axis=1))
    np.testing.assert_allclose(np.sort(curves[0][1]), np.sort(one_step), rtol=1e-5)
    assert np.median(curves[1][1]) > 2.5 * np.median(curves[0][1])  # √10 × longer: another quantity
    # per-layer table: the k-th windows of every1 (t_w 200) and every10 (t_w 2000) differ
    assert "window 1 (t_w differs)" in page and "(t_w = 2000)" in page
    assert "t_w = 0</td>" in page


def test_headline_says_what_a_step_spans(crossover):
    """The headline said 'Step lengths ‖w(t+1) − w(t)‖' and 'update components w_k(t+1) − w_k(t)'
    of windows recorded every 10 steps (and printed ': ;' when no pooled tail exists); it now says
    each window's stride, and the lags-and-pairs table says 'every step', not 'every 1 steps'."""
    from trajstore.analysis.headline import headline
    from trajstore.analysis.report import _lag_row

    _, _, a = crossover
    s = a.summary()
    lines = headline(s)
    tail = next(x for x in lines if x.startswith("Step lengths"))
    assert "(1, 10 steps, not pooled)" in tail and "t+1" not in tail and ": ;" not in tail, tail
    stable = next(x for x in lines if x.startswith("α-stable"))
    assert "(1, 10 steps)" in stable and "t+1" not in stable, stable
    assert [_lag_row(w)[2] for w in s["windows"]] == ["every step"] * 2 + ["every 10 steps"] * 2
