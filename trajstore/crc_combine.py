"""Combining CRC-32C values of adjacent byte strings without the bytes (zlib's crc32_combine,
for the Castagnoli polynomial).

``combine(crc(A), crc(B), len(B)) == crc(A + B)``. A store written by several processes, each
holding some chunk columns of a block, gets the block's integrity digest (see
:mod:`trajstore.integrity`) from the digests of the parts, in O(log len) per part: no process
reads the others' values.
"""

from __future__ import annotations

_POLY = 0x82F63B78  # CRC-32C, reflected


def _times(mat: list[int], vec: int) -> int:
    total = 0
    i = 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _square(mat: list[int]) -> list[int]:
    return [_times(mat, mat[n]) for n in range(32)]


def combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32C of ``A + B`` from ``crc1`` = CRC-32C of A, ``crc2`` = CRC-32C of B, ``len2`` = len(B)
    in bytes (all CRCs as :func:`crc32c.crc32c` returns them, starting from 0)."""
    if len2 <= 0:
        return crc1
    odd = [_POLY] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:  # apply len2 zero bytes to crc1, squaring the operator bit by bit of len2
        even = _square(odd)
        if len2 & 1:
            crc1 = _times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _square(even)
        if len2 & 1:
            crc1 = _times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def combine_all(parts: list[tuple[int, int]]) -> int:
    """CRC-32C of the concatenation of parts given as (crc, length in bytes), in order."""
    value = 0
    for crc, length in parts:
        value = combine(value, crc, length)
    return value
