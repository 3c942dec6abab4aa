"""Reading a trajectory store: ``trajstore.open(path)`` returns a :class:`Trajectory`."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import spec
from .backends import Backend, open_backend
from .backends.zarr_backend import unreadable_metadata
from .errors import (
    CorruptDataError,
    InvalidStoreError,
    NotAStoreError,
    SpecVersionError,
    StoreBusyError,
    TrajstoreError,
    in_words,
)
from .integrity import IntegrityIndex, StoredObjects, check_digests, digest, read_index
from .layout import Layout
from .shard_reader import ParamMajorReader, ShardReadError
from .validate import array_problems, root_attr_problems

DEFAULT_MEMORY_LIMIT = 1 << 30  # bytes
# A reader of an HDF5 file that a live writer is updating can meet metadata newer than its view
# of the file; it opens the file again and retries this many times before saying "retry".
_LIVE_RETRIES = 8
_LIVE_WAIT_SECONDS = 0.05
_LIVE_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, TrajstoreError)


def _busy(path: str) -> StoreBusyError:
    return StoreBusyError(
        f"{path} is being written (a live recording) and changed under this read; retry in a moment"
    )


def _live(backend: Backend) -> bool:
    check = getattr(backend, "is_being_written", None)
    return bool(check and check())


def check_header(backend: Backend, path: str) -> dict:
    """Return the root attributes after checking the spec name and major version."""
    attrs = backend.attrs("")
    name = attrs.get(spec.ATTR_SPEC_NAME)
    if name != spec.SPEC_NAME:
        raise NotAStoreError(
            f"{path} is not a trajstore store (root attribute {spec.ATTR_SPEC_NAME!r} is {name!r})"
        )
    try:
        major, _ = spec.parse_version(attrs.get(spec.ATTR_SPEC_VERSION, ""))
    except ValueError as exc:
        raise NotAStoreError(f"{path}: {exc}") from None
    if major > spec.SPEC_MAJOR:
        raise SpecVersionError(
            f"{path} uses trajstore format {attrs[spec.ATTR_SPEC_VERSION]}, this reader knows "
            f"{spec.SPEC_VERSION}; upgrade trajstore (pip install -U trajstore)"
        )
    if not backend.exists(spec.WEIGHTS):
        raise NotAStoreError(f"{path} has no '{spec.WEIGHTS}' group; it is not a complete trajstore store")
    problems = root_attr_problems(attrs)
    if problems:
        rule, text = problems[0]
        raise InvalidStoreError(f"{path}: {text} [{rule}]; the store breaks the format")
    return attrs


def _read_checked(backend: Backend, path: str, selection: Any) -> np.ndarray:
    """Read, turning a codec or checksum failure into a one-line :class:`CorruptDataError`
    that names the array and the index of the first damaged chunk."""
    try:
        return _read_complete(backend, path, selection)
    except Exception as exc:  # noqa: BLE001 - any decode failure of damaged bytes or metadata
        if _live(backend):  # not damage: a writer is updating the file under us
            for attempt in range(_LIVE_RETRIES):
                time.sleep(_LIVE_WAIT_SECONDS * (attempt + 1))
                try:
                    backend.reopen()
                    return _read_complete(backend, path, selection)
                except Exception:  # noqa: BLE001 - still changing: wait and retry
                    continue
            raise _busy(backend.path) from None
        if isinstance(exc, _MissingChunk):
            raise CorruptDataError(
                f"{backend.path}: {path} chunk {exc.args[0]} holds committed records but was never "
                "written (it would read as zeros); the store is damaged there"
            ) from None
        msg = in_words(str(exc)).strip().splitlines()
        where = _first_bad_chunk(backend, path, selection)
        place = f"chunk {where}" if where is not None else f"records {_fmt_sel(selection)}"
        raise CorruptDataError(
            f"{backend.path}: {path} {place} cannot be decoded "
            f"({msg[0] if msg else type(exc).__name__}); the store is damaged there, run "
            "'trajstore validate' to list every bad chunk"
        ) from None


def _retry_while_live(backend: Backend, load):
    """``load()``, retried on a fresh view while a live HDF5 writer is updating the file (what
    fails then is a stale view, not damage); :class:`StoreBusyError` if it keeps failing."""
    try:
        return load()
    except Exception:
        if not _live(backend):
            raise
    for attempt in range(_LIVE_RETRIES):
        time.sleep(_LIVE_WAIT_SECONDS * (attempt + 1))
        try:
            backend.reopen()
            return load()
        except Exception:  # noqa: BLE001 - still changing: wait and retry
            continue
    raise _busy(backend.path)


class _MissingChunk(RuntimeError):
    """A chunk under committed records is not in the file (args[0]: its index)."""


def _read_complete(backend: Backend, path: str, selection: Any) -> np.ndarray:
    """Read, and make sure no committed record came back as the fill value of a chunk that is
    not in the store (HDF5 fills those silently)."""
    data = backend.read(path, selection)
    missing = getattr(backend, "missing_chunk", None)
    if missing is not None:
        where = missing(path, selection)
        if where is not None:
            raise _MissingChunk(where)
    return data


def _first_bad_chunk(backend: Backend, path: str, selection: Any) -> tuple[int, ...] | None:
    """Index of the first chunk in ``selection`` that fails to decode (slices only)."""
    sel = selection if isinstance(selection, tuple) else (selection,)
    chunks = backend.chunks(path)
    shape = backend.shape(path)
    ranges = []
    for dim, (n, c) in enumerate(zip(shape, chunks, strict=True)):
        s = sel[dim] if dim < len(sel) else slice(None)
        if isinstance(s, (int, np.integer)):
            s = slice(int(s), int(s) + 1)
        if not isinstance(s, slice):
            return None
        start, stop, _ = s.indices(n)
        ranges.append(range(start // c, max(start // c + 1, -(-stop // c))))
    for idx in np.ndindex(*[len(r) for r in ranges]):
        cidx = tuple(r[i] for r, i in zip(ranges, idx, strict=True))
        piece = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(cidx, chunks, shape, strict=True))
        try:
            backend.read(path, piece)
        except Exception:  # noqa: BLE001 - the first chunk that fails, whatever the failure
            return cidx
    return None


def _fmt_sel(selection: Any) -> str:
    if not isinstance(selection, tuple):
        selection = (selection,)
    parts = []
    for s in selection:
        parts.append(f"{s.start}:{s.stop}" if isinstance(s, slice) else str(s))
    return "[" + ", ".join(parts) + "]"


# (store, array, its description as stored, block, digest) of the blocks this process has
# checked: a store opened again (a Dask task opens it per task) does not decode the block again.
_CHECKED_BLOCKS: set[tuple] = set()


class LazyArray:
    """A (records, columns) array in the store, read on indexing, limited to committed records.

    Indexing with slices or integers reads only the chunks that hold the selection.

    Reads of a 1.1 store are checked against the integrity index's digests (docs/format.md
    5.1): the first read of values decodes one block (the smallest; all its columns) and
    compares it with its digest, once per opened array (:meth:`check_one_block`); and every
    block of records that a read covers whole (every record of the block, every column) is
    compared with its digest too, a CRC-32C over the values just read. A mismatch is a one-line
    :class:`CorruptDataError` [V44], nothing is returned. Reads of part of a block (some of its
    records or columns, e.g. ``weights[5]`` or ``weights[:, :100]``) cannot be compared, as a
    digest covers the whole block: they rely on the one-block check and the chunk checksums
    (``trajstore validate`` compares every block).
    """

    def __init__(
        self,
        backend: Backend,
        path: str,
        n_records: int,
        objects: StoredObjects | None = None,
        index: IntegrityIndex | None = None,
    ):
        self._backend = backend
        self.path = path
        self._objects = objects  # checks the shards/chunks of a read exist before reading
        stored = backend.shape(path)
        self.shape: tuple[int, ...] = (n_records, *stored[1:])
        self.dtype = backend.dtype(path)
        self.chunks = backend.chunks(path)
        self._direct: ParamMajorReader | None | bool = False  # False: not looked up yet
        # (start, stop, CRC-32C) of the committed blocks that have a digest of this array
        name = path.rsplit("/", 1)[-1]
        blocks = index.blocks if index is not None and len(self.shape) == 2 and self.shape[1] else ()
        self._digests: list[tuple[int, int, int]] = [
            (b.start, b.stop, b.digests[name]) for b in blocks if name in b.digests and b.stop <= n_records
        ]
        self._one_checked = not self._digests  # nothing to check without digests
        # Blocks whose stored objects have no recorded size and tail (every HDF5 block, a Zarr
        # array's last, partial shard): nothing but their digest notices values rewritten in place.
        self._unsized = [
            (b.start, b.stop, b.digests[name])
            for b in blocks
            if name in b.digests and b.stop <= n_records and (b.nbytes is None or b.tail is None)
        ]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(first, slice):
            first = slice(*first.indices(n))
            if first.step != 1:
                start, stop, step = first.start, first.stop, first.step
                idx = np.arange(start, stop, step)
                return self[(idx, *rest)]
        elif isinstance(first, (int, np.integer)):
            i = int(first) + n if first < 0 else int(first)
            if not 0 <= i < n:
                raise IndexError(f"record {first} out of range for {n} records")
            first = i
        else:
            idx = np.asarray(first)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = np.where(idx < 0, idx + n, idx)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise IndexError(f"record index out of range for {n} records")
            if idx.size == 0:
                return np.empty((0, *self.shape[1:]), self.dtype)[(slice(None), *rest)]
            lo, hi = int(idx.min()), int(idx.max()) + 1
            return self._read(lo, hi, rest)[idx - lo]
        if isinstance(first, slice):
            return self._read(first.start, first.stop, rest)
        self._check_objects(first, first + 1, rest)
        data = _read_checked(self._backend, self.path, (first, *rest))
        self.check_one_block()
        return data

    def _read(self, r0: int, r1: int, rest: tuple) -> np.ndarray:
        """Records [r0, r1) of columns ``rest``: objects present, whole blocks compared with
        their digests, one block checked on the first read."""
        self._check_objects(r0, r1, rest)
        data = _read_checked(self._backend, self.path, (slice(r0, r1), *rest))
        if not self._verify_whole_blocks(data, r0, rest):
            self.check_one_block()
        return data

    def _verify_whole_blocks(self, data: np.ndarray, r0: int, rest: tuple) -> bool:
        """Compare each block that ``data`` (records r0 …, the columns ``rest``) holds whole with
        its digest; whether one was compared. A CRC-32C over bytes already in memory."""
        if not self._digests or not self._all_columns(rest):
            return False
        r1 = r0 + data.shape[0]
        compared = False
        for start, stop, expected in self._digests:
            if r0 <= start and stop <= r1:
                if digest(data[start - r0 : stop - r0], width=self.chunks[1]) != expected:
                    raise self._altered(start, stop)
                compared = True
        self._one_checked |= compared
        return compared

    def _all_columns(self, rest: tuple) -> bool:
        if not rest:
            return True
        if len(rest) != 1 or not isinstance(rest[0], slice):
            return False
        return rest[0].indices(self.shape[1]) == (0, self.shape[1], 1)

    def check_one_block(self) -> None:
        """Decode the smallest committed block that has a digest in the integrity index (format
        1.1; every column, one chunk column at a time) and compare: :class:`CorruptDataError`
        [V44] when it differs. Chunk checksums catch damaged bytes; this catches values that
        decode cleanly yet differently from what was written (the array's ``zarr.json`` edited
        after writing: another transpose order, dtype or codec), which would change every
        value read. Done once per opened array (and per process for an unchanged description):
        the first read of values runs it."""
        if self._one_checked:
            return
        self._check_block(*min(self._digests, key=lambda d: (d[1] - d[0], -d[0])))
        self._one_checked = True

    def check_unsized_blocks(self, r0: int = 0, r1: int | None = None) -> None:
        """Decode and compare with its digest every block holding records [r0, r1) whose stored
        objects have no recorded size and tail (every block of an HDF5 store; a Zarr array's
        last, partial shard): values rewritten there in place (an HDF5 file edited with h5py)
        pass every chunk checksum, and reads of parts of blocks cannot compare them. What
        ``analyze`` runs before it reads, so that it never analyses such values: one extra decode
        of those blocks, once per process. :class:`CorruptDataError` [V44] on a mismatch."""
        r1 = self.shape[0] if r1 is None else r1
        for start, stop, expected in self._unsized:
            if start < r1 and r0 < stop:
                self._check_block(start, stop, expected)
        self._one_checked |= bool(self._unsized)

    def _check_block(self, start: int, stop: int, expected: int) -> None:
        where = self._backend.path if "://" in self._backend.path else os.path.abspath(self._backend.path)
        key = (where, self.path, repr(self._backend.array_metadata(self.path)), start, stop, expected)
        if key in _CHECKED_BLOCKS:
            return
        self._check_objects(start, stop, ())
        width, crc = self.chunks[1], 0
        for c in range(0, self.shape[1], width):
            piece = _read_checked(self._backend, self.path, (slice(start, stop), slice(c, c + width)))
            crc = digest(piece, crc, width=width)
        if crc != expected:
            raise self._altered(start, stop)
        _CHECKED_BLOCKS.add(key)

    def _altered(self, start: int, stop: int) -> CorruptDataError:
        return CorruptDataError(
            f"{self._backend.path}: {self.path} records {start}..{stop - 1} decode to other values "
            "than were written (a stored object or the array's description was altered) [V44]; "
            "nothing is returned. Run 'trajstore validate' to list every damaged part"
        )

    def read_param_major(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Records [r0, r1) of columns [c0, c1) parameter-major: (c1 − c0, r1 − r0), C-contiguous,
        one column's series per row. Straight from the local shard files when the layout is
        trajstore's own (:class:`~trajstore.shard_reader.ParamMajorReader`, which verifies every
        checksum); otherwise, or when those bytes cannot be vouched for, ``self[r0:r1, c0:c1]``
        transposed (zarr's or h5py's read, with its usual errors)."""
        if not (0 <= r0 <= r1 <= self.shape[0]) or not (0 <= c0 <= c1 <= self.shape[1]):
            raise IndexError(f"records {r0}:{r1} × columns {c0}:{c1} outside {self.shape}")
        self._check_objects(r0, r1, (slice(c0, c1),))
        if self._direct is False:
            self._direct = ParamMajorReader.for_array(self._backend, self.path)
        if self._direct is not None:
            self.check_one_block()  # the transposed values are not compared block by block
            try:
                return self._direct.read(r0, r1, c0, c1)
            except ShardReadError:
                pass  # read through zarr: it says what is wrong in its usual words
        return np.ascontiguousarray(self[r0:r1, c0:c1].T)

    @property
    def reads_shards_directly(self) -> bool:
        """Whether :meth:`read_param_major` reads the local shard files itself (one chunk decoded
        at a time) rather than through zarr (several at once, then a transposed copy)."""
        if self._direct is False:
            self._direct = ParamMajorReader.for_array(self._backend, self.path)
        return self._direct is not None

    def _check_objects(self, r0: int, r1: int, rest: tuple) -> None:
        if self._objects is None or r1 <= r0:
            return
        c0, c1 = 0, None
        if rest and len(self.shape) > 1:
            cols = rest[0]
            if isinstance(cols, slice):
                c0, c1, _ = cols.indices(self.shape[1])
            elif isinstance(cols, (int, np.integer)):
                c0 = int(cols) % self.shape[1]
                c1 = c0 + 1
        if c1 is not None and c1 <= c0:
            return
        # While a live HDF5 writer updates the file, its chunk index can point past the end this
        # view knows: a stale view, not damage (retried on a fresh one, else StoreBusyError).
        _retry_while_live(self._backend, lambda: self._objects.check(r0, r1, c0, c1))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out

    def __repr__(self) -> str:
        return f"LazyArray({self.path!r}, shape={self.shape}, dtype={self.dtype})"


