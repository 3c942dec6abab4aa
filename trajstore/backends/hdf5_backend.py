"""HDF5 back end: chunked datasets with built-in shuffle + deflate + Fletcher-32."""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from ..errors import CorruptDataError, UnsafePathError
from ..jsonsafe import to_json
from .base import CODEC_PRESET_NAMES, HDF5_SMALL_LEVEL, Compression, decode_attr, encode_attr
from .locking import is_being_written, writer_lock

DEFAULT_LEVEL = 4
_CHUNK_CACHE_BYTES = 64 * 1024 * 1024
# HDF5 filter ids (built-in ones and the registered Blosc and Zstandard plugins).
_FILTER_NAMES = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset",
                 32001: "blosc", 32015: "zstd"}
_MAX_LINKS = 100_000  # a store has a few dozen objects; refuse to walk an adversarial file forever
# Rows per chunk of a group's integrity array (1.2): each commit rewrites the last chunk, which
# goes to new file space (strategy "none"), so chunks stay small (128 rows: 7 KiB raw).
_INDEX_CHUNK_ROWS = 128


def check_links(file: h5py.File, path: str) -> None:
    """Refuse a file with external links, virtual datasets fed from other files, or datasets
    stored in external raw files: reading them would read files that are not the store."""
    count = 0

    # The visitor returns the problem (a non-None value stops the walk): raising inside h5py's
    # callback would surface as a SystemError.
    def visit(name: str, link) -> str | None:
        nonlocal count
        count += 1
        if count > _MAX_LINKS:
            return f"{path} holds more than {_MAX_LINKS} objects; it is not a trajstore store"
        if isinstance(link, h5py.ExternalLink):
            return (
                f"{path}: {name} is an external link to {link.filename}:{link.path}; "
                "refusing to read outside the store"
            )
        if isinstance(link, h5py.HardLink):
            obj = file.get(name)
            if isinstance(obj, h5py.Dataset):
                if obj.external:
                    return f"{path}: {name} keeps its data in external files; refusing to read them"
                if obj.is_virtual and any(src.file_name != "." for src in obj.virtual_sources()):
                    return (
                        f"{path}: {name} is a virtual dataset reading other files; "
                        "refusing to read outside the store"
                    )
        return None

    problem = file.visititems_links(visit)
    if problem is not None:
        raise UnsafePathError(problem)


# Messages of HDF5's file-locking refusals (flags differing within a process, a lock held by
# another process, a file system without locks).
_LOCK_REFUSALS = ("locking flag values don't match", "unable to lock file", "file locking disabled")


def _open_for_reading(path: str, cache: int) -> h5py.File:
    """Open ``path`` read-only with HDF5's default locking first, as plain ``h5py.File(path)``
    does: HDF5 keeps one handle per file per process and refuses a second open with different
    locking flags, so a notebook can hold ``trajstore.open(path)`` and ``h5py.File(path)``
    together. When locking is refused (this process holds the file with locking off, e.g. a
    trajstore writer; another process holds the write lock; the file system has no locks),
    open without the lock: trajstore writers never take it."""
    try:
        return h5py.File(path, "r", rdcc_nbytes=cache)
    except OSError as exc:
        if not any(r in str(exc) for r in _LOCK_REFUSALS):
            raise
    return h5py.File(path, "r", rdcc_nbytes=cache, locking=False)


