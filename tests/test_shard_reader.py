"""Parameter-major reads straight from shard files (trajstore/shard_reader.py) against zarr's
own reads of the same bytes, and their refusals: damage is reported as zarr's path reports it."""

from __future__ import annotations

import os

import numpy as np
import pytest
from trajstore.analysis.windows import iter_windows

import trajstore
from trajstore.errors import CorruptDataError
from trajstore.reader import LazyArray
from trajstore.selection import select
from trajstore.shard_reader import ParamMajorReader, ShardReadError

N_RECORDS, N_PARAMS = 150, 700  # 3 shards (the last one partial) × 6 chunk columns (the last narrow)


def _store(path, backend=None, seed=0):
    rng = np.random.default_rng(seed)
    layout = {"a.weight": (300,), "b.weight": (20, 10), "c.bias": (200,)}
    w = rng.normal(size=N_PARAMS).astype(np.float32)
    with trajstore.create(path, layout, chunk_records=64, chunk_params=128, backend=backend) as wr:
        for i in range(N_RECORDS):
            w += rng.normal(scale=1e-2, size=N_PARAMS).astype(np.float32)
            wr.append(i, w)
    return path


def _direct(traj) -> ParamMajorReader | None:
    arr = traj.weights
    return ParamMajorReader.for_array(arr._backend, arr.path)


def test_direct_reads_equal_zarr_reads_bit_for_bit(tmp_path):
    with trajstore.open(_store(tmp_path / "s.zarr")) as traj:
        reader = _direct(traj)
        assert reader is not None, "the layout trajstore writes must be read directly"
        assert reader.fmt.transpose and reader.fmt.blosc is not None
        rng = np.random.default_rng(1)
        full = traj.weights[:]
        cases = [(0, N_RECORDS, 0, N_PARAMS), (63, 65, 127, 129), (128, 150, 640, 700), (5, 6, 0, 1)]
        cases += [
            tuple(sorted(rng.integers(0, N_RECORDS + 1, 2))) + tuple(sorted(rng.integers(0, N_PARAMS + 1, 2)))
            for _ in range(30)
        ]
        for r0, r1, c0, c1 in cases:
            got = reader.read(r0, r1, c0, c1)
            assert got.shape == (c1 - c0, r1 - r0) and got.flags.c_contiguous
            np.testing.assert_array_equal(got, full[r0:r1, c0:c1].T)
            np.testing.assert_array_equal(traj.weights.read_param_major(r0, r1, c0, c1), got)


def test_blocks_param_major_are_the_transposed_blocks_on_both_backends(tmp_path):
    for name in ("s.zarr", "s.h5"):
        with trajstore.open(_store(tmp_path / name)) as traj:
            plain = list(traj.blocks(records=slice(10, 140), memory_limit=130 * 256 * 8, split_records=False))
            pm = list(
                traj.blocks(
                    records=slice(10, 140), memory_limit=130 * 256 * 8, split_records=False, param_major=True
                )
            )
            assert len(plain) == len(pm) > 1
            for a, b in zip(plain, pm, strict=True):
                assert (a.records, a.params) == (b.records, b.params)
                np.testing.assert_array_equal(b.data, a.data.T)
        if name == "s.h5":
            with trajstore.open(tmp_path / name) as traj:
                assert _direct(traj) is None  # HDF5 goes through h5py


def test_selected_columns_and_steps_read_param_major(tmp_path):
    with trajstore.open(_store(tmp_path / "s.zarr")) as traj:
        sel = select(traj, steps="20:120", tensors=("a.*", "c.*"))
        full = sel.weights[:]
        for r0, r1, c0, c1 in [(0, 100, 0, 500), (3, 77, 250, 420), (50, 51, 299, 301)]:
            np.testing.assert_array_equal(sel.weights.read_param_major(r0, r1, c0, c1), full[r0:r1, c0:c1].T)


def test_window_pass_is_the_same_with_and_without_direct_reads(tmp_path, monkeypatch):
    with trajstore.open(_store(tmp_path / "s.zarr")) as traj:
        direct = list(iter_windows(traj, 70, memory_limit=1 << 20))
    monkeypatch.setattr(ParamMajorReader, "for_array", classmethod(lambda cls, backend, path: None))
    with trajstore.open(tmp_path / "s.zarr") as traj:
        assert traj.weights._direct is False
        via_zarr = list(iter_windows(traj, 70, memory_limit=1 << 20))
        assert traj.weights._direct is None  # looked up, and refused by the patch
    for a, b in zip(direct, via_zarr, strict=True):
        np.testing.assert_allclose(a.msd, b.msd, rtol=1e-12, atol=0)
        np.testing.assert_allclose(a.msd_groups, b.msd_groups, rtol=1e-12, atol=0)
        np.testing.assert_allclose(a.step_sq, b.step_sq, rtol=1e-12, atol=0)


