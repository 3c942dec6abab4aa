"""The :class:`Recorder`: PyTorch training in, trajstore writer calls out."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import trajstore
from trajstore import live, spec
from trajstore.errors import RecordingError, TrajstoreError, describe_os_error
from trajstore.layout import Layout, TensorSpec
from trajstore.provenance import utc_now_iso

from . import sharded
from .discovery import canonical_named_tensors, optimizer_names, unwrap
from .errors import IterationOrderError, RecordingRefusedError, ResumeGapError, UnsupportedPatternError
from .keep_up import KeepUpCheck
from .live_tensors import ParameterWatch
from .modules import module_classes
from .observables import loss_unit, lr_name, series_name
from .post_step_check import PostStepCheck
from .provenance import optimizers_provenance, run_provenance
from .scaler_watch import ScalerWatch
from .schedule import Every, Schedule, parse_schedule
from .sketch import SketchOptions
from .snapshot import SnapshotPool
from .worker import Batch, WriterThread

_SCALAR_BATCH = 256
_SCALAR_SECONDS = 1.0
_RECORD_SECONDS = 1.0  # the longest a record waits on the training thread (see worker.Batch)
_POOL_BYTES = 64 * 1024 * 1024  # host buffers of the default pool, all pools together
_MAX_POOL = 64
RECORD_AT = ("step", "next_step")  # when a record is taken: see Recorder(record_at=...)
_LR_ATTRS = {"unit": "1", "description": "learning rate"}
_COUNT_ATTRS = {"unit": "1", "description": "epoch (0-based)"}
_SKIP_DESCRIPTION = "1 where the optimizer's update was skipped (AMP GradScaler: inf or NaN gradients)"
# Metadata keys that say how a recording ended, and their names in the next segment's entry.
_ENDED_KEYS = {
    "trajstore_recording_refused": "previous_run_refused",
    "trajstore_partial_last_iteration": "previous_run_partial_iteration",
}
# The first iteration waits for every attached optimizer (WGAN: critic x k, then the generator);
# past this many steps without one of them, the attached set cannot be what trains each iteration.
FIRST_ITERATION_MAX_STEPS = 1000


# The writer thread and its encoders run this many nice steps below training (Linux): when they
# compete with the training thread for a core, training keeps it. On the 2-core machine at
# 266 MB/s of records, the writer, encoder and training threads shared both cores alike and
# training stepped 1.21-1.37 x slower with recording against 1.10-1.13 x at nice 10. A writer
# that falls behind still gets the CPU: training then waits for snapshot buffers and idles.
WRITER_NICE = 10


def _is_writer_rank() -> bool:
    """Under torch.distributed only rank 0 writes."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _stops_at_refusal(hook):
    """A training hook that stops recording at a refusal: the recorder keeps it (the store's
    metadata says why it ends, also when the script catches the error and trains on) and
    records nothing more."""

    @functools.wraps(hook)
    def wrapped(self, *args, **kwargs):
        if self.refused is not None:
            return None
        try:
            return hook(self, *args, **kwargs)
        except RecordingRefusedError as exc:
            self.refused = self.refused or exc
            raise

    return wrapped


