"""(1.2) Both back ends keep the full blocks of an integrity index as rows of
``<group>/integrity``, so a commit costs O(new blocks): a 1.1 writer rewrote the whole JSON
attribute at every commit, and writing 40,000 records in 8-record chunks took minutes
(bench/commit_cost.py)."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import zarr

import trajstore
from trajstore import spec
from trajstore.backends import open_backend
from trajstore.shards import ShardFormat
from trajstore.validate import validate

from .conftest import stored_index, write_store

SUFFIXES = pytest.mark.parametrize("suffix", [".h5", ".zarr"])


def _attr_index(path, group="weights") -> dict:
    if str(path).endswith(".zarr"):
        return dict(zarr.open_group(path, mode="r")[group].attrs["integrity"])
    with h5py.File(path, "r") as f:
        return json.loads(f[group].attrs["integrity"])


def _set_attr_index(path, ix, group="weights") -> None:
    if str(path).endswith(".zarr"):
        zarr.open_group(path, mode="r+")[group].attrs["integrity"] = ix
        return
    with h5py.File(path, "r+", locking=False) as f:
        f[group].attrs["integrity"] = json.dumps(ix)


def _rows(path, group="weights") -> np.ndarray:
    """The rows array as plain zarr / h5py read it."""
    if str(path).endswith(".zarr"):
        return zarr.open_array(path / group / "integrity", mode="r")[()]
    with h5py.File(path, "r") as f:
        return f[group]["integrity"][()]


def _delete_rows(path, group="weights") -> None:
    if str(path).endswith(".zarr"):
        shutil.rmtree(path / group / "integrity")
        return
    with h5py.File(path, "r+", locking=False) as f:
        del f[group]["integrity"]


@SUFFIXES
def test_a_commit_writes_only_its_new_block(tmp_path, suffix):
    """Each commit writes one new row and an attribute whose size does not grow with the
    blocks before it: with the whole index rewritten per commit both grow with their count."""
    path = tmp_path / f"c{suffix}"
    n_blocks, width = 300, 4
    data = np.random.default_rng(0).standard_normal((8 * n_blocks, width)).astype(np.float32)
    attr_sizes: list[int] = []
    row_writes: list[tuple[int, int]] = []
    with trajstore.create(path, width, chunk_records=8, chunk_params=width) as w:
        b = w._backend  # the real back end: what each commit hands it is recorded
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
    assert _rows(path).shape == (n_blocks, 7)
    with trajstore.open(path) as t:
        assert np.array_equal(t.weights[:], data)
    assert validate(path).valid


def test_both_back_ends_give_the_same_index(tmp_path):
    """Same records, same index (record ranges and digests) in both back ends; plain h5py and
    plain zarr read the same rows (nulls as -1) followed by the attribute's partial block."""
    write_store(tmp_path / "a.zarr", n_records=29)
    write_store(tmp_path / "a.h5", n_records=29)
    z, h = stored_index(tmp_path / "a.zarr"), stored_index(tmp_path / "a.h5")
    ranges = [(b.start, b.stop, b.digests) for b in z.blocks]
    assert ranges == [(b.start, b.stop, b.digests) for b in h.blocks]
    assert len(h.blocks) == 4 and h.n_committed == z.n_committed == 29
    for path in (tmp_path / "a.h5", tmp_path / "a.zarr"):
        ix = _attr_index(path)
        rows = _rows(path)[: ix["n_blocks"]]
        assert rows.dtype == np.int64 and rows.shape == (3, 7)
        assert ix["blocks"] == [[24, 29, *h.blocks[3].digests.values(), None, None]]
        assert rows[:, :5].tolist() == [[b.start, b.stop, *b.digests.values()] for b in h.blocks[:3]]
    # an HDF5 block is not one stored object (nbytes and tail null: -1); a Zarr shard is
    assert _rows(tmp_path / "a.h5")[:, 5:].tolist() == [[-1, -1]] * 3
    assert _rows(tmp_path / "a.zarr")[:, 5:].tolist() == [[b.nbytes, b.tail] for b in z.blocks[:3]]
    assert all(b.nbytes > 0 for b in z.blocks[:3])