class HDF5Backend:
    """A store held in one HDF5 file."""

    def __init__(self, path: str, mode: str, fileobj: Any = None):
        """``fileobj``: a seekable binary file to read instead of ``path`` (a remote file)."""
        self.path = str(path)
        self.readonly = mode == "r"
        h5mode = {"r": "r", "r+": "r+", "w": "w", "a": "a", "w-": "w-"}[mode]
        # The default (earliest) file format has no "open for writing" flag, so a file whose
        # writer was killed still opens; writers skip the lock so a live run can be inspected.
        extra: dict[str, Any] = {"locking": False}
        if mode in ("w", "w-"):
            # Never reuse freed file space: a chunk rewritten after a flush goes to new space,
            # so the state of the last flush stays intact on disk if the writer is killed.
            extra["fs_strategy"] = "none"
        # Writers write chunks through (whole blocks anyway); readers cache for strided reads.
        cache = _CHUNK_CACHE_BYTES if mode == "r" else 0
        self._open_args = (h5mode, cache, extra)
        self._fileobj = fileobj  # a remote file: read as it is, no locks, no reopening
        self._lock_fd: int | None = None
        if mode != "r" and os.path.exists(self.path) and fileobj is None:
            self._lock_fd = writer_lock(self.path)
        try:
            self.file = self._open()
            if mode != "r" and self._lock_fd is None:  # the file was just created
                self._lock_fd = writer_lock(self.path)
            if mode in ("r", "r+"):
                check_links(self.file, self.path)
        except BaseException:
            self.close()
            raise

    def reopen(self) -> None:
        """Close and open the file again (read mode): a fresh view of what a live writer wrote."""
        self.file.close()
        self.file = self._open()

    def _open(self) -> h5py.File:
        h5mode, cache, extra = self._open_args
        if self._fileobj is not None:
            return h5py.File(self._fileobj, "r", rdcc_nbytes=cache, locking=False)
        if h5mode == "r":
            return _open_for_reading(self.path, cache)
        return h5py.File(self.path, h5mode, rdcc_nbytes=cache, **extra)

    def is_being_written(self) -> bool:
        return self.readonly and self._fileobj is None and is_being_written(self.path)

    def exists(self, path: str) -> bool:
        return path == "" or path in self.file

    def is_array(self, path: str) -> bool:
        return self.exists(path) and isinstance(self.file[path], h5py.Dataset)

    def create_group(self, path: str) -> None:
        if not self.exists(path):
            self.file.create_group(path)

    def create_array(self, path, shape, dtype, chunks, shards, dims, compression: Compression):
        kwargs: dict[str, Any] = {"fletcher32": True}
        level = compression.level or (HDF5_SMALL_LEVEL if compression.kind == "small" else DEFAULT_LEVEL)
        if compression.kind in ("default", "no-transpose", *CODEC_PRESET_NAMES):
            kwargs.update(shuffle=True, compression="gzip", compression_opts=level)
        elif compression.kind == "zstd":
            import hdf5plugin  # optional: readers then need hdf5plugin too

            kwargs.update(hdf5plugin.Blosc(cname="zstd", clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))
        ds = self.file.create_dataset(
            path,
            shape=shape,
            maxshape=(None, *shape[1:]),
            dtype=dtype,
            chunks=chunks,
            **kwargs,
        )
        ds.attrs["dimension_names"] = encode_attr(list(dims))

    # The blocks of an integrity index are rows of a dataset appended to (format 1.2): an
    # attribute is rewritten whole, which made every commit cost O(all blocks).
    index_rows = True

    def write_rows(self, path: str, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` (k × width int64) at row ``start`` of the dataset ``path`` (created
        when absent), which then holds exactly ``start + k`` rows."""
        if path not in self.file:
            self.file.create_dataset(
                path,
                shape=(0, rows.shape[1]),
                maxshape=(None, rows.shape[1]),
                dtype="<i8",
                chunks=(_INDEX_CHUNK_ROWS, rows.shape[1]),
                fletcher32=True,
                shuffle=True,
                compression="gzip",
                compression_opts=DEFAULT_LEVEL,
            )
        ds = self.file[path]
        ds.resize(start + len(rows), axis=0)
        ds[start:] = rows

    def shape(self, path: str) -> tuple[int, ...]:
        return tuple(self.file[path].shape)

    def dtype(self, path: str) -> np.dtype:
        return np.dtype(self.file[path].dtype)

    def chunks(self, path: str) -> tuple[int, ...]:
        ds = self.file[path]
        # A contiguous dataset (allowed by the spec) is one chunk of its whole shape.
        return tuple(ds.chunks) if ds.chunks else tuple(max(int(n), 1) for n in ds.shape)

    def shards(self, path: str) -> tuple[int, ...] | None:
        return None

    def dimension_names(self, path: str) -> tuple[str, ...] | None:
        names = decode_attr(self.file[path].attrs.get("dimension_names"))
        return tuple(names) if isinstance(names, list) else None

    def codec_names(self, path: str) -> list[str]:
        """Names of the dataset's filters in pipeline order (unknown ones as ``filter<id>``)."""
        plist = self.file[path].id.get_create_plist()
        names = []
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            names.append(_FILTER_NAMES.get(code, f"filter{code}"))
        return names

    def resize(self, path: str, n_records: int) -> None:
        self.file[path].resize(n_records, axis=0)

    def write(self, path: str, start: int, data: np.ndarray) -> None:
        self.file[path][start : start + len(data)] = data

    def read(self, path: str, selection: Any = ...) -> np.ndarray:
        ds = self.file[path]
        if ds.shape and 0 in ds.shape:
            return np.asarray(np.empty(ds.shape, ds.dtype)[selection])
        return np.asarray(ds[selection])

    def missing_chunk(self, path: str, selection: Any) -> tuple[int, ...] | None:
        """Index of the first chunk under ``selection`` (slices or integers) that was never
        written, or None. HDF5 reads such a chunk as the fill value without an error; every
        committed record was written, so a missing chunk there is damage, or a metadata view
        older than the commit it was read with (a live writer)."""
        ds = self.file[path]
        if ds.chunks is None or not ds.shape or 0 in ds.shape:
            return None
        sel = selection if isinstance(selection, tuple) else (selection,)
        ranges = []
        for dim, (n, c) in enumerate(zip(ds.shape, ds.chunks, strict=True)):
            s = sel[dim] if dim < len(sel) else slice(None)
            if isinstance(s, (int, np.integer)):
                s = slice(int(s), int(s) + 1)
            if not isinstance(s, slice):
                return None
            start, stop, _ = s.indices(n)
            if stop <= start:
                return None
            ranges.append(range(start // c, -(-stop // c)))
        dsid = ds.id
        for idx in np.ndindex(*[len(r) for r in ranges]):
            cidx = tuple(r[i] for r, i in zip(ranges, idx, strict=True))
            coord = tuple(i * c for i, c in zip(cidx, ds.chunks, strict=True))
            if dsid.get_chunk_info_by_coord(coord).byte_offset is None:
                return cidx
        return None

    def attrs(self, path: str = "") -> dict:
        node = self.file[path] if path else self.file
        return {k: decode_attr(v) for k, v in node.attrs.items()}

    def set_attrs(self, path: str, values: dict) -> None:
        node = self.file[path] if path else self.file
        for k, v in to_json(values).items():  # strict JSON: NaN/inf become null
            node.attrs[k] = encode_attr(v)

    def groups(self, path: str) -> list[str]:
        if not self.exists(path):
            return []
        node = self.file[path] if path else self.file
        # node[k], not node.items(): items() yields None for a member whose header is damaged,
        # which a filter would drop silently (a lost group); node[k] raises instead.
        return sorted(k for k in node.keys() if isinstance(node[k], h5py.Group))

    def nbytes_stored(self) -> int | None:
        if "://" in self.path:
            return None  # a remote file
        self.file.flush()
        return os.path.getsize(self.path)

    def chunk_selections(self, path: str):
        """Yield (chunk index, selection) for every chunk of a dataset."""
        ds = self.file[path]
        chunks = ds.chunks or ds.shape
        grid = [range(0, max(s, 1), c) for s, c in zip(ds.shape, chunks, strict=True)]
        for idx in np.ndindex(*[len(g) for g in grid]):
            starts = [g[i] for g, i in zip(grid, idx, strict=True)]
            yield (
                idx,
                tuple(slice(s, min(s + c, n)) for s, c, n in zip(starts, chunks, ds.shape, strict=True)),
            )

    # -- stored objects (integrity checks) ---------------------------------------------------

    def object_records(self, path: str) -> int:
        """Records per stored object (a chunk)."""
        return self.chunks(path)[0]

    def object_grid(self, path: str) -> tuple[int, ...]:
        """Shape (records, columns, ...) of one stored object (a chunk)."""
        return self.chunks(path)

    def object_key(self, path: str, coords: tuple[int, ...]) -> str:
        return f"{path} chunk {tuple(int(c) for c in coords)}"

    def object_nbytes(self, path: str, coords: tuple[int, ...]) -> int | None:
        """Stored size of a chunk, or None when it was never written (it would read as fill)."""
        ds = self.file[path]
        if not ds.chunks:
            return int(ds.id.get_storage_size()) or None
        offset = tuple(int(c) * int(k) for c, k in zip(coords, ds.chunks, strict=True))
        try:
            info = ds.id.get_chunk_info_by_coord(offset)
        except (RuntimeError, OSError, ValueError) as exc:  # libhdf5: its chunk index is damaged
            msg = str(exc).strip().splitlines()
            raise CorruptDataError(
                f"{self.path}: {path} chunk {tuple(coords)} cannot be located "
                f"({msg[0] if msg else type(exc).__name__}): the file's chunk index is damaged; "
                "restore it from a copy or run 'trajstore validate'"
            ) from None
        return None if info.byte_offset is None else int(info.size)

    def object_tail(self, path: str, coords: tuple[int, ...], n: int) -> bytes | None:
        return None  # HDF5 chunks carry Fletcher-32 checksums; their placement is internal

    def object_bytes(self, path: str, coords: tuple[int, ...]) -> bytes | None:
        return None

    def array_metadata(self, path: str) -> dict:
        """What validation needs of a dataset: dtype, shape, chunks, maxshape and filters."""
        ds = self.file[path]
        return {
            "dtype": ds.dtype.str,
            "shape": list(ds.shape),
            "chunks": list(ds.chunks) if ds.chunks else None,
            "maxshape": list(ds.maxshape) if ds.maxshape else None,
            "filters": self.codec_names(path),
        }
    can_move = True

    def move(self, src: str, dst: str) -> None:
        """Rename the object ``src`` to ``dst`` (one link operation)."""
        self.file.move(src, dst)

    def delete(self, path: str) -> None:
        del self.file[path]

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        file = getattr(self, "file", None)
        try:
            if file is not None and file.id.valid:
                file.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
