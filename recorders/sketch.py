"""Sketch and sample of the live weights, computed on their device in O(N) per record.

The hash tables (bucket int32 and sign int8 per parameter: 5 bytes per parameter on the
device) are built once with :func:`trajstore.sketch.countsketch_hash`, the numpy definition of
the format, so the device result equals :func:`trajstore.sketch.sketch_vector` up to float64
summation order. Per record: one ``index_add_`` per tensor into a float64 (K,) accumulator and
one gather of the M sampled values; never a dense K × N matrix, never a copy of all weights.
On a GPU the small results go to pinned host buffers without blocking; an event marks when
they have landed.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass

import numpy as np
import torch

from trajstore.sketch import countsketch_hash, sample_indices

_POLL_SECONDS = 0.1


@dataclass
class SketchSnapshot:
    """Host buffers of one record: ``ready()`` waits for the copies, returns (sketch, sample)."""

    sketch: torch.Tensor | None  # (K,) float64
    sample: torch.Tensor | None  # (M,) float32
    event: torch.cuda.Event | None
    pool: DeviceSketcher
    slot: int

    def ready(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.event is not None:
            self.event.synchronize()
        return (
            self.sketch.numpy() if self.sketch is not None else None,
            self.sample.numpy() if self.sample is not None else None,
        )

    def release(self) -> None:
        self.pool.release(self.slot)


class DeviceSketcher:
    """Sketches (dimension ``dim``, hash seed ``seed``) and samples (``sample_size`` indices,
    ``sample_seed``) of the flat tensors given to :meth:`snapshot`, on their ``device``.

    ``sizes``: the numel of each tensor in layout order. ``pool_size`` host slots; when all are
    in flight :meth:`snapshot` waits (``"block"``) or returns None (``"drop"``)."""

    def __init__(
        self,
        sizes: list[int],
        device: torch.device,
        *,
        dim: int | None,
        seed: int = 0,
        sample_size: int | None = None,
        sample_seed: int = 0,
        pool_size: int = 4,
        policy: str = "block",
        abort=None,
    ):
        self.dim = dim
        self.device = device
        self.policy = policy
        self.abort = abort
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = int(offsets[-1])
        cuda = device.type == "cuda"
        self._tables: list[tuple[torch.Tensor, torch.Tensor]] = []
        if dim is not None:
            if dim > 2**31 - 1:
                raise ValueError("sketch dimension must be below 2^31 on a device")
            for a, b in zip(offsets[:-1], offsets[1:], strict=True):
                bucket, sign = countsketch_hash(int(a), int(b), seed, dim, n)
                self._tables.append(
                    (
                        torch.from_numpy(bucket.astype(np.int32)).to(device),
                        torch.from_numpy(sign).to(device),
                    )
                )
        self.indices = np.zeros(0, dtype=np.int64)
        self._gather: list[tuple[int, torch.Tensor]] = []  # (tensor number, local indices)
        if sample_size is not None:
            self.indices = sample_indices(n, sample_size, sample_seed)
            owner = np.searchsorted(offsets, self.indices, side="right") - 1
            for t in np.unique(owner):
                local = self.indices[owner == t] - offsets[t]
                self._gather.append((int(t), torch.from_numpy(local).to(device)))
        self._acc = torch.zeros(dim, dtype=torch.float64, device=device) if dim is not None else None
        m = len(self.indices)
        self._slots = [
            (
                torch.empty(dim, dtype=torch.float64, pin_memory=cuda) if dim is not None else None,
                torch.empty(m, dtype=torch.float32, pin_memory=cuda) if m else None,
            )
            for _ in range(pool_size)
        ]
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(pool_size):
            self._free.put(i)

    def _take(self) -> int | None:
        from trajstore.errors import RecordingError

        if self.policy == "drop":
            try:
                return self._free.get_nowait()
            except queue.Empty:
                return None
        while True:
            try:
                return self._free.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self.abort is not None and self.abort.is_set():
                    raise RecordingError("the store writer failed while training waited for it") from None

    def release(self, slot: int) -> None:
        self._free.put(slot)

    @torch.no_grad()
    def compute(self, flat: list[torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The (K,) float64 sketch and (M,) float32 sample of ``flat``, on the device."""
        sk = None
        if self._acc is not None:
            self._acc.zero_()
            for f, (bucket, sign) in zip(flat, self._tables, strict=True):
                # a sign flip is exact in the weights' dtype; the sums are float64 (53 bits)
                self._acc.index_add_(0, bucket, (f * sign).to(torch.float64))
            sk = self._acc
        sa = None
        if self._gather:
            sa = torch.cat([flat[t].index_select(0, local).float() for t, local in self._gather])
        return sk, sa

    def snapshot(self, flat: list[torch.Tensor]) -> SketchSnapshot | None:
        """Compute on the device and start the copy to a host slot; None when dropped."""
        slot = self._take()
        if slot is None:
            return None
        sk, sa = self.compute(flat)
        host_sk, host_sa = self._slots[slot]
        cuda = self.device.type == "cuda"
        if sk is not None:
            host_sk.copy_(sk, non_blocking=cuda)
        if sa is not None:
            host_sa.copy_(sa, non_blocking=cuda)
        event = None
        if cuda:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
        return SketchSnapshot(host_sk, host_sa, event, self, slot)


