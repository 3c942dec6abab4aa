"""Plausible but awkward runs whose analyses used to print a plausible, wrong number.

Each test builds a real store (trajstore.create) of a run a lab would produce, runs the
analysis and checks its numbers against the truth (the generator's own increments, or a
brute-force count over the same data).
"""

from __future__ import annotations

import itertools

import numpy as np
from trajstore.analysis.fluctuations import avalanche_durations, loss_fluctuations
from trajstore.analysis.pipeline import analyze

import trajstore


def _store(path, weights, loss_steps, losses, evaluated_at="post_step"):
    with trajstore.create(path, weights.shape[1], mode="w") as w:
        for t, row in enumerate(weights):
            w.append(t, row)
        for s, v in zip(loss_steps, losses, strict=True):
            w.log("loss", int(s), float(v), evaluated_at=evaluated_at)


def _walk(n_records: int, n_params: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(n_records, n_params)), axis=0).astype(np.float32)


def test_loss_increments_never_span_a_non_finite_loss(tmp_path):
    """A loss that went NaN/inf at some steps (a guard skipped them): ΔL = L(t+1) − L(t) must
    not be taken between the finite values either side of the hole (a two-step increment
    passed off as one step). Truth: a random walk whose one-step increments are N(0, 1), α-stable
    scale 1/√2; every third value NaN spliced half the increments into two-step ones."""
    rng = np.random.default_rng(1)
    n = 1500
    loss = 50 + np.cumsum(rng.normal(size=n))
    logged = loss.copy()
    logged[2::3] = np.nan
    logged[7::30] = np.inf
    _store(tmp_path / "nan.zarr", _walk(n), np.arange(n), logged)
    one_step = np.diff(logged)
    truth = one_step[np.isfinite(one_step)]  # the increments that exist
    with trajstore.open(tmp_path / "nan.zarr") as t:
        s = analyze(t, window=750, progress=False).summary()
    fl = s["loss_fluctuations"]
    assert fl["dl_stable"]["n"] == len(truth)
    assert abs(fl["dl_stable"]["scale"] - 1 / np.sqrt(2)) < 0.1, fl["dl_stable"]
    for w in s["windows"]:
        inc = np.diff(logged[w["t_w"] : w["t_w"] + w["n_records"]])
        st = w["stable"]["loss_increments"]
        assert st["n"] == np.isfinite(inc).sum()
        assert abs(st["scale"] - 1 / np.sqrt(2)) < 0.12, st
    assert s["stable"]["loss_increments"]["pooled_over_run"]["n"] == len(truth)
    # the moving variance and spectrum use the longest finite stretch: the note and summary.json
    # name its steps (the note gave only its length)
    runs = [(k, len(list(g))) for k, g in itertools.groupby(range(n), key=lambda i: np.isfinite(logged[i]))]
    starts = np.cumsum([0] + [length for _, length in runs])[:-1]
    first, longest = max(
        ((int(a), length) for (ok, length), a in zip(runs, starts, strict=True) if ok), key=lambda x: x[1]
    )
    assert fl["stretch_steps"] == [first, first + longest - 1]
    stretch = f"({longest} values, steps {first}–{first + longest - 1})"
    assert any(stretch in x for x in s["notes"]), s["notes"]
    # the direct API: an avalanche is a run of consecutive steps, a hole ends it
    assert avalanche_durations(np.array([0, 5, np.nan, 5, 5, 0, 5, 0, 0, 5])).tolist() == [1, 2, 1, 1]
    assert loss_fluctuations(logged).dl_stable.n == len(truth)


def test_loss_increments_say_their_stride_in_steps(tmp_path):
    """Weights every step, the loss every 10th: ΔL is a 10-step increment and summary.json
    must say so (it was labelled L(t+1) − L(t)); the scale is that of 10 steps (√10/√2)."""
    rng = np.random.default_rng(2)
    n = 2000
    loss = 50 + np.cumsum(rng.normal(size=n))
    steps = np.arange(0, n, 10)
    _store(tmp_path / "l10.zarr", _walk(n), steps, loss[steps])
    with trajstore.open(tmp_path / "l10.zarr") as t:
        s = analyze(t, window=1000, progress=False).summary()
    fl = s["loss_fluctuations"]
    assert fl["increment_steps"] == 10
    assert abs(fl["dl_stable"]["scale"] - np.sqrt(10 / 2)) < 0.6
    for w in s["windows"]:
        assert w["stable"]["loss_increments"]["increment_steps"] == 10


