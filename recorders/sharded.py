"""Recording a sharded model (FSDP2 ``fully_shard``, DTensor): every rank writes its own columns.

No rank ever holds the full parameter vector. The store's ``weights/value`` array is stored in
shards one chunk column wide; each shard column has one owner rank (the rank holding most of its
values). Per record, each rank copies its local shards to the host, sends the few values that
fall into columns another rank owns (the ends of its shard of each tensor) to that owner, and
writes whole blocks (``chunk_records`` records) of its own columns. When a block is written,
the ranks hand rank 0 the CRC-32C of their columns; rank 0 combines them
(:mod:`trajstore.crc_combine`) into the block's integrity digest and commits (``n_committed``),
after every rank has written. Steps, times and observables are rank 0's, as in any run.

The values, steps, layout and observables are those an unsharded run of the same training
writes, so the content digest is the same; only the shard grid of ``weights/value`` differs
(both are valid format 1.1). Supported: parameters that are DTensors on a 1-D device mesh over
all ranks, placed ``Shard(0)`` (FSDP2's default, even or uneven) or ``Replicate()``, and plain
tensors (taken from rank 0). Refused with one line: FSDP1 (``FlatParameter``), other placements
(``Shard(d > 0)``, ``Partial``, 2-D meshes such as HSDP), ``gradients``, ``buffers``,
``resume`` and ``policy="drop"`` (ranks would drop different records).

Messages between ranks travel on a gloo group of their own, from each rank's writer thread, so
they never interleave with the training's collectives.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

import trajstore
from trajstore import spec
from trajstore.chunking import choose_chunks
from trajstore.crc_combine import combine_all
from trajstore.integrity import TAIL_BYTES, Block, IntegrityIndex, digest, store_index, tail_digest

from .discovery import UnsupportedModelError

_SHARD = "shard"  # one rank holds this part (DTensor Shard(0))
_REPLICATE = "replicate"  # every rank holds it (DTensor Replicate)
_RANK0 = "rank0"  # a plain tensor: rank 0's copy is recorded (as under DDP)


def _is_dtensor(p: torch.Tensor) -> bool:
    return type(p).__name__ == "DTensor" or type(getattr(p, "data", None)).__name__ == "DTensor"


def is_sharded(params: Any) -> bool:
    """True when ``params`` (a module or (name, tensor) pairs) hold DTensor parameters."""
    if isinstance(params, torch.nn.Module):
        params = params.named_parameters()
    return any(_is_dtensor(p) for _, p in params)


@dataclass
class _Part:
    """A piece of the flat vector [start, stop) held at ``local`` in one rank's local vector."""

    start: int
    stop: int
    rank: int
    local: int
    kind: str


@dataclass
class ShardPlan:
    """Who holds, owns, sends and receives which values (the same on every rank).

    Every rank must size its snapshot pool alike (by ``n_local_max``): records reach the writer
    threads in pool-sized batches, and a rank whose batch outlasted another rank's pool would stall
    that rank's training on a record still waiting in its own batch.

    ``n_params``: length of the full flat vector. ``columns``: width of a stored shard.
    ``owned``: this rank's column ranges [(start, stop)] in the flat vector, in order.
    ``copies``: (dst offset in the owned vector, source rank, offset in the source's local vector
    or message, length) that assemble the owned vector. ``sends[q]``: (local offset, length)
    pieces packed, in order, into the message to rank q; ``recv_sizes[q]``: length from rank q.
    """

    rank: int
    world: int
    n_params: int
    columns: int
    n_local: int
    n_local_max: int  # the most any rank holds: every rank sizes its snapshot pool by it
    owned: list[tuple[int, int]]
    copies: list[tuple[int, int, int, int]]
    sends: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    recv_sizes: dict[int, int] = field(default_factory=dict)

    @property
    def n_owned(self) -> int:
        return sum(b - a for a, b in self.owned)


