"""CRC-32C of a concatenation from the CRC-32Cs of its parts (zlib's ``crc32_combine``).

The integrity digest of a block chains chunk column after chunk column. A writer that digests
each chunk column on its own (as its records arrive, or on several threads) joins the parts
here: ``crc(A + B) = shift(crc(A), len(B)) ^ crc(B)`` where ``shift`` appends ``len(B)`` zero
bytes to the CRC register, a linear map over GF(2) that is precomputed once per length.
"""

from __future__ import annotations

import functools

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected


def _times(matrix: tuple[int, ...], vector: int) -> int:
    out = 0
    i = 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def _square(matrix: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_times(matrix, matrix[i]) for i in range(32))


@functools.lru_cache(maxsize=64)
def _zeros_operator(n_bytes: int) -> tuple[tuple[int, ...], ...]:
    """The map 'append n_bytes zero bytes' as four 256-entry tables, one per byte of the CRC."""
    # One zero bit: the register shifts right, feeding the polynomial back on a carry.
    odd = (_POLY, *(1 << i for i in range(31)))
    op: tuple[int, ...] = tuple(1 << i for i in range(32))  # identity
    power = _square(_square(_square(odd)))  # eight zero bits: one zero byte
    n = n_bytes
    while n:
        if n & 1:
            op = tuple(_times(power, op[i]) for i in range(32))
        n >>= 1
        if n:
            power = _square(power)
    return tuple(tuple(_times(op, b << (8 * k)) for b in range(256)) for k in range(4))


def crc32c_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """CRC-32C of ``A + B`` given ``crc_a = crc32c(A)``, ``crc_b = crc32c(B)`` and ``len(B)`` in bytes."""
    if len_b <= 0:
        return crc_a
    t = _zeros_operator(int(len_b))
    shifted = t[0][crc_a & 0xFF] ^ t[1][(crc_a >> 8) & 0xFF] ^ t[2][(crc_a >> 16) & 0xFF] ^ t[3][crc_a >> 24]
    return shifted ^ crc_b


def combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32C of ``A + B`` from ``crc1`` = CRC-32C of A, ``crc2`` = CRC-32C of B and ``len2`` =
    len(B) in bytes (the name the sharded writer uses)."""
    return crc32c_combine(crc1, crc2, len2)


def combine_all(parts: list[tuple[int, int]]) -> int:
    """CRC-32C of the concatenation of parts given as (crc, length in bytes), in order."""
    value = 0
    for crc, length in parts:
        value = crc32c_combine(value, crc, length)
    return value
