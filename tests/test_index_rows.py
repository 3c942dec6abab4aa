"""(1.2) HDF5 keeps the full blocks of an integrity index as rows of ``<group>/integrity``, so a
commit costs O(new blocks): a 1.1 writer rewrote the whole JSON attribute at every commit, and
writing 40,000 records in 8-record chunks took minutes (bench/commit_cost.py)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import trajstore
from trajstore import spec
from trajstore.backends import open_backend
from trajstore.integrity import read_index
from trajstore.validate import validate

from .conftest import write_store


def _attr_index(path, group="weights") -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f[group].attrs["integrity"])


def test_a_commit_writes_only_its_new_block(tmp_path):
    """Each commit writes one new row and an attribute whose size does not grow with the
    blocks before it: with the whole index rewritten per commit both grow with their count."""
    path = tmp_path / "c.h5"
    n_blocks, width = 300, 4
    data = np.random.default_rng(0).standard_normal((8 * n_blocks, width)).astype(np.float32)
    attr_sizes: list[int] = []
    row_writes: list[tuple[int, int]] = []
    with trajstore.create(path, width, chunk_records=8, chunk_params=width) as w:
        b = w._backend  # the real HDF5 back end: what each commit hands it is recorded
        set_attrs, write_rows = b.set_attrs, b.write_rows

        def recording_set_attrs(group, values):
            if group == spec.WEIGHTS and spec.ATTR_INTEGRITY in values:
                attr_sizes.append(len(json.dumps(values[spec.ATTR_INTEGRITY])))
            set_attrs(group, values)

        def recording_write_rows(p, start, rows):
            row_writes.append((start, len(rows)))
            write_rows(p, start, rows)

        b.set_attrs, b.write_rows = recording_set_attrs, recording_write_rows
        for i, row in enumerate(data):
            w.append(i, row)
    assert len(attr_sizes) == n_blocks
    assert max(attr_sizes) <= attr_sizes[0] + 16, (attr_sizes[0], max(attr_sizes))  # digits of counts
    assert row_writes == [(k, 1) for k in range(n_blocks)]
    ix = _attr_index(path)
    assert ix["n_blocks"] == n_blocks and ix["blocks"] == [] and ix["n_committed"] == len(data)
    with trajstore.open(path) as t:
        assert np.array_equal(t.weights[:], data)
    assert validate(path).valid


def _index(path):
    b = open_backend(str(path), "r")
    try:
        return read_index(b, spec.WEIGHTS, (1, 2))
    finally:
        b.close()


def test_rows_give_the_index_zarr_keeps_in_its_attribute(tmp_path):
    """Same records, same index (record ranges and digests) in both back ends; plain h5py reads
    the rows (nulls as -1) followed by the attribute's partial block."""
    write_store(tmp_path / "a.zarr", n_records=29)
    write_store(tmp_path / "a.h5", n_records=29)
    z, h = _index(tmp_path / "a.zarr"), _index(tmp_path / "a.h5")
    ranges = [(b.start, b.stop, b.digests) for b in z.blocks]
    assert ranges == [(b.start, b.stop, b.digests) for b in h.blocks]
    assert len(h.blocks) == 4 and h.n_committed == z.n_committed == 29
    ix = _attr_index(tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        rows = f["weights/integrity"][: ix["n_blocks"]]
    assert rows.shape == (3, 7) and ix["blocks"] == [[24, 29, *h.blocks[3].digests.values(), None, None]]
    assert rows.tolist() == [[b.start, b.stop, *b.digests.values(), -1, -1] for b in h.blocks[:3]]


def _as_11(path, group="weights"):
    """What a 1.1 writer left: every block listed in the attribute, no integrity dataset."""
    with h5py.File(path, "r+", locking=False) as f:
        g = f[group]
        ix = json.loads(g.attrs["integrity"])
        rows = g["integrity"][: ix.pop("n_blocks")].tolist()
        del g["integrity"]
        ix["blocks"] = [[*r[:-2], None, None] for r in rows] + ix["blocks"]
        g.attrs["integrity"] = json.dumps(ix)


def test_a_11_file_reads_validates_and_continues_as_rows(tmp_path):
    path = tmp_path / "old.h5"
    w, _ = write_store(path, n_records=20)
    _as_11(path)
    before = _index(path)
    assert validate(path).valid
    with trajstore.open(path) as t:
        assert np.array_equal(t.weights[:], w)
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        for i in range(20, 37):
            wr.append(1000 + i, w[i % 20] + 1)
    assert validate(path).valid
    after = _index(path)
    assert after.blocks[:2] == before.blocks[:2] and after.n_committed == 37
    ix = _attr_index(path)
    assert ix["n_blocks"] == 4 and len(ix["blocks"]) == 1  # migrated: full blocks became rows


def test_rows_past_the_commit_are_written_again(tmp_path):
    """A crash after the index (rows and attribute) but before ``n_committed``: the writer that
    continues rewrites those blocks with new values, and their rows with them."""
    path = tmp_path / "crash.h5"
    w, _ = write_store(path, n_records=40, loss=False)
    with h5py.File(path, "r+", locking=False) as f:
        f["weights"].attrs["n_committed"] = 24  # records 24..39 written and indexed, not committed
    assert _attr_index(path)["n_blocks"] == 5
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        for i in range(24, 40):
            wr.append(1000 + i, w[i] + 1)  # other values than the uncommitted ones
    report = validate(path)
    assert report.valid, report.problems
    with trajstore.open(path) as t:
        assert np.array_equal(t.weights[24:], w[24:] + 1)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda g, ix: ix.update(n_blocks=ix["n_blocks"] + 1), "no more than|at least"),
        (lambda g, ix: g.__delitem__("integrity"), "no array"),
        (lambda g, ix: ix.update(n_blocks=10**12), "n_blocks"),
    ],
    ids=["n_blocks past the rows", "rows deleted", "n_blocks 1e12"],
)
def test_damaged_rows_are_refused_in_one_line(tmp_path, edit, match):
    path = tmp_path / "d.h5"
    write_store(path, n_records=40)
    with h5py.File(path, "r+", locking=False) as f:
        ix = json.loads(f["weights"].attrs["integrity"])
        edit(f["weights"], ix)
        f["weights"].attrs["integrity"] = json.dumps(ix)
    with pytest.raises(trajstore.TrajstoreError, match=match) as err:
        trajstore.open(path).weights[:]
    assert "\n" not in str(err.value) and "[V41]" in str(err.value)
    assert "V41" in validate(path).rules_broken


def test_a_damaged_row_chunk_is_refused_in_one_line(tmp_path):
    """A byte of the rows' chunk flipped: its Fletcher-32 checksum fails, nothing is trusted."""
    path = tmp_path / "f.h5"
    write_store(path, n_records=40)
    with h5py.File(path, "r") as f:
        info = f["weights/integrity"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 3)
        byte = fh.read(1)[0]
        fh.seek(info.byte_offset + 3)
        fh.write(bytes([byte ^ 0xFF]))
    with pytest.raises(trajstore.TrajstoreError, match="weights/integrity cannot be read") as err:
        trajstore.open(path).weights[:]
    assert "\n" not in str(err.value)
    assert "V41" in validate(path).rules_broken
