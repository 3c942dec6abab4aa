"""Reading a trajectory store: ``trajstore.open(path)`` returns a :class:`Trajectory`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import spec
from .backends import Backend, open_backend
from .errors import CorruptDataError, InvalidStoreError, NotAStoreError, SpecVersionError
from .layout import Layout

DEFAULT_MEMORY_LIMIT = 1 << 30  # bytes


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
    return attrs


def _read_checked(backend: Backend, path: str, selection: Any) -> np.ndarray:
    """Read, turning a codec or checksum failure into a one-line :class:`CorruptDataError`
    that names the array and the index of the first damaged chunk."""
    try:
        return backend.read(path, selection)
    except (OSError, RuntimeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()
        where = _first_bad_chunk(backend, path, selection)
        place = f"chunk {where}" if where is not None else f"records {_fmt_sel(selection)}"
        raise CorruptDataError(
            f"{backend.path}: {path} {place} cannot be decoded "
            f"({msg[0] if msg else type(exc).__name__}); the store is damaged there, run "
            "'trajstore validate' to list every bad chunk"
        ) from None


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
        except (OSError, RuntimeError, ValueError):
            return cidx
    return None


def _fmt_sel(selection: Any) -> str:
    if not isinstance(selection, tuple):
        selection = (selection,)
    parts = []
    for s in selection:
        parts.append(f"{s.start}:{s.stop}" if isinstance(s, slice) else str(s))
    return "[" + ", ".join(parts) + "]"


class LazyArray:
    """A (records, columns) array in the store, read on indexing, limited to committed records.

    Indexing with slices or integers reads only the chunks that hold the selection.
    """

    def __init__(self, backend: Backend, path: str, n_records: int):
        self._backend = backend
        self.path = path
        stored = backend.shape(path)
        self.shape: tuple[int, ...] = (n_records, *stored[1:])
        self.dtype = backend.dtype(path)
        self.chunks = backend.chunks(path)

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
            block = _read_checked(self._backend, self.path, (slice(lo, hi), *rest))
            return block[idx - lo]
        return _read_checked(self._backend, self.path, (first, *rest))

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
    """One piece of a (records, params) array: ``data`` has shape (len(records), len(params))."""

    records: slice
    params: slice
    data: np.ndarray


class VectorGroup:
    """``weights``, ``gradients`` or ``buffers``: values (records, params), steps, times, layout."""

    def __init__(self, backend: Backend, name: str):
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
        n = _committed(backend, name, attrs, shape[0])
        self.values = LazyArray(backend, value, n)
        self.steps = _read_checked(backend, f"{name}/{spec.STEP}", slice(0, n)).astype(np.int64)
        time_path = f"{name}/{spec.TIME}"
        self.times = (
            _read_checked(backend, time_path, slice(0, n)).astype(np.float64)
            if backend.is_array(time_path)
            else None
        )

    @property
    def n_records(self) -> int:
        return self.values.shape[0]

    def tensor(self, name: str) -> TensorView:
        return TensorView(self.values, self.layout[name])


def _committed(backend: Backend, group: str, attrs: dict, n_stored: int) -> int:
    """The committed record count, checked against what is stored before anything is read."""
    n = attrs.get(spec.ATTR_N_COMMITTED)
    if not isinstance(n, int) or n < 0 or n > spec.MAX_RECORDS:
        raise InvalidStoreError(f"{backend.path}: {group} has an invalid {spec.ATTR_N_COMMITTED} ({n!r})")
    step_len = backend.shape(f"{group}/{spec.STEP}")[0]
    if n > min(n_stored, step_len):
        raise InvalidStoreError(
            f"{backend.path}: {group} says {n} records are committed but stores only "
            f"{min(n_stored, step_len)}; the store is truncated"
        )
    return n


class Trajectory:
    """A read-only view of a store, the same for both back ends.

    ``weights[records, params]`` reads lazily; ``steps`` (n_records,) int64 optimizer steps;
    ``times`` (n_records,) float64 seconds since creation, or None.
    """

    def __init__(self, backend: Backend):
        self._backend = backend
        self.path = backend.path
        self.attrs = check_header(backend, self.path)
        self._weights = VectorGroup(backend, spec.WEIGHTS)
        self._optional = {
            name: VectorGroup(backend, name)
            for name in (spec.GRADIENTS, spec.BUFFERS)
            if backend.exists(name)
        }
        self._observables: dict[str, tuple[np.ndarray, np.ndarray]] = {}

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
    def layout(self) -> Layout:
        return self._weights.layout

    # -- weights -------------------------------------------------------------------------

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
        return self._weights.tensor(name)

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
        return self._backend.groups(spec.OBSERVABLES)

    def observable(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps int64, values float64) of observable ``name``, committed records only."""
        if name not in self._observables:
            group = f"{spec.OBSERVABLES}/{name}"
            if not self._backend.exists(group):
                have = ", ".join(self.observables) or "none"
                raise KeyError(f"{self.path} has no observable {name!r} (it has: {have})")
            attrs = self._backend.attrs(group)
            n = _committed(self._backend, group, attrs, self._backend.shape(f"{group}/{spec.VALUE}")[0])
            steps = _read_checked(self._backend, f"{group}/{spec.STEP}", slice(0, n)).astype(np.int64)
            values = _read_checked(self._backend, f"{group}/{spec.VALUE}", slice(0, n)).astype(np.float64)
            self._observables[name] = (steps, values)
        return self._observables[name]

    def observable_attrs(self, name: str) -> dict:
        return self._backend.attrs(f"{spec.OBSERVABLES}/{name}")

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
    ) -> Iterator[Block]:
        """Iterate over (record block × parameter block) pieces of at most ``memory_limit`` bytes.

        Blocks follow the store's chunk grid: the parameter block is a whole number of chunks
        wide and spans ``record_block`` records (default: all selected records), so every
        chunk is read once. When even one chunk column of all records exceeds the limit, the
        records are split, or, with ``split_records=False``, the columns are made narrower than a
        chunk (time-series analyses need every record of a window at once). Pieces come
        parameter-block-major, records inner.
        """
        vg = self._weights if group == spec.WEIGHTS else self._optional[group]
        arr = vg.values
        r0, r1, _ = (records or slice(None)).indices(arr.shape[0])
        p0, p1, _ = (params or slice(None)).indices(arr.shape[1])
        nr = record_block or max(r1 - r0, 1)
        item = 8  # analyses convert blocks to float64: budget for that copy
        cp = arr.chunks[1]
        cols = max(1, memory_limit // (nr * item))
        if cols < cp and record_block is None and split_records:
            # Even one chunk column of all records does not fit: cut the records instead.
            nr = max(1, memory_limit // (cp * item))
            cols = cp
        cols = max(cp, (cols // cp) * cp) if cols >= cp else cols
        for ps in range(p0, p1, cols):
            pe = min(ps + cols, p1)
            for rs in range(r0, r1, nr):
                re_ = min(rs + nr, r1)
                yield Block(slice(rs, re_), slice(ps, pe), arr[rs:re_, ps:pe])

    # -- lifetime ------------------------------------------------------------------------

    def nbytes_stored(self) -> int:
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
    backend = open_backend(os.fspath(path), "r")
    try:
        return Trajectory(backend)
    except BaseException:
        backend.close()
        raise
