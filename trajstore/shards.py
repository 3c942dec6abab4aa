"""Writing whole Zarr v3 shards of a (records, params) array, nearer the speed of the codec.

zarr's own write path spends about as long around the codec as in it (a transposition one
element at a time, buffer wrappers, an event loop, a copy per layer; docs/scale.md). Here a
time block is kept record-major while its records arrive (each record one contiguous copy),
and the CRC-32C digest of each chunk column (integrity index, docs/format.md) is continued every
few records. A full block is then compressed chunk by chunk with numcodecs' Blosc (which
releases the GIL, so chunks are encoded on several threads at once): each inner chunk is
transposed parameter-major into a small buffer of the encoding thread just before it is
compressed, while it is still in the CPU's cache, and the shard is written as one file, laid out exactly as
zarr lays out a shard (chunks in Morton order, then the index with its CRC-32C), so plain zarr
reads it and the bytes are those zarr itself would write. Only the layout trajstore creates is
taken this way (:meth:`ShardFormat.from_metadata`); anything else goes through zarr.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import crc32c as _crc32c
import numpy as np

from .crc_combine import crc32c_combine

_LITTLE = sys.byteorder == "little"
BLOSC_SHUFFLE_IDS = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}  # Zarr's names, numcodecs' ids
CRC_RECORDS = 16  # records whose chunk-column digests are continued at once


@dataclass(frozen=True)
class ShardFormat:
    """One shard of a (records, columns) array: ``records`` × (``n_chunks`` × ``width``),
    inner chunks ``records`` × ``width``, stored transposed (parameter-major) when
    ``transpose``, compressed with Blosc (``blosc``: its numcodecs configuration) or not."""

    records: int
    width: int
    n_chunks: int
    columns: int
    dtype: np.dtype
    transpose: bool
    blosc: dict | None

    @classmethod
    def from_metadata(cls, meta: dict) -> ShardFormat | None:
        """The format of a 2-D array from its ``zarr.json``; None unless it is exactly the layout
        trajstore writes (one sharding codec over transpose?, bytes, blosc?, crc32c)."""
        try:
            shape = meta["shape"]
            (shard,) = [meta["chunk_grid"]["configuration"]["chunk_shape"]]
            keys = meta.get("chunk_key_encoding", {})
            if keys.get("name") != "default" or keys.get("configuration", {}).get("separator", "/") != "/":
                return None
            if meta.get("fill_value") not in (0, 0.0) or len(shape) != 2 or len(meta["codecs"]) != 1:
                return None
            sharding = meta["codecs"][0]
            if sharding["name"] != "sharding_indexed":
                return None
            conf = sharding["configuration"]
            inner = list(conf["codecs"])
            if conf.get("index_location", "end") != "end" or [c["name"] for c in conf["index_codecs"]] != [
                "bytes",
                "crc32c",
            ]:
                return None
            if conf["index_codecs"][0].get("configuration", {}).get("endian", "little") != "little":
                return None
            transpose = inner[0]["name"] == "transpose"
            if transpose:
                if list(inner[0]["configuration"]["order"]) != [1, 0]:
                    return None
                inner = inner[1:]
            names = [c["name"] for c in inner]
            if names not in (["bytes", "crc32c"], ["bytes", "blosc", "crc32c"]):
                return None
            if inner[0].get("configuration", {}).get("endian", "little") != "little":
                return None
            blosc = None
            if names[1] == "blosc":
                c = inner[1]["configuration"]
                shuffle = BLOSC_SHUFFLE_IDS[c["shuffle"]]
                blosc = {
                    "cname": c["cname"],
                    "clevel": int(c["clevel"]),
                    "shuffle": shuffle,
                    "blocksize": int(c.get("blocksize", 0)),
                    "typesize": int(c["typesize"]),
                }
            rows, width = (int(x) for x in conf["chunk_shape"])
            dtype = np.dtype(meta["data_type"]).newbyteorder("<")
            if shard[0] != rows or shard[1] % width or dtype.kind not in "fiu":
                return None
            if shard[1] // width != -(-int(shape[1]) // width):  # one shard spans every column
                return None
            return cls(rows, width, shard[1] // width, int(shape[1]), dtype, transpose, blosc)
        except (KeyError, TypeError, ValueError, IndexError):
            return None

    @property
    def chunk_shape(self) -> tuple[int, int]:
        """Shape of one inner chunk as stored (after the transpose)."""
        return (self.width, self.records) if self.transpose else (self.records, self.width)

    def column_width(self, j: int) -> int:
        """Columns of the array in chunk column ``j`` (the last one may be narrower)."""
        return max(0, min(self.width, self.columns - j * self.width))


class ShardBlock:
    """One time block being filled record by record, kept record-major as it arrives.

    ``rows`` (records, columns): the records put so far in rows [0, n). ``digest()`` is the
    integrity digest of those rows: the CRC-32C of each chunk column's C-order values, chained.
    :meth:`finish` gives the inner chunks as stored, each made (transposed) only when it is
    encoded, so that the transposition runs on the encoder threads and the chunk is still in
    the CPU's cache when the codec reads it."""

    def __init__(self, fmt: ShardFormat, touched: bool = False):
        self.fmt = fmt
        self.rows = np.zeros((fmt.records, fmt.columns), dtype=fmt.dtype)
        if touched:  # fault every page in now (np.zeros maps them lazily)
            self.rows.fill(0)
        self.n = 0  # rows put
        self._columns = [(j * fmt.width, fmt.column_width(j)) for j in range(fmt.n_chunks)]
        self._crcs = [0] * fmt.n_chunks  # per chunk column, over rows [0, _digested)
        self._digested = 0
        self._scratch = np.empty(min(CRC_RECORDS, fmt.records) * fmt.width, dtype=fmt.dtype)

    def reset(self) -> None:
        self.n = self._digested = 0
        self._crcs = [0] * self.fmt.n_chunks

    def put(self, row: np.ndarray) -> None:
        """Append one record (columns,)."""
        self.rows[self.n] = row
        self.n += 1
        if self.n - self._digested == CRC_RECORDS:
            self._digest_rows()

    def _digest_rows(self) -> None:
        """Continue each chunk column's CRC-32C over rows [_digested, n): a few records at once,
        so that the Python loop, which holds the GIL that training needs, runs once per
        CRC_RECORDS records rather than once per record."""
        r0, r1 = self._digested, self.n
        if r1 == r0:
            return
        crcs = self._crcs
        for j, (c0, cw) in enumerate(self._columns):
            part = self._scratch[: (r1 - r0) * cw].reshape(r1 - r0, cw)  # C order, contiguous
            np.copyto(part, self.rows[r0:r1, c0 : c0 + cw])
            crcs[j] = _crc32c.crc32c(part.view(np.uint8).reshape(-1), value=crcs[j])
        self._digested = r1

    def digest(self) -> int:
        """Integrity digest (CRC-32C) of rows [0, n), chunk column after chunk column."""
        self._digest_rows()
        value = 0
        item = self.fmt.dtype.itemsize
        for j, (_, cw) in enumerate(self._columns):
            value = crc32c_combine(value, self._crcs[j], self.n * cw * item)
        return value

    def finish(self) -> BlockChunks:
        """The inner chunks of rows [0, n), ready to encode (rows past ``n`` and columns past the
        array's edge are the fill value 0). They read ``rows``: put nothing until encoded."""
        return BlockChunks(self.fmt, self.rows, self.n)


