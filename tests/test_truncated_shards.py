"""A truncated shard is reported in words, naming its file, on plain reads and in ``validate``,
``verify`` and ``info``: the last, partial shard (whose size the integrity index does not
record) as well as a full one. A new user saw a truncated partial shard reported as a CRC-32C
mismatch with raw bytes (``Stored: b'\\x00f\\x06\\x00'``) and no word of truncation."""

from __future__ import annotations

import numpy as np
import pytest

import trajstore
from trajstore.validate import validate

from .conftest import run_cli, write_store

N_RECORDS = 45  # blocks of 8: shards 0..4 full, shard 5 holds records 40..44
PARTIAL = "weights/value/c/5/0"
FULL = "weights/value/c/2/0"


def _store(tmp_path):
    path = tmp_path / "s.zarr"
    w, _ = write_store(path, n_records=N_RECORDS, chunk_records=8)
    return path, w


def _cut(shard, kind: str) -> str:
    """Damage ``shard``; return what its line must say."""
    data = shard.read_bytes()
    if kind == "cut_end":  # its index at the end is lost
        shard.write_bytes(data[:-9])
        return f"is truncated: it has {len(data) - 9} bytes and does not end in its shard index"
    if kind == "cut_to_10":
        shard.write_bytes(data[:10])
        return "is truncated: it has 10 bytes, fewer than its shard index alone (20)"
    if kind == "cut_before_index":  # 9 bytes of its chunk gone, its index intact: the size is known
        shard.write_bytes(data[: -20 - 9] + data[-20:])
        return f"is truncated: it has {len(data) - 9} bytes, its shard index expects {len(data)}"
    raise AssertionError(kind)


def _no_raw_bytes(text: str) -> None:
    assert "b'" not in text and 'b"' not in text and "Stored:" not in text, text


@pytest.mark.parametrize("kind", ["cut_end", "cut_to_10", "cut_before_index"])
def test_a_truncated_partial_shard_says_so_on_read_and_in_validate(tmp_path, kind):
    path, w = _store(tmp_path)
    words = _cut(path / PARTIAL, kind)
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.weights[:40], w[:40])  # the full shards still read
        with pytest.raises(trajstore.TrajstoreError) as exc:
            t.weights[38:]
    msg = str(exc.value)
    assert f"records 40..44: stored object {PARTIAL} {words}" in msg and "\n" not in msg, msg
    _no_raw_bytes(msg)
    r = validate(path)
    assert len(r.problems) == 1 and f"stored object {PARTIAL} {words}" in r.problems[0], r.problems
    assert r.rules_broken == {"V35"}
    _no_raw_bytes(r.problems[0])
    r = validate(path, checksums=False)  # the shard's own index is checked without decoding
    assert len(r.problems) == 1 and words in r.problems[0] and r.rules_broken == {"V35"}, r.problems


def test_the_commands_say_truncated_for_a_partial_and_a_full_shard(tmp_path):
    path, _ = _store(tmp_path)
    partial = _cut(path / PARTIAL, "cut_end")
    full = path / FULL
    size = full.stat().st_size
    full.write_bytes(full.read_bytes()[:-100])
    full_words = f"stored object {FULL} is truncated: it has {size - 100} bytes, {size} were written [V43]"
    for command in (["validate"], ["verify"], ["info"]):
        p = run_cli(*command, path)
        out = p.stdout + p.stderr
        assert p.returncode == 1 and "Traceback" not in out, out
        found = [f"stored object {PARTIAL} {partial}" in out, full_words in out]
        # validate and verify list both; info names the first damaged part its scan meets
        assert all(found) if command != ["info"] else any(found), out
        _no_raw_bytes(out)


def test_a_damaged_index_of_a_partial_shard_is_not_called_truncated(tmp_path):
    path, _ = _store(tmp_path)
    shard = path / PARTIAL
    data = bytearray(shard.read_bytes())
    data[-2] ^= 0xFF  # in the index's own CRC-32C: its entries still point inside the shard
    shard.write_bytes(bytes(data))
    r = validate(path)
    assert len(r.problems) == 1 and f"stored object {PARTIAL} has a damaged shard index" in r.problems[0]
    assert "truncated" not in r.problems[0]


def test_a_flipped_chunk_byte_is_a_checksum_failure_in_words(tmp_path):
    path, _ = _store(tmp_path)
    shard = path / PARTIAL
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF  # inside its one inner chunk; size and index intact
    shard.write_bytes(bytes(data))
    with trajstore.open(path) as t, pytest.raises(trajstore.TrajstoreError) as exc:
        t.weights[40:]
    assert "chunk (5, 0) cannot be decoded (its CRC-32C checksum does not match its stored bytes)" in str(
        exc.value
    )
    r = validate(path)
    assert r.problems == [
        "weights/value: chunk (5, 0) is corrupted (its CRC-32C checksum does not "
        "match its stored bytes) [V35]"
    ], r.problems


def test_a_partial_shard_replaced_while_it_is_checked_is_not_called_truncated(tmp_path):
    """A live writer replaces the partial shard whole as it fills. If that happens between the
    check's size and its read of the shard's tail (the full suite's live-reader test met it:
    "has 737 bytes, its shard index expects 740"), the check looks again instead of calling a
    whole shard truncated. The replacement is a real newer shard of the same store, put in
    place at that moment with os.replace, as the writer does."""
    import os
    import shutil

    path, w = _store(tmp_path)
    later = tmp_path / "later.zarr"
    shutil.copytree(path, later)
    params = {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (3, 16), "fc.bias": (3,)}
    with trajstore.create(later, params, mode="a") as wr:  # records 45..47 into the same shard
        for i, row in enumerate(np.random.default_rng(1).normal(size=(3, 91)).astype(np.float32)):
            wr.append(100 + i, row)
    newer = later / PARTIAL
    assert newer.stat().st_size != (path / PARTIAL).stat().st_size
    with trajstore.open(path) as t:
        backend = t._backend
        read_tail = backend.object_tail

        def tail_after_the_writer_replaced_it(*args, **kwargs):
            if newer.exists():
                os.replace(newer, path / PARTIAL)
            return read_tail(*args, **kwargs)

        backend.object_tail = tail_after_the_writer_replaced_it
        np.testing.assert_array_equal(t.weights[40:45], w[40:45])
    assert not newer.exists()  # the replacement did happen during the check
