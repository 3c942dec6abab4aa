"""The writer that encodes whole shards itself (trajstore.shards): presets, threads, keep-up warning."""

from __future__ import annotations

import json
import os
import shutil

import crc32c
import numcodecs.blosc
import numpy as np
import pytest
import torch
import zarr
from trajstore.recorders import Recorder
from trajstore.recorders.keep_up import KeepUpCheck
from trajstore.recorders.worker import WriterThread

import trajstore
from tests.conftest import run_cli
from trajstore.backends.base import BLOSC_BLOCKSIZE, CODEC_PRESETS
from trajstore.crc_combine import crc32c_combine
from trajstore.digest import content_digest
from trajstore.shards import ShardFormat
from trajstore.validate import validate

# 300 params in chunks of 64 columns: 5 chunk columns, the last one partial (44 of 64).
N_PARAMS = 300


def trajectory(n_records: int, seed: int = 0) -> np.ndarray:
    """A random walk with a drift per parameter (float32), like weights under SGD."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=1e-3, size=(n_records, N_PARAMS)) + rng.normal(scale=1e-4, size=N_PARAMS)
    return (rng.normal(size=N_PARAMS) + np.cumsum(steps, axis=0)).astype(np.float32)


def write(path, weights, *, threads=0, compression="default", flush_at=()) -> None:
    w = trajstore.create(
        path, N_PARAMS, compression=compression, chunk_records=16, chunk_params=64, threads=threads
    )
    for i, row in enumerate(weights):
        w.append(2 * i, row, time=float(i))
        if i in flush_at:
            w.flush()
    w.close()


def plain(path) -> np.ndarray:
    return zarr.open_array(os.path.join(path, "weights", "value"), mode="r")[:]


def test_crc32c_combine_equals_the_crc_of_the_concatenation():
    rng = np.random.default_rng(1)
    for len_a, len_b in [(0, 0), (0, 7), (1, 1), (13, 64), (1000, 4096), (5, 1 << 20)]:
        a = rng.integers(0, 256, len_a, dtype=np.uint8).tobytes()
        b = rng.integers(0, 256, len_b, dtype=np.uint8).tobytes()
        assert crc32c_combine(crc32c.crc32c(a), crc32c.crc32c(b), len_b) == crc32c.crc32c(a + b)


@pytest.mark.parametrize("preset", list(CODEC_PRESETS))
def test_presets_round_trip_bit_exact_and_plain_zarr_reads_them(tmp_path, preset):
    weights = trajectory(53)  # three full blocks of 16 and a partial one
    path = str(tmp_path / f"{preset}.zarr")
    write(path, weights, compression=preset, flush_at=(5, 20))
    assert np.array_equal(plain(path), weights)
    with trajstore.open(path) as t:
        assert np.array_equal(t.weights[:], weights)
    meta = json.load(open(os.path.join(path, "weights", "value", "zarr.json")))
    blosc = meta["codecs"][0]["configuration"]["codecs"][2]["configuration"]
    assert (blosc["cname"], blosc["clevel"]) == CODEC_PRESETS[preset]
    assert blosc["blocksize"] == BLOSC_BLOCKSIZE.get(preset, 0)
    # byte-shuffle where speed counts (bench/codec_blocksize.py: ~2 x decode), bit-shuffle for ratio
    assert blosc["shuffle"] == {"fast": "shuffle", "balanced": "shuffle", "small": "bitshuffle"}[preset]
    assert validate(path).valid


@pytest.mark.parametrize("compression", ["default", "none", "no-transpose"])
def test_shards_are_the_bytes_zarr_itself_writes(tmp_path, compression):
    weights = trajectory(40)
    ours = str(tmp_path / "ours.zarr")
    previous = numcodecs.blosc.set_nthreads(1)  # blosc with several threads is not deterministic
    try:
        write(ours, weights, compression=compression, flush_at=(3,))
        assert ShardFormat.from_metadata(  # the fast writer's layout, not zarr's write path
            json.load(open(os.path.join(ours, "weights", "value", "zarr.json")))
        ).transpose == (compression == "default")
        # The same array (same zarr.json) written by zarr's own write path.
        theirs = str(tmp_path / "theirs")
        os.makedirs(theirs)
        shutil.copy(os.path.join(ours, "weights", "value", "zarr.json"), theirs)
        zarr.open_array(theirs, mode="r+")[:] = weights
    finally:
        numcodecs.blosc.set_nthreads(previous)
    for k in range(3):  # two full blocks and the partial last one
        with open(os.path.join(ours, "weights", "value", "c", str(k), "0"), "rb") as a:
            with open(os.path.join(theirs, "c", str(k), "0"), "rb") as b:
                assert a.read() == b.read(), f"shard {k} differs"


def test_threads_write_the_same_store_as_one_thread(tmp_path):
    weights = trajectory(75)
    paths = []
    for threads in (0, 1, 3):
        path = str(tmp_path / f"t{threads}.zarr")
        write(path, weights, threads=threads, flush_at=(10, 40, 41))
        paths.append(path)
    reference = plain(paths[0])
    assert np.array_equal(reference, weights)
    digests, indexes = [], []
    for path in paths:
        assert np.array_equal(plain(path), reference)
        with trajstore.open(path) as t:
            digests.append(content_digest(t))
        indexes.append(json.load(open(os.path.join(path, "weights", "zarr.json")))["attributes"]["integrity"])
        assert validate(path).valid  # recomputes every block digest
    assert len(set(digests)) == 1
    assert indexes[1] == indexes[0] and indexes[2] == indexes[0]


def test_threaded_writer_resumes_a_partial_block(tmp_path):
    weights = trajectory(45)
    path = str(tmp_path / "r.zarr")
    write(path, weights[:21], threads=2)  # one full block, 5 records of the next
    w = trajstore.create(path, N_PARAMS, mode="a", threads=2)
    for i in range(21, 45):
        w.append(2 * i, weights[i], time=float(i))
    w.close()
    assert np.array_equal(plain(path), weights)
    assert validate(path).valid


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(12, 16)
        self.fc2 = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def train(rec_kwargs: dict, path, steps: int) -> list[np.ndarray]:
    """Train TinyNet under a Recorder; return the weights after every step, copied by hand."""
    rec_kwargs = {"progress": False, **rec_kwargs}
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    seen = []
    with Recorder(model, path, **rec_kwargs) as rec:
        rec.attach(opt)
        seen.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy())
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            seen.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy())
    return seen


@pytest.mark.parametrize("preset", ["fast", "small"])
def test_recorder_codec_and_threads_record_exactly(tmp_path, preset):
    path = str(tmp_path / "run.zarr")
    seen = train({"codec": preset, "threads": 2, "store_options": {"chunk_records": 8}}, path, 30)
    assert np.array_equal(plain(path), np.stack(seen))
    meta = json.load(open(os.path.join(path, "weights", "value", "zarr.json")))
    blosc = meta["codecs"][0]["configuration"]["codecs"][2]["configuration"]
    assert blosc["cname"] == CODEC_PRESETS[preset][0]


def test_recorder_refuses_an_unknown_codec(tmp_path):
    with pytest.raises(ValueError, match="codec must be one of fast, balanced, small"):
        Recorder(TinyNet(), str(tmp_path / "x.zarr"), codec="tiny")


def test_writer_that_cannot_keep_up_is_reported_once(tmp_path, monkeypatch, capsys):
    # A writer slowed to 100 ms per record against a training step of a few milliseconds.
    monkeypatch.setattr(WriterThread, "slowdown_for_tests", 0.1)
    path = str(tmp_path / "slow.zarr")
    seen = train({"pool_size": 2, "progress": None}, path, 30)  # None: no bar (not a terminal)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "cannot keep up" in line]
    assert len(lines) == 1, err
    for part in ("MB/s", "--codec fast", "--every", "--threads"):
        assert part in lines[0]
    assert np.array_equal(plain(path), np.stack(seen))  # it waited: nothing lost
    quiet = train({"pool_size": 2, "progress": False}, str(tmp_path / "quiet.zarr"), 30)
    assert "cannot keep up" not in capsys.readouterr().err and len(quiet) == 31  # progress=False


def test_keep_up_check_needs_waiting_or_drops(capsys):
    check = KeepUpCheck()
    check._started -= 10.0  # as if recording for 10 s
    check._next = 0.0
    check.check(produced_bytes=10**9, waited=0.5, dropped=0, written_bytes=10**9, busy=5.0)
    assert not check.warned  # 5 % of the time waiting: keeping up
    check._next = 0.0
    check.check(produced_bytes=10**9, waited=5.0, dropped=0, written_bytes=10**9, busy=8.0)
    assert check.warned and "delivers 100 MB/s" in check.message and "produces 200 MB/s" in check.message
    check._next = 0.0
    check.check(produced_bytes=10**9, waited=9.0, dropped=3, written_bytes=10**9, busy=9.0)
    assert capsys.readouterr().err.count("cannot keep up") == 1


def test_cli_record_and_convert_take_a_codec(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Linear(8, 4)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "x = torch.randn(16, 8)\n"
        "for _ in range(20):\n"
        "    opt.zero_grad(); m(x).pow(2).mean().backward(); opt.step()\n"
    )
    out = str(tmp_path / "run.zarr")
    p = run_cli("record", "--codec", "fast", "--threads", "2", "--quiet", "-o", out, str(script))
    assert p.returncode == 0, p.stderr
    small = str(tmp_path / "small.zarr")
    p = run_cli("convert", "--codec", "small", out, small)
    assert p.returncode == 0, p.stderr
    cnames = []
    for store in (out, small):
        meta = json.load(open(os.path.join(store, "weights", "value", "zarr.json")))
        conf = meta["codecs"][0]["configuration"]["codecs"][2]["configuration"]
        cnames.append((conf["cname"], conf["clevel"]))
    assert cnames == [CODEC_PRESETS["fast"], CODEC_PRESETS["small"]]
    assert np.array_equal(plain(out), plain(small))
    p = run_cli("record", "--codec", "tiny", "-o", str(tmp_path / "bad.zarr"), str(script))
    assert p.returncode != 0 and "Traceback" not in p.stderr


def test_only_shards_spanning_every_column_are_written_directly(tmp_path):
    path = str(tmp_path / "s.zarr")
    write(path, trajectory(3))
    meta = json.load(open(os.path.join(path, "weights", "value", "zarr.json")))
    assert ShardFormat.from_metadata(meta).n_chunks == 5
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [16, 64]  # shards one chunk column wide
    assert ShardFormat.from_metadata(meta) is None
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [16, 320]
    meta["codecs"][0]["configuration"]["index_location"] = "start"
    assert ShardFormat.from_metadata(meta) is None


@pytest.mark.parametrize("threads", [0, 1])
def test_digests_continued_a_few_records_at_once_match_the_values(tmp_path, threads):
    # Blocks of 40 records: the writer continues its chunk-column digests every 16 records
    # (shards.CRC_RECORDS) and at each flush; validate recomputes them from the stored values.
    from trajstore.shards import CRC_RECORDS

    assert 40 % CRC_RECORDS
    weights = trajectory(97)
    path = str(tmp_path / "d.zarr")
    w = trajstore.create(path, N_PARAMS, chunk_records=40, chunk_params=64, threads=threads)
    for i, row in enumerate(weights):
        w.append(i, row)
        if i in (7, 16, 23, 50, 79):
            w.flush()
    w.close()
    report = validate(path)
    assert report.valid, report
    assert np.array_equal(plain(path), weights)
