"""Zarr v3 back end: sharded, time-contiguous chunks with standard codecs only."""

from __future__ import annotations

import json
import os
import threading
import zipfile
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, TransposeCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import ZipStore

from ..jsonsafe import to_json
from .base import CODEC_PRESET_NAMES, Compression
from .locking import writer_lock

DEFAULT_LEVEL = 1
ZIP_SUFFIXES = (".zip",)
# Rows per chunk of a group's integrity array (1.2): each commit rewrites only the last chunk
# (128 rows of 7 int64: 7 KiB raw), as for HDF5.
_INDEX_CHUNK_ROWS = 128


class _PackageStore(ZipStore):
    """zarr's ZipStore for a package: read-only, over a local path or an open binary file (a
    remote package read by byte ranges), and an entry whose bytes fail the zip's CRC-32 is an
    ``OSError`` naming it (the reader turns it into a one-line "damaged" error) instead of
    zipfile's own exception."""

    def __init__(self, path: str, fileobj: Any = None):
        super().__init__(path, mode="r")
        self._fileobj = fileobj

    def _sync_open(self) -> None:
        if self._fileobj is None:
            return super()._sync_open()
        if self._is_open:
            raise ValueError("store is already open")
        self._lock = threading.RLock()
        self._zf = zipfile.ZipFile(self._fileobj, mode="r")
        self._is_open = True

    async def getsize(self, key: str) -> int:
        """The entry's size from the zip's directory (zarr's default reads the whole entry)."""
        if not self._is_open:
            self._sync_open()
        try:
            return self._zf.getinfo(key).file_size
        except KeyError:
            raise FileNotFoundError(key) from None

    async def get(self, key: str, prototype: Any, byte_range: Any = None):
        try:
            return await super().get(key, prototype, byte_range)
        except zipfile.BadZipFile as exc:
            raise OSError(f"package entry {key} is damaged ({exc})") from None


# Write every chunk, all-zero ones included: a chunk of committed records that is absent from
# the store is then always damage, never "zarr skipped it because it equals the fill value".
_WRITE_CONFIG = {"write_empty_chunks": True}