def _shard_file(traj, k: int) -> str:
    return traj.weights._backend.object_file(traj.weights.path, (k, 0))


def _shard_and_index(path, k: int) -> tuple[str, np.ndarray]:
    """The file of shard ``k`` of a store's weights and its index (n_chunks, 2): offset, length."""
    with trajstore.open(path) as traj:
        f = _shard_file(traj, k)
        fd = os.open(f, os.O_RDONLY)
        try:
            return f, _direct(traj)._index(fd, k)
        finally:
            os.close(fd)


def test_a_flipped_byte_in_a_chunk_is_refused_not_read(tmp_path):
    path = _store(tmp_path / "s.zarr")
    f, index = _shard_and_index(path, 1)
    data = bytearray(open(f, "rb").read())
    off, length = (int(v) for v in index[2])
    data[off + length // 2] ^= 0x10  # inside the compressed bytes of chunk column 2
    open(f, "wb").write(bytes(data))
    with trajstore.open(path) as traj:
        with pytest.raises(ShardReadError, match="chunk 2 checksum mismatch"):
            _direct(traj).read(64, 128, 256, 384)
        np.testing.assert_array_equal(  # chunks not touched still read
            traj.weights.read_param_major(64, 128, 0, 256), traj.weights[64:128, 0:256].T
        )
        with pytest.raises(CorruptDataError, match="cannot be decoded|damaged"):
            traj.weights.read_param_major(64, 128, 300, 310)
        with pytest.raises(CorruptDataError):
            list(iter_windows(traj, 150, memory_limit=1 << 20))


def test_a_damaged_index_or_a_missing_shard_is_refused(tmp_path):
    path = _store(tmp_path / "s.zarr")
    with trajstore.open(path) as traj:
        f0, f2 = _shard_file(traj, 0), _shard_file(traj, 2)
    data = bytearray(open(f0, "rb").read())
    data[-10] ^= 0x01  # in the index
    open(f0, "wb").write(bytes(data))
    os.remove(f2)
    with trajstore.open(path) as traj:
        with pytest.raises(ShardReadError, match="index checksum"):
            _direct(traj).read(0, 10, 0, 10)
        with pytest.raises(CorruptDataError):
            traj.weights.read_param_major(0, 10, 0, 10)
        with pytest.raises(ShardReadError, match="shard 2"):
            _direct(traj).read(130, 140, 0, 10)
        with pytest.raises(CorruptDataError, match="records 128..149"):
            traj.weights.read_param_major(130, 140, 0, 10)


def test_out_of_range_reads_are_refused(tmp_path):
    with trajstore.open(_store(tmp_path / "s.zarr")) as traj:
        arr: LazyArray = traj.weights
        with pytest.raises(IndexError):
            arr.read_param_major(0, N_RECORDS + 1, 0, 10)
        with pytest.raises(IndexError):
            arr.read_param_major(0, 10, 5, N_PARAMS + 1)


def test_a_chunk_declaring_a_huge_size_is_refused_before_decoding(tmp_path):
    """A frame whose header claims 2 GiB, with a valid checksum (as a crafted file would have):
    refused from its header, nothing allocated for it."""
    import crc32c

    path = _store(tmp_path / "s.zarr")
    f, index = _shard_and_index(path, 0)
    data = bytearray(open(f, "rb").read())
    off, length = (int(v) for v in index[0])
    data[off + 4 : off + 8] = (1 << 31).to_bytes(4, "little")
    body = bytes(data[off : off + length - 4])
    data[off + length - 4 : off + length] = crc32c.crc32c(body).to_bytes(4, "little")
    open(f, "wb").write(bytes(data))
    with trajstore.open(path) as traj:
        with pytest.raises(ShardReadError, match="declares 2147483648 bytes"):
            _direct(traj).read(0, 10, 0, 10)


def test_an_edited_array_description_is_refused_not_analysed(tmp_path):
    """The transpose order of weights/value/zarr.json set to [0, 1] after writing: every chunk
    still decodes and passes its checksum, but to other values (a new user found analyze printing
    alpha 0.003 for 1.24). analyze checks one block against its digest and refuses."""

    from trajstore.analysis.pipeline import analyze

    from .conftest import edit_transpose_order, run_cli

    path = _store(tmp_path / "s.zarr")
    with trajstore.open(path) as traj:
        assert analyze(traj, 50, progress=False).windows  # fine before
    edit_transpose_order(path)
    with trajstore.open(path) as traj:
        with pytest.raises(CorruptDataError, match=r"records \d+\.\.\d+ decode to other values .*\[V44\]"):
            analyze(traj, 50, progress=False)
    p = run_cli("analyze", path, "-o", tmp_path / "rep", "--window", "50")
    assert p.returncode == 1 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "decode to other values" in p.stderr and not (tmp_path / "rep" / "summary.json").exists()
