"""Every rule id of docs/format.md is checked by validate, and breaking just that rule makes
validate name it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

import trajstore
from trajstore.validate import RULES, validate

from .conftest import flip_hdf5_chunk, write_store

FORMAT_MD = Path(__file__).resolve().parents[1] / "docs" / "format.md"


def _edit_json(path, node, fn):
    f = path / node / "zarr.json"
    meta = json.loads(f.read_text())
    fn(meta)
    f.write_text(json.dumps(meta))


def _attr(path, group, key, value):
    if str(path).endswith(".zarr"):
        node = zarr.open_group(path, mode="r+")
        (node[group] if group else node).attrs[key] = value
    else:
        with h5py.File(path, "r+", locking=False) as f:
            node = f[group] if group else f
            node.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value


def _index_edit(group, fn):
    def edit(path):
        ix = zarr.open_group(path, mode="r")[group].attrs["integrity"]
        fn(ix)
        _attr(path, group, "integrity", ix)

    return edit


def _row_edit(group, row, col, fn):
    """Change one field of a block kept as a row of ``<group>/integrity`` (1.2)."""

    def edit(path):
        rows = zarr.open_group(path, mode="r+")[group]["integrity"]
        rows[row, col] = fn(int(rows[row, col]))

    return edit


def _as_10(path):
    """Make the store what a 1.0 writer wrote, so editing data breaks only the rule under test."""
    root = zarr.open_group(path, mode="r+")
    root.attrs["spec_version"] = "1.0"
    del root.attrs["groups"]
    for g in ("weights", "observables/loss"):
        del root[g].attrs["integrity"]


def _decreasing_steps(path):
    _as_10(path)
    zarr.open_group(path, mode="r+")["weights/step"][3] = 0


def _gradients_store(path):
    with trajstore.create(path, {"a": (3,), "b": (2,)}, gradients=True) as wr:
        for i in range(3):
            wr.append(i, np.arange(5) + i, gradients=np.ones(5))
    _attr(path, "gradients", "layout", [{"name": "c", "shape": [5], "offset": 0, "size": 5}])


def _set_endian_big(meta):
    for c in meta["codecs"][0]["configuration"]["codecs"]:
        if c["name"] == "bytes":
            c["configuration"] = {"endian": "big"}


def _inner_chunk(meta):
    meta["codecs"][0]["configuration"]["chunk_shape"] = [3, 91]


def _unknown_codec(meta):
    for c in meta["codecs"]:
        if c["name"] == "crc32c":
            c["name"] = "adler32"


def _sketch_store(path, step_shift=0):
    """(1.2) A store with its full weights, a sketch and a sample of every record (the sketch
    ``step_shift`` steps off the weights: a store that breaks V66 as written)."""
    from trajstore.sketch import SketchRecording

    w, steps = write_store(path, n_records=40, chunk_records=8)
    with trajstore.open(path) as t:
        layout = t.layout
    with trajstore.create(path, layout, mode="a") as wr:
        rec = SketchRecording(wr, sketch_dim=16, sample_size=10, sketch_seed=1)
        for i, s in enumerate(steps):
            rec.append_weights(int(s) + step_shift, w[i])


def _zarr_set(node, index, value):
    def edit(path):
        zarr.open_group(path, mode="r+")[node][index] = value

    return edit


# rule -> (suffix, how to break exactly that rule)
BREAK = {
    "V01": (".zarr", lambda p: _attr(p, "", "spec_name", "trajstorx")),
    "V02": (".zarr", lambda p: _attr(p, "", "spec_version", "9.0")),
    "V03": (".zarr", lambda p: _attr(p, "", "creator", "me")),
    "V04": (".zarr", lambda p: _attr(p, "", "created", "2024-01-01T00:00:00")),
    "V05": (".zarr", lambda p: _attr(p, "", "metadata", [1])),
    "V06": (".zarr", lambda p: _attr(p, "", "lossy", {"method": "bitround", "keepbits": 99, "groups": []})),
    "V10": (".h5", lambda p: (_h5_delete(p, "weights"), _attr(p, "", "groups", ["observables/loss"]))),
    "V11": (".h5", lambda p: _h5_delete(p, "weights/step")),
    "V12": (
        ".zarr",
        lambda p: _attr(p, "weights", "layout", [{"name": "a", "shape": [10.5, 15], "offset": 0}]),
    ),
    "V13": (".zarr", lambda p: _attr(p, "weights", "layout", [{"name": "a", "shape": [92], "offset": 0}])),
    "V14": (".zarr", None),  # a store with gradients, see test
    "V15": (".h5", lambda p: _attr(p, "weights", "n_committed", -1)),
    "V16": (".zarr", lambda p: _attr(p, "weights", "n_committed", 41)),
    "V17": (".zarr", _decreasing_steps),
    "V18": (".zarr", lambda p: _attr(p, "observables/loss", "evaluated_at", "sometime")),
    "V20": (".zarr", lambda p: _edit_json(p, "weights/value", lambda m: m.update(data_type="int32"))),
    "V21": (".zarr", lambda p: _edit_json(p, "weights/step", lambda m: m.update(data_type="int32"))),
    "V22": (".zarr", lambda p: _edit_json(p, "weights/time", lambda m: m.update(dimension_names=["t"]))),
    "V30": (".zarr", lambda p: _edit_json(p, "weights/time", _unknown_codec)),
    "V31": (".zarr", lambda p: _edit_json(p, "weights/value", _set_endian_big)),
    "V32": (".zarr", lambda p: _edit_json(p, "weights/value", _inner_chunk)),
    "V33": (".h5", lambda p: _h5_filter(p, "observables/loss/value")),
    "V35": (".h5", flip_hdf5_chunk),
    "V40": (".zarr", lambda p: zarr.open_group(p, mode="r+")["weights"].attrs.pop("integrity")),
    "V41": (".zarr", _index_edit("weights", lambda ix: ix.update(algorithm="md5"))),
    "V42": (".zarr", lambda p: (p / "weights" / "value" / "c" / "2" / "0").unlink()),
    "V43": (".zarr", _row_edit("weights", 1, 5, lambda nbytes: nbytes + 1)),
    "V44": (".zarr", _row_edit("weights", 1, 2, lambda crc: (crc + 7) % 2**32)),
    "V45": (".zarr", lambda p: _attr(p, "", "groups", ["weights", "observables/lost"])),
    "V46": (".zarr", lambda p: _attr(p, "", "trainable", [{"step": 0, "trainable": [True]}])),
    "V47": (".h5", lambda p: _attr(p, "", "segments", [{"start_record": "3"}])),
    "V48": (".zarr", lambda p: _attr(p, "", "gradient_source", "guessed")),
    "V50": (".zarr", lambda p: _attr(p, "", "dataset", {"authors": "Ada"})),
    "V51": (".h5", lambda p: _attr(p, "", "store_id", "not-a-uuid")),
    "V52": (".zarr", lambda p: _attr(p, "", "derived_from", {"store_id": None})),
    # (1.2) sketch recording: made by _sketch_store (MAKERS), then broken
    "V60": (
        ".zarr",
        lambda p: _attr(p, "sketch", "sketch", {**_read_attr(p, "sketch", "sketch"), "hash": "md5"}),
    ),
    "V61": (
        ".h5",
        lambda p: _attr(
            p, "sketch", "layout", [{"name": "s", "shape": [16], "dtype": "float64", "offset": 0, "size": 16}]
        ),
    ),
    "V62": (
        ".h5",
        lambda p: _attr(p, "sample", "sample", {**_read_attr(p, "sample", "sample"), "method": "strata"}),
    ),
    "V63": (".zarr", _zarr_set("sample/index", 0, 10**6)),
    "V64": (
        ".zarr",
        lambda p: _attr(
            p, "sample", "layout", [{"name": "x", "shape": [10], "dtype": "float32", "offset": 0, "size": 10}]
        ),
    ),
    "V65": (".zarr", lambda p: _attr(p, "", "full_weights", "yes")),
    "V66": (".zarr", None),  # written with the sketch one step off the weights, see MAKERS
    "V67": (".h5", lambda p: _attr(p, "", "spec_version", "1.1")),
    "V76": (".zarr", lambda p: _attr(p, "", "weights_taken", "whenever")),
    "V90": (".h5", lambda p: _attr(p, "", "tensor_modules", ["Conv2d"])),  # one entry for 4 tensors
}

MAKERS = {
    "V14": _gradients_store,
    **{f"V6{i}": _sketch_store for i in range(8)},
    "V66": lambda p: _sketch_store(p, step_shift=1),
}


def _read_attr(path, group, key):
    if str(path).endswith(".zarr"):
        return dict(zarr.open_group(path, mode="r")[group].attrs[key])
    with h5py.File(path, "r", locking=False) as f:
        return json.loads(f[group].attrs[key])


def _h5_delete(path, name):
    with h5py.File(path, "r+", locking=False) as f:
        del f[name]


def _h5_filter(path, name):
    """Rewrite a dataset with the lossy scale-offset filter, not allowed by the spec."""
    with h5py.File(path, "r+", locking=False) as f:
        old = f[name]
        data, attrs, chunks = old[()], dict(old.attrs), old.chunks
        del f[name]
        ds = f.create_dataset(name, data=data, chunks=chunks, maxshape=(None,), scaleoffset=6)
        for k, v in attrs.items():
            ds.attrs[k] = v


def test_every_rule_in_the_spec_is_checked_and_tested():
    in_spec = set(re.findall(r"\[(V\d\d)\]", FORMAT_MD.read_text()))
    assert in_spec == set(RULES), in_spec ^ set(RULES)
    assert set(BREAK) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BREAK))
def test_breaking_one_rule_is_named(tmp_path, rule):
    suffix, breaker = BREAK[rule]
    path = tmp_path / f"s{suffix}"
    if breaker is None:
        MAKERS[rule](path)
    else:
        (MAKERS.get(rule) or (lambda p: write_store(p, n_records=40, chunk_records=8)))(path)
        assert validate(path).valid, validate(path).problems
        breaker(path)
    report = validate(path)
    assert rule in report.rules_broken, report.problems
    # The store breaks this rule only (a missing step array, say, is not also a bad dtype).
    assert report.rules_broken == {rule}, report.problems
