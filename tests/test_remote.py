"""Stores opened by URL through fsspec (the in-memory filesystem stands in for object stores)."""

from __future__ import annotations

import numpy as np
import pytest

import trajstore

from .conftest import write_store


def test_open_by_fsspec_url(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    w, steps = write_store(tmp_path / "run.zarr", n_records=20)
    fs = fsspec.filesystem("memory")
    fs.put(str(tmp_path / "run.zarr"), "/shared/run.zarr", recursive=True)
    with trajstore.open("memory://shared/run.zarr") as t:
        np.testing.assert_array_equal(t.weights[3:7], w[3:7])
        np.testing.assert_array_equal(t.steps, steps)
        assert t.observable("loss")[0][0] == steps[1]
    with pytest.raises(trajstore.TrajstoreError, match="not a Zarr v3 store"):
        trajstore.open("memory://shared/missing.zarr")
