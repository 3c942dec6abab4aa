"""Taking snapshots of parameter tensors on the training thread, as cheaply as possible.

A snapshot copies every tensor into one preallocated flat host buffer from a fixed pool. On a
CPU that is one ``torch.cat`` into the buffer (a real copy, never an alias of the live weights).
On a GPU the tensors are concatenated into a device staging buffer on a side stream and copied
to pinned host memory without blocking; an event marks when the host buffer is ready, and the
training stream only waits (on the device) for the concatenation, not for the transfer.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from trajstore.errors import RecordingError

_POLL_SECONDS = 0.1  # how soon a waiting training thread notices that the writer failed


@dataclass
class Snapshot:
    """A filled host buffer; ``ready()`` blocks until its copy has landed."""

    buffer: torch.Tensor  # (n,) float32 host tensor from the pool
    event: torch.cuda.Event | None
    pool: SnapshotPool

    def ready(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.buffer.numpy()

    def release(self) -> None:
        self.pool.release(self.buffer)


class SnapshotPool:
    """A fixed ring of host buffers: memory never grows; when all are in flight, ``take`` waits
    (policy ``"block"``) or returns None (policy ``"drop"``). A wait ends with
    :class:`RecordingError` once ``abort`` is set (the writer thread failed: buffers it holds
    may never come back)."""

    def __init__(
        self,
        n_values: int,
        device: torch.device,
        size: int = 4,
        policy: str = "block",
        abort: threading.Event | None = None,
    ):
        if policy not in ("block", "drop"):
            raise ValueError(f"policy must be 'block' or 'drop', got {policy!r}")
        self.policy = policy
        self.abort = abort
        self.waited = 0.0  # seconds ``take`` spent waiting for a buffer to come back
        self.device = device
        self.n_values = n_values
        cuda = device.type == "cuda"
        self._free: queue.Queue[torch.Tensor] = queue.Queue()
        for _ in range(size):
            self._free.put(torch.empty(n_values, dtype=torch.float32, pin_memory=cuda))
        self.stream = torch.cuda.Stream(device) if cuda else None
        self.staging = torch.empty(n_values, dtype=torch.float32, device=device) if cuda else None

    def take(self) -> torch.Tensor | None:
        if self.policy == "block":
            try:
                return self._free.get_nowait()
            except queue.Empty:
                pass
            started = time.monotonic()  # training now waits for the writer: counted in ``waited``
            try:
                while True:
                    try:
                        return self._free.get(timeout=_POLL_SECONDS)
                    except queue.Empty:
                        if self.abort is not None and self.abort.is_set():
                            raise RecordingError(
                                "the store writer failed while training waited for it"
                            ) from None
            finally:
                self.waited += time.monotonic() - started
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return None

    def release(self, buffer: torch.Tensor) -> None:
        self._free.put(buffer)

    @staticmethod
    def flat_views(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Flat views sharing storage with ``tensors``: made once, valid while the optimizer
        updates in place (it does), so a snapshot costs one ``cat`` and no per-tensor work."""
        return [t.detach().view(-1) if t.is_contiguous() else t.detach().reshape(-1) for t in tensors]

    def snapshot(self, flat: list[torch.Tensor]) -> Snapshot | None:
        """Copy the 1-D tensors ``flat`` (concatenated, as float32) into a pool buffer; None if dropped."""
        buf = self.take()
        if buf is None:
            return None
        if not all(f.dtype == torch.float32 for f in flat):
            flat = [f.float() for f in flat]
        if self.stream is None:
            with torch.no_grad():
                torch.cat(flat, out=buf)
            return Snapshot(buf, None, self)
        main = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(main)
        with torch.cuda.stream(self.stream), torch.no_grad():
            torch.cat(flat, out=self.staging)
            gathered = torch.cuda.Event()
            gathered.record(self.stream)
            buf.copy_(self.staging, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        main.wait_event(gathered)  # the next update may not touch the weights before they are gathered
        return Snapshot(buf, done, self)