_buffers = threading.local()


class BlockChunks:
    """The inner chunks of a block's first ``n`` rows, as stored: ``len()`` of them, the
    ``j``-th made by ``chunks[j]`` into a buffer of the calling thread, valid until that
    thread's next ``chunks[...]`` (encode it before)."""

    def __init__(self, fmt: ShardFormat, rows: np.ndarray, n: int):
        self.fmt = fmt
        self.rows = rows
        self.n = n

    def __len__(self) -> int:
        return self.fmt.n_chunks

    def __getitem__(self, j: int) -> np.ndarray:
        fmt, n = self.fmt, self.n
        if not 0 <= j < fmt.n_chunks:
            raise IndexError(f"chunk {j} of a block of {fmt.n_chunks}")
        c0, cw = j * fmt.width, fmt.column_width(j)
        key = (fmt.chunk_shape, fmt.dtype.str)
        cache = _buffers.__dict__.setdefault("chunks", {})
        buf = cache.get(key)
        if buf is None:  # one per thread and shape: fresh memory is slow to touch the first time
            buf = cache[key] = np.zeros(fmt.chunk_shape, dtype=fmt.dtype)
        part = self.rows[:n, c0 : c0 + cw]
        if fmt.transpose:
            buf[:cw, :n] = part.T
            buf[:cw, n:] = 0
            buf[cw:] = 0
        else:
            buf[:n, :cw] = part
            buf[:n, cw:] = 0
            buf[n:] = 0
        return buf