def test_loss_logged_at_two_strides_has_no_increments(tmp_path):
    """Weights every step; the loss every step to 300, then every 10th: one ΔL series would
    mix one-step and ten-step increments. The loss fluctuations are undetermined (a note says
    why); a window whose losses are at one stride keeps its ΔL fit."""
    rng = np.random.default_rng(3)
    n = 1200
    loss = 50 + np.cumsum(rng.normal(size=n))
    steps = np.r_[np.arange(0, 300), np.arange(300, n, 10)]
    _store(tmp_path / "mix.zarr", _walk(n), steps, loss[steps])
    with trajstore.open(tmp_path / "mix.zarr") as t:
        a = analyze(t, window=300, progress=False)
    s = a.summary()
    assert "loss_fluctuations" not in s
    assert any("loss fluctuations undetermined" in n for n in s["notes"])
    # the pooled ΔL fit's note said "the loss is constant or too short": it is neither
    assert any("not logged at one stride" in n for n in s["notes"]), s["notes"]
    assert not any("constant or too short" in n for n in s["notes"])
    assert s["windows"][0]["stable"]["loss_increments"]["increment_steps"] == 1
    assert "loss_increments" not in s["windows"][1]["stable"]  # 30 ten-step increments: too few


def test_per_layer_exponents_of_a_log_schedule_are_fitted_in_steps(tmp_path):
    """A log schedule (records at log-spaced steps): the MSD is indexed by the distinct step
    lags. The per-layer fit used the index of a lag as if it were the lag (α = 0.58 and 1.74 for
    truths 0.5 and 1.5, "over lags 1–337 records" for 35 records); it must fit the lags in steps,
    as the whole vector and ``tensor_alpha`` do, and every verdict must name steps."""
    from trajstore.analysis.fbm import fbm
    from trajstore.recorders.schedule import LogSpaced

    steps = np.array(LogSpaced(10).steps_up_to(4000))
    sub = fbm(4001, 0.25, size=128, rng=np.random.default_rng(1))  # α = 2H = 0.5
    sup = fbm(4001, 0.75, size=128, rng=np.random.default_rng(2))  # α = 1.5
    walk = np.concatenate([sub, sup], axis=1)[steps].astype(np.float32)
    with trajstore.create(tmp_path / "log.zarr", {"sub.weight": (128,), "sup.weight": (128,)}, mode="w") as w:
        for s, row in zip(steps, walk, strict=True):
            w.append(int(s), row)
    with trajstore.open(tmp_path / "log.zarr") as t:
        s = analyze(t, window=4000, progress=False).summary()
    w = s["windows"][0]
    assert w["lag_pairs"]["lag_unit"] == "steps"
    for name, truth in (("sub.weight", 0.5), ("sup.weight", 1.5)):
        layer = w["layers"][name]
        assert abs(layer["alpha"] - w["tensor_alpha"][name]) < 1e-6, (layer["alpha"], w["tensor_alpha"])
        assert abs(layer["alpha"] - truth) < 0.1
        assert layer["alpha_lag_range"] == w["alpha_lag_range"]  # the same fitted lags, in steps
        assert "steps" in layer["verdict"] and "records" not in layer["verdict"], layer["verdict"]
        # no per-tensor interval here, and raising --memory-limit (the reason given) would not help
        assert "not equally spaced" in layer["undetermined"]["alpha_ci"], layer["undetermined"]
    assert "steps" in w["verdict"] and "records" not in w["verdict"], w["verdict"]


