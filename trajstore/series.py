"""One time-dependent group (H5MD-style ``value`` / ``step`` / ``time``) being written.

The series buffers one chunk-row of records (``chunk_records`` × columns) and writes it as a
whole block when it fills, so full chunks (and, in Zarr, whole shards) are written once. A
partial block is written only on :meth:`SeriesWriter.write_pending` (flush/close) and rewritten
whole when the block later fills.
"""

from __future__ import annotations

import math

import numpy as np

from . import spec
from .backends import Backend, Compression
from .chunking import SCALAR_CHUNK_RECORDS, shard_shape
from .integrity import TAIL_BYTES, Block, IntegrityIndex, digest, parse_index, store_index, tail_digest
from .shards import EncoderPool, ShardValues


class SeriesWriter:
    """Appends records to ``<group>/value`` (records × columns, or records) with their steps.

    ``columns`` is None for a scalar series (observables); the value array is then 1-D.
    A 2-D value array in a local Zarr store is written as whole shards (:mod:`trajstore.shards`),
    on the threads of ``pool`` when one is given (a block's commit then follows when it is
    written); otherwise rows are buffered and written through the back end.
    """

    def __init__(
        self,
        backend: Backend,
        group: str,
        columns: int | None,
        dtype: str,
        chunk_records: int,
        chunk_cols: int | None = None,
        with_time: bool = True,
        pool: EncoderPool | None = None,
        shard_cols: int | None = None,
    ):
        self.backend = backend
        self.pool = pool
        self.values: ShardValues | None = None
        self.group = group
        self.columns = columns
        self.dtype = np.dtype(dtype)
        self.chunk_records = chunk_records
        self.chunk_cols = chunk_cols
        self.with_time = with_time
        # Columns per stored object (Zarr shard); None: one object spans every column. Narrower
        # shards let several processes write disjoint column ranges (recorders.sharded).
        self.shard_cols = shard_cols
        self.block_start = 0  # index of the first buffered record; a multiple of chunk_records
        self.n_buf = 0
        self.n_written = 0  # records whose value/step/time are in the store (committed or not)
        self.n_committed = 0
        self.last_step: int | None = None
        self.buffer: np.ndarray | None = None  # rows of the block, unless ``values`` holds them
        self.steps = np.zeros(chunk_records, dtype=np.int64)
        self.times = np.full(chunk_records, np.nan, dtype=np.float64)
        # Integrity index (format 1.1): one entry per written block, keyed by block start.
        # None for a 1.0 store continued by this writer (it stays 1.0).
        self.blocks: dict[int, Block] | None = {}
        self.n_rows = 0  # blocks of the committed index kept as rows of an array (1.2)

    # -- creation and re-opening ---------------------------------------------------------

    def create(self, compression: Compression, attrs: dict) -> None:
        b, g = self.backend, self.group
        b.create_group(g)
        if self.columns is None:
            b.create_array(
                f"{g}/{spec.VALUE}",
                (0,),
                self.dtype.str,
                (self.chunk_records,),
                None,
                (spec.DIM_RECORD,),
                compression,
            )
        else:
            b.create_array(
                f"{g}/{spec.VALUE}",
                (0, self.columns),
                self.dtype.str,
                (self.chunk_records, self.chunk_cols),
                (self.chunk_records, self.shard_cols)
                if self.shard_cols
                else shard_shape(self.columns, self.chunk_records, self.chunk_cols),
                (spec.DIM_RECORD, spec.DIM_PARAM),
                compression,
            )
        index_chunks = (max(self.chunk_records, SCALAR_CHUNK_RECORDS),)
        b.create_array(f"{g}/{spec.STEP}", (0,), "<i8", index_chunks, None, (spec.DIM_RECORD,), compression)
        if self.with_time:
            b.create_array(
                f"{g}/{spec.TIME}", (0,), "<f8", index_chunks, None, (spec.DIM_RECORD,), compression
            )
        index, self.n_rows = store_index(b, g, self._index(0), 0, self.chunk_records)
        b.set_attrs(g, {**attrs, spec.ATTR_INTEGRITY: index, spec.ATTR_N_COMMITTED: 0})
        self._attach_values()
        if not g.startswith("."):  # a hidden name under construction is listed once moved
            list_group(b, g)

    @classmethod
    def reopen(cls, backend: Backend, group: str, pool: EncoderPool | None = None) -> SeriesWriter:
        """Continue an existing series after its last committed record."""
        value = f"{group}/{spec.VALUE}"
        shape = backend.shape(value)
        chunks = backend.chunks(value)
        series = cls(
            backend,
            group,
            shape[1] if len(shape) == 2 else None,
            backend.dtype(value).str,
            chunks[0],
            chunks[1] if len(chunks) == 2 else None,
            with_time=backend.exists(f"{group}/{spec.TIME}"),
            pool=pool,
        )
        series._attach_values()
        attrs = backend.attrs(group)
        n = int(attrs.get(spec.ATTR_N_COMMITTED, 0))
        series.n_committed = series.n_written = n
        if attrs.get(spec.ATTR_INTEGRITY) is None:
            series.blocks = None  # a 1.0 store: continued as 1.0
        else:
            index = parse_index(backend, group, attrs[spec.ATTR_INTEGRITY], f"{backend.path}: {group}")
            # Entries past the commit (a crash between the two attributes) are written again,
            # rows of the integrity array included.
            series.blocks = {b.start: b for b in index.blocks if b.stop <= n}
            series.n_rows = min(int(attrs[spec.ATTR_INTEGRITY].get("n_blocks", 0)), len(series.blocks))
        series.block_start = (n // series.chunk_records) * series.chunk_records
        series.n_buf = n - series.block_start
        if series.n_buf:  # the committed part of a partial block goes back into the buffer
            sl = slice(series.block_start, n)
            rows = backend.read(value, sl)
            if series.values is not None:
                for row in rows:
                    series.values.put(row)
            else:
                series.buffer[: series.n_buf] = rows
            series.steps[: series.n_buf] = backend.read(f"{group}/{spec.STEP}", sl)
            if series.with_time:
                series.times[: series.n_buf] = backend.read(f"{group}/{spec.TIME}", sl)
            if series.blocks is not None:
                series.blocks[series.block_start] = series._block_entry(full=False)
        if n:
            series.last_step = int(backend.read(f"{group}/{spec.STEP}", slice(n - 1, n))[0])
        return series

    def _attach_values(self) -> None:
        """Whole shards where the back end takes them (same layout, local Zarr), else a row buffer."""
        fmt = None
        shard_format = getattr(self.backend, "shard_format", None)
        if self.columns is not None and shard_format is not None:
            fmt = shard_format(f"{self.group}/{spec.VALUE}")
        if fmt is not None and fmt.records == self.chunk_records and fmt.columns == self.columns:
            self.values = ShardValues(fmt, self._shard_file, self.pool)
            self.buffer = None
        else:
            self.values = None
            shape = (self.chunk_records,) if self.columns is None else (self.chunk_records, self.columns)
            self.buffer = np.zeros(shape, dtype=self.dtype)

    def _shard_file(self, k: int) -> str:
        return self.backend.object_file(f"{self.group}/{spec.VALUE}", (k, 0))

    # -- appending -----------------------------------------------------------------------

    @property
    def n_records(self) -> int:
        return self.block_start + self.n_buf

    def append(self, step: int, value, time: float) -> bool:
        """Buffer one record; return True when a block was written by this call (the one it
        filled, or with encoder threads one they finished since)."""
        if self.last_step is not None and step <= self.last_step:
            raise ValueError(
                f"{self.group}: step {step} is not after the last recorded step {self.last_step}; "
                "steps must increase"
            )
        written = self.n_written
        if self.values is not None:
            self._collect(wait=False)
            self.values.put(np.asarray(value, dtype=self.dtype))
        else:
            self.buffer[self.n_buf] = value
        self.steps[self.n_buf] = step
        self.times[self.n_buf] = time
        self.n_buf += 1
        self.last_step = step
        if self.n_buf == self.chunk_records:
            self.write_pending()
            self.block_start += self.chunk_records
            self.n_buf = 0
        return self.n_written > written

    def _collect(self, wait: bool) -> None:
        """Account for blocks the encoder threads have written (``wait``: all of them)."""
        for item, written in self.values.finished(wait):
            if self.blocks is not None:
                tail = tail_digest(written.tail)
                self.blocks[item.start] = Block(item.start, item.stop, item.digests, written.nbytes, tail)
            self.n_written = item.stop

    def write_pending(self) -> None:
        """Write the buffered records (a full or partial block) to the store, uncommitted.
        With encoder threads a full block is handed to them and counted as written later."""
        if self.values is not None:
            self._collect(wait=True)
        end = self.block_start + self.n_buf
        if end <= self.n_written and self.n_buf < self.chunk_records:
            return
        b, g = self.backend, self.group
        # Grow by whole blocks so that a block is never split across a resize. Each array is
        # checked on its own: a crash between the resizes of value, step and time leaves them
        # of different lengths, and a write past an array's end would be dropped silently.
        new = math.ceil(end / self.chunk_records) * self.chunk_records
        for name in self._arrays():
            if b.shape(f"{g}/{name}")[0] < end:
                b.resize(f"{g}/{name}", new)
        if self.n_buf and self.values is not None:
            b.write(f"{g}/{spec.STEP}", self.block_start, self.steps[: self.n_buf])
            if self.with_time:
                b.write(f"{g}/{spec.TIME}", self.block_start, self.times[: self.n_buf])
            full = self.n_buf == self.chunk_records
            digests = self._digests()
            k = self.block_start // self.chunk_records
            if full and self.pool is not None:
                self.values.hand_off(k, self.block_start, end, digests, TAIL_BYTES)
                return  # counted as written once the encoder threads have written it
            written = self.values.write_now(k, TAIL_BYTES)
            if self.blocks is not None:
                nbytes, tail = (written.nbytes, tail_digest(written.tail)) if full else (None, None)
                self.blocks[self.block_start] = Block(self.block_start, end, digests, nbytes, tail)
        elif self.n_buf:
            b.write(f"{g}/{spec.VALUE}", self.block_start, self.buffer[: self.n_buf])
            b.write(f"{g}/{spec.STEP}", self.block_start, self.steps[: self.n_buf])
            if self.with_time:
                b.write(f"{g}/{spec.TIME}", self.block_start, self.times[: self.n_buf])
            if self.blocks is not None:
                self.blocks[self.block_start] = self._block_entry(full=self.n_buf == self.chunk_records)
        self.n_written = end

    def _block_entry(self, full: bool) -> Block:
        """The index entry of the buffered block, digested from the values just written.

        A full block is never rewritten, so its stored object's size and tail are recorded too
        (when the block is exactly one object: a Zarr shard spanning every column)."""
        k = self.n_buf
        digests = self._digests()
        nbytes = tail = None
        value = f"{self.group}/{spec.VALUE}"
        grid = self.backend.object_grid(value)
        if full and grid[0] == self.chunk_records and (len(grid) == 1 or grid[1] >= (self.columns or 0)):
            coords = (self.block_start // self.chunk_records,) + ((0,) if len(grid) == 2 else ())
            raw = self.backend.object_tail(value, coords, TAIL_BYTES)
            if raw is not None:
                nbytes = self.backend.object_nbytes(value, coords)
                tail = tail_digest(raw)
        return Block(self.block_start, self.block_start + k, digests, nbytes, tail)

    def _digests(self) -> dict[str, int]:
        """Digest of each array over the buffered records (docs/format.md, integrity index)."""
        k = self.n_buf
        if self.values is not None:
            value = self.values.block.digest()
        else:
            value = digest(self.buffer[:k], width=self.chunk_cols)
        digests = {spec.VALUE: value, spec.STEP: digest(self.steps[:k])}
        if self.with_time:
            digests[spec.TIME] = digest(self.times[:k])
        return digests

    def abandon(self) -> None:
        """After a failure: wait for blocks in flight, count none of them (never raises)."""
        if self.values is not None:
            self.values.abandon()

    def _index(self, n: int) -> IntegrityIndex:
        arrays = (spec.VALUE, spec.STEP, spec.TIME) if self.with_time else (spec.VALUE, spec.STEP)
        blocks = tuple(b for start, b in sorted((self.blocks or {}).items()) if b.stop <= n)
        return IntegrityIndex(n, arrays, blocks)

    def commit(self) -> None:
        """Declare every written record valid (call after the backend has flushed the data)."""
        if self.n_committed != self.n_written:
            attrs: dict = {}
            if self.blocks is not None:
                # Index first: after a crash between the two (HDF5 writes attributes one by
                # one) the index covers more records than the commit, never fewer.
                attrs[spec.ATTR_INTEGRITY], self.n_rows = store_index(
                    self.backend, self.group, self._index(self.n_written), self.n_rows, self.chunk_records
                )
            attrs[spec.ATTR_N_COMMITTED] = self.n_written
            self.backend.set_attrs(self.group, attrs)
            self.n_committed = self.n_written

    def trim(self) -> None:
        """Shrink the arrays to the committed records, so plain readers see no padding."""
        for name in self._arrays():
            path = f"{self.group}/{name}"
            if self.backend.shape(path)[0] != self.n_committed:
                self.backend.resize(path, self.n_committed)

    def _arrays(self) -> tuple[str, ...]:
        return (spec.VALUE, spec.STEP, spec.TIME) if self.with_time else (spec.VALUE, spec.STEP)


def list_group(b: Backend, group: str) -> None:
    """List ``group`` in the root attribute ``groups`` (1.1), so that a group lost to damage is
    missed, not silently absent."""
    listed = b.attrs("").get(spec.ATTR_GROUPS)
    if isinstance(listed, list) and group not in listed:
        b.set_attrs("", {spec.ATTR_GROUPS: [*listed, group]})
