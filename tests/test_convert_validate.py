"""convert (bit-identical both ways) and validate (each broken rule caught)."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import zarr

import trajstore
from trajstore.convert import convert
from trajstore.validate import validate

from .conftest import flip_hdf5_chunk, write_store


def _dump(path):
    with trajstore.open(path) as t:
        obs = {n: t.observable(n) for n in t.observables}
        return t.weights[:], t.steps, t.times, t.layout, t.metadata, t.provenance, t.attrs["created"], obs


@pytest.mark.parametrize("src_suffix,dst_suffix", [(".zarr", ".h5"), (".h5", ".zarr")])
def test_convert_is_bit_identical(tmp_path, src_suffix, dst_suffix):
    src = tmp_path / f"s{src_suffix}"
    w, _ = write_store(src, n_records=37)
    with trajstore.create(src, trajstore.open(src).layout, mode="a") as wr:
        wr.append(1000, np.full(w.shape[1], np.nan, dtype=np.float32))
    dst = tmp_path / f"d{dst_suffix}"
    back = tmp_path / f"b{src_suffix}"
    convert(src, dst)
    convert(dst, back)
    a, b, c = _dump(src), _dump(dst), _dump(back)
    for x in (b, c):
        assert a[0].tobytes() == x[0].tobytes()  # bit for bit, NaN included
        np.testing.assert_array_equal(a[1], x[1])
        np.testing.assert_array_equal(a[2], x[2])
        assert a[3] == x[3] and a[4:7] == x[4:7]
        for name in a[7]:
            np.testing.assert_array_equal(a[7][name][0], x[7][name][0])
            assert a[7][name][1].tobytes() == x[7][name][1].tobytes()
    assert validate(dst).valid and validate(back).valid


def test_valid_store_validates(store):
    path, _, _ = store
    r = validate(path)
    assert r.valid, r.problems
    assert not r.warnings


def _break_attr(path, group, key, value):
    if str(path).endswith(".zarr"):
        node = zarr.open_group(path, mode="r+")
        (node if group == "" else node[group]).attrs[key] = value
    else:
        with h5py.File(path, "r+", locking=False) as f:
            node = f if group == "" else f[group]
            node.attrs[key] = json.dumps(value) if isinstance(value, (list, dict)) or value is None else value


BROKEN = [
    ("", "spec_version", "1.x", "malformed spec version"),
    ("", "spec_version", "2.0", "newer"),
    ("weights", "n_committed", 10**6, "truncated"),
    ("weights", "n_committed", -1, "n_committed"),
    ("weights", "layout", [{"name": "a", "shape": [3], "offset": 1}], "offset"),
    ("weights", "layout", [{"name": "a", "shape": [3], "offset": 0}], "columns but the layout"),
    ("observables/loss", "evaluated_at", "sometime", "evaluated_at"),
]


@pytest.mark.parametrize("group,key,value,message", BROKEN)
def test_validate_catches_broken_rule(store, group, key, value, message):
    path, _, _ = store
    _break_attr(path, group, key, value)
    r = validate(path)
    assert not r.valid
    assert any(message in p for p in r.problems), r.problems


def test_validate_catches_decreasing_steps(store):
    path, _, steps = store
    if str(path).endswith(".zarr"):
        zarr.open_group(path, mode="r+")["weights/step"][3] = 0
    else:
        with h5py.File(path, "r+", locking=False) as f:
            f["weights/step"][3] = 0
    r = validate(path)
    assert any("steps must increase" in p for p in r.problems)


def test_validate_names_corrupted_chunk(tmp_path):
    path = tmp_path / "c.zarr"
    write_store(path, n_records=40, chunk_records=8)
    shard = path / "weights" / "value" / "c" / "2" / "0"
    data = bytearray(shard.read_bytes())
    data[20] ^= 0xFF
    shard.write_bytes(bytes(data))
    r = validate(path)
    # One line for the shard: its tail differs [V43] and its one chunk fails its checksum [V35].
    assert len(r.problems) == 1 and r.rules_broken == {"V43", "V35"}, r.problems
    assert "stored object weights/value/c/2/0 differs" in r.problems[0]
    assert "chunk (2, 0) is corrupted" in r.problems[0]
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.weights[:16].shape, (16, t.n_params))  # other chunks still read
        msg = r"weights/value records 16\.\.23: stored object weights/value/c/2/0 differs"
        with pytest.raises(trajstore.TrajstoreError, match=msg):
            t.weights[16:24]


def test_validate_reports_corrupted_hdf5_chunk(tmp_path):
    path = tmp_path / "c.h5"
    w, _ = write_store(path, n_records=40, chunk_records=8)
    flip_hdf5_chunk(path)
    r = validate(path)
    assert any("weights/value: chunk (1, 0) is corrupted" in p for p in r.problems), r.problems


def test_validate_warns_about_nonfinite(tmp_path, suffix):
    path = tmp_path / f"n{suffix}"
    with trajstore.create(path, 3) as wr:
        wr.append(0, [1.0, np.nan, np.inf])
    r = validate(path)
    assert r.valid and r.nonfinite == {"weights/value": 2}


def test_truncated_hdf5(tmp_path):
    path = tmp_path / "t.h5"
    write_store(path)
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(trajstore.TrajstoreError, match="not a readable HDF5 file|truncated"):
        trajstore.open(path)
    assert not validate(path).valid
