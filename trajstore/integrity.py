"""The integrity index (format 1.1): every committed record accounted for, by stored object.

With each commit a writer records, per time-dependent group, one entry per block of records
(a row of the ``value`` array's stored objects, i.e. one Zarr shard): its record range, a
CRC-32C of the decoded values of each array over that range, and, for a full block stored
as one object, that object's size and the CRC-32 of its last bytes. Readers check that the
objects holding the records they read exist, are not empty and (full blocks) have the
recorded size and tail, once per object and cached; ``validate`` also recomputes every
digest. So a deleted, emptied, truncated or swapped shard is an error, never fill values.
"""

from __future__ import annotations

import math
import sys
import zlib
from dataclasses import dataclass

import crc32c as _crc32c
import numpy as np

from . import spec
from .errors import CorruptDataError, InvalidStoreError, in_words
from .shard_check import shard_index_bytes, shard_problem

ALGORITHM = "crc32c"
TAIL_BYTES = 4096  # the shard index and the last inner chunk's own CRC-32C live at the end
_U32 = 1 << 32
ROWS = "integrity"  # (1.2) the array of a group holding the first ``n_blocks`` blocks as rows
NO_VALUE = -1  # a null ``nbytes`` / ``tail`` in a row of that array


def digest(data: np.ndarray, value: int = 0, width: int | None = None) -> int:
    """CRC-32C of the little-endian bytes of ``data``, continuing from ``value``.

    A 2-D block (records, columns) is digested chunk column by chunk column: the C-order bytes
    of ``data[:, 0:width]``, then of ``data[:, width:2 * width]``, … with ``width`` the array's
    chunk width, so a checker decodes each chunk once and holds one chunk column at a time."""
    if data.ndim == 2:
        width = max(1, width or data.shape[1])
        for c in range(0, data.shape[1], width):
            value = _crc(np.ascontiguousarray(data[:, c : c + width]), value)
        return value
    return _crc(np.ascontiguousarray(data), value)


def _crc(a: np.ndarray, value: int) -> int:
    order = a.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    return int(_crc32c.crc32c(a.view(np.uint8).reshape(-1), value=value))


def tail_digest(tail: bytes) -> int:
    """CRC-32 (zlib's, not CRC-32C) of an object's last bytes. Not CRC-32C: Zarr ends every
    chunk and the shard index with its own CRC-32C, and CRC-32C over data followed by its CRC-32C
    is a constant, so all shards would share one CRC-32C."""
    return zlib.crc32(tail)


@dataclass(frozen=True)
class Block:
    """One index entry: records [start, stop), the digest of each array, the stored object."""

    start: int
    stop: int
    digests: dict[str, int]
    nbytes: int | None = None
    tail: int | None = None

    def to_json(self, arrays: tuple[str, ...]) -> list:
        return [self.start, self.stop, *(self.digests[a] for a in arrays), self.nbytes, self.tail]

    def to_row(self, arrays: tuple[str, ...]) -> list[int]:
        """The block as a row of the ``integrity`` array (1.2): nulls as ``NO_VALUE``."""
        return [NO_VALUE if v is None else v for v in self.to_json(arrays)]