@dataclass(frozen=True)
class WrittenShard:
    """What the integrity index records of a written shard: its size and its last bytes."""

    nbytes: int
    tail: bytes


class ShardEncoder:
    """Encodes the chunks of a block (numcodecs Blosc + CRC-32C) and writes the shard file."""

    def __init__(self, fmt: ShardFormat):
        self.fmt = fmt
        self._blosc = None
        if fmt.blosc is not None:
            from numcodecs import Blosc

            self._blosc = Blosc(**fmt.blosc)

    def encode_chunk(self, chunk: np.ndarray) -> list:
        """The stored bytes of one inner chunk, as a list of pieces (data, then its CRC-32C)."""
        values = chunk.reshape(-1)
        raw = (values if _LITTLE else values.byteswap()).view(np.uint8)  # stored little endian
        # a copy either way: ``chunk`` is a buffer the thread reuses for its next chunk
        data = raw.tobytes() if self._blosc is None else self._blosc.encode(raw)
        crc = _crc32c.crc32c(data)
        return [data, np.array([crc], dtype="<u4").tobytes()]

    def index(self, parts: list[list]) -> list:
        """The shard index (offset, length per chunk, little-endian uint64) and its CRC-32C."""
        lengths = np.array([sum(len(memoryview(p)) for p in part) for part in parts], dtype="<u8")
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("<u8")
        idx = np.stack([offsets, lengths], axis=-1).reshape(1, len(parts), 2).astype("<u8").tobytes()
        return [idx, np.array([_crc32c.crc32c(idx)], dtype="<u4").tobytes()]

    def write(self, path: str, parts: list[list], tail_bytes: int) -> WrittenShard:
        """Write the shard file atomically (a temporary sibling, renamed as zarr's LocalStore does)."""
        pieces = [p for part in parts for p in part] + self.index(parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "wb", buffering=0) as fh:
                for p in pieces:
                    view = memoryview(p).cast("B")
                    while view:  # a raw write may be short
                        view = view[fh.write(view) :]
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        nbytes = sum(len(memoryview(p).cast("B")) for p in pieces)
        return WrittenShard(nbytes, _tail(pieces, tail_bytes))

    def encode_and_write(self, chunks: BlockChunks, path: str, tail_bytes: int) -> WrittenShard:
        """All of a block on the calling thread."""
        return self.write(path, [self.encode_chunk(chunks[j]) for j in range(len(chunks))], tail_bytes)


def _tail(pieces: list, n: int) -> bytes:
    out: list[bytes] = []
    need = n
    for p in reversed(pieces):
        b = memoryview(p).cast("B")
        take = b[max(0, len(b) - need) :]
        out.append(bytes(take))
        need -= len(take)
        if need <= 0:
            break
    return b"".join(reversed(out))


class ShardJob:
    """A block encoded chunk by chunk on a thread pool; the thread finishing the last chunk
    writes the file. ``future`` gives the :class:`WrittenShard` or the first error."""

    def __init__(self, encoder: ShardEncoder, chunks: BlockChunks, path: str, tail_bytes: int, pool):
        self.encoder = encoder
        self.chunks = chunks
        self.path = path
        self.tail_bytes = tail_bytes
        self.future: Future = Future()
        self._parts: list = [None] * len(chunks)
        self._left = len(chunks)
        self._lock = threading.Lock()
        for j in range(len(chunks)):
            pool.submit(self._run, j)

    def _run(self, j: int) -> None:
        if self.future.done():  # an earlier chunk failed
            return
        try:
            self._parts[j] = self.encoder.encode_chunk(self.chunks[j])
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the block
            self._fail(exc)
            return
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last and not self.future.done():
            try:
                self.future.set_result(self.encoder.write(self.path, self._parts, self.tail_bytes))
            except BaseException as exc:  # noqa: BLE001
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if not self.future.done():
                self.future.set_exception(exc)


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value by ``nice`` (at most to 19). On Linux every thread
    has its own; elsewhere, or where the OS refuses, nothing happens."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        pass


