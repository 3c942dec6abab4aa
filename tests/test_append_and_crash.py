"""Re-opening in append mode, and what survives a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import trajstore
from trajstore.errors import LayoutError, StoreExistsError

from .conftest import write_store


def test_append_after_reopen_continues(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    w, steps = write_store(path, n_records=13, chunk_records=8)  # ends mid-block
    params = {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (3, 16), "fc.bias": (3,)}
    extra = np.random.default_rng(5).normal(size=(20, w.shape[1])).astype(np.float32)
    with trajstore.create(path, params, mode="a") as wr:
        assert wr.n_records == 13 and wr.last_step == steps[-1]
        with pytest.raises(ValueError, match="not after the last recorded step"):
            wr.append(int(steps[-1]), extra[0])
        for i, row in enumerate(extra):
            wr.append(100 + i, row)
            wr.log("loss", 100 + i, -1.0)
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.weights[:], np.concatenate([w, extra]))
        np.testing.assert_array_equal(t.steps, np.concatenate([steps, 100 + np.arange(20)]))
        s, v = t.observable("loss")
        assert len(s) == 12 + 20 and v[-1] == -1.0
        assert t.metadata == {"lab": "test"}


def test_reopen_refuses_a_different_layout(tmp_path, suffix):
    path = tmp_path / f"l{suffix}"
    write_store(path, n_records=3)
    before = trajstore.open(path).weights[:]
    with pytest.raises(LayoutError, match="different parameter layout.*fc.weight"):
        trajstore.create(
            path,
            {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (3, 15), "fc.bias": (3,)},
            mode="a",
        )
    with trajstore.open(path) as t:  # nothing lost
        np.testing.assert_array_equal(t.weights[:], before)


def test_create_refuses_existing_without_mode(tmp_path, suffix):
    path = tmp_path / f"e{suffix}"
    write_store(path, n_records=3)
    with pytest.raises(StoreExistsError, match="exists"):
        trajstore.create(path, 5)
    assert trajstore.open(path).n_records == 3


def test_wrong_weight_length_leaves_store_intact(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    with trajstore.create(path, 5) as wr:
        wr.append(0, np.ones(5))
        with pytest.raises(LayoutError, match="shape \\(4,\\).*5 parameters"):
            wr.append(1, np.ones(4))
        wr.append(1, np.full(5, 2.0))
    assert trajstore.open(path).weights[:].tolist() == [[1.0] * 5, [2.0] * 5]


def test_uncommitted_records_are_invisible(tmp_path, suffix):
    path = tmp_path / f"u{suffix}"
    wr = trajstore.create(path, 3, chunk_records=4)
    for s in range(6):  # one full block (committed) + 2 buffered records
        wr.append(s, np.full(3, s))
    wr.flush()
    for s in range(6, 7):
        wr.append(s, np.full(3, s))
    # Simulate data written but not committed: write pending without raising n_committed.
    wr._series["weights"].write_pending()
    wr._backend.flush()
    with trajstore.open(path) as t:
        assert t.n_records == 6 and t.steps.tolist() == list(range(6))
    wr.close()
    assert trajstore.open(path).n_records == 7


def test_append_after_a_crash_between_the_resizes_keeps_step_and_time(tmp_path, suffix):
    """A kill between growing weights/value and growing weights/step and time (seen 4 times in
    40 kill -9 runs) left step and time shorter than value; the next append after reopening
    wrote its step and time past their end, which was dropped silently (fill values read back,
    the integrity index then calling the store damaged)."""
    path = tmp_path / f"r{suffix}"
    with trajstore.create(path, 8, chunk_records=16) as wr:
        for s in range(32):  # two full blocks: the arrays end at a block boundary
            wr.append(s, np.full(8, s, dtype=np.float32))
    # the crashed writer grew value, not yet step and time
    if suffix == ".zarr":
        import zarr

        value = zarr.open_array(str(path / "weights" / "value"), mode="r+")
        value.resize((48, 8))
    else:
        import h5py

        with h5py.File(path, "r+") as f:
            f["weights/value"].resize((48, 8))
    with trajstore.create(path, 8, mode="a") as wr:
        wr.append(32, np.full(8, 32, dtype=np.float32))
    with trajstore.open(path) as t:
        assert t.n_records == 33
        assert t.steps[-1] == 32 and t.weights[32, 0] == 32
        assert t.times[-1] > 0
    from trajstore.validate import validate

    assert validate(path).valid


CRASHER = textwrap.dedent("""
    import sys, numpy as np, trajstore
    path = sys.argv[1]
    wr = trajstore.create(path, 1000, chunk_records=16)
    s = 0
    while True:
        wr.append(s, np.full(1000, s, dtype=np.float32))
        wr.log("loss", s, float(s))
        if s % 10 == 9:
            wr.flush()
            if s == 49:
                print("flushed", flush=True)
        s += 1
""")


def test_kill_9_leaves_valid_prefix_and_append_continues(tmp_path, suffix):
    path = tmp_path / f"k{suffix}"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "flushed"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from trajstore.validate import validate

    report = validate(path)
    assert report.valid, report.problems
    with trajstore.open(path) as t:
        n = t.n_records
        assert n >= 50
        np.testing.assert_array_equal(t.steps, np.arange(n))
        np.testing.assert_array_equal(t.weights[:, 7], np.arange(n, dtype=np.float32))
    with trajstore.create(path, 1000, mode="a") as wr:
        wr.append(n, np.full(1000, n, dtype=np.float32))
    with trajstore.open(path) as t:
        assert t.n_records == n + 1 and t.weights[n, 0] == n
