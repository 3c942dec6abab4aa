"""validate lists each damaged stored object once: a damaged chunk is one line however many
blocks of records it holds (a new user saw one damaged step chunk reported 4 times), and a
truncated shard is one line naming the shard and how many of its chunks fail (it was ~10)."""

from __future__ import annotations

import os

import numpy as np

import trajstore
from trajstore.validate import validate

from .conftest import run_cli

N_RECORDS, N_PARAMS = 50, 700  # blocks of 16 records; 11 chunk columns of 64 per shard


def _store(path):
    rng = np.random.default_rng(0)
    w = np.cumsum(rng.normal(size=(N_RECORDS, N_PARAMS)).astype(np.float32), axis=0)
    with trajstore.create(path, {"w": (N_PARAMS,)}, chunk_records=16, chunk_params=64) as wr:
        for i in range(N_RECORDS):
            wr.append(i, w[i])
    return path


def _flip(file, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0xFF
    file.write_bytes(bytes(data))


def _validate_cli(path) -> list[str]:
    p = run_cli("validate", path)
    assert p.returncode == 1, p.stdout + p.stderr
    return p.stdout.splitlines()


def test_a_damaged_step_chunk_is_one_line(tmp_path):
    """weights/step is one chunk holding 4 blocks of records: one line, not one per block."""
    path = _store(tmp_path / "s.zarr")
    _flip(path / "weights" / "step" / "c" / "0", 20)
    r = validate(path)
    assert len(r.problems) == 1, r.problems
    assert "weights/step: chunk (0,) is corrupted" in r.problems[0] and r.rules_broken == {"V35"}
    assert len(_validate_cli(path)) == 1


def test_a_truncated_shard_is_one_line_with_its_chunk_count(tmp_path):
    path = _store(tmp_path / "s.zarr")
    shard = path / "weights" / "value" / "c" / "1" / "0"
    os.truncate(shard, shard.stat().st_size - 100)  # its index at the end is cut
    r = validate(path)
    assert len(r.problems) == 1, r.problems
    line = r.problems[0]
    assert "records 16..31: stored object weights/value/c/1/0 is truncated: it has" in line
    assert "11 of its chunks are corrupted" in line and r.rules_broken == {"V43", "V35"}
    lines = _validate_cli(path)
    assert len(lines) == 1 and "11 of its chunks" in lines[0] and lines[0].count(str(path)) == 1


def test_two_bad_chunks_of_one_shard_are_one_line(tmp_path):
    """Two inner chunks of shard 0 flipped well before its tail (size and tail still match):
    one line naming the shard, the number of bad chunks and the first; other shards intact."""
    path = _store(tmp_path / "s.zarr")
    shard = path / "weights" / "value" / "c" / "0" / "0"
    _flip(shard, 40)  # inside the first inner chunk
    _flip(shard, shard.stat().st_size // 3)  # inside another one
    r = validate(path)
    assert len(r.problems) == 1, r.problems
    assert "stored object weights/value/c/0/0: 2 of its chunks are corrupted, the first, chunk (0, 0)" in (
        r.problems[0]
    )
    assert r.rules_broken == {"V35"}