def test_gradient_noise_with_the_epoch_logged_once_per_epoch(tmp_path):
    """A lab's loop logs ``epoch`` once, at each epoch's first step (not at every step as the
    Recorder does): every step belongs to the last epoch logged at or before it. Records without
    an exact match used to form epochs of their own (the first step of each epoch alone, noise
    0; the rest of it without that step). Truth: ‖g_t − ḡ_e‖ over the true epochs."""
    from trajstore.analysis.fluctuations import gradient_noise

    rng = np.random.default_rng(4)
    g = (rng.normal(size=(60, 40)) + np.repeat(rng.normal(size=(3, 40)) * 5, 20, axis=0)).astype(np.float32)
    with trajstore.create(tmp_path / "g.zarr", 40, mode="w") as w:
        w.append(0, np.zeros(40))
        for s in range(1, 61):
            w.append(s, np.zeros(40), gradients=g[s - 1])
            if (s - 1) % 20 == 0:
                w.log("epoch", s, (s - 1) // 20)
    with trajstore.open(tmp_path / "g.zarr") as t:
        r = gradient_noise(t, window=30, samples_per_window=500)
    assert r.epochs.tolist() == [e // 20 for e in range(60)]
    truth = np.concatenate([np.linalg.norm(b - b.mean(0), axis=1) for b in np.split(g.astype(np.float64), 3)])
    np.testing.assert_allclose(r.noise_norm, truth, rtol=1e-9)


def test_fixed_origin_tamsd_refuses_records_not_equally_spaced(tmp_path):
    """``fixed_origin_tamsd`` takes lags in records: on a ranged schedule (every step to 100,
    then every 10th) one record lag pairs records 1 and 10 steps apart and averaged them as one
    lag. It must refuse in one line; on the equally spaced part it is the brute-force mean."""
    import pytest
    from trajstore.analysis.msd import fixed_origin_tamsd

    steps = np.r_[np.arange(0, 100), np.arange(100, 1000, 10)]
    w = _walk(1000, 16)[steps]
    with trajstore.create(tmp_path / "r.zarr", 16, mode="w") as wr:
        for s, row in zip(steps, w, strict=True):
            wr.append(int(s), row)
    with trajstore.open(tmp_path / "r.zarr") as t:
        with pytest.raises(ValueError, match="not equally spaced"):
            fixed_origin_tamsd(t, 50, np.array([1, 20]), n_origins=40)
        got = fixed_origin_tamsd(t, 100, np.array([1, 20]), n_origins=40)  # every 10th step: fine
    x = w.astype(np.float64)
    ref = [np.mean(np.sum((x[100 + k : 140 + k] - x[100:140]) ** 2, axis=1)) for k in (1, 20)]
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def _two_stride_store(path, n_params=100):
    """Every step for 1000 steps, then every 10th to 11,000: each window is equally spaced,
    but the later windows' 'steps' are displacements over 10 optimizer steps."""
    rng = np.random.default_rng(5)
    steps = np.r_[np.arange(0, 1000), np.arange(1000, 11000, 10)]
    walk = np.cumsum(rng.normal(size=(11000, n_params)), axis=0)[steps].astype(np.float32)
    with trajstore.create(path, n_params, mode="w") as w:
        for s, row in zip(steps, walk, strict=True):
            w.append(int(s), row)


def test_step_length_tail_is_not_pooled_over_windows_of_different_strides(tmp_path):
    """Step lengths of windows recorded every step and every 10th step are displacements over
    1 and 10 steps: pooled, their tail is that of a scale mixture (the fit picked the 10-step
    lengths: α 35.7, as the stride-10 windows' 36). The pooled fit is left out with a note;
    the per-window fits stay, and a pooled fit says its stride."""
    _two_stride_store(tmp_path / "two.zarr")
    with trajstore.open(tmp_path / "two.zarr") as t:
        s = analyze(t, window=500, progress=False).summary()
    assert [w["stride"] for w in s["windows"]] == [1, 1, 10, 10]
    assert all(w["step_length_tail"] is not None for w in s["windows"])
    assert "step_length" not in s["tails"]
    assert any("different strides" in n for n in s["notes"]), s["notes"]
    with trajstore.open(tmp_path / "two.zarr") as t:  # one stride: pooled, and labelled
        from trajstore.selection import select

        s10 = analyze(select(t, steps="1000:"), window=500, progress=False).summary()
    assert s10["tails"]["step_length"]["stride_steps"] == 10


def test_catalog_never_shows_the_exponents_of_another_run(tmp_path):
    """``catalog`` shows the exponents of ``NAME-report/summary.json`` beside a store. A store
    re-recorded after its report was written (same name, another run), or a report of part of
    the store (``--steps``), showed those exponents as the store's; they are left out with the
    reason. A report of this store shows them, τ0 in optimizer steps."""
    import json

    from trajstore.sharing.catalog import catalog

    from trajstore import jsonsafe
    from trajstore.selection import select

    def report(store, traj):
        folder = tmp_path / f"{store}-report"
        folder.mkdir(exist_ok=True)
        summary = analyze(traj, window=200, progress=False).summary()
        (folder / "summary.json").write_text(jsonsafe.dumps(summary))
        return folder / "summary.json"

    def write(name, n, seed):
        with trajstore.create(tmp_path / f"{name}.zarr", 32, mode="w") as w:
            for t, row in enumerate(_walk(n, 32, seed)):
                w.append(10 * t, row)

    write("same", 200, 0)
    with trajstore.open(tmp_path / "same.zarr") as t:
        made = report("same", t)
    s = json.loads(made.read_text())  # as if two regimes were found: τ0 5 records = 50 steps
    s["windows"][0].update(regimes="two", tau0=5.0, tau0_steps=50.0)
    made.write_text(json.dumps(s))
    write("rerun", 200, 1)
    with trajstore.open(tmp_path / "rerun.zarr") as t:
        report("rerun", t)
    write("rerun", 200, 2)  # re-recorded after its report: another store id
    write("part", 200, 3)
    with trajstore.open(tmp_path / "part.zarr") as t:
        report("part", select(t, steps="0:990"))
    rows = {r["store"].rsplit("/", 1)[-1]: r for r in catalog([str(tmp_path)])}
    first = json.loads((tmp_path / "same-report" / "summary.json").read_text())["windows"][0]
    assert rows["same.zarr"]["alpha"] == first["alpha"] and rows["same.zarr"]["error"] is None
    assert rows["same.zarr"]["tau0"] == 50.0  # in steps: records are 10 steps apart
    # the exponents are the first window's, not the run's: the row says which, and the table
    # header gives τ0's unit (it said "tau0" and "alpha" as if of the whole run)
    assert rows["same.zarr"]["exponents_window"] == "window 1 of 1: t_w = 0, 200 records, every 10 steps"
    from trajstore.sharing.catalog import render

    text = render(list(rows.values()), "table")
    assert "tau0 (steps)" in text.splitlines()[0] and "exponents of" in text.splitlines()[0]
    for name in ("rerun.zarr", "part.zarr"):
        assert rows[name]["alpha"] is None and "exponents left out" in rows[name]["error"], rows[name]


def test_a_run_that_never_moved_says_so(tmp_path):
    """Every record equal (a frozen model, or a zero learning rate): α is undetermined because
    nothing moved, not because of "non-finite weights or too few usable lags" (300 records
    have plenty); step lengths and their tail likewise."""
    w0 = np.random.default_rng(0).normal(size=100).astype(np.float32)
    with trajstore.create(tmp_path / "still.zarr", {"a.weight": (10, 10)}, mode="w") as w:
        for t in range(300):
            w.append(t, w0)
    with trajstore.open(tmp_path / "still.zarr") as t:
        s = analyze(t, window=300, progress=False).summary()
    win = s["windows"][0]
    assert win["alpha"] is None and "did not move" in win["undetermined"]["alpha"], win["undetermined"]
    assert "did not move" in win["verdict"] and "did not move" in s["whole_run"]["undetermined"]["alpha"]
    assert "step_length" not in s["tails"] and any("did not move" in n for n in s["notes"]), s["notes"]


def _train_tiny(path, dtype, steps=300):
    import torch
    from trajstore.recorders import Recorder

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(model, path, overwrite=True, progress=False) as rec:
        rec.attach(opt)
        for _ in range(steps):
            x = torch.randn(32, 16, dtype=dtype)
            loss = (model(x) - x[:, :1]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            rec.log_loss(loss)
            opt.step()


def test_update_components_of_a_bfloat16_model_are_undetermined(tmp_path):
    """A bfloat16 model (8 mantissa bits): most updates are below the weights' resolution and
    are lost (92 % exactly 0), the rest are a few multiples of it (median 7 % of the nonzero
    updates of a coordinate distinct, against 98 % in float32). An α-stable fit of such
    components measures the rounding (α 1.92 against 1.26 for the same run in float32); it is
    undetermined with the reason. The float32 run keeps its fit."""
    import torch

    _train_tiny(tmp_path / "bf16.zarr", torch.bfloat16)
    _train_tiny(tmp_path / "f32.zarr", torch.float32)
    with trajstore.open(tmp_path / "bf16.zarr") as t:
        bf = analyze(t, window=300, progress=False).summary()["windows"][0]
    with trajstore.open(tmp_path / "f32.zarr") as t:
        f32 = analyze(t, window=300, progress=False).summary()["windows"][0]
    assert "update_components" not in bf["stable"]
    reason = bf["undetermined"]["stable.update_components"]
    assert "resolution" in reason, bf["undetermined"]
    # the reason was only in summary.json; the notes and the report's α-stable table give it too
    from trajstore.analysis.report import write_report

    with trajstore.open(tmp_path / "bf16.zarr") as t:
        a = analyze(t, window=300, progress=False)
    assert any(reason in n and "t_w = 0" in n for n in a.notes), a.notes
    write_report(a, tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text()
    table = page.split("α-stable fits per window")[1].split("</table>")[0]
    assert "undetermined: the update components take few distinct values" in table
    assert "update_components" in f32["stable"] and "stable.update_components" not in f32["undetermined"]


def test_a_crossover_on_a_ranged_schedule_is_named_in_steps(tmp_path):
    """Every step to 200, then every 7th: the MSD (and τ0) are in steps. Exact Gaussian paths
    crossing over from α 1.6 to 0.6 at 60 steps: τ0 is found near 60, and every sentence that
    gives it (the two-regime fit's, the window's, the headline's) says steps (the fit's said
    "τ0 ≈ 62.3 records")."""
    from trajstore.analysis.fbm import crossover_msd, stationary_increment_paths
    from trajstore.analysis.headline import headline

    steps = np.r_[np.arange(0, 200), np.arange(200, 3000, 7)]
    target = crossover_msd(np.arange(3000.0), 1.6, 0.6, 60.0)
    paths, _ = stationary_increment_paths(target, size=64, rng=np.random.default_rng(0))
    with trajstore.create(tmp_path / "xo.zarr", 64, mode="w") as w:
        for s in steps:
            w.append(int(s), paths[s].astype(np.float32))
    with trajstore.open(tmp_path / "xo.zarr") as t:
        s = analyze(t, window=5000, progress=False).summary()
    w = s["windows"][0]
    assert w["regimes"] == "two" and w["tau0_ci"][0] < 60 < w["tau0_ci"][1], (w["tau0"], w["tau0_ci"])
    for sentence in (w["two_regime_fit"]["verdict"], w["verdict"], headline(s)[0]):
        assert "steps" in sentence and "records" not in sentence, sentence


def test_compare_overlays_runs_of_different_strides_on_one_step_axis(tmp_path):
    """compare's MSD overlay drew each run against its record lag, so a run recorded every 10th
    step put its 10-step lag at τ = 1, beside the other run's one-step lag. Its curve is now in
    steps: the same walk recorded every step and every 10th step lie on one curve."""
    from trajstore.analysis.compare import common_first_lag, msd_overlay_curve

    walk = _walk(2000, seed=3)  # one record per step
    for name, stride in (("every1", 1), ("every10", 10)):
        with trajstore.create(tmp_path / f"{name}.zarr", walk.shape[1], mode="w") as w:
            for t in range(0, len(walk), stride):
                w.append(t, walk[t])
    curves = {}
    for name in ("every1", "every10"):
        with trajstore.open(tmp_path / f"{name}.zarr") as t:
            curves[name] = msd_overlay_curve(analyze(t, window=t.n_records, progress=False))
    lags1, msd1 = curves["every1"]
    lags10, msd10 = curves["every10"]
    assert lags1[0] == 1 and lags10[0] == 10 and np.all(lags10 % 10 == 0)
    # A random walk's MSD is linear in steps. Normalised each at its own first lag, the curves
    # are τ and τ / 10 (10 x apart); normalised at one lag in steps they coincide.
    np.testing.assert_allclose(msd10[:5], lags10[:5] / 10, rtol=0.1)
    at = np.searchsorted(lags1, lags10[:5])
    np.testing.assert_allclose(msd1[at] / 10, msd10[:5], rtol=0.1)
    with trajstore.open(tmp_path / "every1.zarr") as t1, trajstore.open(tmp_path / "every10.zarr") as t10:
        results = [(n, analyze(t, window=t.n_records, progress=False)) for n, t in (("1", t1), ("10", t10))]
    assert common_first_lag(results) == 10
    (l1, m1), (l10, m10) = (msd_overlay_curve(a, 10) for _, a in results)
    np.testing.assert_allclose(m1[np.searchsorted(l1, l10[:5])], m10[:5], rtol=0.1)


def test_uneven_spacing_is_explained_not_guessed(tmp_path):
    """The note on records not equally spaced guessed 'a log or ranged schedule' whatever the
    cause. It now names the gaps: an iteration AMP's GradScaler skipped on a scheduled step (it
    has no weights record), or a resume that changed the stride."""
    walk = _walk(400, seed=4)
    with trajstore.create(tmp_path / "amp.zarr", walk.shape[1], mode="w") as w:
        for t in range(0, 400, 10):
            if t != 50:
                w.append(t, walk[t])
        w.log("skipped", 50, 1.0)
    with trajstore.create(tmp_path / "resumed.zarr", walk.shape[1], mode="w") as w:
        for t in [*range(150), *range(150, 400, 10)]:
            w.append(t, walk[t])
    with trajstore.open(tmp_path / "amp.zarr") as t:
        notes = " ".join(analyze(t, window=t.n_records, progress=False).notes)
    assert "40 → 60: AMP's GradScaler skipped the update of step 50" in notes
    assert "log or ranged schedule" not in notes
    with trajstore.open(tmp_path / "resumed.zarr") as t:
        notes = " ".join(analyze(t, window=t.n_records, progress=False).notes)
    assert "every step, then every 10 steps from step 150" in notes


def test_short_run_notes_are_not_repeated(tmp_path):
    """8 records in windows of 4: the whole run's fit (8 records, 2 windows) said "window 0: no
    two-regime fit" after window 0 had said the same, so the report listed it twice; it names
    the whole run now."""
    import collections

    with trajstore.create(tmp_path / "short.zarr", 20, mode="w") as w:
        for t, row in enumerate(_walk(8, 20, seed=7)):
            w.append(t, row)
    with trajstore.open(tmp_path / "short.zarr") as t:
        notes = analyze(t, window=4, progress=False).notes
    repeated = [n for n, k in collections.Counter(notes).items() if k > 1]
    assert not repeated, repeated
    assert "whole run: no two-regime fit (too few log-binned lags)" in notes, notes
    # 12 records with losses: "landscape window 0 (t_w = 0) skipped: too few …" was followed by
    # "landscape analysis skipped: too few …", the same reason again
    _store(
        tmp_path / "twelve.zarr",
        _walk(12, 20, seed=8),
        np.arange(12),
        np.random.default_rng(8).normal(size=12),
    )
    with trajstore.open(tmp_path / "twelve.zarr") as t:
        notes = analyze(t, window=1000, progress=False).notes
    reasons = [n.split("skipped: ", 1)[1] for n in notes if n.startswith("landscape") and "skipped: " in n]
    assert len(reasons) == 2 and len(set(reasons)) == 2, notes


def test_a_spectrum_from_a_few_values_is_undetermined(tmp_path):
    """A loss that is NaN at every 30th step (a guard skipped those steps): the spectrum needs an
    unbroken stretch, and the longest holds 29 values; its slope was fitted through a few Welch
    bins of those 29 values and reported as the loss's spectrum slope. It is undetermined with
    the reason, and so is the moving variance (window 100); the ΔL fits keep every increment."""
    rng = np.random.default_rng(9)
    n = 1500
    loss = 50 + np.cumsum(rng.normal(size=n))
    loss[::30] = np.nan
    _store(tmp_path / "holes.zarr", _walk(n), np.arange(n), loss)
    with trajstore.open(tmp_path / "holes.zarr") as t:
        fl = analyze(t, window=750, progress=False).summary()["loss_fluctuations"]
    assert fl["spectrum_slope"] is None and "29 values" in fl["undetermined"]["spectrum_slope"], fl
    assert "moving_variance" in fl["undetermined"]
    assert fl["dl_stable"]["n"] == np.isfinite(np.diff(loss)).sum()


def test_compare_says_which_run_its_msd_overlay_leaves_out(tmp_path):
    """A run with non-finite weights at some record has no finite whole-run MSD: compare's
    overlay drew the other runs and left it out without a word. A note names it."""
    from trajstore.analysis.compare import compare

    walk = _walk(240, 16, seed=10)
    bad = walk.copy()
    bad[130, 3] = np.nan
    for name, w in (("clean", walk), ("holed", bad)):
        with trajstore.create(tmp_path / f"{name}.zarr", 16, mode="w") as wr:
            for t, row in enumerate(w):
                wr.append(t, row)
    s = compare([str(tmp_path / "clean.zarr"), str(tmp_path / "holed.zarr")], tmp_path / "cmp", window=120)
    missing = [n for n in s["notes"] if n.startswith("no MSD curve")]
    assert len(missing) == 1 and "holed.zarr" in missing[0] and "clean.zarr" not in missing[0], s["notes"]
    assert "no MSD curve of holed.zarr" in (tmp_path / "cmp" / "index.html").read_text()


def test_a_run_cut_short_after_one_loss_says_too_few_not_uneven(tmp_path):
    """A recording refused at step 2 (a dtype change after attach) keeps records 0 and 1 and one
    loss. Before: the notes said the loss was 'not logged at one stride', the records and losses
    'not equally spaced' and the loss 'constant': three wrong reasons for one short run."""
    path = tmp_path / "short.zarr"
    with trajstore.create(path, 6, mode="w") as wr:
        wr.append(0, np.zeros(6, dtype=np.float32))
        wr.append(1, np.ones(6, dtype=np.float32))
        wr.log("loss", 1, 0.7, evaluated_at="pre_step")
    with trajstore.open(path) as t:
        notes = " ".join(analyze(t, window=1000, progress=False).notes)
    assert "only 1 loss value(s) logged" in notes
    assert "only 1 'loss' value(s) within the records' steps" in notes
    assert "only one 'loss' value pairs with a weights record" in notes
    for wrong in ("not logged at one stride", "not equally spaced", "the loss is constant"):
        assert wrong not in notes


def test_compare_names_the_store_with_one_record(tmp_path):
    """``compare`` of a store refused after step 0 (1 record) beside a longer one: the one-line
    error names the store (before: 'the store has 1 record(s)', which of them unsaid)."""
    from .conftest import run_cli, write_store

    write_store(tmp_path / "long.zarr", n_records=20)
    with trajstore.create(tmp_path / "cut.zarr", 4, mode="w") as wr:
        wr.append(0, np.zeros(4, dtype=np.float32))
    p = run_cli("compare", tmp_path / "long.zarr", tmp_path / "cut.zarr", "-o", tmp_path / "cmp")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "cut.zarr" in line and "1 record" in line, line