def _placement(p: torch.Tensor, name: str, world: int) -> str:
    if not _is_dtensor(p):
        return _RANK0
    mesh, placements = p.device_mesh, p.placements
    if mesh.ndim != 1 or len(placements) != 1 or mesh.mesh.flatten().tolist() != list(range(world)):
        raise UnsupportedModelError(
            f"parameter {name} is a DTensor on the device mesh {mesh.mesh.tolist()}; trajstore records "
            f"sharded models on a 1-D mesh over all {world} ranks (FSDP2 fully_shard), not 2-D "
            "(HSDP) or partial meshes"
        )
    pl = placements[0]
    if pl.is_replicate():
        return _REPLICATE
    if pl.is_shard() and getattr(pl, "dim", None) == 0 and type(pl).__name__ == "Shard" and p.ndim > 0:
        return _SHARD
    raise UnsupportedModelError(
        f"parameter {name} is a DTensor placed {pl}; trajstore records Shard(0) (FSDP2's default) "
        "and Replicate() placements: other placements split a tensor's rows and are not recorded"
    )


def local_tensors(params: list[torch.Tensor], kinds: list[str], rank: int) -> list[torch.Tensor]:
    """This rank's part of each parameter, flat, in order (looked up at each snapshot: FSDP2 may
    replace a parameter's local storage, e.g. at its lazy initialisation)."""
    out = []
    for p, kind in zip(params, kinds, strict=True):
        if kind == _RANK0:
            if rank == 0:
                out.append(p.detach().reshape(-1))
            continue
        out.append(p.detach().to_local().reshape(-1))
    return out


