"""A store written by trajstore, read with plain zarr / h5py following only docs/format.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import zarr

from .conftest import stored_index, write_store

DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"


def doc_code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_examples_run_and_give_the_stored_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w, steps = write_store("run.zarr")
    write_store("run.h5")
    blocks = doc_code_blocks()
    assert len(blocks) == 3
    ns: dict = {}
    exec(blocks[0], ns)  # zarr
    zarr_blocks = ns["blocks"]
    assert ns["k"] >= 1 and len(zarr_blocks) == 7  # (1.2) the rows are read, and the partial block
    np.testing.assert_array_equal(ns["weights"], w)
    np.testing.assert_array_equal(ns["steps"], steps)
    t = ns["t"]  # the first tensor of the layout
    expected_tensor = w[:, t["offset"] : t["offset"] + t["size"]].reshape(-1, *t["shape"])
    np.testing.assert_array_equal(ns["tensor"], expected_tensor)
    assert ns["d"] == ns["expected"]  # the doc's digest of one block matches the index
    np.testing.assert_array_equal(ns["loss_values"], 1.0 / np.arange(2, len(w) + 1))
    exec(blocks[1], ns)  # h5py
    np.testing.assert_array_equal(ns["weights"], w)
    assert ns["provenance"] == {"seed": 0}
    # (1.2) the HDF5 index (rows + listed blocks) has the zarr index's record ranges and digests,
    # and both are trajstore's own index (nulls are -1 in rows, None when listed)
    assert [b[:5] for b in ns["blocks"]] == [b[:5] for b in zarr_blocks]
    own = stored_index("run.zarr")
    assert [b[:5] for b in zarr_blocks] == [[b.start, b.stop, *b.digests.values()] for b in own.blocks]
    exec(blocks[2], ns)  # loss/weight pairing
    pw, pl = ns["pairs"]
    # loss at step s (record i) belongs to the weights of step s - 1 = record i - 1: steps are 0,2,4..
    # so s - 1 is never a recorded step here and no pair may be formed
    assert len(pl) == 0


def test_pairing_when_every_step_is_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import trajstore

    w = np.arange(30, dtype=np.float32).reshape(10, 3)
    with trajstore.create("run.zarr", 3) as wr:
        for s in range(10):
            wr.append(s, w[s])
            if s:
                wr.log("loss", s, 100.0 + s, evaluated_at="pre_step")
    ns: dict = {}
    exec(doc_code_blocks()[0], ns)
    exec(doc_code_blocks()[2], ns)
    pw, pl = ns["pairs"]
    np.testing.assert_array_equal(pw, w[:9])  # loss of step s pairs with weights of step s-1
    np.testing.assert_array_equal(pl, 100.0 + np.arange(1, 10))


def test_plain_zarr_sees_spec_metadata(store):
    path, w, _ = store
    if path.suffix == ".zarr":
        root = zarr.open_group(path, mode="r")
        arr = root["weights/value"]
        assert arr.metadata.dimension_names == ("record", "param")
        codecs = json.dumps(arr.metadata.to_dict()["codecs"])
        for name in ("sharding_indexed", "transpose", "blosc", "crc32c"):
            assert name in codecs
        assert arr.shape == w.shape  # a closed store has no padding
    else:
        with h5py.File(path, "r") as f:
            ds = f["weights/value"]
            assert ds.shuffle and ds.compression == "gzip" and ds.fletcher32
            assert json.loads(ds.attrs["dimension_names"]) == ["record", "param"]
            assert ds.shape == w.shape


def test_xarray_opens_a_group(tmp_path):
    import xarray as xr

    w, steps = write_store(tmp_path / "x.zarr")
    ds = xr.open_zarr(tmp_path / "x.zarr", group="weights", consolidated=False)
    # (1.2) the integrity index's rows come along as a variable of their own dimensions
    assert dict(ds.sizes) == {"record": len(w), "param": w.shape[1], "block": 6, "field": 7}
    assert ds["integrity"].dims == ("block", "field") and ds["integrity"].dtype == np.int64
    np.testing.assert_array_equal(ds["value"].values, w)
    np.testing.assert_array_equal(ds["step"].values, steps)