class TensorView:
    """A lazy (records, *tensor_shape) view of one named tensor of a vector group."""

    def __init__(self, array: LazyArray, tensor):
        self._array = array
        self.name = tensor.name
        self._tensor = tensor
        self.shape = (array.shape[0], *tensor.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, records: Any) -> np.ndarray:
        t = self._tensor
        flat = self._array[records, t.offset : t.stop]
        return flat.reshape(flat.shape[:-1] + t.shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


@dataclass(frozen=True)
class Block:
    """One piece of a (records, params) array: ``data`` has shape (len(records), len(params)),
    or (len(params), len(records)), C-contiguous, when read with ``param_major``."""

    records: slice
    params: slice
    data: np.ndarray


def iter_blocks(
    arr: Any,
    records: slice | None,
    params: slice | None,
    memory_limit: int,
    record_block: int | None,
    split_records: bool,
    param_major: bool,
) -> Iterator[Block]:
    """The pieces of :meth:`Trajectory.blocks` of ``arr`` (a :class:`LazyArray` or a view with
    ``shape``, ``chunks``, slicing and ``read_param_major``)."""
    r0, r1 = _contiguous(records, "records", arr.shape[0])  # checked at the call, not at first use
    p0, p1 = _contiguous(params, "params", arr.shape[1])
    return _pieces(arr, r0, r1, p0, p1, memory_limit, record_block, split_records, param_major)


def _pieces(
    arr: Any,
    r0: int,
    r1: int,
    p0: int,
    p1: int,
    memory_limit: int,
    record_block: int | None,
    split_records: bool,
    param_major: bool,
) -> Iterator[Block]:
    nr = record_block or max(r1 - r0, 1)
    item = 8  # analyses convert blocks to float64: budget for that copy
    cp = arr.chunks[1]
    cols = max(1, memory_limit // (nr * item))
    if cols < cp and record_block is None and split_records:
        # Even one chunk column of all records does not fit: cut the records instead.
        nr = max(1, memory_limit // (cp * item))
        cols = cp
    cols = max(cp, (cols // cp) * cp) if cols >= cp else cols
    for ps, pe in _column_ranges(p0, p1, cols, cp):
        for rs in range(r0, r1, nr):
            re_ = min(rs + nr, r1)
            data = arr.read_param_major(rs, re_, ps, pe) if param_major else arr[rs:re_, ps:pe]
            yield Block(slice(rs, re_), slice(ps, pe), data)


def _contiguous(value: Any, name: str, n: int) -> tuple[int, int]:
    """[start, stop) of ``value``, a slice without a step or None (all n); a one-line TypeError
    or ValueError that says what to pass otherwise (a tuple used to fail with AttributeError)."""
    if value is None:
        return 0, n
    if not isinstance(value, slice):
        raise TypeError(
            f"blocks({name}=...) takes a slice or None, not {type(value).__name__} {value!r:.60}; "
            f"pass e.g. {name}=slice(10, 20) for {name} 10 to 19"
        )
    start, stop, step = value.indices(n)
    if step != 1:
        raise ValueError(
            f"blocks({name}={value!r}): blocks are contiguous ranges, a step is not supported; pass "
            f"slice({value.start}, {value.stop}) and take every {value.step}th row of each block"
        )
    return start, max(start, stop)


def _column_ranges(p0: int, p1: int, cols: int, cp: int) -> Iterator[tuple[int, int]]:
    """[p0, p1) in ranges of ``cols`` columns; narrower than a chunk (``cp``), within one chunk
    column each (a range across a chunk boundary would decode the chunks on both sides)."""
    if cols >= cp:
        yield from ((ps, min(ps + cols, p1)) for ps in range(p0, p1, cols))
        return
    for c in range(p0 - p0 % cp, p1, cp):
        lo, hi = max(p0, c), min(p1, c + cp)
        yield from ((ps, min(ps + cols, hi)) for ps in range(lo, hi, cols))


class VectorGroup:
    """``weights``, ``gradients`` or ``buffers``: values (records, params), steps, times, layout."""

    def __init__(self, backend: Backend, name: str, version: tuple[int, int] = (1, 0)):
        self.name = name
        attrs = backend.attrs(name)
        self.layout = Layout.from_json(attrs.get(spec.ATTR_LAYOUT))
        value = f"{name}/{spec.VALUE}"
        if not backend.is_array(value) or not backend.is_array(f"{name}/{spec.STEP}"):
            raise InvalidStoreError(f"{backend.path}: group {name!r} lacks its value or step array")
        shape = backend.shape(value)
        if len(shape) != 2 or shape[1] != self.layout.n_params:
            raise InvalidStoreError(
                f"{backend.path}: {value} has shape {shape} but the layout has "
                f"{self.layout.n_params} parameters"
            )
        _check_encoding(backend, name, "vector")
        n = _committed(backend, name, attrs, shape[0])
        self.index = _index(backend, name, version, n)
        self.values = LazyArray(backend, value, n, _objects(backend, value, n, self.index), self.index)
        self.steps = _read_series(backend, name, spec.STEP, n, self.index).astype(np.int64)
        time_path = f"{name}/{spec.TIME}"
        self.times = (
            _read_series(backend, name, spec.TIME, n, self.index).astype(np.float64)
            if backend.is_array(time_path)
            else None
        )

    @property
    def n_records(self) -> int:
        return self.values.shape[0]

    def tensor(self, name: str) -> TensorView:
        return TensorView(self.values, self.layout[name])


def _check_groups_listed(backend: Backend, attrs: dict) -> None:
    """(1.1) Every group the writer listed at the root still exists: none silently lost."""
    listed = attrs.get(spec.ATTR_GROUPS)
    if listed is None:
        return
    if not isinstance(listed, list) or not all(isinstance(g, str) for g in listed):
        raise InvalidStoreError(f"{backend.path}: root attribute 'groups' is not a list of group paths [V45]")
    for g in listed:
        if not backend.exists(g):
            raise InvalidStoreError(
                f"{backend.path}: group {g!r} was written but is not in the store (lost or renamed?) [V45]"
            )


def _check_encoding(backend: Backend, group: str, kind: str) -> None:
    """Refuse arrays whose dtype, shape or codecs break the spec (e.g. a big-endian 'bytes'
    codec would decode garbage): metadata only, before anything is read."""
    paths = {f"{group}/{spec.VALUE}": kind, f"{group}/{spec.STEP}": "step"}
    if backend.is_array(f"{group}/{spec.TIME}"):
        paths[f"{group}/{spec.TIME}"] = "time"
    for path, k in paths.items():
        problems = array_problems(backend, path, k)
        if problems:
            rule, text = problems[0]
            raise InvalidStoreError(f"{backend.path}: {text} [{rule}]; the store breaks the format")


def _index(backend: Backend, group: str, version: tuple[int, int], n: int) -> IntegrityIndex | None:
    index = read_index(backend, group, version)
    if index is not None and (spec.TIME in index.arrays) != backend.is_array(f"{group}/{spec.TIME}"):
        raise InvalidStoreError(
            f"{backend.path}: {group}: its integrity index lists arrays {list(index.arrays)}, which the "
            "group does not match (an array was lost?) [V41]"
        )
    if index is not None and index.n_committed < n:
        raise InvalidStoreError(
            f"{backend.path}: {group} has {n} committed records but its integrity index covers only "
            f"{index.n_committed}; records were added by a writer that does not keep it, or the count "
            "was altered. Run 'trajstore validate' [V41]"
        )
    return index


def _objects(backend: Backend, path: str, n: int, index: IntegrityIndex | None) -> StoredObjects:
    """Presence checks for ``path``. In a 1.0 Zarr store an absent chunk of an array that can
    legitimately be all zeros (times, observables, a lone step 0) reads as zeros, as its writer
    let zarr skip such chunks; a 1.1 writer writes every chunk."""
    fill_ok = False
    if index is None and getattr(backend, "skips_empty_chunks", False):
        name = path.rsplit("/", 1)[-1]
        is_observable = path.startswith(f"{spec.OBSERVABLES}/")
        fill_ok = (
            name == spec.TIME or (name == spec.STEP and n <= 1) or (is_observable and name == spec.VALUE)
        )
    return StoredObjects(backend, path, n, index, fill_ok)


def _read_series(backend: Backend, group: str, name: str, n: int, index: IntegrityIndex | None) -> np.ndarray:
    """Read a whole 1-D array of committed records: objects present, digests matching."""
    path = f"{group}/{name}"
    _objects(backend, path, n, index).check(0, n)
    data = _read_checked(backend, path, slice(0, n))
    check_digests(index, name, data, f"{backend.path}: {group}")
    return data


def _committed(backend: Backend, group: str, attrs: dict, n_stored: int) -> int:
    """The committed record count, checked against what is stored before anything is read."""
    n = attrs.get(spec.ATTR_N_COMMITTED)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n > spec.MAX_RECORDS:
        raise InvalidStoreError(
            f"{backend.path}: {group} has an invalid {spec.ATTR_N_COMMITTED} ({str(n)[:40]!r}) [V15]"
        )
    lengths = [n_stored, backend.shape(f"{group}/{spec.STEP}")[0]]
    if backend.is_array(f"{group}/{spec.TIME}"):
        lengths.append(backend.shape(f"{group}/{spec.TIME}")[0])
    if n > min(lengths):
        raise InvalidStoreError(
            f"{backend.path}: {group} says {n} records are committed but stores only "
            f"{min(lengths)}; the store is truncated [V16]"
        )
    return n


class WeightsAccess:
    """The weights accessors of a trajectory, read from its ``_weights`` group (a
    :class:`VectorGroup` or a selection of one): shared by :class:`Trajectory` and
    :class:`trajstore.selection.SelectedTrajectory`."""

    _weights: VectorGroup

    @property
    def layout(self) -> Layout:
        return self._weights.layout

    @property
    def n_records(self) -> int:
        return self._weights.n_records

    @property
    def n_params(self) -> int:
        return self.layout.n_params

    @property
    def steps(self) -> np.ndarray:
        return self._weights.steps

    @property
    def times(self) -> np.ndarray | None:
        return self._weights.times

    @property
    def weights(self) -> LazyArray:
        return self._weights.values

    def tensor(self, name: str) -> TensorView:
        """Lazy (records, *shape) view of the weights of tensor ``name``."""
        return TensorView(self.weights, self.layout[name])


class Trajectory(WeightsAccess):
    """A read-only view of a store, the same for both back ends.

    ``weights[records, params]`` reads lazily; ``steps`` (n_records,) int64 optimizer steps;
    ``times`` (n_records,) float64 seconds since creation, or None.
    """

    def __init__(self, backend: Backend):
        self._backend = backend
        self.path = backend.path
        self.attrs = check_header(backend, self.path)
        self._version = spec.parse_version(self.attrs.get(spec.ATTR_SPEC_VERSION, ""))
        self._weights = VectorGroup(backend, spec.WEIGHTS, self._version)
        self._optional = {
            name: VectorGroup(backend, name, self._version)
            for name in (spec.GRADIENTS, spec.BUFFERS)
            if backend.exists(name)
        }
        self._observables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._observable_times: dict[str, np.ndarray | None] = {}
        self._observable_names = backend.groups(spec.OBSERVABLES)
        _check_groups_listed(backend, self.attrs)

    # -- metadata ------------------------------------------------------------------------

    @property
    def backend_name(self) -> str:
        return "hdf5" if type(self._backend).__name__.startswith("HDF5") else "zarr"

    @property
    def spec_version(self) -> str:
        return str(self.attrs.get(spec.ATTR_SPEC_VERSION))

    @property
    def metadata(self) -> dict:
        """User metadata (root ``metadata``)."""
        return dict(self.attrs.get(spec.ATTR_METADATA) or {})

    @property
    def provenance(self) -> dict:
        return dict(self.attrs.get(spec.ATTR_PROVENANCE) or {})

    @property
    def lossy(self) -> dict | None:
        return self.attrs.get(spec.ATTR_LOSSY)

    @property
    def store_id(self) -> str | None:
        """The UUID the store was given at creation (format 1.1; ``None`` for 1.0 stores)."""
        value = self.attrs.get(spec.ATTR_STORE_ID)
        return str(value) if value else None

    @property
    def dataset(self) -> dict:
        """The dataset description: title, description, authors, license, keywords, related, ..."""
        return dict(self.attrs.get(spec.ATTR_DATASET) or {})

    @property
    def derived_from(self) -> dict | None:
        """For a derived store (converted, extracted): its source's id, content digest and operation."""
        return self.attrs.get(spec.ATTR_DERIVED_FROM)

    # -- weights: see WeightsAccess -----------------------------------------------------

    @property
    def gradients(self) -> VectorGroup | None:
        """The gradients group (``.values``, ``.steps``, ``.tensor(name)``), or None."""
        return self._optional.get(spec.GRADIENTS)

    @property
    def buffers(self) -> VectorGroup | None:
        return self._optional.get(spec.BUFFERS)

    # -- what the records mean (1.1) -----------------------------------------------------

    def trainable_mask(self, record: int) -> np.ndarray:
        """(n_params,) bool: which parameters were trainable (``requires_grad`` and held by an
        optimizer) at weights record ``record``. All True for stores without a ``trainable``
        attribute (1.0, or written without a recorder)."""
        n = self.n_records
        r = int(record) + n if record < 0 else int(record)
        if not 0 <= r < n:
            raise IndexError(f"record {record} out of range for {n} records")
        changes = self.attrs.get(spec.ATTR_TRAINABLE) or []
        per_tensor = None
        step = int(self.steps[r])
        for change in changes:  # change points, by increasing step
            if int(change["step"]) <= step:
                per_tensor = change["trainable"]
        mask = np.ones(self.n_params, dtype=bool)
        if per_tensor is not None:
            if len(per_tensor) != len(self.layout):
                raise InvalidStoreError(
                    f"{self.path}: a 'trainable' change point has {len(per_tensor)} entries for "
                    f"{len(self.layout)} tensors"
                )
            for t, flag in zip(self.layout, per_tensor, strict=True):
                mask[t.offset : t.stop] = bool(flag)
        return mask

    @property
    def segments(self) -> list[slice]:
        """Record ranges of continuous training: a ``--resume`` that did not continue from the
        last stored weights starts a new segment (``segments`` attribute, 1.1). Lags and
        differences between records must not cross a boundary. One segment for 1.0 stores."""
        starts = sorted(
            {
                int(s["start_record"])
                for s in self.attrs.get(spec.ATTR_SEGMENTS) or []
                if not s.get("continuous", False) and 0 < int(s["start_record"]) < self.n_records
            }
        )
        bounds = [0, *starts, self.n_records]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]

    @property
    def gradient_source(self) -> str:
        """``"update"``: gradients are the ones the updates used; ``"first_closure_evaluation"``:
        some steps evaluated their closure several times (L-BFGS) and the stored gradient is
        the first evaluation's, at the weights before the step (1.1)."""
        return str(self.attrs.get(spec.ATTR_GRADIENT_SOURCE) or "update")

    # -- observables ---------------------------------------------------------------------

    @property
    def observables(self) -> list[str]:
        return list(self._observable_names)

    def observable(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps int64, values float64) of observable ``name``, committed records only."""
        if name not in self._observables:
            group = f"{spec.OBSERVABLES}/{name}"
            if not self._backend.exists(group):
                have = ", ".join(self.observables) or "none"
                raise KeyError(f"{self.path} has no observable {name!r} (it has: {have})")
            b = self._backend

            def load():
                attrs = b.attrs(group)
                if not b.is_array(f"{group}/{spec.VALUE}") or not b.is_array(f"{group}/{spec.STEP}"):
                    raise InvalidStoreError(f"{self.path}: {group} lacks its value or step array")
                _check_encoding(b, group, "scalar")
                n = _committed(b, group, attrs, b.shape(f"{group}/{spec.VALUE}")[0])
                index = _index(b, group, self._version, n)
                steps = _read_series(b, group, spec.STEP, n, index).astype(np.int64)
                values = _read_series(b, group, spec.VALUE, n, index).astype(np.float64)
                times = (
                    _read_series(b, group, spec.TIME, n, index).astype(np.float64)
                    if b.is_array(f"{group}/{spec.TIME}")
                    else None
                )
                return steps, values, times

            try:
                steps, values, times = _retry_while_live(b, load)
            except TrajstoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - damaged metadata: one line, never a traceback
                raise CorruptDataError(f"{self.path}: {group} cannot be read ({_first_line(exc)})") from None
            self._observables[name] = (steps, values)
            self._observable_times[name] = times
        return self._observables[name]

    def observable_times(self, name: str) -> np.ndarray | None:
        """Seconds since creation (float64) of observable ``name``'s committed records, or None."""
        self.observable(name)
        return self._observable_times[name]

    def observable_attrs(self, name: str) -> dict:
        try:
            return self._backend.attrs(f"{spec.OBSERVABLES}/{name}")
        except Exception as exc:  # noqa: BLE001 - damaged metadata: one line, never a traceback
            raise CorruptDataError(
                f"{self.path}: observables/{name} cannot be read ({_first_line(exc)})"
            ) from None

    # -- blocks --------------------------------------------------------------------------

    def blocks(
        self,
        records: slice | None = None,
        params: slice | None = None,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        record_block: int | None = None,
        split_records: bool = True,
        group: str = spec.WEIGHTS,
        param_major: bool = False,
    ) -> Iterator[Block]:
        """Iterate over (record block × parameter block) pieces of at most ``memory_limit`` bytes.

        Blocks follow the store's chunk grid: the parameter block is a whole number of chunks
        wide and spans ``record_block`` records (default: all selected records), so every
        chunk is read once. When even one chunk column of all records exceeds the limit, the
        records are split, or, with ``split_records=False``, the columns are made narrower than a
        chunk (time-series analyses need every record of a window at once). Pieces come
        parameter-block-major, records inner. ``param_major``: each block's data is transposed,
        (params, records), as FFTs and Gram matrices along time want it (read without zarr's
        transposition where the layout allows, :meth:`LazyArray.read_param_major`).
        ``records`` and ``params``: slices without a step (``slice(10, 20)``), or None for all;
        anything else is a one-line TypeError (a step: ValueError) at the call.
        """
        vg = self._weights if group == spec.WEIGHTS else self._optional[group]
        return iter_blocks(vg.values, records, params, memory_limit, record_block, split_records, param_major)

    def check_one_block(self) -> None:
        """:meth:`LazyArray.check_one_block` of the weights: one block decoded and compared with
        its digest (values that decode cleanly but differ from what was written, e.g. an edited
        ``zarr.json``, are a :class:`CorruptDataError` [V44]); a no-op once done, and for 1.0
        stores (no digests)."""
        self._weights.values.check_one_block()

    def check_unsized_blocks(self, records: slice | None = None) -> None:
        """:meth:`LazyArray.check_unsized_blocks` of the weights over ``records`` (all when None):
        every block without a recorded object size and tail (HDF5) compared with its digest."""
        r0, r1 = (0, None) if records is None else (records.start or 0, records.stop)
        self._weights.values.check_unsized_blocks(r0, r1)

    # -- lifetime ------------------------------------------------------------------------

    def nbytes_stored(self) -> int | None:
        """Bytes the store takes on disk; ``None`` for a remote store."""
        return self._backend.nbytes_stored()

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Trajectory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Trajectory({self.path!r}, {self.n_records} records, {self.n_params} parameters, "
            f"{len(self.layout)} tensors)"
        )


def open(path: str | os.PathLike) -> Trajectory:  # noqa: A001 - mirrors builtins.open on purpose
    """Open a store read-only. Raises a :class:`~trajstore.errors.TrajstoreError` with a
    one-line message when the path is missing, not a store, or of a newer major version."""
    path = os.fspath(path)
    for attempt in range(_LIVE_RETRIES + 1):
        try:
            return _open_once(path)
        except _LIVE_ERRORS as exc:
            if isinstance(exc, StoreBusyError) or not _hdf5_being_written(path):
                raise
        time.sleep(_LIVE_WAIT_SECONDS * (attempt + 1))
    raise _busy(path)


def _hdf5_being_written(path: str) -> bool:
    from .backends import backend_kind
    from .backends.hdf5_backend import is_being_written

    try:
        return backend_kind(path) == "hdf5" and is_being_written(path)
    except TrajstoreError:
        return False


def _open_once(path: str) -> Trajectory:
    backend = open_backend(path, "r")
    try:
        return Trajectory(backend)
    except TrajstoreError:
        backend.close()
        raise
    except Exception as exc:  # noqa: BLE001 - damaged metadata: one line, never a traceback
        backend.close()
        bad = unreadable_metadata(path) if isinstance(exc, ValueError) else None
        if bad is not None:  # name the file that broke, not only the JSON parser's position
            raise InvalidStoreError(
                f"{path}: {bad}; the store's metadata is damaged: restore that file from a copy of the store"
            ) from None
        raise InvalidStoreError(
            f"{path}: the store's metadata cannot be read ({_first_line(exc)}); it is damaged or "
            "not a trajstore store, run 'trajstore validate'"
        ) from None
    except BaseException:
        backend.close()
        raise


def _first_line(exc: BaseException) -> str:
    text = in_words(str(exc)).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:200]
