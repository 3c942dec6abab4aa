"""HDF5 back end: chunked datasets with built-in shuffle + deflate + Fletcher-32."""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from ..jsonsafe import to_json
from .base import Compression, decode_attr, encode_attr

DEFAULT_LEVEL = 4
_CHUNK_CACHE_BYTES = 64 * 1024 * 1024


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

    def __init__(self, path: str, mode: str):
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
        if mode == "r":
            self.file = _open_for_reading(self.path, cache)
        else:
            self.file = h5py.File(self.path, h5mode, rdcc_nbytes=cache, **extra)

    def exists(self, path: str) -> bool:
        return path == "" or path in self.file

    def is_array(self, path: str) -> bool:
        return self.exists(path) and isinstance(self.file[path], h5py.Dataset)

    def create_group(self, path: str) -> None:
        if not self.exists(path):
            self.file.create_group(path)

    def create_array(self, path, shape, dtype, chunks, shards, dims, compression: Compression):
        kwargs: dict[str, Any] = {"fletcher32": True}
        level = compression.level or DEFAULT_LEVEL
        if compression.kind in ("default", "no-transpose"):
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

    def shape(self, path: str) -> tuple[int, ...]:
        return tuple(self.file[path].shape)

    def dtype(self, path: str) -> np.dtype:
        return np.dtype(self.file[path].dtype)

    def chunks(self, path: str) -> tuple[int, ...]:
        return tuple(self.file[path].chunks)

    def shards(self, path: str) -> tuple[int, ...] | None:
        return None

    def dimension_names(self, path: str) -> tuple[str, ...] | None:
        names = decode_attr(self.file[path].attrs.get("dimension_names"))
        return tuple(names) if isinstance(names, list) else None

    def codec_names(self, path: str) -> list[str]:
        ds = self.file[path]
        names = []
        if ds.shuffle:
            names.append("shuffle")
        if ds.compression:
            names.append(ds.compression)
        plist = ds.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code == 32001:
                names.append("blosc")
        if ds.fletcher32:
            names.append("fletcher32")
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
        return sorted(k for k, v in node.items() if isinstance(v, h5py.Group))

    def nbytes_stored(self) -> int:
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

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()