class EncoderPool:
    """The threads that encode full blocks of every series of one writer, ``nice`` steps below
    the priority of the thread that makes them (:func:`lower_thread_priority`)."""

    def __init__(self, threads: int, nice: int = 0):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._pool = ThreadPoolExecutor(
            threads,
            thread_name_prefix="trajstore-encode",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )

    def submit(self, encoder: ShardEncoder, chunks: BlockChunks, path: str, tail_bytes: int) -> Future:
        return ShardJob(encoder, chunks, path, tail_bytes, self._pool).future

    def prepare(self, make: Callable[[], ShardBlock]) -> Future:
        """Make a block on an encoder thread (its memory touched there, not on the caller's)."""
        return self._pool.submit(make)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class _InFlight:
    start: int
    stop: int
    digests: dict
    future: Future
    block: ShardBlock


class ShardValues:
    """The ``value`` array of one series, written as whole shards (see the module docstring).

    ``file_of(k)``: the path of the shard holding block ``k``. With a ``pool``, a full block is
    encoded in the background while the next one fills (two blocks in memory); without, on the
    calling thread."""

    def __init__(self, fmt: ShardFormat, file_of: Callable[[int], str], pool: EncoderPool | None):
        self.fmt = fmt
        self.file_of = file_of
        self.pool = pool
        self.encoder = ShardEncoder(fmt)
        self._spare: list[ShardBlock] = []
        self.in_flight: list[_InFlight] = []
        # With a pool, the blocks are made on an encoder thread, ahead of their first record, their
        # pages touched there: first touches of fresh memory ran at ~0.4 GB/s here, a stall of
        # the caller's thread of up to 0.4 s per 144 MB block.
        self._block: ShardBlock | None = None if pool else ShardBlock(fmt)
        self._first: Future | None = pool.prepare(lambda: ShardBlock(fmt, touched=True)) if pool else None
        self._next: Future | None = pool.prepare(lambda: ShardBlock(fmt, touched=True)) if pool else None

    @property
    def block(self) -> ShardBlock:
        """The block being filled."""
        if self._block is None:
            self._block, self._first = self._first.result(), None
        return self._block

    def put(self, row: np.ndarray) -> None:
        self.block.put(row)

    def write_now(self, k: int, tail_bytes: int) -> WrittenShard:
        """Encode and write the current block (full or not) as shard ``k`` on this thread; a
        full block is then emptied for the next one."""
        written = self.encoder.encode_and_write(self.block.finish(), self.file_of(k), tail_bytes)
        if self.block.n == self.fmt.records:
            self.block.reset()
        return written

    def hand_off(self, k: int, start: int, stop: int, digests: dict, tail_bytes: int) -> None:
        """Start writing the current (full) block as shard ``k`` in the background and go on
        filling another one. Call when no block is in flight (:meth:`finished` with ``wait``):
        two blocks at most are in memory, one being encoded while the other fills."""
        if self.in_flight:
            raise RuntimeError("a block is still in flight; collect it with finished(wait=True) first")
        job = self.pool.submit(self.encoder, self.block.finish(), self.file_of(k), tail_bytes)
        self.in_flight.append(_InFlight(start, stop, digests, job, self.block))
        if self._spare:
            self._block = self._spare.pop()
        elif self._next is not None:
            self._block, self._next = self._next.result(), None
        else:
            self._block = ShardBlock(self.fmt)
        self._block.reset()

    def finished(self, wait: bool) -> list[tuple[_InFlight, WrittenShard]]:
        """Blocks written since the last call, oldest first (``wait``: all of them). A failed
        write raises its error here."""
        out = []
        while self.in_flight and (wait or self.in_flight[0].future.done()):
            item = self.in_flight.pop(0)
            written = item.future.result()
            self._spare.append(item.block)
            out.append((item, written))
        return out

    def abandon(self) -> None:
        """Wait for blocks in flight and forget them (after a failure; never raises)."""
        for item in self.in_flight:
            try:
                item.future.result()
            except BaseException:  # noqa: BLE001 - the first error was reported already
                pass
        self.in_flight.clear()
