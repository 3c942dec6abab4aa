"""Integrity (format 1.1): deleted, emptied, truncated or swapped shards and chunks are errors on
read and in validate; never fill values. Byte flips in data and in HDF5 metadata end in one-line
errors or in the original numbers, never in a traceback or in other numbers.

``TRAJSTORE_CORRUPTION_TRIALS`` (default 40) sets the number of random byte flips per back end;
docs/reliability.md gives the figures of a larger run.
"""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
import zarr

import trajstore
from trajstore import spec
from trajstore.validate import validate

from .conftest import run_cli, write_store

TRIALS = int(os.environ.get("TRAJSTORE_CORRUPTION_TRIALS", "40"))


def _shard(path, k):
    return path / "weights" / "value" / "c" / str(k) / "0"


def _zarr_store(tmp_path, name="s.zarr", n_records=40):
    path = tmp_path / name
    w, steps = write_store(path, n_records=n_records, chunk_records=8)
    return path, w, steps


def _read_all(path):
    with trajstore.open(path) as t:
        return t.weights[:], t.steps.copy(), {n: t.observable(n) for n in t.observables}


def _damage(kind, path):
    """Damage shard 2 (records 16..23) of a zarr store's weights."""
    shard = _shard(path, 2)
    if kind == "delete":
        shard.unlink()
    elif kind == "empty":
        shard.write_bytes(b"")
    elif kind == "truncate":
        shard.write_bytes(shard.read_bytes()[:-9])
    elif kind == "swap":
        other = _shard(path, 1)
        a, b = shard.read_bytes(), other.read_bytes()
        shard.write_bytes(b)
        other.write_bytes(a)
    elif kind == "copy":  # records 8..15 also appear as 16..23: a moved file
        shard.write_bytes(_shard(path, 1).read_bytes())


@pytest.mark.parametrize("kind", ["delete", "empty", "truncate", "swap", "copy"])
def test_damaged_shard_is_an_error_on_read_and_in_validate(tmp_path, kind):
    path, w, _ = _zarr_store(tmp_path)
    _damage(kind, path)
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.weights[:8], w[:8])  # undamaged records still read
        with pytest.raises(trajstore.TrajstoreError) as exc:
            t.weights[10:20]
        msg = str(exc.value)
        assert "\n" not in msg and "weights/value records" in msg and "weights/value/c/" in msg
        with pytest.raises(trajstore.TrajstoreError):
            np.asarray(t.tensor("fc.bias"))
    r = validate(path)
    assert not r.valid
    assert r.rules_broken & {"V42", "V43", "V44"}, r.problems
    assert any("weights/value records 16..23" in p for p in r.problems), r.problems


def test_swapped_shards_of_equal_size_are_caught(tmp_path):
    """Uncompressed shards all have the same size: the tail digest and value digests catch it."""
    path = tmp_path / "n.zarr"
    w, _ = write_store(path, n_records=40, chunk_records=8, compression="none")
    assert _shard(path, 1).stat().st_size == _shard(path, 2).stat().st_size
    _damage("swap", path)
    with trajstore.open(path) as t, pytest.raises(trajstore.TrajstoreError, match="records 8..15"):
        t.weights[:]
    assert {"V43", "V44"} <= validate(path).rules_broken


def test_swapped_step_chunks_are_caught_on_open(tmp_path):
    path = tmp_path / "s.zarr"
    with trajstore.create(path, 2, chunk_records=4096) as wr:
        for i in range(8192):
            wr.append(i, [i, -i])
    steps = path / "weights" / "step" / "c"
    a, b = (steps / "0").read_bytes(), (steps / "1").read_bytes()
    (steps / "0").write_bytes(b)
    (steps / "1").write_bytes(a)
    with pytest.raises(trajstore.TrajstoreError, match="weights/step records 0..4095 differ"):
        trajstore.open(path)
    assert "V44" in validate(path).rules_broken


def test_deleted_observable_chunk(tmp_path):
    path, _, _ = _zarr_store(tmp_path)
    (path / "observables" / "loss" / "value" / "c" / "0").unlink()
    with trajstore.open(path) as t, pytest.raises(trajstore.TrajstoreError, match="loss/value records 0"):
        t.observable("loss")
    assert "V42" in validate(path).rules_broken


def _make_10(path):
    """Turn a store into what a 1.0 writer made: no integrity index, no group list."""
    root = zarr.open_group(path, mode="r+")
    root.attrs["spec_version"] = "1.0"
    root.attrs.pop(spec.ATTR_GROUPS, None)
    for g in ("weights", "observables/loss"):
        root[g].attrs.pop(spec.ATTR_INTEGRITY, None)