class ZarrBackend:
    """A store held in a Zarr v3 hierarchy (a directory, or an fsspec URL)."""

    # zarr (by default) does not write chunks equal to the fill value; 1.0 writers let it.
    skips_empty_chunks = True

    def __init__(self, path: str, mode: str, fileobj: Any = None):
        """``fileobj``: the open remote file of a packed (zip) store given by URL."""
        self.path = str(path)
        self.readonly = mode == "r"
        self._zip = None
        store: Any = self.path
        if self.path.lower().endswith(ZIP_SUFFIXES):
            # A packed store (trajstore pack): entries are STORED, so shards stay byte-range readable.
            if mode != "r":
                raise ValueError(f"{self.path} is a packed store and read-only; unpack it to change it")
            store = self._zip = (
                _PackageStore(self.path, fileobj)
            )
        self._lock_fd: int | None = None
        local_dir = self._zip is None and "://" not in self.path
        if mode != "r" and local_dir and os.path.isdir(self.path):
            self._lock_fd = writer_lock(self.path)  # refuses a folder another writer holds
        try:
            self.root = zarr.open_group(store, mode=mode, zarr_format=3)
            if mode != "r" and local_dir and self._lock_fd is None:  # the folder was just made
                self._lock_fd = writer_lock(self.path)
        except BaseException:
            self.close()
            raise
        self._cache: dict[str, Any] = {}

    def _node(self, path: str):
        node = self._cache.get(path)
        if node is None:
            node = self.root if path == "" else self.root[path]
            if not self.readonly and isinstance(node, zarr.Array):
                node = node.with_config(_WRITE_CONFIG)
            self._cache[path] = node
        return node

    def exists(self, path: str) -> bool:
        return path == "" or path in self.root

    def is_array(self, path: str) -> bool:
        return self.exists(path) and isinstance(self._node(path), zarr.Array)

    def create_group(self, path: str) -> None:
        if not self.exists(path):
            self.root.create_group(path)

    def create_array(self, path, shape, dtype, chunks, shards, dims, compression: Compression):
        level = compression.level or DEFAULT_LEVEL
        itemsize = np.dtype(dtype).itemsize
        # Shuffle on time-contiguous chunks: the slowly changing high bytes (bits, for "small")
        # of one parameter become long runs. Default zstd level 1: most of the ratio at several
        # times the speed; the presets trade one for the other (backends.base.CODEC_PRESETS).
        cname, clevel = compression.blosc
        blosc = BloscCodec(
            cname=cname,
            clevel=clevel,
            shuffle=compression.blosc_shuffle,
            typesize=itemsize,
            blocksize=compression.blosc_blocksize,
        )
        baseline = BloscCodec(cname="zstd", clevel=level, shuffle="shuffle", typesize=itemsize)
        filters: list = []
        compressors: list = []
        if compression.kind in ("default", "zstd", *CODEC_PRESET_NAMES):
            if len(shape) == 2:
                # Store each chunk parameter-major: a parameter's values over time are adjacent
                # and nearly equal, which is what byte-shuffle + zstd compresses best.
                filters = [TransposeCodec(order=(1, 0))]
            compressors = [blosc, Crc32cCodec()]
        elif compression.kind == "no-transpose":
            compressors = [baseline, Crc32cCodec()]
        else:  # "none": checksums only
            compressors = [Crc32cCodec()]
        self.root.create_array(
            path,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            shards=shards,
            filters=filters,
            serializer=BytesCodec(),
            compressors=compressors,
            fill_value=0,
            dimension_names=list(dims),
            config=_WRITE_CONFIG,
        )
        self._cache.pop(path, None)

    # The blocks of an integrity index are rows of an array appended to (format 1.2): an
    # attribute is rewritten whole, which made every commit cost O(all blocks).
    index_rows = True

    def write_rows(self, path: str, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` (k × width int64) at row ``start`` of the array ``path`` (created when
        absent), which then holds exactly ``start + k`` rows. zarr's own write path: the array
        is small, and not the values' layout the fast shard writer takes."""
        if not self.exists(path):
            self.root.create_array(
                path,
                shape=(0, rows.shape[1]),
                dtype="<i8",
                chunks=(_INDEX_CHUNK_ROWS, rows.shape[1]),
                serializer=BytesCodec(),
                compressors=[
                    BloscCodec(cname="zstd", clevel=DEFAULT_LEVEL, shuffle="shuffle", typesize=8),
                    Crc32cCodec(),
                ],
                fill_value=-1,
                dimension_names=["block", "field"],
                config=_WRITE_CONFIG,
            )
            self._cache.pop(path, None)
        arr = self._node(path)
        arr.resize((start + len(rows), rows.shape[1]))
        arr[start:] = rows

    def shape(self, path: str) -> tuple[int, ...]:
        return tuple(self._node(path).shape)

    def dtype(self, path: str) -> np.dtype:
        return np.dtype(self._node(path).dtype)

    def chunks(self, path: str) -> tuple[int, ...]:
        return tuple(self._node(path).chunks)

    def shards(self, path: str) -> tuple[int, ...] | None:
        s = self._node(path).shards
        return tuple(s) if s else None

    def dimension_names(self, path: str) -> tuple[str, ...] | None:
        names = self._node(path).metadata.dimension_names
        return tuple(names) if names else None

    def codec_names(self, path: str) -> list[str]:
        names: list[str] = []

        def walk(codecs) -> None:
            for c in codecs:
                d = c if isinstance(c, dict) else c.to_dict()
                names.append(d["name"])
                conf = d.get("configuration") or {}
                walk(conf.get("codecs", ()))
                walk(conf.get("index_codecs", ()))

        walk(self._node(path).metadata.to_dict()["codecs"])
        return names

    def resize(self, path: str, n_records: int) -> None:
        arr = self._node(path)
        arr.resize((n_records, *arr.shape[1:]))

    def write(self, path: str, start: int, data: np.ndarray) -> None:
        self._node(path)[start : start + len(data)] = data

    def read(self, path: str, selection: Any = ...) -> np.ndarray:
        return np.asarray(self._node(path)[selection])

    def attrs(self, path: str = "") -> dict:
        return dict(self._node(path).attrs)

    def set_attrs(self, path: str, values: dict) -> None:
        self._node(path).attrs.update(to_json(values))  # strict JSON: NaN/inf become null

    def groups(self, path: str) -> list[str]:
        if not self.exists(path):
            return []
        node = self._node(path)
        return sorted(name for name, _ in node.groups())

    def nbytes_stored(self) -> int | None:
        """Bytes on disk, or ``None`` for a remote store (unknown without listing every object)."""
        if self._zip is not None and "://" not in self.path:
            return os.path.getsize(self.path)
        if not os.path.isdir(self.path):
            return None
        total = 0
        for dirpath, _, files in os.walk(self.path):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        return total

    def chunk_selections(self, path: str):
        """Yield (chunk index, selection) for every stored (inner) chunk of an array."""
        arr = self._node(path)
        grid = [range(0, max(s, 1), c) for s, c in zip(arr.shape, arr.chunks, strict=True)]
        for idx in np.ndindex(*[len(g) for g in grid]):
            starts = [g[i] for g, i in zip(grid, idx, strict=True)]
            yield (
                idx,
                tuple(slice(s, min(s + c, n)) for s, c, n in zip(starts, arr.chunks, arr.shape, strict=True)),
            )

    # -- stored objects (integrity checks) ---------------------------------------------------

    def object_records(self, path: str) -> int:
        """Records per stored object (a shard when the array is sharded, else a chunk)."""
        arr = self._node(path)
        return int((arr.shards or arr.chunks)[0])

    def object_grid(self, path: str) -> tuple[int, ...]:
        """Shape (records, columns, ...) of one stored object."""
        arr = self._node(path)
        return tuple(int(c) for c in (arr.shards or arr.chunks))

    def object_key(self, path: str, coords: tuple[int, ...]) -> str:
        """The store key of the object at grid position ``coords`` (e.g. ``weights/value/c/1/0``)."""
        return f"{path}/{self._node(path).metadata.encode_chunk_key(tuple(coords))}"

    def object_nbytes(self, path: str, coords: tuple[int, ...]) -> int | None:
        """Size in bytes of a stored object, or None when it does not exist."""
        key = self.object_key(path, coords)
        local = self._local_file(key)
        if local is not None:
            try:
                return os.stat(local).st_size
            except FileNotFoundError:
                return None
        try:
            return int(sync(self.root.store_path.store.getsize(self._store_key(key))))
        except (FileNotFoundError, KeyError):
            return None

    def object_tail(self, path: str, coords: tuple[int, ...], n: int) -> bytes | None:
        """The last ``n`` bytes of a stored object (fewer if it is shorter); None if missing."""
        key = self.object_key(path, coords)
        local = self._local_file(key)
        if local is not None:
            try:
                with open(local, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    fh.seek(max(0, size - n))
                    return fh.read()
            except FileNotFoundError:
                return None
        size = self.object_nbytes(path, coords)
        if size is None:
            return None
        # An explicit range: some HTTP servers refuse suffix ranges ("bytes=-n").
        request = RangeByteRequest(max(0, size - n), size)
        buf = sync(self.root.store_path.store.get(self._store_key(key), default_buffer_prototype(), request))
        return None if buf is None else buf.to_bytes()

    def object_bytes(self, path: str, coords: tuple[int, ...]) -> bytes | None:
        """Every byte of a stored object, or None when it does not exist."""
        key = self.object_key(path, coords)
        local = self._local_file(key)
        if local is not None:
            try:
                with open(local, "rb") as fh:
                    return fh.read()
            except FileNotFoundError:
                return None
        buf = sync(self.root.store_path.store.get(self._store_key(key), default_buffer_prototype()))
        return None if buf is None else buf.to_bytes()

    def shard_format(self, path: str):
        """How whole shards of the 2-D array ``path`` can be written without zarr's write path
        (:mod:`trajstore.shards`); None for a remote or read-only store or another layout."""
        if self.readonly or self._zip is not None or not os.path.isdir(self.path):
            return None
        from ..shards import ShardFormat

        return ShardFormat.from_metadata(self.array_metadata(path))

    def object_file(self, path: str, coords: tuple[int, ...]) -> str | None:
        """The local file of the stored object at ``coords``, or None for a remote store."""
        return self._local_file(self.object_key(path, coords))

    def _store_key(self, key: str) -> str:
        prefix = self.root.store_path.path
        return f"{prefix}/{key}" if prefix else key

    def _local_file(self, key: str) -> str | None:
        if os.path.isdir(self.path):
            return os.path.join(self.path, *key.split("/"))
        return None

    def array_metadata(self, path: str) -> dict:
        """The array's ``zarr.json`` as written, read without zarr's parser (which refuses or
        silently normalises what validation must see); {} when absent."""
        key = f"{path}/zarr.json" if path else "zarr.json"
        local = self._local_file(key)
        if local is not None:
            try:
                with open(local, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                return {}
        else:
            buf = sync(self.root.store_path.store.get(self._store_key(key), default_buffer_prototype()))
            if buf is None:
                return {}
            data = buf.to_bytes()
        meta = json.loads(data)
        return meta if isinstance(meta, dict) else {"node_type": None}
    @property
    def can_move(self) -> bool:
        return os.path.isdir(self.path)

    def move(self, src: str, dst: str) -> None:
        """Rename the node ``src`` to ``dst`` (local stores: one atomic directory rename)."""
        os.rename(os.path.join(self.path, src), os.path.join(self.path, dst))
        self._cache.clear()

    def delete(self, path: str) -> None:
        """Remove the node ``path`` and everything under it."""
        import shutil

        shutil.rmtree(os.path.join(self.path, path))
        self._cache.clear()

    def flush(self) -> None:
        pass  # every write is persisted when the call returns

    def close(self) -> None:
        getattr(self, "_cache", {}).clear()
        if self._zip is not None:
            self._zip.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def unreadable_metadata(path: str) -> str | None:
    """The first ``zarr.json`` below the local Zarr folder ``path`` that is not a JSON object, as
    ``"weights/zarr.json is not valid JSON (…)"``; None when every one parses (or ``path`` is not a
    local folder). Chunk folders (``c``) hold no metadata and are not walked."""
    if "://" in path or not os.path.isdir(path):
        return None
    for folder, subdirs, files in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if d != "c")
        if "zarr.json" not in files:
            continue
        name = os.path.join(folder, "zarr.json")
        rel = os.path.relpath(name, path).replace(os.sep, "/")
        try:
            with open(name, "rb") as fh:
                value = json.loads(fh.read())
        except (OSError, ValueError) as exc:
            return f"{rel} is not valid JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        if not isinstance(value, dict):
            return f"{rel} is not a JSON object"
    return None
