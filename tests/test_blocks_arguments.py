"""Trajectory.blocks takes what docs/api.md promises (slices without a step, or None); anything
else is a one-line error at the call that says what to pass. ``records=(10, 20)`` used to raise
AttributeError ('tuple' object has no attribute 'indices'), and a step was silently ignored."""

from __future__ import annotations

import numpy as np
import pytest

import trajstore
from trajstore.selection import select

from .conftest import write_store


@pytest.fixture
def traj(tmp_path):
    w, _ = write_store(tmp_path / "s.zarr", n_records=30)
    with trajstore.open(tmp_path / "s.zarr") as t:
        yield t, w


def test_slices_and_none_read_what_they_say(traj):
    t, w = traj
    got = np.concatenate([b.data for b in t.blocks(records=slice(10, 20), memory_limit=1 << 30)])
    np.testing.assert_array_equal(got, w[10:20])
    pieces = list(t.blocks(params=slice(5, 40)))
    assert sum(b.data.shape[1] for b in pieces) == 35 and all(b.records == slice(0, 30) for b in pieces)


@pytest.mark.parametrize("bad", [(10, 20), [10, 20], 10, range(10, 20), np.arange(10, 20)])
def test_other_types_are_a_one_line_type_error_at_the_call(traj, bad):
    t, _ = traj
    for view in (t, select(t, steps="0:40")):
        with pytest.raises(TypeError, match=r"takes a slice or None.*records=slice\(10, 20\)") as exc:
            view.blocks(records=bad)  # raised here, before any iteration
        assert "\n" not in str(exc.value)
    with pytest.raises(TypeError, match=r"params=slice"):
        t.blocks(params=(0, 10))


def test_a_step_is_refused_not_ignored(traj):
    t, _ = traj
    with pytest.raises(ValueError, match="a step is not supported"):
        t.blocks(records=slice(0, 30, 2))