@dataclass(frozen=True)
class IntegrityIndex:
    """The parsed ``integrity`` attribute of one group."""

    n_committed: int
    arrays: tuple[str, ...]
    blocks: tuple[Block, ...]

    def to_json(self, n_rows: int | None = None) -> dict:
        """The ``integrity`` attribute. ``n_rows`` (1.2): the first ``n_rows`` blocks are rows of
        the group's ``integrity`` array (:func:`store_index`) and only the rest are listed."""
        out = {"algorithm": ALGORITHM, "n_committed": self.n_committed, "arrays": list(self.arrays)}
        if n_rows is not None:
            out["n_blocks"] = n_rows
        out["blocks"] = [b.to_json(self.arrays) for b in self.blocks[n_rows or 0 :]]
        return out

    def by_start(self) -> dict[int, Block]:
        return {b.start: b for b in self.blocks}

    @classmethod
    def from_json(cls, value: object, where: str) -> IntegrityIndex:
        """Parse and check every field; raise :class:`InvalidStoreError` naming the first fault."""

        def bad(why: str) -> InvalidStoreError:
            return InvalidStoreError(f"{where}: the integrity index is malformed ({why}) [V41]")

        if not isinstance(value, dict):
            raise bad("not an object")
        if value.get("algorithm") != ALGORITHM:
            raise bad(f"algorithm {value.get('algorithm')!r} is not {ALGORITHM!r}")
        n = value.get("n_committed")
        if not _is_int(n) or not 0 <= n <= spec.MAX_RECORDS:
            raise bad(f"n_committed {n!r} is not a record count")
        arrays = value.get("arrays")
        if (
            not isinstance(arrays, list)
            or not 2 <= len(arrays) <= 3
            or arrays[:2] != [spec.VALUE, spec.STEP]
            or arrays[2:] not in ([], [spec.TIME])
        ):
            raise bad(f"arrays {arrays!r} is not ['value', 'step'] or ['value', 'step', 'time']")
        entries = value.get("blocks")
        if not isinstance(entries, list):
            raise bad("blocks is not a list")
        width = 2 + len(arrays) + 2
        blocks, expected = [], 0
        for i, e in enumerate(entries):
            if not isinstance(e, list) or len(e) != width:
                raise bad(f"block {i} is not a list of {width} entries")
            start, stop, *crcs, nbytes, tail = e
            if not (_is_int(start) and _is_int(stop)) or start != expected or stop <= start:
                raise bad(f"block {i} covers {start!r}..{stop!r}, expected to start at {expected}")
            if not all(_is_int(c) and 0 <= c < _U32 for c in crcs):
                raise bad(f"block {i} has a digest that is not a 32-bit unsigned integer")
            if nbytes is not None and not (_is_int(nbytes) and nbytes > 0):
                raise bad(f"block {i} has an invalid object size {nbytes!r}")
            if tail is not None and not (_is_int(tail) and 0 <= tail < _U32):
                raise bad(f"block {i} has an invalid tail digest {tail!r}")
            blocks.append(Block(start, stop, dict(zip(arrays, crcs, strict=True)), nbytes, tail))
            expected = stop
        if expected != n:
            raise bad(f"its blocks cover {expected} records, its n_committed is {n}")
        return cls(n, tuple(arrays), tuple(blocks))


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_index(backend, group: str, version: tuple[int, int]) -> IntegrityIndex | None:
    """The group's index; None for a 1.0 store without one. A 1.1 store must have it."""
    attrs = backend.attrs(group)
    raw = attrs.get(spec.ATTR_INTEGRITY)
    if raw is None:
        if version >= (1, 1):
            raise InvalidStoreError(
                f"{backend.path}: {group} has no integrity index although the store is format "
                f"{version[0]}.{version[1]}; it was altered, run 'trajstore validate' [V40]"
            )
        return None
    return parse_index(backend, group, raw, f"{backend.path}: {group}")


