"""Records of AMP-skipped iterations (docs/format.md 3.3, 1.2) in the analyses: at stride 1 such a
record equals the one before it, so one step of length exactly 0 appears per skip (AMP's scale
calibration skips several at the start of a run). A skipped iteration is a real iteration in which
the weights did not move: the MSD and contour length keep its zero, but it is no update, so what
describes updates (their sizes' autocorrelation, their directions, tail fits) leaves it out, and
summary.json counts what was left out.

Before: the step-length autocorrelation counted each skip as a step of size 0, which pulled the
mean down and turned 8 skips at the start of a 600-step random walk into a lag-1 autocorrelation
of about 0.7 where the truth is 0.
"""

from __future__ import annotations

import json

import numpy as np
from trajstore.analysis.pipeline import analyze
from trajstore.analysis.tails import fit_power_law_tail

import trajstore
from trajstore import jsonsafe

from .test_cli_output import assert_matches
from .test_skipped_records import _train_api


def _brute_step_autocorr(w: np.ndarray, k: int) -> float:
    """Autocorrelation at record lag k of the nonzero step lengths, pair by pair."""
    steps = [float(np.linalg.norm(w[i + 1].astype(np.float64) - w[i])) for i in range(len(w) - 1)]
    sizes = [s for s in steps if s > 0]
    mean = sum(sizes) / len(sizes)
    var = sum((s - mean) ** 2 for s in sizes) / len(sizes)
    prods = [
        (steps[i] - mean) * (steps[i + k] - mean) for i in range(len(steps) - k) if steps[i] and steps[i + k]
    ]
    return sum(prods) / len(prods) / var


def _brute_direction(w: np.ndarray, k: int) -> float:
    d = np.diff(w.astype(np.float64), axis=0)
    cos = [
        float(d[i] @ d[i + k] / (np.linalg.norm(d[i]) * np.linalg.norm(d[i + k])))
        for i in range(len(d) - k)
        if d[i].any() and d[i + k].any()
    ]
    return sum(cos) / len(cos)


def _walk_with_skips(path, n=600, p=200, skips=frozenset({*range(1, 9), 300})) -> np.ndarray:
    """A Gaussian random walk (independent updates: every autocorrelation is 0) whose records at
    ``skips`` repeat the previous one, as a GradScaler's skipped iteration leaves them."""
    rng = np.random.default_rng(3)
    w = [rng.normal(size=p)]
    for s in range(1, n):
        w.append(w[-1] if s in skips else w[-1] + 0.01 * rng.normal(size=p))
    w = np.asarray(w, dtype=np.float32)
    with trajstore.create(path, p, mode="w") as wr:
        for s in range(n):
            wr.append(s, w[s])
            if s in skips:
                wr.log("skipped", s, 1.0)
    return w


def test_skipped_iterations_are_left_out_of_update_sizes_and_directions(tmp_path):
    path = tmp_path / "walk.zarr"
    w = _walk_with_skips(path)
    with trajstore.open(path) as t:
        a = analyze(t, window=t.n_records, progress=False)
    s = a.summary()
    win = s["windows"][0]
    for k in (1, 2, 4, 8):
        ref = _brute_step_autocorr(w, k)
        assert abs(win["step_autocorr"][str(k)] - ref) < 1e-9
        assert abs(ref) < 0.15  # independent updates
        np.testing.assert_allclose(win["direction_autocorr"][str(k)], _brute_direction(w, k), atol=1e-9)
    assert win["zero_steps_left_out"] == 9
    assert s["zero_steps"] == {"left_out": 9, "at_skipped_iterations": 9}
    assert_matches("analyze", json.loads(jsonsafe.dumps(s)))
    assert any("9 steps of length exactly 0" in n and "9 at iterations" in n for n in s["notes"])
    lengths = np.linalg.norm(np.diff(w.astype(np.float64), axis=0), axis=1)
    assert s["tails"]["step_length"]["n"] == len(lengths) - 9
    ref_tail = fit_power_law_tail(lengths[lengths > 0])
    np.testing.assert_allclose(s["tails"]["step_length"]["alpha"], ref_tail.alpha, rtol=1e-6)
    # the MSD keeps the zero displacements: Δr²(1) is the mean over every step, skips included
    np.testing.assert_allclose(win["msd_1"], np.mean(lengths**2), rtol=1e-5)


def test_a_real_amp_run_with_skips_reports_them(tmp_path):
    """A tiny CPU training with a real GradScaler whose updates at ``skips`` are skipped (an inf
    gradient), recorded every step; the reference is computed from the hand-copied weights."""
    path = tmp_path / "amp.zarr"
    skips = {1, 2, 3, 4, 40}
    weights = _train_api(path, 1, 90, skips)
    w = np.stack([weights[i] for i in range(91)])
    with trajstore.open(path) as t:
        s = analyze(t, window=t.n_records, progress=False).summary()
    win = s["windows"][0]
    assert s["zero_steps"] == {"left_out": 5, "at_skipped_iterations": 5}
    for k in (1, 2, 4):
        assert abs(win["step_autocorr"][str(k)] - _brute_step_autocorr(w, k)) < 1e-6
        np.testing.assert_allclose(win["direction_autocorr"][str(k)], _brute_direction(w, k), atol=1e-6)


def test_a_store_without_zero_steps_has_no_note(tmp_path):
    path = tmp_path / "plain.zarr"
    _walk_with_skips(path, n=200, skips=frozenset())
    with trajstore.open(path) as t:
        s = analyze(t, window=t.n_records, progress=False).summary()
    assert "zero_steps" not in s and s["windows"][0]["zero_steps_left_out"] == 0
    assert not any("length exactly 0" in n for n in s["notes"])