def make_plan(
    names: list[str], params: list[torch.Tensor], columns: int, group=None
) -> tuple[ShardPlan, list[str]]:
    """The plan of this rank (a collective: every rank calls it with the same model).

    Returns (plan, placement kind of each parameter)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    kinds = [_placement(p, n, world) for n, p in zip(names, params, strict=True)]
    # Rows of each Shard(0) parameter on each rank, from the ranks themselves (uneven shards too).
    mine = [int(p.to_local().shape[0]) if k == _SHARD else 0 for p, k in zip(params, kinds, strict=True)]
    rows: list[list[int]] = [None] * world  # type: ignore[list-item]
    dist.all_gather_object(rows, mine, group=group)
    shapes = [tuple(int(d) for d in p.shape) for p in params]
    return build_plan(rank, world, names, shapes, kinds, rows, columns), kinds


def build_plan(
    rank: int,
    world: int,
    names: list[str],
    shapes: list[tuple[int, ...]],
    kinds: list[str],
    rows: list[list[int]],
    columns: int,
) -> ShardPlan:
    """The plan of ``rank`` from every parameter's global shape and placement kind and
    ``rows[r][i]``, the rows of Shard(0) parameter ``i`` on rank ``r`` (in rank order)."""
    parts: list[_Part] = []
    local = [0] * world
    offset = 0
    for i, (shape, kind) in enumerate(zip(shapes, kinds, strict=True)):
        numel = math.prod(shape)
        if kind == _SHARD:
            d0 = shape[0]
            if sum(rows[r][i] for r in range(world)) != d0:
                raise UnsupportedModelError(
                    f"parameter {names[i]}: the ranks' Shard(0) parts have {sum(r[i] for r in rows)} rows "
                    f"together, the tensor has {d0}; trajstore cannot place them"
                )
            row = numel // d0 if d0 else 0
            start = 0
            for r in range(world):
                n = rows[r][i] * row
                if n:
                    parts.append(_Part(offset + start, offset + start + n, r, local[r], kind))
                local[r] += n
                start += n
        elif numel == 0:
            pass
        elif kind == _REPLICATE:
            for r in range(world):
                parts.append(_Part(offset, offset + numel, r, local[r], kind))
                local[r] += numel
        else:
            parts.append(_Part(offset, offset + numel, 0, local[0], kind))
            local[0] += numel
        offset += numel
    n_params = offset
    owners = _column_owners(parts, n_params, columns, world)
    owned_by = [_ranges(owners, q, columns, n_params) for q in range(world)]
    sends: dict[int, list[tuple[int, int]]] = {}
    recv_sizes: dict[int, int] = {}
    copies: list[tuple[int, int, int, int]] = []
    # Sorted by start, parts also have non-decreasing stops (Shard(0) parts are disjoint, the
    # Replicate parts of a tensor coincide): the parts overlapping a range are found by bisection.
    parts.sort(key=lambda x: (x.start, x.rank))
    stops = [part.stop for part in parts]
    for q in range(world):
        dst = 0
        msg = [0] * world  # message offsets from each source rank to q
        for a, b in owned_by[q]:
            for part in parts[bisect.bisect_right(stops, a) :]:
                if part.start >= b:
                    break
                if part.kind == _REPLICATE and part.rank != q:
                    continue  # q holds its own copy
                lo, hi = max(a, part.start), min(b, part.stop)
                n = hi - lo
                src_local = part.local + (lo - part.start)
                d = dst + (lo - a)
                if part.rank == q:
                    if q == rank:
                        copies.append((d, q, src_local, n))
                else:
                    if q == rank:
                        copies.append((d, part.rank, msg[part.rank], n))
                    if part.rank == rank:
                        sends.setdefault(q, []).append((src_local, n))
                    msg[part.rank] += n
            dst += b - a
        if q == rank:
            recv_sizes = {r: m for r, m in enumerate(msg) if m}
    return ShardPlan(
        rank, world, n_params, columns, local[rank], max(local), owned_by[rank], copies, sends, recv_sizes
    )


def _column_owners(parts: list[_Part], n: int, columns: int, world: int) -> np.ndarray:
    """Owner of each stored shard column: the rank holding most of its values (lowest on ties)."""
    n_cols = -(-n // columns)
    held = np.zeros((world, n_cols), dtype=np.int64)
    for part in parts:
        c0, c1 = part.start // columns, (part.stop - 1) // columns
        if c0 == c1:
            held[part.rank, c0] += part.stop - part.start
            continue
        held[part.rank, c0] += (c0 + 1) * columns - part.start
        held[part.rank, c0 + 1 : c1] += columns
        held[part.rank, c1] += part.stop - c1 * columns
    return np.argmax(held, axis=0)


def _ranges(owners: np.ndarray, q: int, columns: int, n: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for c in np.flatnonzero(owners == q):
        a, b = int(c) * columns, min(n, (int(c) + 1) * columns)
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _open_value_array(path: str):
    import zarr

    return zarr.open_array(path, path=f"{spec.WEIGHTS}/{spec.VALUE}", mode="r+", zarr_format=3).with_config(
        {"write_empty_chunks": True}
    )


def _with_records(arr, n_records: int):
    """The array with ``n_records`` rows in this process only (the shape in zarr.json is rank 0's
    to change): lets a rank write its shards of a block before rank 0 commits it."""
    meta = arr.metadata.update_shape((n_records, *arr.shape[1:]))
    object.__setattr__(arr._async_array, "metadata", meta)
    return arr


class ShardedWriter:
    """The store writer of one rank of a sharded model; the Recorder's writer thread calls it.

    On rank 0 it wraps the :class:`trajstore.writer.Writer` (observables, attributes, steps,
    commits); on other ranks every call except :meth:`append` and :meth:`close` does nothing.
    """

    def __init__(self, plan: ShardPlan, path: str, writer, group):
        self.plan = plan
        self.path = path
        self._inner = writer  # None on ranks other than 0
        self._group = group
        self._arr = _open_value_array(path)
        self.chunk_records = int(self._arr.chunks[0])
        self.chunk_cols = int(self._arr.chunks[1])
        self._buf = np.zeros((self.chunk_records, plan.n_owned), dtype=np.float32)
        self._steps = np.zeros(self.chunk_records, dtype=np.int64)
        self._times = np.zeros(self.chunk_records, dtype=np.float64)
        self.block_start = 0
        self.n_buf = 0
        self.last_step: int | None = None
        self._blocks: dict[int, Block] = {}
        self._n_rows = 0  # full blocks already rows of weights/integrity (1.2)
        self._closed = False
        if writer is not None:
            # Rank 0 commits the weights itself: the Writer keeps observables and attributes.
            self._weights = writer._series.pop(spec.WEIGHTS)
            self._backend = writer._backend
            self._created_epoch = writer._created_epoch

    # -- what the Recorder's writer thread calls ---------------------------------------------

    @property
    def n_records(self) -> int:
        return self.block_start + self.n_buf

    @property
    def max_step(self) -> int | None:
        return self.last_step

    def append(self, step: int, weights, *, time: float | None = None, gradients=None, buffers=None) -> None:
        """This rank's local values (n_local,) of the record after ``step`` (a collective)."""
        if gradients is not None or buffers is not None:
            raise ValueError("a sharded recording stores weights only")
        step = int(step)
        if self.last_step is not None and step <= self.last_step:
            raise ValueError(f"weights: step {step} is not after the last recorded step {self.last_step}")
        owned = self._exchange(np.asarray(weights, dtype=np.float32))
        k = self.n_buf
        self._buf[k] = owned
        self._steps[k] = step
        if self._inner is not None:
            self._times[k] = (_now() - self._created_epoch) if time is None else float(time)
        self.n_buf += 1
        self.last_step = step
        if self.n_buf == self.chunk_records:
            self._write_block()

    def log(self, *args, **kwargs) -> None:
        if self._inner is not None:
            self._inner.log(*args, **kwargs)

    def set_metadata(self, **values) -> None:
        if self._inner is not None:
            self._inner.set_metadata(**values)

    def set_provenance(self, **values) -> None:
        if self._inner is not None:
            self._inner.set_provenance(**values)

    def set_recording_attribute(self, key: str, value) -> None:
        if self._inner is not None:
            self._inner.set_recording_attribute(key, value)

    def flush(self) -> None:
        """Observables only (weights are committed block by block, when every rank has written)."""
        if self._inner is not None:
            self._inner.flush()

    def close(self) -> None:
        """Write the last partial block (a collective), commit, trim and close."""
        if self._closed:
            return
        self._closed = True
        if self.n_buf:
            self._write_block()
        if self._inner is not None:
            n = self.block_start
            for name in (spec.VALUE, spec.STEP, spec.TIME):
                self._backend.resize(f"{spec.WEIGHTS}/{name}", n)
            self._inner.close()
        dist.barrier(group=self._group)  # no rank leaves before the store is closed

    def abort(self) -> None:
        self._closed = True
        if self._inner is not None:
            self._inner.abort()

    # -- internals ---------------------------------------------------------------------------

    def _exchange(self, local: np.ndarray) -> np.ndarray:
        """The values of this rank's columns: its own, and those other ranks hold."""
        plan = self.plan
        if local.shape != (plan.n_local,):
            raise ValueError(f"sharded append: {local.shape} local values, the plan has {plan.n_local}")
        ops, received = [], {}
        for q, pieces in plan.sends.items():
            msg = np.concatenate([local[a : a + n] for a, n in pieces])
            ops.append(dist.P2POp(dist.isend, torch.from_numpy(msg), q, self._group))
        for q, size in plan.recv_sizes.items():
            received[q] = torch.empty(size, dtype=torch.float32)
            ops.append(dist.P2POp(dist.irecv, received[q], q, self._group))
        if ops:
            for req in dist.batch_isend_irecv(ops):
                req.wait()
        sources = {q: t.numpy() for q, t in received.items()}
        sources[plan.rank] = local
        owned = np.empty(plan.n_owned, dtype=np.float32)
        for dst, src, off, n in plan.copies:
            owned[dst : dst + n] = sources[src][off : off + n]
        return owned

    def _write_block(self) -> None:
        """Write this rank's columns of the buffered records; rank 0 commits once all have."""
        k, start = self.n_buf, self.block_start
        arr = _with_records(self._arr, start + k)
        parts = []
        off = 0
        for a, b in self.plan.owned:
            values = self._buf[:k, off : off + (b - a)]
            arr[start : start + k, a:b] = values
            parts.append((a, digest(values, width=self.chunk_cols), values.nbytes))
            off += b - a
        gathered: list[list] = [None] * self.plan.world  # type: ignore[list-item]
        dist.all_gather_object(gathered, parts, group=self._group)
        if self._inner is not None:
            ordered = sorted((p for rank_parts in gathered for p in rank_parts), key=lambda p: p[0])
            self._commit(start, k, combine_all([(crc, n) for _, crc, n in ordered]))
        self.block_start += k
        self.n_buf = 0

    def _commit(self, start: int, k: int, value_crc: int) -> None:
        b, g = self._backend, spec.WEIGHTS
        stop = start + k
        for name in (spec.VALUE, spec.STEP, spec.TIME):
            if b.shape(f"{g}/{name}")[0] < stop:
                b.resize(f"{g}/{name}", stop)
        b.write(f"{g}/{spec.STEP}", start, self._steps[:k])
        b.write(f"{g}/{spec.TIME}", start, self._times[:k])
        digests = {
            spec.VALUE: value_crc,
            spec.STEP: digest(self._steps[:k]),
            spec.TIME: digest(self._times[:k]),
        }
        nbytes = tail = None
        value = f"{g}/{spec.VALUE}"
        if k == self.chunk_records and b.object_grid(value)[1] >= self.plan.n_params:
            coords = (start // self.chunk_records, 0)  # one object holds the block: its size and tail
            raw = b.object_tail(value, coords, TAIL_BYTES)
            if raw is not None:
                nbytes, tail = b.object_nbytes(value, coords), tail_digest(raw)
        self._blocks[start] = Block(start, stop, digests, nbytes, tail)
        index = IntegrityIndex(
            stop, (spec.VALUE, spec.STEP, spec.TIME), tuple(self._blocks[s] for s in sorted(self._blocks))
        )
        b.flush()  # every rank's data is written (they said so): now the commit
        # Full blocks become rows of weights/integrity, as an unsharded writer stores them: a
        # commit writes its new block, not the whole index again (O(blocks) per commit).
        attr, self._n_rows = store_index(b, g, index, self._n_rows, self.chunk_records)
        b.set_attrs(g, {spec.ATTR_INTEGRITY: attr, spec.ATTR_N_COMMITTED: stop})
        b.flush()


def _now() -> float:
    return time.time()


def check_options(recorder) -> None:
    """Recorder options a sharded recording cannot honour yet: refused in one line."""
    why = None
    if recorder.record_gradients:
        why = "gradients=True (the gradients are sharded too; not recorded rank by rank yet)"
    elif recorder.record_buffers:
        why = "buffers=True (not recorded from a sharded model yet)"
    elif recorder.mode == "a":
        why = "resume (a sharded store cannot be continued yet; record into a new store)"
    elif recorder.policy != "block":
        why = f"policy={recorder.policy!r} (ranks would drop different records; use 'block')"
    elif recorder.sketch.active:
        why = "a sketch or sample (--sketch/--sample: each rank would sketch only its own shard)"
    if why is not None:
        raise UnsupportedModelError(f"recording a sharded (FSDP2/DTensor) model does not support {why}")


def prepare(recorder, names: list[str], params: list[torch.Tensor]) -> tuple:
    """Refuse what cannot be recorded, then plan who writes what (a collective: every rank calls
    it at the same point with the same model). Returns (plan, placement of each parameter, the
    gloo group of the writers, (chunk_records, chunk_params))."""
    check_options(recorder)
    options = recorder.store_options
    if options.get("shard_params") is not None:
        raise UnsupportedModelError("a sharded recording chooses its own shard width; drop shard_params")
    n = sum(p.numel() for p in params)
    chunks = choose_chunks(n, 4, options.get("chunk_records"), options.get("chunk_params"))
    for name, p in zip(names, params, strict=True):  # refusals first, before any collective
        _placement(p, name, dist.get_world_size())
    group = dist.new_group(backend="gloo")
    plan, kinds = make_plan(names, params, chunks[1], group)
    return plan, kinds, group, chunks


def create_store(recorder, prepared: tuple, layout: dict, create_kwargs: dict) -> ShardedWriter:
    """Make the store (rank 0) and every rank's :class:`ShardedWriter` (a collective)."""
    plan, _, group, (chunk_records, chunk_params) = prepared
    options = {k: v for k, v in recorder.store_options.items() if k not in ("chunk_records", "chunk_params")}
    writer, failure = None, None
    if plan.rank == 0:
        try:
            writer = trajstore.create(
                recorder.path,
                layout,
                chunk_records=chunk_records,
                chunk_params=chunk_params,
                shard_params=chunk_params,
                **create_kwargs,
                **options,
            )
            writer.set_metadata(
                trajstore_sharded_recording={"world_size": plan.world, "shard_params": chunk_params}
            )
        except Exception as exc:  # noqa: BLE001 - every rank must learn it, then it is raised
            failure = exc
    status = [None if failure is None else f"{type(failure).__name__}: {failure}"]
    dist.broadcast_object_list(status, src=0, group=group)
    if failure is not None:
        raise failure
    if status[0] is not None:
        raise OSError(f"rank 0 could not create the store: {status[0]}")
    return ShardedWriter(plan, os.fspath(recorder.path), writer, group)
