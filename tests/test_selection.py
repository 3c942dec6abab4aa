"""Analysing part of a store: --steps START:STOP[:STRIDE], --tensors GLOB, --exclude GLOB.

The reference for a selection is a second store written with only the selected records and
tensors: reads and analyses of the selection must equal those of that store.
"""

from __future__ import annotations

import numpy as np
import pytest

import trajstore
from trajstore.selection import SelectedTrajectory, StepRange, select

from .conftest import run_cli, write_store
from .test_cli_output import assert_matches, strict

PARAMS = {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (3, 16), "fc.bias": (3,)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0:5000", StepRange(0, 5000, 1)),
        ("10:", StepRange(10, None, 1)),
        (":40", StepRange(None, 40, 1)),
        ("::4", StepRange(None, None, 4)),
        ("2:90:3", StepRange(2, 90, 3)),
    ],
)
def test_step_range_parse(text, expected):
    assert StepRange.parse(text) == expected
    assert StepRange.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["5", "a:b", "10:5", "0:10:0", "-3:10", "1:2:3:4"])
def test_step_range_rejects(text):
    with pytest.raises(ValueError, match="--steps"):
        StepRange.parse(text)


def test_step_mask_against_brute_force():
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64, 100, 128])
    for rng in (StepRange(2, 100, 1), StepRange(None, None, 4), StepRange(1, None, 3), StepRange(None, 9)):
        expected = [
            s
            for s in steps
            if (rng.start is None or s >= rng.start)
            and (rng.stop is None or s < rng.stop)
            and (s - (rng.start or 0)) % rng.stride == 0
        ]
        assert steps[rng.mask(steps)].tolist() == expected


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_selected_reads_equal_numpy_subsets(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    w, steps = write_store(path, n_records=40, chunk_records=8)  # steps 0, 2, …, 78
    layout = trajstore.Layout.from_params(PARAMS)
    with trajstore.open(path) as traj:
        part = select(traj, "10:60:4", tensors=["conv.*", "fc.bias"], exclude=["conv.bias"])
        assert isinstance(part, SelectedTrajectory)
        rows = np.flatnonzero((steps >= 10) & (steps < 60) & ((steps - 10) % 4 == 0))
        cw, fb = layout["conv.weight"], layout["fc.bias"]
        cols = np.r_[cw.offset : cw.stop, fb.offset : fb.stop]
        ref = w[rows][:, cols]
        assert part.layout.names == ["conv.weight", "fc.bias"] and part.n_params == len(cols)
        assert np.array_equal(part.steps, steps[rows]) and part.n_records == len(rows)
        assert np.array_equal(part.weights[:], ref)
        assert np.array_equal(part.weights[3:7, 30:39], ref[3:7, 30:39])  # across the two ranges
        assert np.array_equal(part.weights[-1], ref[-1]) and np.array_equal(part.weights[2, 37], ref[2, 37])
        assert np.array_equal(part.weights[[0, 5], :], ref[[0, 5]])
        assert np.array_equal(part.tensor("fc.bias")[:], ref[:, 36:])
        pieces = np.zeros_like(ref)
        for block in part.blocks(memory_limit=8 * 5 * 8, split_records=True):
            pieces[block.records, block.params] = block.data
        assert np.array_equal(pieces, ref)
        loss_steps, _ = part.observable("loss")
        assert loss_steps.min() >= 10 and loss_steps.max() <= int(steps[rows][-1]) + 1
        assert select(traj) is traj  # nothing restricted: the store itself


def test_analysis_of_a_selection_equals_analysis_of_the_subset_store(tmp_path):
    """Independent reference: the same records and tensors written as a store of their own."""
    from trajstore.analysis.pipeline import analyze

    path = tmp_path / "full.zarr"
    w, steps = write_store(path, n_records=90, loss=False)
    layout = trajstore.Layout.from_params(PARAMS)
    keep = ["conv.weight", "fc.weight"]
    rows = np.flatnonzero((steps >= 20) & (steps < 160))
    cols = np.concatenate([np.arange(layout[n].offset, layout[n].stop) for n in keep])
    ref_path = tmp_path / "subset.zarr"
    with trajstore.create(ref_path, {n: PARAMS[n] for n in keep}, mode="w") as writer:
        for r in rows:
            writer.append(int(steps[r]), w[r, cols])
    with trajstore.open(path) as traj, trajstore.open(ref_path) as ref:
        a = analyze(select(traj, "20:160", tensors=["*.weight"]), window=30, progress=False)
        b = analyze(ref, window=30, progress=False)
    assert a.n_records == b.n_records == len(rows) and a.n_params == b.n_params == len(cols)
    for wa, wb in zip(a.windows, b.windows, strict=True):
        assert wa.msd.t_w == wb.msd.t_w
        np.testing.assert_allclose(wa.msd.msd, wb.msd.msd, rtol=1e-12)
    sa, sb = a.summary(), b.summary()
    assert sa["windows"][0]["alpha"] == pytest.approx(sb["windows"][0]["alpha"], rel=1e-9)
    assert sa["selection"]["steps"] == "20:160" and sa["selection"]["n_params"] == len(cols)
    assert "selection" not in sb and any(n.startswith("selection: steps 20:160") for n in a.notes)


def test_cli_analyze_and_compare_with_a_selection(tmp_path):
    path = tmp_path / "run.h5"
    write_store(path, n_records=60)
    out = tmp_path / "rep"
    p = run_cli(
        "analyze", path, "-o", out, "--window", "20", "--steps", "10:100", "--tensors", "fc.*",
        "--exclude", "*.bias", "--json", "-q",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = strict(p.stdout)
    assert_matches("analyze", doc)
    sel = doc["selection"]
    assert sel["tensors"] == ["fc.*"] and sel["exclude"] == ["*.bias"] and sel["n_params"] == 48
    assert sel["step_range"] == [10, 98] and sel["n_records"] == 45 and sel["store_n_records"] == 60
    assert doc["n_params"] == 48 and doc["n_records"] == 45
    assert "selection: steps 10:100, tensors fc.*, excluding *.bias" in (out / "index.html").read_text()
    p = run_cli("compare", path, path, "-o", tmp_path / "c", "--window", "20", "--steps", ":40", "--json")
    assert p.returncode == 0, p.stderr
    assert all(r["summary"]["selection"]["n_records"] == 20 for r in strict(p.stdout)["runs"])
    assert "selection: steps :40: 20 of 60 records" in (tmp_path / "c" / "index.html").read_text()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tensors", "layer3.*"], "the pattern 'layer3.*' matches no tensor"),
        (["--exclude", "*"], "leave no tensor"),
        (["--steps", "1000:2000"], "selects 0 record(s)"),
        (["--steps", "9:3"], "STOP must be greater than START"),
    ],
)
def test_bad_selection_is_a_one_line_error(tmp_path, args, needle):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=20)
    p = run_cli("analyze", path, "-o", tmp_path / "r", *args)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], p.stderr
    assert not (tmp_path / "r").exists()
