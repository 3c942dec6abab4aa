"""Plain reads are checked against the integrity index's digests (docs/format.md 5.1): the first
read of an array decodes one block and compares it with its digest, and every block a read
covers whole is compared too. A new user who edited weights/value/zarr.json (transpose order
[0, 1]: every chunk still decodes and passes its checksum) got other values from
``trajstore.open(path).weights[...]`` with no error; only analyze refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trajstore
from trajstore import spec
from trajstore.backends import open_backend
from trajstore.errors import CorruptDataError
from trajstore.selection import select

from .conftest import edit_transpose_order, write_store

PARAMS = {"a.weight": (300,), "b.weight": (20, 10), "c.bias": (200,)}  # 700 parameters
ALTERED = r"records (\d+)\.\.(\d+) decode to other values than were written .*\[V44\]"


def _store(path, n_records=50):
    """50 records in blocks of 16 (the last one partial) × 11 chunk columns of 64."""
    rng = np.random.default_rng(0)
    w = np.cumsum(rng.normal(size=(n_records, 700)).astype(np.float32), axis=0)
    with trajstore.create(path, PARAMS, chunk_records=16, chunk_params=64) as wr:
        for i in range(n_records):
            wr.append(i, w[i])
    return w


READS = {
    "one record": lambda t: t.weights[5],
    "a few columns": lambda t: t.weights[:, :10],
    "every record": lambda t: t.weights[:],
    "records by index": lambda t: t.weights[[1, 30, 2]],
    "a tensor": lambda t: t.tensor("b.weight")[3],
    "parameter-major": lambda t: t.weights.read_param_major(0, 10, 0, 70),
    "blocks": lambda t: [b.data for b in t.blocks(memory_limit=1 << 14)],
    "a selection": lambda t: select(t, tensors=["c.*"]).weights[2:4],
    "numpy": lambda t: np.asarray(t.weights),
}


@pytest.mark.parametrize("read", READS)
def test_plain_reads_of_an_edited_array_description_are_refused(tmp_path, read):
    path = tmp_path / "s.zarr"
    w = _store(path)
    with trajstore.open(path) as traj:  # the same read is fine before the edit
        got = READS[read](traj)
        if read == "every record":
            np.testing.assert_array_equal(got, w)
    edit_transpose_order(path)
    with trajstore.open(path) as traj:
        with pytest.raises(CorruptDataError, match=ALTERED) as exc:
            READS[read](traj)
    assert "\n" not in str(exc.value) and "weights/value" in str(exc.value)


def _alter_digest(path, block: int) -> tuple[int, int]:
    """Change the recorded value digest of one block (the values on disk stay as written):
    records that read back other than the digest says. Returns the block's records."""
    b = open_backend(str(path), "r+")
    try:
        index = b.attrs(spec.WEIGHTS)[spec.ATTR_INTEGRITY]
        if isinstance(index, str):
            index = json.loads(index)
        k = index.get("n_blocks", 0)  # (1.2) the first k blocks are rows of weights/integrity
        if block < k:
            rows = b.read(f"{spec.WEIGHTS}/integrity", slice(block, block + 1))
            rows[0, 2] ^= 1  # [start, stop, digest(value), ...]
            b.write(f"{spec.WEIGHTS}/integrity", block, rows)
            return int(rows[0, 0]), int(rows[0, 1])
        entry = index["blocks"][block - k]
        entry[2] ^= 1
        b.set_attrs(spec.WEIGHTS, {spec.ATTR_INTEGRITY: index})
    finally:
        b.close()
    return entry[0], entry[1]


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_every_whole_block_a_read_covers_is_compared(tmp_path, suffix):
    """Block 1 (records 16..31) differs from its digest; the one-block check on the first read
    looks at the smallest block (48..49) and passes. A read that covers block 1 whole is
    refused, naming it; reads that cover only part of it cannot be compared (documented)."""
    path = tmp_path / f"s{suffix}"
    w, _ = write_store(path, n_records=50, chunk_records=16)
    assert _alter_digest(path, 1) == (16, 32)
    with trajstore.open(path) as traj:
        np.testing.assert_array_equal(traj.weights[:16], w[:16])  # block 0 compared: fine
        np.testing.assert_array_equal(traj.weights[20:30], w[20:30])  # part of block 1
        np.testing.assert_array_equal(traj.weights[16:32, :5], w[16:32, :5])  # some columns only
        for read in (lambda a: a[:], lambda a: a[10:40], lambda a: a[16:32, :], lambda a: a[[0, 16, 31]]):
            with pytest.raises(CorruptDataError, match=ALTERED) as exc:
                read(traj.weights)
            assert exc.value.args[0].count("records 16..31") == 1


def test_stores_without_digests_read_as_before(tmp_path):
    """A 1.0 store (no integrity index) has nothing to compare against: reads work."""
    import zarr

    path = tmp_path / "old.zarr"
    w = _store(path)
    root = zarr.open_group(path, mode="r+")
    root.attrs["spec_version"] = "1.0"
    for g in ("weights", "observables"):
        if g in root:
            root[g].attrs.pop(spec.ATTR_INTEGRITY, None)
    with trajstore.open(path) as traj:
        np.testing.assert_array_equal(traj.weights[:], w)
        np.testing.assert_array_equal(traj.weights[7], w[7])
