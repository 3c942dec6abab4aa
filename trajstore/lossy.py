"""Optional lossy precision reduction, applied before storage so any reader decodes plain floats."""

from __future__ import annotations

import numpy as np

FLOAT32_MANTISSA_BITS = 23


def bitround(values: np.ndarray, keepbits: int) -> np.ndarray:
    """Round float32 ``values`` to ``keepbits`` mantissa bits (round half to even), in place.

    The dropped mantissa bits become zeros, which byte-shuffle + zstd then compress away.
    Non-finite values are left unchanged.
    """
    if not 0 <= keepbits <= FLOAT32_MANTISSA_BITS:
        raise ValueError(f"keepbits must be in 0..{FLOAT32_MANTISSA_BITS}, got {keepbits}")
    if values.dtype != np.float32:
        raise TypeError("bitround works on float32 arrays")
    if keepbits == FLOAT32_MANTISSA_BITS:
        return values
    drop = FLOAT32_MANTISSA_BITS - keepbits
    bits = values.view(np.uint32)
    finite = np.isfinite(values)
    half = np.uint32((1 << (drop - 1)) - 1)
    keep_lsb = (bits >> np.uint32(drop)) & np.uint32(1)
    mask = np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    rounded = ((bits + half + keep_lsb) & mask).astype(np.uint32)
    bits[finite] = rounded[finite]
    return values
