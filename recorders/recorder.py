"""The :class:`Recorder`: PyTorch training in, trajstore writer calls out."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

import trajstore
from trajstore import spec
from trajstore.errors import RecordingError, TrajstoreError, describe_os_error

from .provenance import optimizer_provenance, run_provenance
from .schedule import Every, Schedule, parse_schedule
from .snapshot import SnapshotPool
from .worker import Batch, WriterThread

_SCALAR_BATCH = 256
_SCALAR_SECONDS = 1.0
_RECORD_SECONDS = 1.0  # the longest a record waits on the training thread (see worker.Batch)
_POOL_BYTES = 64 * 1024 * 1024  # host buffers of the default pool, all pools together
_MAX_POOL = 64
_LOSS_ATTRS = {"unit": "nats", "evaluated_at": spec.PRE_STEP, "description": "minibatch training loss"}
_LR_ATTRS = {"unit": "1", "description": "learning rate"}
_COUNT_ATTRS = {"unit": "1", "description": "epoch (0-based)"}


def _is_writer_rank() -> bool:
    """Under torch.distributed only rank 0 writes."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class Recorder:
    """Records the weights of ``model`` after optimizer steps into the store at ``path``.

    Use as a context manager and call :meth:`attach` with the optimizer::

        with Recorder(model, "run.zarr") as rec:
            rec.attach(optimizer)
            for x, y in loader:
                loss = loss_fn(model(x), y)
                loss.backward()
                rec.log_loss(loss)          # optional: minibatch loss of the coming step
                optimizer.step()            # the recorder snapshots after this
                optimizer.zero_grad()

    The initial weights are recorded as step 0 on :meth:`attach`. ``every`` / ``schedule`` select
    the steps (see :mod:`trajstore.recorders.schedule`). ``gradients``: also record the minibatch
    gradient of each recorded step (before the update). ``buffers``: record floating-point
    module buffers (BatchNorm running statistics). ``policy``: ``"block"`` (training waits when
    the writer falls behind) or ``"drop"`` (records are skipped and counted). ``model`` may be
    None, with ``named_parameters`` given instead, or bound later by :meth:`bind`.
    """

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        path: str | os.PathLike = "run.zarr",
        *,
        every: int = 1,
        schedule: Schedule | str | None = None,
        gradients: bool = False,
        buffers: bool = False,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        resume: bool = False,
        policy: str = "block",
        pool_size: int | None = None,
        flush_seconds: float = 10.0,
        progress: bool | None = None,
        script: str | None = None,
        store_options: Mapping[str, Any] | None = None,
    ):
        self.path = os.fspath(path)
        self.schedule = parse_schedule(schedule) if isinstance(schedule, str) else (schedule or Every(every))
        self.record_gradients = gradients
        self.record_buffers = buffers
        self.metadata = dict(metadata or {})
        self.mode = "a" if resume else ("w" if overwrite else "x")
        self.policy = policy
        self.pool_size = pool_size
        self.flush_seconds = flush_seconds
        self.progress = progress
        self.script = script
        self.store_options = dict(store_options or {})
        self.enabled = _is_writer_rank()
        self.step = 0  # optimizer iterations so far (skipped ones included)
        self.dropped = 0
        self.epoch: int | None = None
        self._model = model
        self._names: list[str] = []
        self._params: list[torch.Tensor] = []
        self._buffer_names: list[str] = []
        self._buffers: list[torch.Tensor] = []
        self._optimizers: list[torch.optim.Optimizer] = []
        self._handles: list[Any] = []
        self._pending_loss: torch.Tensor | float | None = None
        self._pending_grads = None
        self._scalars = Batch(lambda b: self._submit(self._log_values, b), _SCALAR_BATCH, _SCALAR_SECONDS)
        # (step, snapshots) not yet handed to the writer thread; sized by the pool at bind()
        self._records = Batch(
            lambda b: self._submit(self._append_batch, b, discard=_release_records), 1, _RECORD_SECONDS
        )
        self.failure: RecordingError | None = None  # why recording stopped, once it has
        self._failed = threading.Event()  # set by the writer thread when a write fails
        self._thread: WriterThread | None = None
        self._writer = None
        self._bound = False
        self._closed = False
        self._started = time.monotonic()

    # -- binding -------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self._bound

    def bind(
        self,
        named_parameters: Iterable[tuple[str, torch.Tensor]] | None = None,
        named_buffers: Iterable[tuple[str, torch.Tensor]] | None = None,
    ) -> None:
        """Fix the layout (trainable parameters in order), create the store, record step 0."""
        if self.failure is not None:
            raise self.failure
        if self._bound or not self.enabled:
            return
        if named_parameters is None:
            if self._model is None:
                raise ValueError("Recorder.bind needs a model or named_parameters")
            named_parameters = self._model.named_parameters()
            if named_buffers is None:
                named_buffers = self._model.named_buffers()
        pairs = [(n, p) for n, p in named_parameters if p.requires_grad]
        if not pairs:
            raise ValueError("the model has no trainable parameters to record")
        self._names = [n for n, _ in pairs]
        self._params = [p for _, p in pairs]
        self._flat = SnapshotPool.flat_views(self._params)
        device = self._params[0].device
        if self.record_buffers and named_buffers is not None:
            bufs = [(n, b) for n, b in named_buffers if b.is_floating_point()]
            self._buffer_names = [n for n, _ in bufs]
            self._buffers = [b for _, b in bufs]
        layout = {n: tuple(p.shape) for n, p in pairs}
        buffers_layout = {n: tuple(b.shape) for n, b in zip(self._buffer_names, self._buffers, strict=True)}
        prov = run_provenance(self._model, device, self.script)
        for opt in self._optimizers:
            prov.update(optimizer_provenance(opt))
        try:
            writer = trajstore.create(
                self.path,
                layout,
                mode=self.mode,
                metadata=self.metadata,
                provenance=prov,
                buffers=buffers_layout or None,
                **self.store_options,
            )
        except (OSError, TrajstoreError, ValueError) as exc:
            reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            self.failure = RecordingError(f"cannot record into {self.path}: {reason}")
            raise self.failure from None
        if self.mode == "a":
            # Continue after every step any series has seen, so no step is written twice.
            self.step = writer.max_step or 0
            writer.set_provenance(resumed=prov)
        n = sum(p.numel() for p in self._params)
        nb = sum(b.numel() for b in self._buffers)
        if self.pool_size is None:  # small models get deep pools, so records can travel in batches
            record_bytes = 4 * (n * (2 if self.record_gradients else 1) + nb)
            self.pool_size = int(min(_MAX_POOL, max(4, _POOL_BYTES // max(record_bytes, 1))))
        self._records.size = max(1, self.pool_size // 2)  # the other half stays free for training
        self._pool = SnapshotPool(n, device, self.pool_size, self.policy, self._failed)
        self._grad_pool = (
            SnapshotPool(n, device, self.pool_size, self.policy, self._failed)
            if self.record_gradients
            else None
        )
        self._buf_pool = SnapshotPool(nb, device, self.pool_size, "block", self._failed) if nb else None
        self._writer = writer
        self._thread = WriterThread(
            writer, flush_seconds=self.flush_seconds, progress=self.progress, failed=self._failed
        )
        self._bound = True
        if self.mode != "a" or writer.n_records == 0:
            self._record(0, None)

    # -- attaching -----------------------------------------------------------------------

    def attach(self, optimizer: torch.optim.Optimizer) -> Recorder:
        """Record after every step of ``optimizer`` (through its step hooks)."""
        self._optimizers.append(optimizer)
        if not self.enabled:
            return self
        self._handles.append(optimizer.register_step_pre_hook(lambda opt, a, k: self.before_step(opt)))
        self._handles.append(optimizer.register_step_post_hook(lambda opt, a, k: self.after_step(opt)))
        if self._writer is not None:
            self._submit(self._writer.set_provenance, optimizer_provenance(optimizer))
        elif self._model is not None:
            self.bind()
        return self

    # -- per step ------------------------------------------------------------------------

    def log_loss(self, loss: torch.Tensor | float) -> None:
        """The minibatch loss of the coming optimizer step (summed if called several times)."""
        if not self.enabled:
            return
        value = loss.detach() if isinstance(loss, torch.Tensor) else float(loss)
        self._pending_loss = value if self._pending_loss is None else self._pending_loss + value

    def set_epoch(self, epoch: int) -> None:
        """Declare the epoch of the coming steps (logged as the ``epoch`` observable)."""
        self.epoch = int(epoch)

    def log(self, name: str, value: float | torch.Tensor, step: int | None = None, **attrs: Any) -> None:
        """Record an extra observable at ``step`` (default: the last optimizer step)."""
        if not self.enabled or self._writer is None:
            return
        v = value.detach() if isinstance(value, torch.Tensor) else value
        self._scalar(name, self.step if step is None else int(step), v, attrs)

    def before_step(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        if not self._bound:
            self.bind()
        if self.record_gradients and self.schedule.selects(self.step + 1):
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
            self._pending_grads = self._grad_pool.snapshot(SnapshotPool.flat_views(grads))

    def after_step(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.step += 1
        self._log_step_observables(optimizer)
        if self.schedule.selects(self.step):
            self._record(self.step, self._pending_grads)
        elif self._pending_grads is not None:
            self._pending_grads.release()
        self._pending_grads = None

    def mark_skipped(self) -> None:
        """An optimizer iteration whose update was skipped (AMP overflow): count it, record no weights."""
        if not self._bound:
            return
        self.step += 1
        self._scalar("skipped", self.step, 1.0, {"evaluated_at": spec.POST_STEP})
        self._log_loss_now()
        if self._pending_grads is not None:
            self._pending_grads.release()
            self._pending_grads = None

    # -- internals -----------------------------------------------------------------------

    def _log_step_observables(self, optimizer) -> None:
        self._log_loss_now()
        if optimizer is not None:
            groups = optimizer.param_groups
            for i, group in enumerate(groups):
                if "lr" in group:
                    name = "lr" if len(groups) == 1 and len(self._optimizers) <= 1 else f"lr_group{i}"
                    self._scalar(name, self.step, group["lr"], _LR_ATTRS)
        if self.epoch is not None:
            self._scalar("epoch", self.step, self.epoch, _COUNT_ATTRS)

    def _log_loss_now(self) -> None:
        if self._pending_loss is not None:
            self._scalar("loss", self.step, self._pending_loss, _LOSS_ATTRS)
            self._pending_loss = None

    def _record(self, step: int, grads) -> None:
        if self._failed.is_set():  # stop training at the first step after a failed write
            if grads is not None:
                grads.release()
            self._thread.check()
        snap = self._pool.snapshot(self._flat)
        if snap is None:
            self.dropped += 1
            if grads is not None:
                grads.release()
            return
        bsnap = (
            self._buf_pool.snapshot(SnapshotPool.flat_views(self._buffers))
            if self._buf_pool is not None
            else None
        )
        self._records.add((step, snap, grads, bsnap))

    @property
    def _record_batch(self) -> int:
        return self._records.size

    def _scalar(self, name: str, step: int, value, attrs: dict) -> None:
        """Queue a scalar observable; they travel to the writer thread in batches (cheap per step)."""
        self._scalars.add((name, step, value, attrs))

    def _submit(self, fn, *args, discard=None) -> None:
        if self._thread is not None:
            self._thread.submit(fn, *args, discard=discard)

    # Runs on the writer thread.
    def _append_batch(self, batch: list) -> None:
        for i, record in enumerate(batch):
            try:
                self._append(*record)
            except BaseException:
                _release_records(batch[i + 1 :])  # give the rest back to their pools
                raise

    def _append(self, step: int, snap, grads, bsnap) -> None:
        try:
            self._writer.append(
                step,
                snap.ready(),
                gradients=grads.ready() if grads is not None else None,
                buffers=bsnap.ready() if bsnap is not None else None,
            )
            self._thread.records += 1
            self._thread.bytes_in += snap.buffer.numel() * 4
        finally:
            for s in (snap, grads, bsnap):
                if s is not None:
                    s.release()

    def _log_values(self, batch: list) -> None:
        for name, step, value, attrs in batch:
            v = float(value.item() if isinstance(value, torch.Tensor) else value)
            self._writer.log(name, step, v, **attrs)

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Write everything still queued and close the store validly. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for h in self._handles:
            h.remove()
        error = None
        if self._thread is not None:
            try:
                self._records.flush()
                self._scalars.flush()
                if self.dropped:
                    self._submit(self._writer.set_metadata, trajstore_dropped_records=self.dropped)
            except RecordingError:
                pass  # the writer failed; the thread reports its error below
            error = self._thread.close()
        if self._writer is not None:
            if error is None:
                try:
                    self._writer.close()
                except (OSError, TrajstoreError, RuntimeError, ValueError) as exc:
                    error = exc
            else:
                self._writer.abort()  # write nothing more: the store stays at its last commit
        if error is not None:
            self.failure = RecordingError(
                f"recording stopped: {describe_os_error(error)} (writing {self.path}); "
                f"{_safe_records(self.path)}"
            )
        if self.failure is not None:
            raise self.failure from None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _release_records(batch: list) -> None:
    """Give the pool buffers of records that will not be written back to their pools."""
    for _, *snaps in batch:
        for s in snaps:
            if s is not None:
                s.release()


def _safe_records(path: str) -> str:
    """What survived in the store at ``path``, as the end of a one-line error message."""
    try:
        with trajstore.open(path) as t:
            n = t.n_records
            last = int(t.steps[-1]) if n else None
    except (TrajstoreError, OSError) as exc:
        return f"the store could not be reopened to count its records ({describe_os_error(exc)})"
    steps = f" (steps 0-{last})" if n else ""
    return f"{n} records{steps} are safe in {path}; fix the cause and continue with --resume"