class Recorder:
    """Records the weights of ``model`` after every training iteration into the store at ``path``.

    Use as a context manager and call :meth:`attach` with the optimizer(s)::

        with Recorder(model, "run.zarr") as rec:
            rec.attach(optimizer)
            for x, y in loader:
                loss = loss_fn(model(x), y)
                loss.backward()
                rec.log_loss(loss)          # optional: minibatch loss of the coming step
                optimizer.step()            # the recorder snapshots after this
                optimizer.zero_grad()

    One record per training iteration (docs/format.md 3.3): an iteration is one step of every
    attached optimizer, in the order of the first iteration; with one optimizer, one step.
    Every parameter of the model is recorded, trainable or frozen, under the naming rule of
    :mod:`trajstore.recorders.discovery`; which were trainable is kept as change points.
    The initial weights are recorded as step 0 when the first optimizer is attached (or at the
    first step). ``every`` / ``schedule`` select the iterations (see
    :mod:`trajstore.recorders.schedule`). ``gradients``: also record the gradient each update
    used. ``buffers``: record floating-point module buffers (BatchNorm running statistics).
    ``policy``: ``"block"`` (training waits when the writer falls behind) or ``"drop"``
    (records are skipped and counted). ``resume``: continue an existing store; the first
    weights must equal the last stored ones to ``resume_tolerance`` (max abs difference), else
    :class:`~trajstore.recorders.errors.ResumeGapError`, unless ``resume_new_segment``.
    ``codec``: a lossless preset, ``"fast"`` (lz4), ``"balanced"`` (zstd-1, the default) or
    ``"small"`` (docs/scale.md). ``threads``: threads that compress full blocks besides the writer
    thread. When training produces records faster than the writer sustains, one line on stderr
    says so with the measured rates and the remedies (not with ``progress=False``; the line is
    kept in ``keep_up.message``).
    ``model`` may be None, with ``named_parameters`` given to :meth:`bind` instead.
    ``sketch``: :class:`~trajstore.recorders.sketch.SketchOptions` (1.2): a CountSketch of
    dimension K and/or a sample of M parameters per record, computed on the device; the full
    weights then only when ``full=True``.
    ``record_at``: ``"step"`` (a record is taken when the iteration's last ``step()`` returns;
    code that changes the weights after it is refused with
    :class:`~trajstore.recorders.errors.WeightsChangedAfterStepError`) or ``"next_step"`` (when
    the next iteration's first step begins, the last one at close: after such code).
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
        resume_new_segment: bool = False,
        resume_tolerance: float = 0.0,
        policy: str = "block",
        pool_size: int | None = None,
        flush_seconds: float = 10.0,
        progress: bool | None = None,
        script: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        codec: str = "balanced",
        threads: int = 1,
        sketch: SketchOptions | None = None,
        record_at: str = "step",
    ):
        from trajstore.backends.base import CODEC_PRESET_NAMES

        if record_at not in RECORD_AT:
            raise ValueError(f"record_at must be one of {', '.join(RECORD_AT)}, got {record_at!r}")

        if codec not in CODEC_PRESET_NAMES:
            raise ValueError(f"codec must be one of {', '.join(CODEC_PRESET_NAMES)}, got {codec!r}")
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.path = os.fspath(path)
        # "step": a record is taken when the iteration's last optimizer.step() returns, and a
        # check refuses code that changes the weights after it (post_step_check.py); "next_step":
        # when the next iteration's first step begins (or at close), after any such code.
        self.record_at = record_at
        self._post_check: PostStepCheck | None = None
        self._pending_record: tuple | None = None  # record_at="next_step": (step, grads, buffers)
        self._refused_at_close: RecordingRefusedError | None = None
        self._refused_iteration: int | None = None  # set when a refusal came as an iteration began
        # (1.2) a sketch and/or sample of the weights, with or without them in full (recorders/sketch.py)
        self.sketch = sketch or SketchOptions()
        self.sketch.check(gradients=gradients, buffers=buffers, resume=resume)
        self._sketcher = None
        self.schedule = parse_schedule(schedule) if isinstance(schedule, str) else (schedule or Every(every))
        self.record_gradients = gradients
        self.record_buffers = buffers
        self.metadata = dict(metadata or {})
        self.mode = "a" if resume else ("w" if overwrite else "x")
        self.resume_new_segment = resume_new_segment
        self.resume_tolerance = float(resume_tolerance)
        self.policy = policy
        self.pool_size = pool_size
        self.flush_seconds = flush_seconds
        self.progress = progress
        self.script = script
        self.store_options = {
            "compression": codec,
            "threads": int(threads),
            "nice": WRITER_NICE,
            **(store_options or {}),
        }
        self.keep_up = KeepUpCheck(enabled=progress is not False)
        self._produced_bytes = 0
        # Rank 0 writes; with a sharded model (FSDP2/DTensor) every rank writes its own columns.
        self.enabled = _is_writer_rank() or (model is not None and sharded.is_sharded(model))
        self._shard_kinds: list[str] | None = None  # placement of each parameter when sharded
        self.step = 0  # training iterations so far (skipped ones included)
        self.dropped = 0
        self.epoch: int | None = None
        self._epoch_auto = False  # epoch counted by trajstore record (continues across resumes)
        self._epoch_offset = 0
        self._model = model
        self._names: list[str] = []
        self._params: list[torch.Tensor] = []
        self._watch: ParameterWatch | None = None
        self._buffer_names: list[str] = []
        self._buffers: list[torch.Tensor] = []
        self._optimizers: list[torch.optim.Optimizer] = []
        # Optimizers that step in every iteration, so the first iteration waits for each of them
        # (docs/format.md 3.3): the attached ones, and under ``trajstore record
        # --all-optimizers-per-iteration`` every optimizer found at the first step.
        self._attached: list[torch.optim.Optimizer] = []
        self.all_optimizers_per_iteration = False
        self._repeats: dict[int, list[tuple]] = {}  # an optimizer's steps so far in this iteration
        # Parameter groups of each optimizer when its lr was first logged: ``lr`` stays group 0's
        # name for the run after add_param_group (docs/format.md 3.6).
        self._lr_groups: dict[int, int] = {}
        self._stored_series: set[str] = set()  # a resumed store's observables
        self._opt_names: dict[int, str] = {}  # id(optimizer) -> name, fixed at the first step
        self._given_names: dict[int, str] = {}
        self._handles: list[Any] = []
        self._unattached: dict = {}  # steps of optimizers not attached (see _any_post)
        self._pending_loss: torch.Tensor | float | None = None
        self._pending_unit: str | None = None
        self._pending_grads = None
        # The iteration being assembled: the optimizers that stepped in it so far.
        self._cycle: list[torch.optim.Optimizer] | None = None
        self._stepped: list[torch.optim.Optimizer] = []
        self._grad_acc: torch.Tensor | None = None
        self._grads_written = False
        self._closure: dict | None = None  # evaluations of the running step's closure
        self._gradient_source = "update"
        self._trainable: list[bool] | None = None
        self._trainable_changes: list[dict] = []
        self._opt_param_count = -1
        self._opt_param_ids: set[int] = set()
        self._early: list[tuple] = []  # trajstore.log calls before the store exists
        self._deferred: list[Any] = []  # first-iteration series, named once the iteration is known
        self._unregister = live.register(self._live_log) if self.enabled else None
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
        self.steps_begun = 0  # optimizer steps that reached their pre-hook (scaler_watch)
        # The refusal that stopped recording (set by ``with`` and trajstore record): the store's
        # metadata says it, and its message gains what the store kept.
        self.refused: RecordingRefusedError | None = None
        # AMP steps that GradScaler skips are seen by wrapping GradScaler.step from attach();
        # integrations that see them their own way turn it off before attaching.
        self._watch_scaler = True
        self._scaler_watch: ScalerWatch | None = None

    # -- binding -------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self._bound

    @property
    def sharded(self) -> bool:
        """True when every rank records its own shards (a sharded model, bound)."""
        return self._shard_kinds is not None

    def bind(
        self,
        named_parameters: Iterable[tuple[str, torch.Tensor]] | None = None,
        named_buffers: Iterable[tuple[str, torch.Tensor]] | None = None,
    ) -> None:
        """Fix the layout (every parameter, trainable or frozen, in order), create the store,
        record step 0 (or check a resumed run's continuity)."""
        if self.failure is not None:
            raise self.failure
        if self._bound or not self.enabled:
            return
        self._refuse_unsupported()
        if named_parameters is None:
            if self._model is None:
                raise ValueError("Recorder.bind needs a model or named_parameters")
            named_parameters, model_buffers = canonical_named_tensors(self._model)
            self._model = unwrap(self._model)
            if named_buffers is None:
                named_buffers = model_buffers
        pairs = list(named_parameters)
        if not pairs:
            raise ValueError("the model has no parameters to record")
        self._names = [n for n, _ in pairs]
        self._params = [p for _, p in pairs]
        if not sharded.is_sharded(pairs) and not _is_writer_rank():
            self.enabled = False  # replicated (DDP): rank 0 writes
            return
        device = self._params[0].device
        if self.record_buffers and named_buffers is not None:
            bufs = [(n, b) for n, b in named_buffers if b.is_floating_point()]
            self._buffer_names = [n for n, _ in bufs]
            self._buffers = [b for _, b in bufs]
        if sharded.is_sharded(pairs):  # this rank's shards are looked up at each record
            self._flat, self._watch = [], None
        else:  # follows code that replaces a parameter's storage after this (live_tensors.py)
            self._watch = ParameterWatch(
                self._names, self._params, self._model, self._buffer_names, self._buffers
            )
            self._flat = self._watch.flat
        layout = {n: tuple(p.shape) for n, p in pairs}
        buffers = list(zip(self._buffer_names, self._buffers, strict=True))
        # The stored values are float32; the layout keeps each tensor's dtype in training (a
        # bfloat16 model's records are exact, but only 8 bits of their mantissas are real).
        stored_layout = framework_layout(pairs)
        buffers_layout = framework_layout(buffers) if buffers else None
        shard = sharded.prepare(self, self._names, self._params) if sharded.is_sharded(pairs) else None
        resumed = self._check_resume(layout) if self.mode == "a" and os.path.exists(self.path) else None
        prov = run_provenance(self._model, device, self.script)
        prov["schedule"] = self.schedule.spec() or type(self.schedule).__name__  # (1.2) what was asked
        try:
            if shard is not None:
                options = {"mode": self.mode, "metadata": self.metadata, "provenance": prov}
                writer = sharded.create_store(self, shard, stored_layout, options)
                self._shard_kinds = shard[1]
            else:
                writer = trajstore.create(
                    self.path,
                    stored_layout,
                    mode=self.mode,
                    metadata=self.metadata,
                    provenance=prov,
                    buffers=buffers_layout,
                    **self.store_options,
                )
        except (OSError, TrajstoreError, ValueError) as exc:
            reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            self.failure = RecordingError(f"cannot record into {self.path}: {reason}")
            self._stop_logging()  # it records nothing: a later recorder in this process may
            raise self.failure from None
        classes = module_classes(self._params, self._model)
        if any(c is not None for c in classes):  # (1.2) each tensor's module class, for per-layer analyses
            writer.set_recording_attribute(spec.ATTR_TENSOR_MODULES, classes)
        if self.mode == "a":
            # Continue after every step any series has seen, so no step is written twice.
            self.step = writer.max_step or 0
            writer.set_provenance(resumed=prov)
        n = shard[0].n_local if shard is not None else sum(p.numel() for p in self._params)
        nb = sum(b.numel() for b in self._buffers)
        if self.pool_size is None:  # small models get deep pools, so records can travel in batches
            sizing = shard[0].n_local_max if shard is not None else n  # alike on every rank
            full = sizing if self.sketch.full_weights else 0
            grads = sizing if self.record_gradients else 0
            record_bytes = 4 * (full + grads + nb) + self.sketch.record_bytes()
            self.pool_size = int(min(_MAX_POOL, max(4, _POOL_BYTES // max(record_bytes, 1))))
        self._records.size = max(1, self.pool_size // 2)  # the other half stays free for training
        n_full = n if self.sketch.full_weights else 0
        self._pool = SnapshotPool(n_full, device, self.pool_size, self.policy, self._failed)
        if self.sketch.active:
            from .sketch import attach

            sizes = [p.numel() for p in self._params]
            self._sketcher, self._sketch_recording = attach(
                self.sketch, writer, sizes, device, self.pool_size, self.policy, self._failed
            )
        self._grad_pool = (
            SnapshotPool(n, device, self.pool_size, self.policy, self._failed)
            if self.record_gradients
            else None
        )
        if self.record_gradients:
            # The gradient each parameter's update used, gathered as its optimizer steps.
            self._grad_acc = torch.zeros(n, dtype=torch.float32, device=device)
            offsets = np.cumsum([0] + [p.numel() for p in self._params])
            self._grad_views = [self._grad_acc[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        self._buf_pool = SnapshotPool(nb, device, self.pool_size, "block", self._failed) if nb else None
        if self.record_at == "next_step":
            writer.set_recording_attribute(spec.ATTR_WEIGHTS_TAKEN, "next_step")
        elif self._watch is not None:
            self._post_check = PostStepCheck([p.numel() for p in self._params], device)
        self._writer = writer
        self._thread = WriterThread(
            writer,
            flush_seconds=self.flush_seconds,
            progress=self.progress,
            failed=self._failed,
            nice=int(self.store_options.get("nice", 0)),
        )
        self._bound = True
        if resumed is not None:
            self._start_segment(writer, resumed)
        elif writer.n_records == 0:
            self._take(0, None)
        if self._post_check is not None:
            self._post_check.at_end(self.step, self._flat)
        for name, value, step, attrs in self._early:
            self.log(name, value, step=step if step is not None else self.step, **attrs)
        self._early.clear()

    def _check_resume(self, layout: dict) -> dict | None:
        """Before appending to an existing store: do the current weights continue it?"""
        with trajstore.open(self.path) as t:
            same = [(s.name, tuple(s.shape)) for s in t.layout] == list(layout.items())
            if not same or t.n_records == 0:
                return None  # trajstore.create reports a layout change in its own words
            taken = t.attrs.get(spec.ATTR_WEIGHTS_TAKEN) or "after_step"
            if taken != ("next_step" if self.record_at == "next_step" else "after_step"):
                was = "next-step" if taken == "next_step" else "step"
                raise UnsupportedPatternError(
                    f"{self.path} was recorded with --record-at {was} (records taken "
                    + ("when the next iteration began" if was == "next-step" else "when step() returned")
                    + f"); resume it with --record-at {was}, so that all its records are of one kind"
                )
            last = np.asarray(t.weights[-1], dtype=np.float64)
            last_step = int(t.steps[-1])
            n_records = t.n_records
            self._trainable_changes = list(t.attrs.get(spec.ATTR_TRAINABLE) or [])
            if self._trainable_changes:
                self._trainable = list(self._trainable_changes[-1]["trainable"])
            segments = list(t.attrs.get(spec.ATTR_SEGMENTS) or [])
            # How the previous run ended (a refusal, an unfinished iteration) moves into the new
            # segment's entry: the metadata says the current state (docs/format.md 3.5).
            ended = {k: t.metadata[k] for k in _ENDED_KEYS if k in t.metadata}
            self._gradient_source = str(t.attrs.get(spec.ATTR_GRADIENT_SOURCE) or "update")
            if "epoch" in t.observables:
                epochs = t.observable("epoch")[1]
                self._epoch_offset = int(epochs[-1]) + 1 if len(epochs) else 0
            series = [t.observable(name)[0] for name in t.observables]
            self._stored_series = set(t.observables)
            ahead = max([last_step, *(int(s[-1]) for s in series if len(s))])
        now = torch.cat([f.detach().float().cpu() for f in self._flat]).double().numpy()
        gap = float(np.max(np.abs(now - last))) if now.size else 0.0
        continuous = bool(gap <= self.resume_tolerance)  # NaN is never continuous
        if continuous and ahead > last_step:
            # The run continues the last record (step last_step), but steps up to ``ahead`` are
            # taken by the previous run's observables: its iterations cannot be numbered on.
            if not self.resume_new_segment:
                raise ResumeGapError(
                    f"{self.path}: --resume would number the resumed iterations from step {ahead + 1}, "
                    f"but the run starts at the weights of the last stored record, step {last_step}: "
                    f"the store's observables go on to step {ahead} (the previous run went on past its "
                    "last record, or crashed before its records were written), so every step would be "
                    f"{ahead - last_step} too high; pass --resume-new-segment to record it as a new, "
                    "separate segment"
                )
            continuous = False  # a separate segment, numbered past every stored step
        if not continuous and not self.resume_new_segment:
            raise ResumeGapError(
                f"{self.path}: --resume would not continue the stored trajectory: the run starts "
                f"at weights {gap:.4g} (max |dw|) away from the last stored record (step {last_step}, "
                f"tolerance {self.resume_tolerance:g}); restore that state in the script (load its "
                "checkpoint), or pass --resume-new-segment to record a new, separate segment"
            )
        return {
            "continuous": continuous,
            "max_abs_gap": gap,
            "n_records": n_records,
            "segments": segments,
            "previous_run_ended": ended,
        }

    def _start_segment(self, writer, resumed: dict) -> None:
        """Mark where this resume starts; a discontinuous one begins with its own initial weights."""
        start_step = self.step + 1
        if not resumed["continuous"]:
            self.step += 1
            self._take(self.step, None)
            start_step = self.step
        segment = {
            "start_step": start_step,
            "start_record": resumed["n_records"],
            "resumed_at": utc_now_iso(),
            "continuous": resumed["continuous"],
            "max_abs_gap": resumed["max_abs_gap"],
        }
        for key, value in resumed["previous_run_ended"].items():
            segment[_ENDED_KEYS[key]] = value
        if resumed["previous_run_ended"]:
            self._submit(writer.drop_metadata, *resumed["previous_run_ended"])
        self._submit(writer.set_recording_attribute, spec.ATTR_SEGMENTS, [*resumed["segments"], segment])

    # -- attaching -----------------------------------------------------------------------

    def attach(self, optimizer: torch.optim.Optimizer, name: str | None = None) -> Recorder:
        """Record after every training iteration of the attached optimizers (through their step
        hooks). ``name``: the optimizer's name in observables (``loss.<name>``) when several are
        attached; default: its variable name in the calling code, else ``opt<i>``."""
        self._optimizers.append(optimizer)
        self._attached.append(optimizer)
        if name is not None:
            self._given_names[id(optimizer)] = str(name)
        if not self.enabled:
            return self
        self._handles.append(optimizer.register_step_pre_hook(self._attached_pre))
        self._handles.append(optimizer.register_step_post_hook(self._attached_post))
        if not self._unattached:  # any optimizer's step: see those that train the model unattached
            self._unattached = {"open": 0, "started": 0, "steps": []}
            self._handles.append(register_optimizer_step_pre_hook(self._any_pre))
            self._handles.append(register_optimizer_step_post_hook(self._any_post))
        if self._watch_scaler:
            self.watch_grad_scaler()
        if self._writer is None and self._model is not None:
            self.bind()
        return self

    def _attached_pre(self, optimizer, args, kwargs):
        self._unattached["open"] += 1
        self._unattached["started"] += 1
        return self.before_step(optimizer, args, kwargs)

    def _attached_post(self, optimizer, args, kwargs) -> None:
        self._unattached["open"] -= 1
        self.after_step(optimizer)

    def _any_pre(self, optimizer, args, kwargs) -> None:
        if not any(o is optimizer for o in self._optimizers):
            seen = self._unattached
            seen["steps"].append((optimizer, seen["started"], seen["open"] > 0))

    def _any_post(self, optimizer, args, kwargs) -> None:
        """An optimizer that is not attached finished a step: refuse when it updated recorded
        parameters with no attached optimizer's step around or inside it (a wrapper optimizer
        and the one it wraps step together; then the attached one's step is the record)."""
        seen = self._unattached
        found = next((i for i, e in enumerate(seen["steps"]) if e[0] is optimizer), None)
        if found is None:
            return
        _, started, inside = seen["steps"].pop(found)
        if inside or seen["open"] > 0 or seen["started"] != started or not self._bound:
            return
        recorded = {id(p) for p in self._params}
        if any(id(p) in recorded for g in optimizer.param_groups for p in g["params"]):
            raise UnsupportedPatternError(
                f"a {type(optimizer).__name__} optimizer that is not attached to the recorder stepped "
                f"the recorded model after iteration {self.step}: its updates would be missing from "
                f"{self.path}; attach every optimizer before training (rec.attach), and record a run "
                "that switches optimizers into one store per phase"
            )

    def _refuse_unsupported(self) -> None:
        for opt in self._optimizers:
            if callable(getattr(opt, "first_step", None)) and callable(getattr(opt, "second_step", None)):
                raise UnsupportedPatternError(
                    f"{type(opt).__name__} is a SAM-style two-pass optimizer: its second forward/backward "
                    "pass is at perturbed weights, and trajstore cannot yet tell the two passes' losses "
                    "apart; record the base optimizer through the Recorder API and log the first "
                    "pass's loss with log_loss"
                )

    def _name_optimizers(self) -> None:
        """Fix the optimizers' names (at the first step, when all of them exist)."""
        self._refuse_unsupported()
        found = optimizer_names(self._optimizers)
        for opt, auto in zip(self._optimizers, found, strict=True):
            self._opt_names[id(opt)] = self._given_names.get(id(opt), auto)
        names = [self._opt_names[id(o)] for o in self._optimizers]
        if len(set(names)) != len(names):
            for i, o in enumerate(self._optimizers):
                self._opt_names[id(o)] = f"opt{i}"
        self._write_optimizers_provenance()

    def _write_optimizers_provenance(self) -> None:
        opts = self._cycle_optimizers()
        prov = optimizers_provenance(opts, [self._opt_names[id(o)] for o in opts])
        self._submit(lambda: self._writer.set_provenance(**prov))

    # -- per step ------------------------------------------------------------------------

    def log_loss(self, loss: torch.Tensor | float, unit: str | None = None) -> None:
        """The minibatch loss of the coming optimizer step (summed if called several times).
        ``unit``: default ``nats`` for a cross-entropy / NLL tensor, else none."""
        if not self.enabled:
            return
        if self._closure is not None and self._closure["evals"] > 1:
            return  # a closure's later evaluations are at other weights: not this step's loss
        if isinstance(loss, torch.Tensor):
            scale = getattr(loss, "_trajstore_scale", None)
            if unit is None:
                unit = loss_unit(loss, scaled=scale is not None)
            value = loss.detach().reshape(())
            value = value / scale if scale is not None else value
        else:
            value = float(loss)
        self._pending_loss = value if self._pending_loss is None else self._pending_loss + value
        self._pending_unit = unit if self._pending_unit is None or self._pending_unit == unit else ""

    def set_epoch(self, epoch: int, *, auto: bool = False) -> None:
        """Declare the epoch of the coming steps (logged as the ``epoch`` observable). ``auto``:
        counted by ``trajstore record``, and continued after the stored epochs on resume."""
        self.epoch = int(epoch)
        self._epoch_auto = auto

    def log(self, name: str, value: float | torch.Tensor, step: int | None = None, **attrs: Any) -> None:
        """Record an extra observable at ``step`` (default: the last completed iteration)."""
        if not self.enabled:
            return
        if self._writer is None:
            self._early.append((name, _now(value), step, attrs))
            return
        self._scalar(name, self.step if step is None else int(step), value, attrs)

    def _live_log(self, name: str, value: Any, step: int | None) -> None:
        self.log(name, value, step)

    def watch_grad_scaler(self, bind=None) -> None:
        """Count the steps that AMP's GradScaler skips as skipped iterations until :meth:`close`
        (:mod:`trajstore.recorders.scaler_watch`; ``bind(optimizer)`` binds this recorder at a
        skipped step that comes before its first one). Idempotent."""
        if self._scaler_watch is None and self.enabled:
            self._scaler_watch = ScalerWatch(self, bind)
            self._handles.append(self._scaler_watch)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimizers whose steps make the records (attached, or found by ``trajstore record``)."""
        return list(self._optimizers)

    @_stops_at_refusal
    def before_step(self, optimizer: torch.optim.Optimizer, args: tuple = (), kwargs: dict | None = None):
        """Step pre-hook: returns new (args, kwargs) when the step has a closure to observe."""
        self.steps_begun += 1
        if not self._bound:
            self.bind()
        if not self._bound:
            return None
        if not self._opt_names:
            self._name_optimizers()
        if not self._stepped:  # the iteration begins
            self._iteration_begins()
        self._check_order(optimizer)
        kwargs = dict(kwargs or {})
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            self._capture_grads(optimizer)
            return None
        self._closure = {"evals": 0}
        wrapped = self._observed_closure(optimizer, closure, self._closure)
        if "closure" in kwargs:
            kwargs["closure"] = wrapped
            return args, kwargs
        return (args[0], wrapped, *args[2:]), kwargs

    def _observed_closure(self, optimizer, closure, state: dict):
        """The closure, seen: its first evaluation gives the step's loss and gradient (at the
        weights before the step); later ones (L-BFGS line search) are at other weights."""

        def observed(*a, **k):
            state["evals"] += 1
            if state["evals"] == 1:
                self._pending_loss = None
                self._pending_unit = None
            result = closure(*a, **k)
            if state["evals"] == 1:
                if self._pending_loss is None and result is not None:
                    self.log_loss(result)
                self._capture_grads(optimizer)
            return result

        return observed

    def _check_order(self, optimizer) -> None:
        """One record per iteration: learn the optimizers' order in the first iteration, then
        refuse any other pattern (it would not delimit iterations)."""
        if self._cycle is None:
            if any(o is optimizer for o in self._stepped):
                waiting = [o for o in self._awaited() if not any(o is s for s in self._stepped)]
                if not waiting:
                    # An optimizer steps again before the others did: the iteration was those steps.
                    self._fix_cycle()
                    self._complete_iteration()
                elif len(self._stepped) >= FIRST_ITERATION_MAX_STEPS:
                    names = ", ".join(self._opt_names.get(id(o), "?") for o in waiting)
                    raise IterationOrderError(
                        f"optimizer(s) {names} did not step in the first {len(self._stepped)} optimizer "
                        "steps; trajstore records one state per iteration, an iteration being one step "
                        "of every attached optimizer (a WGAN critic k times, then the generator): "
                        + (
                            "attach only the optimizers that step in every iteration"
                            if self._attached
                            else "record without --all-optimizers-per-iteration"
                        )
                    )
            return
        if not any(o is optimizer for o in self._cycle):
            message = self._order_message(optimizer, "stepped for the first time")
            if not self._attached and any(o is optimizer for o in self._optimizers):
                message += (
                    "; if every iteration is a fixed sequence of all the script's optimizers (WGAN: "
                    "the critic k times, then the generator), pass --all-optimizers-per-iteration "
                    "(Recorder API: attach each optimizer)"
                )
            raise IterationOrderError(message)
        expected = self._cycle[len(self._stepped)]
        if optimizer is not expected:
            raise IterationOrderError(self._order_message(optimizer, "stepped out of order"))

    def _awaited(self) -> list[torch.optim.Optimizer]:
        """The optimizers the first iteration waits for (each steps in every iteration)."""
        return self._optimizers if self.all_optimizers_per_iteration else self._attached

    def _cycle_optimizers(self) -> list[torch.optim.Optimizer]:
        """The iteration's optimizers, each once, in the order of their first step in it."""
        unique: list[torch.optim.Optimizer] = []
        for o in self._cycle or self._optimizers:
            if not any(o is u for u in unique):
                unique.append(o)
        return unique

    def _order_message(self, optimizer, what: str) -> str:
        runs: list[list] = []  # the cycle as (optimizer, consecutive steps): "opt_d x3, opt_g"
        for o in self._cycle or []:
            if runs and runs[-1][0] is o:
                runs[-1][1] += 1
            else:
                runs.append([o, 1])
        order = ", ".join(self._opt_names.get(id(o), "?") + (f" x{k}" if k > 1 else "") for o, k in runs)
        return (
            f"optimizer {self._opt_names.get(id(optimizer), '?')} {what} in iteration {self.step + 1}; "
            f"trajstore records one state per iteration, an iteration being the optimizer steps "
            f"of the first iteration in their order ({order}); this script's optimizers "
            "step in a varying pattern, which trajstore cannot record yet"
        )

    @_stops_at_refusal
    def after_step(self, optimizer: torch.optim.Optimizer | None = None, *, skipped: bool = False) -> None:
        """Step post-hook (``skipped``: GradScaler skipped this optimizer's update)."""
        if not self._bound:
            return
        closure, self._closure = self._closure, None
        first = not self._stepped
        self._stepped.append(optimizer)
        loss, unit = self._pending_loss, self._pending_unit
        self._pending_loss = self._pending_unit = None
        lrs = [] if skipped or optimizer is None else [_now(g.get("lr")) for g in optimizer.param_groups]
        evals = closure["evals"] if closure is not None else None
        entry = (optimizer, self.step + 1, first, loss, unit, lrs, evals, skipped)
        if self._cycle is None:
            self._deferred.append(entry)  # names depend on how many optimizers the iteration has
        else:
            self._step_series(entry)
        if evals is not None and evals > 1 and self.record_gradients and self._gradient_source == "update":
            self._gradient_source = "first_closure_evaluation"
            self._submit(
                self._writer.set_recording_attribute, spec.ATTR_GRADIENT_SOURCE, self._gradient_source
            )
        if self._cycle is None:
            if all(any(o is s for s in self._stepped) for o in self._optimizers):
                self._fix_cycle()
                self._complete_iteration()
        elif len(self._stepped) == len(self._cycle):
            self._complete_iteration()

    def _fix_cycle(self) -> None:
        """The first iteration is over: the optimizers that stepped in it, in order, are the cycle."""
        self._cycle = list(self._stepped)
        self._write_optimizers_provenance()
        for entry in self._deferred:
            self._step_series(entry)
        self._deferred.clear()

    def _step_series(self, entry: tuple) -> None:
        """The series of one optimizer step; an optimizer that steps k > 1 times per iteration
        (a WGAN critic) gets one value per iteration at its last step: the mean of its k losses
        (when each step had one), the learning rates of its last step, the sum of its closure
        evaluations, skipped when any of its steps was (docs/format.md 3.3)."""
        optimizer = entry[0]
        k = sum(1 for o in self._cycle if o is optimizer)
        if k == 1:
            self._step_scalars(*entry)
            return
        steps = self._repeats.setdefault(id(optimizer), [])
        steps.append(entry)
        if len(steps) < k:
            return
        del self._repeats[id(optimizer)]
        losses = [e[3] for e in steps]
        loss = None if any(v is None for v in losses) else functools.reduce(lambda a, b: a + b, losses) / k
        units = {e[4] for e in steps}
        unit = units.pop() if len(units) == 1 else ""
        evals = [e[6] for e in steps if e[6] is not None]
        skipped = any(e[7] for e in steps)
        total = sum(evals) if evals else None
        last = steps[-1]  # its mean loss is at several weights: within_step (first=False)
        self._step_scalars(optimizer, last[1], False, loss, unit, last[5], total, skipped, k)

    def _step_scalars(self, optimizer, iteration, first, loss, unit, lrs, evals, skipped, k=1) -> None:
        """The series of one optimizer step (``k`` > 1: of its k steps in the iteration): loss,
        learning rates, skips, closure evaluations."""
        several = len(self._cycle_optimizers()) > 1
        name = self._opt_names.get(id(optimizer), "opt0")
        if loss is not None:
            attrs = {
                "unit": unit or "",
                "evaluated_at": spec.PRE_STEP if first else spec.WITHIN_STEP,
                "description": "minibatch training loss"
                + (f" of optimizer {name}" if several else "")
                + (f", mean over its {k} steps of the iteration" if k > 1 else "")
                + ("" if first or k > 1 else ", computed after the iteration's earlier optimizers stepped"),
            }
            self._scalar(series_name("loss", name, several), iteration, loss, attrs)
        if skipped:
            skip = series_name("skipped", name, several)
            attrs = {"unit": "1", "evaluated_at": spec.POST_STEP, "description": _SKIP_DESCRIPTION}
            self._scalar(skip, iteration, 1.0, attrs)
        if lrs and id(optimizer) not in self._lr_groups:
            # A resumed run continues the store's ``lr`` (its groups were added before the resume).
            stored = "lr" in self._stored_series and f"lr.{name}.0" not in self._stored_series
            self._lr_groups[id(optimizer)] = 1 if stored and not several else len(lrs)
        first_groups = self._lr_groups.get(id(optimizer), len(lrs))
        for i, lr in enumerate(lrs):
            if lr is not None:
                groups = first_groups if i < first_groups else len(lrs)  # a group added later
                self._scalar(lr_name(name, i, groups, several), iteration, lr, _LR_ATTRS)
        if evals is not None:
            attrs = {"unit": "1", "description": "closure evaluations of the step"}
            self._scalar(series_name("closure_evaluations", name, several), iteration, evals, attrs)

    @_stops_at_refusal
    def mark_skipped(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """An optimizer step that GradScaler skipped (AMP overflow): it counts in the iteration
        (``skipped`` = 1); an iteration where every update was skipped is recorded when the
        schedule selects it, with the weights unchanged (docs/format.md 3.3, 1.2)."""
        if not self._bound:
            return
        if optimizer is None:
            optimizer = self._optimizers[0] if self._optimizers else None
        if not self._opt_names:
            self._name_optimizers()
        self._check_order(optimizer)
        self.after_step(optimizer, skipped=True)

    def _complete_iteration(self) -> None:
        self.step += 1
        self._stepped = []
        self._repeats.clear()
        if self.epoch is not None:
            epoch = self.epoch + (self._epoch_offset if self._epoch_auto else 0)
            self._scalar("epoch", self.step, epoch, _COUNT_ATTRS)
        # (1.2) An iteration whose updates were all skipped (AMP) is recorded like any other when
        # the schedule selects it: its weights are the live ones, unchanged, and the record grid
        # stays regular (docs/format.md 3.3). Its gradients are 0: no update used any.
        if self.schedule.selects(self.step):
            grads = None
            if self._grad_acc is not None:
                grads = self._grad_pool.snapshot([self._grad_acc])
            self._take(self.step, grads)
        if self._grads_written:
            self._grad_acc.zero_()  # parameters no optimizer updates have gradient 0
            self._grads_written = False
        if self._post_check is not None:
            self._post_check.at_end(self.step, self._flat)

    def _take(self, step: int, grads) -> None:
        """The record of iteration ``step``: now, or (``record_at="next_step"``) when the next
        iteration begins; its buffers (BatchNorm statistics) are taken now either way, since the
        next iteration's forward pass changes them."""
        if self.record_at == "step":
            self._record(step, grads)
            return
        self._take_pending()  # a record no iteration start took (a skipped iteration came between)
        bsnap = self._buf_pool.snapshot(SnapshotPool.flat_views(self._buffers)) if self._buf_pool else None
        self._pending_record = (step, grads, bsnap)

    def _take_pending(self) -> None:
        pending, self._pending_record = self._pending_record, None
        if pending is not None:
            self._record(*pending)

    def _iteration_begins(self) -> None:
        """The first optimizer step of an iteration begins: the weights are those training
        continues from (a deferred record is taken; the post-step check compares)."""
        self._take_pending()  # a refusal here is of the pending record's iteration: self.step
        if self._post_check is not None and self._post_check.armed:
            try:
                self._watch.check(self.step + 1)  # follow storage replaced after the step (p.data = ...)
                self._post_check.at_start(self._flat)
            except RecordingRefusedError:
                self._refused_iteration = self.step + 1  # refused before it stepped
                raise

    # -- internals -----------------------------------------------------------------------

    def _capture_grads(self, optimizer) -> None:
        """Copy the gradients ``optimizer`` is about to use into the iteration's gradient vector."""
        if self._grad_acc is None or not self.schedule.selects(self.step + 1):
            return
        index = {id(p): i for i, p in enumerate(self._params)}
        dst, src = [], []
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    i = index.get(id(p))
                    if i is None:
                        continue
                    if p.grad is None:
                        self._grad_views[i].zero_()
                    else:
                        dst.append(self._grad_views[i])
                        src.append(p.grad.detach().reshape(-1))
            if dst:
                torch._foreach_copy_(dst, src)
        self._grads_written = True

    def _trainable_now(self) -> list[bool]:
        optimizers = self._cycle_optimizers()
        held = sum(len(g["params"]) for o in optimizers for g in o.param_groups)
        if held != self._opt_param_count:  # add_param_group since the last look
            groups = [g for o in optimizers for g in o.param_groups]
            ids = {id(p) for g in groups for p in g["params"]}
            if self._watch is not None:
                self._watch.check_trained(ids, optimizers)
                if self._opt_param_count >= 0:
                    self._watch.check_added(ids - self._opt_param_ids, optimizers)
            self._opt_param_ids = ids
            self._opt_param_count = held
        return [bool(p.requires_grad and id(p) in self._opt_param_ids) for p in self._params]

    def _note_trainable(self, step: int) -> None:
        mask = self._trainable_now()
        if mask != self._trainable:
            self._trainable = mask
            self._trainable_changes.append({"step": int(step), "trainable": mask})
            self._submit(
                self._writer.set_recording_attribute, spec.ATTR_TRAINABLE, list(self._trainable_changes)
            )

    def _record(self, step: int, grads, bsnap=None) -> None:
        """Snapshot the weights now as the record of ``step`` (``bsnap``: buffers taken earlier)."""
        if self._failed.is_set():  # stop training at the first step after a failed write
            _release_records([(step, grads, bsnap)])
            self._thread.check()
        if self._watch is not None:
            self._watch.check(step)
        self._note_trainable(step)
        flat = self._flat
        if self._shard_kinds is not None:  # this rank's shards, looked up now (FSDP2 may move them)
            flat = sharded.local_tensors(self._params, self._shard_kinds, torch.distributed.get_rank())
        snap = self._pool.snapshot(flat) if self.sketch.full_weights else None
        sk = self._sketcher.snapshot(self._flat) if self._sketcher is not None else None
        if self.sketch.full_weights:
            self._check_keep_up()
        if (snap is None and self.sketch.full_weights) or (sk is None and self._sketcher is not None):
            self.dropped += 1
            _release_records([(step, snap, grads, sk, bsnap)])
            return
        if bsnap is None and self._buf_pool is not None:
            bsnap = self._buf_pool.snapshot(SnapshotPool.flat_views(self._buffers))
        self._records.add((step, snap, grads, bsnap, sk))

    def _check_keep_up(self) -> None:
        """Say once when training produces records faster than the writer sustains."""
        self._produced_bytes += self._pool.n_values * 4
        if not self.keep_up.warned:
            t = self._thread
            self.keep_up.check(
                produced_bytes=self._produced_bytes,
                waited=self._pool.waited,
                dropped=self.dropped,
                written_bytes=t.bytes_in,
                busy=t.busy,
            )

    @property
    def _record_batch(self) -> int:
        return self._records.size

    def _scalar(self, name: str, step: int, value, attrs: dict) -> None:
        """Queue a scalar observable; they travel to the writer thread in batches (cheap per step).
        A tensor is copied now (on its device, no sync): read later, a tensor the script changes
        in place (a scheduler's tensor learning rate, a running count) would give a later value."""
        self._scalars.add((name, step, _now(value), attrs))

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

    def _append(self, step: int, snap, grads, bsnap, sk=None) -> None:
        try:
            if snap is not None:
                self._writer.append(
                    step,
                    snap.ready(),
                    gradients=grads.ready() if grads is not None else None,
                    buffers=bsnap.ready() if bsnap is not None else None,
                )
                self._thread.bytes_in += snap.buffer.numel() * 4
            if sk is not None:
                sketch, sample = sk.ready()
                self._sketch_recording.append(step, sketch=sketch, sample=sample)
                self._thread.bytes_in += self.sketch.record_bytes()
            self._thread.records += 1
        finally:
            for s in (snap, grads, bsnap, sk):
                if s is not None:
                    s.release()

    def _log_values(self, batch: list) -> None:
        for name, step, value, attrs in batch:
            v = float(value.item() if isinstance(value, torch.Tensor) else value)
            self._writer.log(name, step, v, **attrs)

    # -- closing -------------------------------------------------------------------------

    def _stop_logging(self) -> None:
        """Leave this process's live sinks (log calls, other recorders' checks) for good."""
        if self._unregister is not None:
            self._unregister()
            self._unregister = None

    def close(self) -> None:
        """Write everything still queued and close the store validly. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for h in self._handles:
            h.remove()
        self._stop_logging()
        error = None
        if self._thread is not None:
            try:
                self._close_checks()
                if self._stepped:  # the run ended inside an iteration: no record for it, but say so
                    partial = {
                        "iteration": self.step + 1,
                        "stepped": [self._opt_names.get(id(o), "?") for o in self._stepped],
                    }
                    self._submit(lambda: self._writer.set_metadata(trajstore_partial_last_iteration=partial))
                self._records.flush()
                self._scalars.flush()
                if self.dropped:
                    dropped = self.dropped
                    self._submit(lambda: self._writer.set_metadata(trajstore_dropped_records=dropped))
                if self.refused is not None:  # the store says why it ends here, not only stderr
                    refused = {
                        # the iteration whose record it refused (or 0)
                        "iteration": self._refused_iteration or self.step,
                        "error": type(self.refused).__name__,
                        "reason": str(self.refused.args[0]) if self.refused.args else "",
                    }
                    self._submit(lambda: self._writer.set_metadata(trajstore_recording_refused=refused))
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
        elif self.refused is not None and self._writer is not None:
            self.refused.kept = _kept_records(self.path)
        if self.failure is not None:
            raise self.failure from None
        if self._refused_at_close is not None:
            raise self._refused_at_close from None

    def _close_checks(self) -> None:
        """At close: a comparison still on the device is read; a deferred record is taken."""
        try:
            if self._post_check is not None:
                self._post_check.settle()
        except RecordingRefusedError as exc:  # seen only now (a GPU): raised once the store is closed
            self.refused = self.refused or exc
            self._refused_at_close = exc
            self._post_check = None
        if self.refused is None and self.failure is None:
            self._take_pending()
        else:  # the iteration it belongs to may never have ended cleanly
            pending, self._pending_record = self._pending_record, None
            if pending is not None:
                _release_records([pending])

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if isinstance(exc, RecordingRefusedError) and self.refused is None:
            self.refused = exc
        self.close()


def framework_layout(named: list[tuple[str, torch.Tensor]]) -> Layout:
    """The layout of ``named`` tensors in order, each with its dtype in training (``"bfloat16"``)."""
    tensors, offset = [], 0
    for name, t in named:
        shape = tuple(int(d) for d in t.shape)  # a sharded (DTensor) parameter's global shape
        tensors.append(TensorSpec(name, shape, str(t.dtype).removeprefix("torch."), offset))
        offset += math.prod(shape)
    return Layout(tensors)


def _now(value):
    """``value`` as it is now: a tensor is copied (detached, on its device), anything else kept."""
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def _release_records(batch: list) -> None:
    """Give the pool buffers of records that will not be written back to their pools."""
    for _, *snaps in batch:
        for s in snaps:
            if s is not None:
                s.release()


def _count_records(path: str) -> tuple[int, int | None]:
    """The number of records in the store at ``path`` and the last one's step (None if none)."""
    with trajstore.open(path) as t:
        n = t.n_records
        return n, (int(t.steps[-1]) if n else None)


def _kept_records(path: str) -> str:
    """What a refusal left in the store at ``path``, as the end of its one-line message."""
    try:
        n, last = _count_records(path)
    except (TrajstoreError, OSError):
        return f"the records before it are in {path}"
    if n == 1:
        return f"1 record (step {last}) is kept in {path}"
    return f"{n} records" + (f" (steps 0-{last})" if n else "") + f" are kept in {path}"


def _safe_records(path: str) -> str:
    """What survived in the store at ``path``, as the end of a one-line error message."""
    try:
        n, last = _count_records(path)
    except (TrajstoreError, OSError) as exc:
        return f"the store could not be reopened to count its records ({describe_os_error(exc)})"
    what = "1 record (step 0) is" if n == 1 else f"{n} records" + (f" (steps 0-{last})" if n else "") + " are"
    return f"{what} safe in {path}; fix the cause and continue with --resume"