@pytest.mark.parametrize("kind", ["delete", "empty"])
def test_10_store_refuses_fill_values(tmp_path, kind):
    path, w, _ = _zarr_store(tmp_path)
    _make_10(path)
    assert validate(path).valid
    np.testing.assert_array_equal(_read_all(path)[0], w)
    _damage(kind, path)
    with trajstore.open(path) as t, pytest.raises(trajstore.TrajstoreError, match="records 16..23"):
        t.weights[:]
    assert "V42" in validate(path).rules_broken


def test_10_store_missing_step_chunk(tmp_path):
    path, _, _ = _zarr_store(tmp_path)
    _make_10(path)
    (path / "weights" / "step" / "c" / "0").unlink()
    with pytest.raises(trajstore.TrajstoreError, match="weights/step records 0..39"):
        trajstore.open(path)


def test_resume_keeps_the_index(tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    w, _ = write_store(path, n_records=13, chunk_records=8)
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        for i in range(13, 30):
            wr.append(1000 + i, w[i % 13] + 1)
    r = validate(path)
    assert r.valid, r.problems
    with trajstore.open(path) as t:
        assert t.n_records == 30 and t._weights.index.n_committed == 30


def test_resumed_10_store_stays_10(tmp_path):
    path, w, _ = _zarr_store(tmp_path, n_records=13)
    _make_10(path)
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        wr.append(1000, w[0])
    r = validate(path)
    assert r.valid, r.problems
    assert zarr.open_group(path, mode="r")["weights"].attrs.get(spec.ATTR_INTEGRITY) is None


def test_index_ahead_of_commit_is_valid(tmp_path, suffix):
    """A crash between the two attributes (HDF5 writes them one by one) leaves the index ahead."""
    path = tmp_path / f"a{suffix}"
    w, _ = write_store(path, n_records=20, chunk_records=8)
    if suffix == ".zarr":
        zarr.open_group(path, mode="r+")["weights"].attrs["n_committed"] = 13
    else:
        with h5py.File(path, "r+", locking=False) as f:
            f["weights"].attrs["n_committed"] = 13
    assert validate(path).valid
    np.testing.assert_array_equal(_read_all(path)[0], w[:13])


def test_all_zero_records_are_stored(tmp_path):
    """zarr skips chunks equal to the fill value unless told otherwise; trajstore tells it."""
    path = tmp_path / "z.zarr"
    with trajstore.create(path, 3, chunk_records=4) as wr:
        for i in range(8):
            wr.append(i, np.zeros(3))
            wr.log("skipped", i, 0.0)
    assert _shard(path, 1).exists()
    assert validate(path).valid
    assert not _read_all(path)[0].any()


def test_hdf5_missing_chunk_is_refused(tmp_path):
    """An HDF5 chunk that is not allocated (here: the dataset regrown) reads as fill: refused."""
    path = tmp_path / "m.h5"
    write_store(path, n_records=16, chunk_records=8)
    with h5py.File(path, "r+", locking=False) as f:
        ds = f["weights/value"]
        ds.resize(8, axis=0)  # frees chunk row 1 ...
        ds.resize(16, axis=0)  # ... which now reads as zeros
    with trajstore.open(path) as t, pytest.raises(trajstore.TrajstoreError, match="records 8..15"):
        t.weights[8:]
    assert "V42" in validate(path).rules_broken


def _data_regions(path):
    """(offset, size) of every chunk of every dataset of an HDF5 file."""
    regions = []
    with h5py.File(path, "r") as f:

        def visit(_, obj):
            if isinstance(obj, h5py.Dataset) and obj.chunks:
                for i in range(obj.id.get_num_chunks()):
                    info = obj.id.get_chunk_info(i)
                    regions.append((info.byte_offset, info.size))

        f.visititems(visit)
    return regions


def _outcome_isolated(path, original):
    """:func:`_outcome` in a child process: libhdf5 itself crashes on some damaged metadata."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    def run():
        import faulthandler

        faulthandler.disable()  # a libhdf5 crash is an expected outcome here
        sender.send_bytes(_outcome(path, original).encode())

    child = ctx.Process(target=run, daemon=True)
    child.start()
    sender.close()
    try:
        return receiver.recv_bytes().decode()
    except EOFError:
        return "crash"
    finally:
        child.join()


def _outcome(path, original):
    """'error' (one-line TrajstoreError), 'same' (original numbers) or the surprise."""
    try:
        got = _read_all(path)
    except trajstore.TrajstoreError as exc:
        assert "\n" not in str(exc)
        return "error"
    same = got[0].tobytes() == original[0].tobytes() and np.array_equal(got[1], original[1])
    same &= got[2].keys() == original[2].keys() and all(
        np.array_equal(got[2][k][1], original[2][k][1]) for k in got[2]
    )
    return "same" if same else "DIFFERENT"


@pytest.mark.parametrize("region", ["metadata", "data"])
def test_hdf5_byte_flips(tmp_path, region):
    """Flip bytes of an HDF5 file, in its metadata (object headers, B-trees, heaps) or in its
    chunks: validate never raises, reads give one line or the original numbers, and a store
    that validate calls valid reads the original numbers."""
    src = tmp_path / "o.h5"
    write_store(src, n_records=24, chunk_records=8)
    original = _read_all(src)
    regions = _data_regions(src)
    size = os.path.getsize(src)
    in_data = np.zeros(size, bool)
    for off, n in regions:
        in_data[off : off + n] = True
    candidates = np.flatnonzero(in_data if region == "data" else ~in_data)
    candidates = candidates[candidates >= 8]  # keep the signature: that case is tested elsewhere
    # Seed 100, trial 31 once lost the observables group silently (h5py's items() yielded None
    # for a member with a damaged header); now it is a one-line error.
    rng = np.random.default_rng(9 if region == "data" else 100)
    outcomes = []
    for trial in range(TRIALS):
        path = tmp_path / f"f{trial}.h5"
        shutil.copyfile(src, path)
        with open(path, "r+b") as fh:
            for off in rng.choice(candidates, size=3, replace=False):
                fh.seek(int(off))
                byte = fh.read(1)[0]
                fh.seek(int(off))
                fh.write(bytes([byte ^ int(rng.integers(1, 256))]))
        report = validate(path)  # must not raise (nor crash: HDF5 is validated in a child)
        outcome = _outcome_isolated(path, original)
        assert outcome != "DIFFERENT", (trial, report.problems)
        if report.valid:
            assert outcome == "same", trial
        if outcome == "crash":  # libhdf5 crashed reading it: validate (isolated) must call it invalid
            assert not report.valid and all("\n" not in p for p in report.problems), trial
        outcomes.append(outcome)
    if region == "data":
        assert outcomes.count("error") == TRIALS  # every chunk flip is caught (Fletcher-32)


@pytest.mark.parametrize("damaged", ["observables/loss/time/c/0", "weights/value/c/1/0"])
def test_convert_does_not_launder_damage(tmp_path, damaged):
    """convert reads through the same checks: a damaged source is refused, not copied as zeros
    into a new store whose fresh digests would vouch for them."""
    from trajstore.convert import convert

    path, _, _ = _zarr_store(tmp_path)
    (path / damaged).unlink()
    with pytest.raises(trajstore.TrajstoreError, match="missing"):
        convert(path, tmp_path / "d.h5")


def _flipped_chunk_index(tmp_path):
    """An HDF5 store with trial 110 (seed 100) of the metadata flips: its chunk index damaged."""
    src = tmp_path / "o.h5"
    write_store(src, n_records=24, chunk_records=8)
    in_data = np.zeros(os.path.getsize(src), bool)
    for off, n in _data_regions(src):
        in_data[off : off + n] = True
    candidates = np.flatnonzero(~in_data)
    candidates = candidates[candidates >= 8]
    rng = np.random.default_rng(100)
    for _trial in range(110):
        rng.choice(candidates, size=3, replace=False)
        for _flip in range(3):
            rng.integers(1, 256)
    with open(src, "r+b") as fh:
        for off in rng.choice(candidates, size=3, replace=False):
            fh.seek(int(off))
            byte = fh.read(1)[0]
            fh.seek(int(off))
            fh.write(bytes([byte ^ int(rng.integers(1, 256))]))
    return src


def test_hdf5_flip_that_crashes_libhdf5_is_contained(tmp_path):
    """Seed 100, trial 110 of the metadata flips damages the chunk index so that libhdf5 fails
    (or, on some builds, crashes) when the file is read (this machine, h5py 3.16 / HDF5 2.0, the
    1.2 file layout with the integrity dataset; trial 18 did before it, trial 156 before the
    layout gained root attributes). validate runs HDF5 checks in a child, so it reports, not
    crashes."""
    src = _flipped_chunk_index(tmp_path)
    report = validate(src)
    assert not report.valid
    assert all("\n" not in p for p in report.problems)


@pytest.mark.parametrize("command", ["info", "analyze"])
def test_a_damaged_hdf5_chunk_index_is_one_line_not_a_traceback(tmp_path, command):
    """The same damage made h5py's get_chunk_info_by_coord raise RuntimeError, which reached
    `info` and `analyze` as a traceback. In a child process: libhdf5 may crash on some builds."""
    src = _flipped_chunk_index(tmp_path)
    extra = ["-o", str(tmp_path / "report")] if command == "analyze" else []
    p = run_cli(command, src, *extra)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "chunk index is damaged" in p.stderr
