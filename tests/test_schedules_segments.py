"""Which pairs of records a lag may use: irregular schedules, segments, trainable parameters.

The reference for every MSD here is a brute-force float64 sum of ‖w_j − w_i‖² over every pair of
records (i < j) of one segment, grouped by their optimizer-step lag s_j − s_i.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from trajstore.analysis.msd import pooled_msd, windowed_msd
from trajstore.analysis.pairs import IRREGULAR_UNDETERMINED, lag_pairs
from trajstore.analysis.pipeline import analyze
from trajstore.analysis.windows import record_windows

import trajstore
from trajstore.selection import select

from .conftest import run_cli

FAULT_TRAIN = Path(__file__).with_name("fault_train.py")
PARAMS = {"a.weight": (3, 4), "a.bias": (3,), "b.weight": (5,)}


def brute_force(weights: np.ndarray, steps: np.ndarray, piece_of: np.ndarray | None = None) -> dict:
    """{step lag: (pairs, mean ‖w_j − w_i‖²)} over every pair i < j of the same piece."""
    w = np.asarray(weights, dtype=np.float64)
    piece_of = np.zeros(len(w), int) if piece_of is None else piece_of
    acc: dict[int, list[float]] = {}
    for i in range(len(w)):
        for j in range(i + 1, len(w)):
            if piece_of[i] == piece_of[j]:
                d = w[j] - w[i]
                acc.setdefault(int(steps[j] - steps[i]), []).append(float(d @ d))
    return {lag: (len(v), float(np.mean(v))) for lag, v in sorted(acc.items())}


def assert_matches_brute_force(lags, n_pairs, msd, ref: dict) -> None:
    assert [int(x) for x in lags[1:]] == list(ref), "the step lags are those of the pairs that exist"
    assert [int(x) for x in n_pairs[1:]] == [n for n, _ in ref.values()]
    np.testing.assert_allclose(msd[1:], [m for _, m in ref.values()], rtol=1e-9)


def log_steps(last: int, per_decade: int) -> np.ndarray:
    from trajstore.recorders.schedule import LogSpaced

    return np.array(LogSpaced(per_decade).steps_up_to(last))


def write(path, steps, weights, params=PARAMS, loss=True):
    with trajstore.create(path, params, mode="w", chunk_records=4) as w:
        for s, row in zip(steps, weights, strict=True):
            w.append(int(s), row)
            if loss and s:
                w.log("loss", int(s), float(np.sum(row.astype(np.float64) ** 2)), evaluated_at="post_step")


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_log_and_ranged_schedules_against_brute_force(tmp_path, suffix):
    rng = np.random.default_rng(0)
    n = sum(np.prod(s) for s in PARAMS.values())
    for name, steps in [
        ("log", log_steps(2000, 10)),
        ("ranged", np.r_[np.arange(0, 30), np.arange(30, 200, 7)]),
    ]:
        walk = np.cumsum(rng.normal(size=(int(steps[-1]) + 1, n)), axis=0)
        w = (walk[steps] + 1000.0).astype(np.float32)  # far from 0: round-off would show
        path = tmp_path / f"{name}{suffix}"
        write(path, steps, w)
        with trajstore.open(path) as t:
            ref = brute_force(w, steps)
            lp = lag_pairs(t, [(0, t.n_records)], memory_limit=1 << 20)
            assert_matches_brute_force(lp.lags, lp.n_pairs, lp.msd, ref)
            # per tensor and per parameter block: the same sums restricted to their columns
            a = t.layout["a.bias"]
            ref_a = brute_force(w[:, a.offset : a.stop], steps)
            np.testing.assert_allclose(lp.msd_tensor[1, 1:], [m for _, m in ref_a.values()], rtol=1e-9)
            np.testing.assert_allclose(lp.msd_groups.sum(axis=0), lp.msd, rtol=1e-12)
            wm = windowed_msd(t, window=10_000)[0]
            assert wm.step_lags is not None and wm.lag_unit == "steps"
            assert_matches_brute_force(wm.lags, wm.origins, wm.msd, ref)
            # fitted lags: T/4 pairs in their log bin (10 per decade), at most 3/4 of the span
            usable = wm.usable()
            lags = wm.lags[1:].astype(float)
            b = np.floor(np.log10(lags / lags[0]) * 10 + 1e-9).astype(int)
            per_bin = np.array([wm.origins[1:][b == k].sum() for k in b])
            expected = (
                np.flatnonzero((per_bin >= len(steps) / 4) & (lags <= 0.75 * (steps[-1] - steps[0]))) + 1
            )
            assert usable.tolist() == expected.tolist() and 5 < len(usable) < len(lags)


def test_regular_windows_keep_the_fast_path(tmp_path):
    rng = np.random.default_rng(1)
    steps = np.arange(0, 120, 3)
    w = np.cumsum(rng.normal(size=(len(steps), 20)), axis=0).astype(np.float32)
    write(tmp_path / "r.zarr", steps, w, params={"p": (20,)})
    with trajstore.open(tmp_path / "r.zarr") as t:
        wm = windowed_msd(t, window=40)[0]
        assert wm.step_lags is None and wm.lag_unit == "records"  # the FFT path, record lags
        ref = brute_force(w, steps)
        np.testing.assert_allclose(wm.msd[1:], [m for _, m in ref.values()], rtol=1e-9)
        assert wm.usable().tolist() == list(range(1, 31))  # T − τ ≥ T/4, as before
        lp = lag_pairs(t, [(0, 40)])  # the pooled machinery on a regular piece: the same sums
        assert_matches_brute_force(lp.lags, lp.n_pairs, lp.msd, ref)


def test_brownian_ranged_schedule_fits_in_steps(tmp_path):
    """A ranged schedule of a Brownian walk: fitted in optimizer steps, α = 1 within the interval
    (a fit in records would see the stride change as a kink)."""
    rng = np.random.default_rng(2)
    steps = np.r_[np.arange(0, 200), np.arange(200, 2000, 10)]
    walk = np.cumsum(rng.normal(size=(2000, 256)), axis=0)
    write(tmp_path / "b.zarr", steps, walk[steps].astype(np.float32), params={"p": (256,)}, loss=False)
    with trajstore.open(tmp_path / "b.zarr") as t:
        a = analyze(t, window=1000, progress=False)
    w = a.summary()["windows"][0]
    assert w["stride"] is None and w["lag_pairs"]["lag_unit"] == "steps" and w["n_records"] == len(steps)
    lo, hi = w["alpha_ci"]
    assert lo < 1.0 < hi and abs(w["alpha"] - 1.0) < 0.1, (w["alpha"], w["alpha_ci"])
    fitted = w["lag_pairs"]["usable_lag_steps"]
    assert w["alpha_lag_range"][0] >= fitted[0] and w["alpha_lag_range"][1] <= fitted[1]
    assert set(IRREGULAR_UNDETERMINED) <= set(w["undetermined"]) and w["step_length_tail"] is None
    assert w["stable"] == {} and "loss_fluctuations" not in a.extra


def _train(path, steps, schedule="every:1", seed=0, resume=False, new_segment=False):
    import torch
    from torch import nn
    from trajstore.recorders import Recorder

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(seed)
    with Recorder(
        model, path, schedule=schedule, resume=resume, resume_new_segment=new_segment, progress=False
    ) as rec:
        rec.attach(opt)
        for _ in range(steps):
            loss = model(torch.randn(16, 3, generator=g)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            rec.log_loss(loss)
            opt.step()


def test_recorded_log_schedule_against_brute_force(tmp_path):
    path = tmp_path / "log.zarr"
    _train(path, 600, schedule="log:12")
    with trajstore.open(path) as t:
        assert t.steps.tolist() == log_steps(600, 12).tolist()
        w = t.weights[:]
        ref = brute_force(w, t.steps)
        a = analyze(t, window=1000, progress=False)
    wm = a.windows[0].msd
    assert_matches_brute_force(wm.lags, wm.origins, wm.msd, ref)
    s = a.summary()
    lp = s["windows"][0]["lag_pairs"]
    assert lp["lag_steps"] == list(ref) and lp["n_pairs"] == [n for n, _ in ref.values()]
    assert any("not equally spaced" in n for n in a.notes)
    # the fit (and its bootstrap) runs over the lags with enough pairs only, in steps
    win = s["windows"][0]
    assert lp["n_usable_lags"] == len(wm.usable()) > 0 and lp["lag_unit"] == "steps"
    lo, hi = lp["usable_lag_steps"]
    assert lo <= win["alpha_lag_range"][0] and win["alpha_lag_range"][1] <= hi
    assert win["alpha"] is not None or "alpha" in win["undetermined"]
    assert win["step_length_tail"] is None and "step_length_tail" in win["undetermined"]


def test_cli_record_log_schedule_and_analyze(tmp_path):
    out = tmp_path / "cli.zarr"
    p = run_cli("record", "--schedule", "log:20", "-o", out, FAULT_TRAIN, "--", "--width", 6, "--steps", 400)
    assert p.returncode == 0, p.stderr
    p = run_cli("analyze", out, "-o", tmp_path / "rep", "--window", 500, "--quiet", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    w = doc["windows"][0]
    with trajstore.open(out) as t:
        ref = brute_force(t.weights[:], t.steps)
    assert w["lag_pairs"]["n_pairs"] == [n for n, _ in ref.values()]
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "Lags and pairs" in html and "irregular (by step lag)" in html


def test_segments_are_analysed_without_crossing_a_boundary(tmp_path):
    path = tmp_path / "seg.zarr"
    _train(path, 120, seed=0)
    _train(path, 90, seed=1, resume=True, new_segment=True)  # fresh weights: a new segment
    with trajstore.open(path) as t:
        segs = t.segments
        assert len(segs) == 2
        w, steps = t.weights[:], t.steps
        piece = np.zeros(len(w), int)
        piece[segs[1]] = 1
        for r0, r1 in record_windows(t, 50, partial=True):  # no window straddles the boundary
            assert len(set(piece[r0:r1])) == 1
        part = select(t, steps=f"{int(steps[10])}:")  # a selection keeps the boundary, renumbered
        b = segs[1].start - 10
        assert [(g.start, g.stop) for g in part.segments] == [(0, b), (b, len(w) - 10)]
        ref = brute_force(w, steps, piece)
        whole = pooled_msd(t, [(s.start, s.stop) for s in segs])
        assert_matches_brute_force(whole.lags, whole.origins, whole.msd, ref)
        a = analyze(t, window=50, progress=False)
    s = a.summary()
    assert [g["start_record"] for g in s["segments"]] == [0, segs[1].start]
    assert all(piece[w_.msd.index] is not None for w_ in a.windows)
    starts = [int(np.searchsorted(steps, w_["t_w"])) for w_ in s["windows"]]
    assert segs[1].start in starts  # a window starts at the boundary
    assert s["whole_run"]["lag_pairs"]["lag_unit"] == "steps"
    n_steps = [len(w_.msd.msd) for w_ in a.windows]
    assert sum(w_["n_records"] for w_ in s["windows"]) <= len(w) and max(n_steps) <= 50
    # the pooled step lengths hold no jump across the resume
    jump = np.sqrt(np.sum((w[segs[1].start].astype(float) - w[segs[1].start - 1]) ** 2))
    assert a.step_lengths.max() < jump
    p = run_cli("analyze", path, "-o", tmp_path / "rep", "--window", 50, "--quiet")
    assert p.returncode == 0, p.stderr
    assert "Segments (a resume" in (tmp_path / "rep" / "index.html").read_text()


def _freeze_unfreeze(path, unfreeze_at=40, steps=100):
    """A real run whose first layer is frozen until step ``unfreeze_at``."""
    import torch
    from torch import nn
    from trajstore.recorders import Recorder

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
    for q in model[0].parameters():
        q.requires_grad_(False)
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=0.05)
    g = torch.Generator().manual_seed(0)
    with Recorder(model, path, progress=False) as rec:
        rec.attach(opt)
        for i in range(steps):
            if i == unfreeze_at:
                for q in model[0].parameters():
                    q.requires_grad_(True)
                opt.add_param_group({"params": list(model[0].parameters()), "lr": 0.05})
            loss = model(torch.randn(16, 3, generator=g)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            rec.log_loss(loss)
            opt.step()


def test_trainable_only_by_default_and_all_on_request(tmp_path):
    path = tmp_path / "frozen.zarr"
    _freeze_unfreeze(path)
    with trajstore.open(path) as t:
        part = select(t)  # default: tensors trainable at every selected record
        assert part.layout.names == ["2.weight", "2.bias"]
        assert select(t, trainable_only=False) is t
        later = select(t, steps="41:")  # where the first layer trained: every tensor
        assert later is not t and later.layout.names == t.layout.names
        a = analyze(part, window=50, progress=False)
        sel = a.summary()["selection"]
        assert sel["trainable_only"] is True and sel["frozen_tensors"] == ["0.weight", "0.bias"]
        assert sel["n_params"] == 14
        a_all = analyze(t, window=50, progress=False).summary()["selection"]
        assert a_all["trainable_only"] is False and a_all["frozen_tensors"] == ["0.weight", "0.bias"]
        ref = brute_force(t.weights[:50, 24:], t.steps[:50])
        np.testing.assert_allclose(a.windows[0].msd.msd[1:], [m for _, m in ref.values()], rtol=1e-9)
        with pytest.raises(ValueError, match="--all"):
            select(t, tensors=["0.*"])
    p = run_cli("analyze", path, "-o", tmp_path / "all", "--window", 50, "--quiet", "--json", "--all")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["selection"]["n_params"] == 38 and doc["selection"]["trainable_only"] is False
    assert "included (--all)" in (tmp_path / "all" / "index.html").read_text()
    p = run_cli("compare", path, path, "-o", tmp_path / "cmp", "--window", 50, "--quiet", "--json")
    assert p.returncode == 0, p.stderr  # the default: trainable only
    runs = json.loads(p.stdout)["runs"]
    assert all(r["summary"]["selection"]["trainable_only"] and r["summary"]["n_params"] == 14 for r in runs)
    assert "left out (trainable only)" in (tmp_path / "cmp" / "index.html").read_text()
    p = run_cli("analyze", path, "-o", tmp_path / "x", "--tensors", "0.*", "--quiet")
    assert p.returncode != 0 and p.stderr.count("\n") == 1 and "--all" in p.stderr
