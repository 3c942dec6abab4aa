"""Is a Zarr shard whole? Its size against the shard index at its end, said in words.

A shard written with ``index_location: end`` ends in its index: per inner chunk an (offset,
length) pair of little-endian uint64 (both 2^64 − 1 for a chunk never written), then the
index's CRC-32C. A shard cut short (a partial copy, a full disk) loses that index: zarr then
reports a checksum mismatch with raw bytes. The integrity index records the size of full blocks
only (partial ones are rewritten as they fill), so for the others this is how a truncated shard
is told from altered bytes, before anything is decoded.
"""

from __future__ import annotations

import math

import crc32c as _crc32c
import numpy as np

_MISSING = (1 << 64) - 1  # offset and length of an inner chunk that was never written


def shard_index_bytes(meta: dict) -> int | None:
    """Size in bytes of the index at the end of each shard of the array whose ``zarr.json`` is
    ``meta`` (16 per inner chunk + 4 for its CRC-32C); None unless the array is sharded with its
    index at the end, coded as little-endian ``bytes`` + ``crc32c``."""
    try:
        codecs = meta.get("codecs") or []
        if len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
            return None
        conf = codecs[0].get("configuration") or {}
        index_codecs = conf.get("index_codecs") or []
        names = [c.get("name") for c in index_codecs]
        first = (index_codecs[0].get("configuration") or {}) if index_codecs else {}
        endian = first.get("endian", "little")
        if conf.get("index_location", "end") != "end" or names != ["bytes", "crc32c"] or endian != "little":
            return None
        shard = meta["chunk_grid"]["configuration"]["chunk_shape"]
        inner = conf["chunk_shape"]
        if len(shard) != len(inner):
            return None
        pairs = [(int(s), int(c)) for s, c in zip(shard, inner, strict=True)]
        if any(c <= 0 or s % c for s, c in pairs):
            return None
        return 16 * math.prod(s // c for s, c in pairs) + 4
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None


def shard_problem(nbytes: int, tail: bytes, index_bytes: int) -> str | None:
    """What is wrong with a shard of ``nbytes`` bytes ending in ``tail`` (at least its last
    ``index_bytes`` bytes, fewer only if the shard is shorter), in words; None when its index
    is intact and every chunk it lists lies within the shard."""
    if nbytes < index_bytes or len(tail) < index_bytes:
        return f"is truncated: it has {nbytes} bytes, fewer than its shard index alone ({index_bytes})"
    raw = tail[len(tail) - index_bytes :]
    entries = np.frombuffer(raw[:-4], dtype="<u8").reshape(-1, 2)
    present = entries[(entries[:, 0] != _MISSING) | (entries[:, 1] != _MISSING)]
    data_bytes = nbytes - index_bytes
    # The end of the chunks it lists: in Python ints, as damaged entries can be near 2^64.
    ends = [int(o) + int(n) for o, n in present.tolist()]
    if _crc32c.crc32c(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
        if all(e <= data_bytes for e in ends):
            return "has a damaged shard index (its CRC-32C checksum does not match its stored bytes)"
        return (
            f"is truncated: it has {nbytes} bytes and does not end in its shard index "
            "(cut short, or its end overwritten)"
        )
    expected = max(ends, default=0) + index_bytes
    if expected > nbytes:
        return f"is truncated: it has {nbytes} bytes, its shard index expects {expected}"
    return None
