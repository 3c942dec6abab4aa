"""HDF5 back end: chunked datasets with built-in shuffle + deflate + Fletcher-32."""

from __future__ import annotations

import fcntl
import os
from typing import Any

import h5py
import numpy as np

from ..errors import StoreBusyError, UnsafePathError
from .base import Compression, decode_attr, encode_attr

DEFAULT_LEVEL = 4
_CHUNK_CACHE_BYTES = 64 * 1024 * 1024
_MAX_LINKS = 100_000  # a store has a few dozen objects; refuse to walk an adversarial file forever


def is_being_written(path: str) -> bool:
    """True while a trajstore writer holds ``path`` open (it keeps an exclusive ``flock`` on the
    file, released by the kernel however the writer ends, ``kill -9`` included)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no locks on this file system (some network mounts): cannot tell
        return False
    finally:
        os.close(fd)  # closing drops a lock we got
    return False


def _writer_lock(path: str) -> int:
    """Take the writer's exclusive lock on ``path`` (see :func:`is_being_written`); return its fd."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if not isinstance(exc, BlockingIOError):
            return fd  # no locks on this file system (some network mounts): write unlocked
        os.close(fd)
        raise StoreBusyError(
            f"{path} is being written by another process; wait for it to finish (or stop it) first"
        ) from None
    return fd


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


class HDF5Backend:
    """A store held in one HDF5 file."""

    def __init__(self, path: str, mode: str):
        self.path = str(path)
        self.readonly = mode == "r"
        h5mode = {"r": "r", "r+": "r+", "w": "w", "a": "a", "w-": "w-"}[mode]
        # The default (earliest) file format has no "open for writing" flag, so a file whose
        # writer was killed still opens; readers skip the lock so a live run can be inspected.
        extra: dict[str, Any] = {"locking": False}
        if mode in ("w", "w-"):
            # Never reuse freed file space: a chunk rewritten after a flush goes to new space,
            # so the state of the last flush stays intact on disk if the writer is killed.
            extra["fs_strategy"] = "none"
        # Writers write chunks through (whole blocks anyway); readers cache for strided reads.
        cache = _CHUNK_CACHE_BYTES if mode == "r" else 0
        self._open_args = (h5mode, cache, extra)
        self._lock_fd: int | None = None
        if mode != "r" and os.path.exists(self.path):
            self._lock_fd = _writer_lock(self.path)
        try:
            self.file = h5py.File(self.path, h5mode, rdcc_nbytes=cache, **extra)
            if mode != "r" and self._lock_fd is None:  # the file was just created
                self._lock_fd = _writer_lock(self.path)
            if mode in ("r", "r+"):
                check_links(self.file, self.path)
        except BaseException:
            self.close()
            raise

    def reopen(self) -> None:
        """Close and open the file again (read mode): a fresh view of what a live writer wrote."""
        self.file.close()
        h5mode, cache, extra = self._open_args
        self.file = h5py.File(self.path, h5mode, rdcc_nbytes=cache, **extra)

    def is_being_written(self) -> bool:
        return self.readonly and is_being_written(self.path)

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
        for k, v in values.items():
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