def test_the_zarr_rows_are_a_plain_checksummed_array(tmp_path):
    """Not the values' sharded layout (which the fast shard writer takes): a plain int64 array
    ending in crc32c, codecs from the allowed list, that validate accepts."""
    path = tmp_path / "p.zarr"
    write_store(path, n_records=40)
    meta = json.loads((path / "weights" / "integrity" / "zarr.json").read_text())
    names = [c["name"] for c in meta["codecs"]]
    assert meta["data_type"] == "int64" and "sharding_indexed" not in names and names[-1] == "crc32c"
    assert set(names) <= spec.ZARR_CODECS and meta["fill_value"] == -1
    b = open_backend(str(path), "r")
    try:
        assert ShardFormat.from_metadata(b.array_metadata("weights/value")) is not None
        assert ShardFormat.from_metadata(b.array_metadata("weights/integrity")) is None
    finally:
        b.close()
    assert validate(path).valid


def _as_11(path, group="weights"):
    """What a 1.1 writer left: every block listed in the attribute, no integrity array."""
    ix = _attr_index(path, group)
    rows = _rows(path, group)[: ix.pop("n_blocks")].tolist()
    _delete_rows(path, group)
    ix["blocks"] = [[*r[:-2], *(None if v == -1 else v for v in r[-2:])] for r in rows] + ix["blocks"]
    _set_attr_index(path, ix, group)


@SUFFIXES
def test_a_11_store_reads_validates_and_continues_as_rows(tmp_path, suffix):
    path = tmp_path / f"old{suffix}"
    w, _ = write_store(path, n_records=20)
    _as_11(path)
    assert "n_blocks" not in _attr_index(path) and len(_attr_index(path)["blocks"]) == 3
    before = stored_index(path)
    assert validate(path).valid
    with trajstore.open(path) as t:
        assert np.array_equal(t.weights[:], w)
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        for i in range(20, 37):
            wr.append(1000 + i, w[i % 20] + 1)
    assert validate(path).valid
    after = stored_index(path)
    assert after.blocks[:2] == before.blocks[:2] and after.n_committed == 37
    ix = _attr_index(path)
    assert ix["n_blocks"] == 4 and len(ix["blocks"]) == 1  # migrated: full blocks became rows
    assert len(_rows(path)) == 4


@SUFFIXES
def test_rows_past_the_commit_are_written_again(tmp_path, suffix):
    """A crash after the index (rows and attribute) but before ``n_committed``: the writer that
    continues rewrites those blocks with new values, and their rows with them."""
    path = tmp_path / f"crash{suffix}"
    w, _ = write_store(path, n_records=40, loss=False)
    # records 24..39 written and indexed, not committed
    if suffix == ".zarr":
        zarr.open_group(path, mode="r+")["weights"].attrs["n_committed"] = 24
    else:
        with h5py.File(path, "r+", locking=False) as f:
            f["weights"].attrs["n_committed"] = 24
    assert _attr_index(path)["n_blocks"] == 5
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        for i in range(24, 40):
            wr.append(1000 + i, w[i] + 1)  # other values than the uncommitted ones
    report = validate(path)
    assert report.valid, report.problems
    with trajstore.open(path) as t:
        assert np.array_equal(t.weights[24:], w[24:] + 1)
    assert _rows(path)[3:, 2].tolist() == [b.digests["value"] for b in stored_index(path).blocks[3:5]]


@SUFFIXES
def test_rows_past_n_blocks_are_ignored(tmp_path, suffix):
    """A crash between the rows and the attribute: the array holds more rows than the attribute
    names; the index is the named ones, the store valid, and the next commit overwrites them."""
    path = tmp_path / f"extra{suffix}"
    w, _ = write_store(path, n_records=40, loss=False)
    ix = _attr_index(path)
    b = open_backend(str(path), "r+")
    try:
        b.write_rows("weights/integrity", ix["n_blocks"], np.full((3, 7), 12345, dtype=np.int64))
    finally:
        b.close()
    assert len(_rows(path)) == ix["n_blocks"] + 3 == 8
    assert validate(path).valid
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        for i in range(40, 48):
            wr.append(1000 + i, w[i % 40])
    assert validate(path).valid
    assert len(_rows(path)) == 6 and 12345 not in _rows(path)


