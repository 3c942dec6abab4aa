"""Choosing chunk and shard shapes for (records, params) arrays."""

from __future__ import annotations

import math

TARGET_CHUNK_BYTES = 4 * 1024 * 1024  # a few MiB: large enough to compress, small to read
WRITE_BUFFER_BYTES = 256 * 1024 * 1024  # one time block of all parameters is buffered
MIN_CHUNK_RECORDS = 8
MAX_CHUNK_RECORDS = 1024
SCALAR_CHUNK_RECORDS = 4096


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(x, 1)))))


def choose_chunks(
    n_params: int,
    itemsize: int = 4,
    chunk_records: int | None = None,
    chunk_params: int | None = None,
) -> tuple[int, int]:
    """Return (records, params) per chunk.

    The write buffer holds ``records × n_params`` values, so ``records`` is bounded by
    ``WRITE_BUFFER_BYTES``; ``params`` then fills a chunk to about ``TARGET_CHUNK_BYTES``.
    """
    row = n_params * itemsize
    if chunk_records is None:
        # As many records per chunk as the write buffer allows: long time-contiguous runs per
        # parameter are what compresses.
        chunk_records = _pow2_floor(min(WRITE_BUFFER_BYTES / row, MAX_CHUNK_RECORDS))
        chunk_records = max(MIN_CHUNK_RECORDS, chunk_records)
    if chunk_params is None:
        chunk_params = max(1, TARGET_CHUNK_BYTES // (chunk_records * itemsize))
        chunk_params = min(n_params, _pow2_floor(chunk_params))
    if chunk_records < 1 or chunk_params < 1:
        raise ValueError("chunk sizes must be positive")
    return int(chunk_records), int(min(chunk_params, n_params))


def shard_shape(n_params: int, chunk_records: int, chunk_params: int) -> tuple[int, int]:
    """One shard = one time block of all parameters (a whole number of chunks wide)."""
    return chunk_records, math.ceil(n_params / chunk_params) * chunk_params
