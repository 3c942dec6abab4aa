"""The content digest of a store: one SHA-256 over its committed data, whatever the back end.

Defined in docs/format.md (1.1, "Content digest"). It covers each vector group's layout,
committed steps and values, and each observable's committed steps and values; not the root
attributes and not the wall-clock ``time`` arrays. So a store converted to the other back end
or re-chunked keeps its digest, and describing a store (``annotate``) does not change it.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from . import spec
from .reader import LazyArray, Trajectory

DIGEST_PREFIX = "sha256:"
_BLOCK_BYTES = 64 * 1024 * 1024


def content_digest(traj: Trajectory) -> str:
    """``"sha256:<hex>"`` of the store's committed content (reads every committed value once)."""
    h = hashlib.sha256()
    vectors = [(spec.WEIGHTS, traj.layout, traj.steps, traj.weights)]
    for group in (traj.gradients, traj.buffers):
        if group is not None:
            vectors.append((group.name, group.layout, group.steps, group.values))
    for name, layout, steps, values in vectors:
        h.update(f"{name}\n".encode())
        h.update(json.dumps(layout.to_json(), sort_keys=True, separators=(",", ":")).encode())
        h.update(_le(np.asarray(steps, dtype=np.int64)))
        _hash_rows(h, values)
    for name in traj.observables:
        steps, values = traj.observable(name)
        h.update(f"{spec.OBSERVABLES}/{name}\n".encode())
        h.update(_le(steps.astype(np.int64)))
        h.update(_le(values.astype(np.float64)))
    return DIGEST_PREFIX + h.hexdigest()


def _le(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def _hash_rows(h, values: LazyArray) -> None:
    """Feed the SHA-256 of each record's values (C order, stored dtype, little endian) into ``h``.

    Per-record digests make the result independent of the chunk grid: a block of records is
    read one column block after another and each row's hasher is fed left to right.
    """
    n, cols = values.shape
    rec_block = max(1, values.chunks[0])
    col_block = max(1, min(cols, _BLOCK_BYTES // (rec_block * values.dtype.itemsize)))
    for r0 in range(0, n, rec_block):
        r1 = min(n, r0 + rec_block)
        rows = [hashlib.sha256() for _ in range(r1 - r0)]
        for c0 in range(0, max(cols, 1), col_block):
            block = values[r0:r1, c0 : min(cols, c0 + col_block)]
            for row_hash, row in zip(rows, block, strict=True):
                row_hash.update(_le(row))
        for row_hash in rows:
            h.update(row_hash.digest())