@SUFFIXES
@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda g, ix: ix.update(n_blocks=ix["n_blocks"] + 1), "no more than|at least"),
        (lambda g, ix: g.__delitem__("integrity"), "no array"),
        (lambda g, ix: ix.update(n_blocks=10**12), "n_blocks"),
    ],
    ids=["n_blocks past the rows", "rows deleted", "n_blocks 1e12"],
)
def test_damaged_rows_are_refused_in_one_line(tmp_path, edit, match, suffix):
    path = tmp_path / f"d{suffix}"
    write_store(path, n_records=40)
    if suffix == ".zarr":
        g = zarr.open_group(path, mode="r+")["weights"]
        ix = dict(g.attrs["integrity"])
        edit(g, ix)
        g.attrs["integrity"] = ix
    else:
        with h5py.File(path, "r+", locking=False) as f:
            ix = json.loads(f["weights"].attrs["integrity"])
            edit(f["weights"], ix)
            f["weights"].attrs["integrity"] = json.dumps(ix)
    with pytest.raises(trajstore.TrajstoreError, match=match) as err:
        trajstore.open(path).weights[:]
    assert "\n" not in str(err.value) and "[V41]" in str(err.value)
    assert "V41" in validate(path).rules_broken


def _flip_byte(path, offset) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0xFF]))


@SUFFIXES
def test_a_damaged_row_chunk_is_refused_in_one_line(tmp_path, suffix):
    """A byte of the rows' chunk flipped: its checksum (HDF5 Fletcher-32, Zarr CRC-32C) fails,
    nothing is trusted."""
    path = tmp_path / f"f{suffix}"
    write_store(path, n_records=40)
    if suffix == ".zarr":
        _flip_byte(path / "weights" / "integrity" / "c" / "0" / "0", 3)
    else:
        with h5py.File(path, "r") as f:
            info = f["weights/integrity"].id.get_chunk_info(0)
        _flip_byte(path, info.byte_offset + 3)
    with pytest.raises(trajstore.TrajstoreError, match="weights/integrity cannot be read") as err:
        trajstore.open(path).weights[:]
    assert "\n" not in str(err.value)
    assert "V41" in validate(path).rules_broken


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["codecs"].insert(0, {"name": "vlen-utf8"}), "codec 'vlen-utf8'"),
        (lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[10**9, 7]), "chunk grid"),
        (lambda m: m.update(data_type="float64", fill_value=0.0), "not int64"),
        (lambda m: m.update(shape="x"), "cannot be read"),
        (lambda m: m["codecs"][0].update(configuration=[1]), "not an object"),
    ],
    ids=["codec off the list", "huge chunk", "float64", "shape not a list", "codec configuration"],
)
def test_a_bad_zarr_rows_metadata_is_refused_before_reading(tmp_path, edit, match):
    """The rows' zarr.json is judged as written before zarr reads a chunk of it: a declared
    chunk of 10^9 rows is refused, not allocated."""
    path = tmp_path / "m.zarr"
    write_store(path, n_records=40)
    meta_file = path / "weights" / "integrity" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    edit(meta)
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(trajstore.TrajstoreError, match=match) as err:
        trajstore.open(path).weights[:]
    assert "\n" not in str(err.value) and "[V41]" in str(err.value)
    assert "V41" in validate(path).rules_broken


def test_a_forged_count_of_rows_is_refused_without_allocating_it(tmp_path):
    """n_blocks, n_committed and the rows' shape are all declared: a store that declares
    500,000 rows but holds 5 is refused at the first missing piece (rows never written read as
    -1), with a small peak of memory, not after reading and converting all it declares."""
    import tracemalloc

    path = tmp_path / "forged.zarr"
    write_store(path, n_records=40)
    ix = _attr_index(path)
    ix.update(n_blocks=500_000, n_committed=4_000_000)
    _set_attr_index(path, ix)
    meta_file = path / "weights" / "integrity" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["shape"][0] = 500_000
    meta_file.write_text(json.dumps(meta))
    tracemalloc.start()
    try:
        with pytest.raises(trajstore.TrajstoreError) as err:
            trajstore.open(path).weights[:]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(err.value) and "[V41]" in str(err.value), err.value
    assert peak < 16 * 2**20, peak / 2**20
    assert "V41" in validate(path).rules_broken