def parse_index(backend, group: str, raw: object, where: str) -> IntegrityIndex:
    """Parse the ``integrity`` attribute ``raw`` of ``group``, with the first ``n_blocks``
    blocks read from the group's ``integrity`` array when the attribute says so (1.2).
    Raise :class:`InvalidStoreError` naming the first fault [V41]."""
    if not isinstance(raw, dict) or "n_blocks" not in raw:
        return IntegrityIndex.from_json(raw, where)

    def bad(why: str) -> InvalidStoreError:
        return InvalidStoreError(f"{where}: the integrity index is malformed ({why}) [V41]")

    k, n, arrays = raw["n_blocks"], raw.get("n_committed"), raw.get("arrays")
    # Every block holds a record: more blocks than records is refused before anything is read.
    if not _is_int(k) or not 0 <= k <= (n if _is_int(n) else 0):
        raise bad(f"n_blocks {k!r} is not a count of at most n_committed ({n!r}) blocks")
    if not isinstance(arrays, list):
        raise bad(f"arrays {arrays!r} is not a list")
    width = 4 + len(arrays)
    path = f"{group}/{ROWS}"
    rows: list = []
    if k:
        # Zarr: the raw zarr.json is judged before zarr's parser reads it (codecs from the
        # allowed list only); a node zarr cannot parse is a malformed index, not a traceback.
        try:
            if getattr(backend, "skips_empty_chunks", False):  # Zarr: its zarr.json as written
                meta = backend.array_metadata(path)
                fault = _zarr_rows_fault(meta) if meta else "no array"
            else:
                fault = None if backend.exists(path) else "no array"
            if fault is None and not backend.is_array(path):
                fault = "no array"
            shape, dtype = (backend.shape(path), backend.dtype(path)) if fault is None else ((), None)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise bad(f"{path} cannot be read: {in_words(exc)}") from exc
        if fault == "no array":
            raise bad(f"n_blocks is {k} but there is no array {path}")
        if fault is not None:
            raise bad(f"{path} {fault}")
        if dtype != np.dtype("<i8") or len(shape) != 2 or shape[1] != width or shape[0] < k:
            raise bad(f"{path} is {dtype} {shape}, expected int64 with at least {k} rows of {width}")
        # Read in pieces, each judged before the next is read: n_blocks and the shape are only
        # declared, and rows never written read as the fill value -1, so a forged count stops at
        # its first missing piece instead of allocating what it declares.
        nulls = range(width - 2, width)  # nbytes and tail
        piece = max(1, _MAX_ROW_CHUNK // width)
        for a in range(0, k, piece):
            try:
                data = backend.read(path, slice(a, min(k, a + piece)))
            except (OSError, ValueError, RuntimeError, KeyError) as exc:  # e.g. failing Fletcher-32
                raise bad(f"{path} cannot be read: {in_words(exc)}") from exc
            broken = np.flatnonzero((data[:, 0] < 0) | (data[:, 1] <= data[:, 0]))
            if broken.size:
                i = int(broken[0])
                raise bad(f"{path} row {a + i} is no block (start {data[i, 0]}, stop {data[i, 1]})")
            rows += [
                [None if j in nulls and v == NO_VALUE else v for j, v in enumerate(r)] for r in data.tolist()
            ]
    listed = raw.get("blocks")
    if not isinstance(listed, list):
        raise bad("blocks is not a list")
    return IntegrityIndex.from_json({**raw, "blocks": rows + listed}, where)


_MAX_ROW_CHUNK = 1 << 20  # values in one chunk of a rows array (8 MiB): checked before reading


def _small_chunk(shape: object) -> bool:
    return (
        isinstance(shape, list)
        and len(shape) == 2
        and all(_is_int(c) and c > 0 for c in shape)
        and shape[0] * shape[1] <= _MAX_ROW_CHUNK
    )


def _zarr_rows_fault(meta: dict) -> str | None:
    """What makes the raw ``zarr.json`` of a rows array unreadable by trajstore's rules
    (not an array, storage transformers, a codec off spec.ZARR_CODECS), "no array" when it is
    absent; None when fine."""
    if meta.get("node_type") != "array":
        return "no array"
    if meta.get("storage_transformers"):
        return "has storage transformers"
    if meta.get("data_type") != "int64":
        return f"has data type {str(meta.get('data_type'))[:40]!r}, not int64"
    grid = meta.get("chunk_grid")
    chunks = ((grid.get("configuration") or {}) if isinstance(grid, dict) else {}).get("chunk_shape")
    if not _small_chunk(chunks) or grid.get("name") != "regular":
        return f"has chunk grid {str(grid)[:80]}, not regular with at most {_MAX_ROW_CHUNK} values a chunk"
    stack = list(meta.get("codecs") or ()) if isinstance(meta.get("codecs"), list) else [None]
    while stack:
        c = stack.pop()
        name = c.get("name") if isinstance(c, dict) else None
        if name not in spec.ZARR_CODECS:
            return f"has codec {name!r}, not one of the allowed"
        conf = c.get("configuration") or {}
        if not isinstance(conf, dict):
            return f"has codec {name!r} with configuration {str(conf)[:40]}, not an object"
        if name == "sharding_indexed" and not _small_chunk(conf.get("chunk_shape")):
            return "has an inner chunk shape that is not small positive sizes"
        for key in ("codecs", "index_codecs"):
            inner = conf.get(key) or []
            stack.extend(inner if isinstance(inner, list) else [None])
    return None


def store_index(
    backend, group: str, index: IntegrityIndex, n_rows: int, block_records: int
) -> tuple[dict, int]:
    """The ``integrity`` attribute of ``index`` to write with the commit, and its block count
    in the group's ``integrity`` array (1.2).

    A back end that keeps the blocks as rows (``index_rows``: HDF5, Zarr) gets the full blocks
    past the ``n_rows`` already stored appended to the array first, so a commit costs O(new blocks), not
    O(all blocks); the attribute then lists only a last partial block (rewritten as it fills, so
    never a row: a crash between the row and the attribute would leave them disagreeing).
    Other back ends get the whole list in the attribute, as in 1.1."""
    if not getattr(backend, "index_rows", False):
        return index.to_json(), 0
    blocks = index.blocks
    full = len(blocks) - (1 if blocks and blocks[-1].stop - blocks[-1].start < block_records else 0)
    if full > n_rows:
        rows = np.array([b.to_row(index.arrays) for b in blocks[n_rows:full]], dtype="<i8")
        backend.write_rows(f"{group}/{ROWS}", n_rows, rows)
    return index.to_json(full), full


class StoredObjects:
    """Checks that the stored objects (shards or chunks) holding records exist before a read.

    ``fill_ok``: a 1.0 store whose writer let zarr skip all-zero chunks; absent objects of such
    an array cannot be told from deleted ones and read as zeros. Checks are cached per object.
    """

    def __init__(self, backend, path: str, n_committed: int, index: IntegrityIndex | None, fill_ok: bool):
        self.backend = backend
        self.path = path
        self.n = n_committed
        self.fill_ok = fill_ok
        grid = backend.object_grid(path)
        self.rows = max(int(grid[0]), 1)
        self.cols = int(grid[1]) if len(grid) > 1 else None
        self.n_cols = backend.shape(path)[1] if len(grid) > 1 else None
        self._blocks = index.by_start() if index is not None and path.endswith(f"/{spec.VALUE}") else {}
        self._ok: set[tuple[int, ...]] = set()
        self._index_bytes: int | None | bool = False  # of a shard's own index; False: not looked up

    def damage(self, r0: int, r1: int, c0: int = 0, c1: int | None = None, limit: int = 1) -> list[str]:
        """Up to ``limit`` one-line descriptions of damaged objects holding records [r0, r1)."""
        return [text for _, text in self.damaged_objects(r0, r1, c0, c1, limit)]

    def damaged_objects(
        self, r0: int, r1: int, c0: int = 0, c1: int | None = None, limit: int = 1
    ) -> list[tuple[tuple[int, ...], str]]:
        """As :meth:`damage`, each with the object's grid position."""
        found: list[tuple[tuple[int, ...], str]] = []
        r1 = min(r1, self.n)
        if r1 <= r0:
            return found
        rows = range(r0 // self.rows, math.ceil(r1 / self.rows))
        # The last row first (a bogus record count fails at once), then in record order.
        order = [rows[-1], *rows[:-1]]
        if self.cols is None:
            cells = [(k,) for k in order]
        else:
            c1 = self.n_cols if c1 is None else c1
            cols = range(c0 // self.cols, max(c0 // self.cols + 1, math.ceil(c1 / self.cols)))
            cells = [(k, j) for k in order for j in cols]
        for coords in cells:
            if coords in self._ok:
                continue
            why = self._object_problem(coords)
            if why is None:
                self._ok.add(coords)
                continue
            a = coords[0] * self.rows
            b = min(a + self.rows, self.n)
            found.append(
                (
                    coords,
                    f"{self.backend.path}: {self.path} records {a}..{b - 1}: stored object "
                    f"{self.backend.object_key(self.path, coords)} {why}",
                )
            )
            if len(found) >= limit:
                break
        return found

    def check(self, r0: int, r1: int, c0: int = 0, c1: int | None = None) -> None:
        """Raise :class:`CorruptDataError` if an object holding records [r0, r1) is damaged."""
        found = self.damage(r0, r1, c0, c1)
        if found:
            raise CorruptDataError(
                f"{found[0]}; nothing is returned for these records. Restore the file from a copy "
                "or run 'trajstore validate' to list every damaged part"
            )

    def _object_problem(self, coords: tuple[int, ...]) -> str | None:
        nbytes = self.backend.object_nbytes(self.path, coords)
        if nbytes is None:
            return None if self.fill_ok else "is missing (deleted or moved?) [V42]"
        if nbytes == 0:
            return "is empty [V42]"
        block = self._blocks.get(coords[0] * self.rows)
        if block is None or block.nbytes is None or block.stop - block.start != self.rows:
            # No size recorded (a partial block, rewritten as it fills): a Zarr shard's own
            # index says whether it is whole.
            why = self._shard_problem(coords, nbytes)
            if why is not None and self._description_edited(coords[1:]):
                return (
                    f"does not match the shard layout in {self.path}/zarr.json, and neither does an "
                    "intact full shard: that zarr.json was edited after writing [V35]"
                )
            return None if why is None else f"{why} [V35]"
        if nbytes < block.nbytes:
            return f"is truncated: it has {nbytes} bytes, {block.nbytes} were written [V43]"
        if nbytes != block.nbytes:
            return f"has {nbytes} bytes, {block.nbytes} were written (replaced or appended to?) [V43]"
        try:
            tail = self.backend.object_tail(self.path, coords, TAIL_BYTES)
        except OSError as exc:  # e.g. a package entry failing its CRC-32
            return f"cannot be read ({in_words(exc)}) [V43]"
        if block.tail is not None and tail is not None and tail_digest(tail) != block.tail:
            return "differs from what was written there (altered, swapped or moved?) [V43]"
        return None

    def _description_edited(self, cols: tuple[int, ...]) -> bool:
        """Whether a full block's shard that is intact by its recorded size and tail is judged
        damaged by the array's current metadata too: then the metadata (an edited chunk or
        index layout in ``zarr.json``), not the shard, is what changed. Only on the error path."""
        for start, block in self._blocks.items():
            if block.nbytes is None or block.tail is None or block.stop - block.start != self.rows:
                continue
            coords = (start // self.rows, *cols)
            try:
                nbytes = self.backend.object_nbytes(self.path, coords)
                tail = self.backend.object_tail(self.path, coords, TAIL_BYTES)
            except OSError:
                continue
            if nbytes != block.nbytes or tail is None or tail_digest(tail) != block.tail:
                continue
            return self._shard_problem(coords, nbytes) is not None
        return False

    def _shard_problem(self, coords: tuple[int, ...], nbytes: int) -> str | None:
        """:func:`~trajstore.shard_check.shard_problem` of the object at ``coords`` when the
        array is sharded with its index at the end (Zarr), else None."""
        if self._index_bytes is False:
            zarr = getattr(self.backend, "skips_empty_chunks", False)  # Zarr: its zarr.json as written
            self._index_bytes = shard_index_bytes(self.backend.array_metadata(self.path)) if zarr else None
        if self._index_bytes is None:
            return None
        # A partial shard is replaced whole as it fills: a live writer may swap it between the
        # size and the tail read here, so the pair is judged only if the size held across.
        for _ in range(_LIVE_LOOKS):
            try:
                tail = self.backend.object_tail(self.path, coords, self._index_bytes)
                after = self.backend.object_nbytes(self.path, coords)
            except OSError:
                return None  # unreadable: the read that follows reports it
            if tail is None or after is None:
                return None
            if after == nbytes:
                return shard_problem(nbytes, tail, self._index_bytes)
            nbytes = after
        return None  # still being rewritten: not judged here


_LIVE_LOOKS = 3  # looks at a shard that a live writer keeps replacing before leaving it be


def digest_mismatches(
    index: IntegrityIndex, name: str, data: np.ndarray, where: str, limit: int = 1
) -> list[str]:
    """Blocks whose recorded digest of array ``name`` differs from ``data`` (records from 0)."""
    found = []
    for b in index.blocks:
        if name not in b.digests or b.stop > len(data):
            continue
        if digest(data[b.start : b.stop]) != b.digests[name]:
            found.append(
                f"{where}/{name} records {b.start}..{b.stop - 1} differ from what was written "
                "(a stored object was swapped, moved or altered, or the array's description "
                "in its metadata edited) [V44]"
            )
            if len(found) >= limit:
                break
    return found


def check_digests(index: IntegrityIndex | None, name: str, data: np.ndarray, where: str) -> None:
    """Raise :class:`CorruptDataError` when a fully read array differs from its digests."""
    if index is None:
        return
    found = digest_mismatches(index, name, data, where)
    if found:
        raise CorruptDataError(f"{found[0]}; run 'trajstore validate' to list every damaged part")