@dataclass(frozen=True)
class SketchOptions:
    """What to record besides (or instead of) the full weights: a ``dim``-dimensional sketch,
    a sample of ``sample`` parameters, and whether the full weights are recorded too (``full``;
    default: only when neither a sketch nor a sample is asked for)."""

    dim: int | None = None
    sample: int | None = None
    seed: int = 0
    full: bool | None = None

    @property
    def active(self) -> bool:
        return self.dim is not None or self.sample is not None

    @property
    def full_weights(self) -> bool:
        return (not self.active) if self.full is None else bool(self.full)

    def check(self, *, gradients: bool, buffers: bool, resume: bool) -> None:
        """Refuse combinations that cannot be recorded, before anything is written."""
        if self.dim is not None and not 1 <= self.dim < 2**31:
            raise ValueError(f"--sketch must be 1 … 2^31 − 1, got {self.dim}")
        if self.sample is not None and self.sample < 1:
            raise ValueError(f"--sample must be at least 1, got {self.sample}")
        if not self.active:
            if self.full is False:
                raise ValueError(
                    "full=False records nothing: add a sketch (--sketch K) or a sample (--sample M)"
                )
            return
        if resume:
            raise ValueError(
                "resuming a store with a sketch or sample is not supported yet; record into a new store"
            )
        if not self.full_weights and (gradients or buffers):
            raise ValueError(
                "gradients and buffers are recorded in full only: add --full to record the full weights "
                "too, or leave out --gradients/--buffers"
            )

    def record_bytes(self) -> int:
        return 8 * (self.dim or 0) + 4 * (self.sample or 0)


def attach(
    options: SketchOptions, writer, sizes: list[int], device: torch.device, pool_size: int, policy: str, abort
):
    """Add the sketch/sample groups to ``writer``'s store and make the device sketcher:
    returns (DeviceSketcher, trajstore.sketch.SketchRecording)."""
    from trajstore.sketch import SketchRecording

    recording = SketchRecording(
        writer,
        sketch_dim=options.dim,
        sketch_seed=options.seed,
        sample_size=options.sample,
        sample_seed=options.seed,
        full_weights=options.full_weights,
    )
    sketcher = DeviceSketcher(
        sizes,
        device,
        dim=options.dim,
        seed=options.seed,
        sample_size=options.sample,
        sample_seed=options.seed,
        pool_size=pool_size,
        policy=policy,
        abort=abort,
    )
    assert np.array_equal(sketcher.indices, recording.indices)  # one definition, two places
    return sketcher, recording
