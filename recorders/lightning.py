"""PyTorch Lightning callback: ``Trainer(callbacks=[TrajstoreCallback("run.zarr")])`` (extra ``lightning``).

It records what ``trajstore record`` records (docs/format.md 3.3-3.6) through the same
:class:`~trajstore.recorders.Recorder`: one record per training iteration (one optimizer step
of each optimizer, Lightning's ``optimizer.step(closure)`` included; an accumulation window is
one iteration), every parameter of the LightningModule, trainable or frozen, with change
points; ``loss`` / ``lr`` (``loss.opt<i>``, ``lr.opt<i>.<group>`` with several optimizers,
``opt<i>`` being the optimizer's position in ``configure_optimizers``), ``epoch``,
``closure_evaluations``, ``skipped`` (AMP), provenance. In addition: ``grad_norm`` (the norm
of the step's gradient before clipping, after AMP unscaling; what ``gradient_clip_val`` clips)
and every validation metric the module logs under a ``val``/``valid``/``validation`` prefix
(``val_loss``, ``val_acc`` -> ``val_loss``, ``val_accuracy``), after each validation run.

The loss of a step is the sum of the tensors ``backward`` ran on since the previous step
(Lightning divides each by ``accumulate_grad_batches``: the sum is the mean micro-batch loss),
unscaled under AMP; of a closure evaluated several times (L-BFGS), the first evaluation.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        import pytorch_lightning as pl
    except ImportError:
        raise ImportError(
            "trajstore.recorders.lightning needs PyTorch Lightning: pip install 'trajstore[lightning]'"
        ) from None

from trajstore import spec

from .discovery import canonical_named_tensors
from .errors import UnsupportedPatternError
from .integrations import (
    GRAD_NORM_ATTRS,
    framework_loss_unit,
    grad_norm_name,
    gradient_norm,
    log_validation,
    optimizer_names,
    record_provenance,
    start_recorder,
)
from .recorder import Recorder

__all__ = ["TrajstoreCallback"]


class TrajstoreCallback(pl.Callback):
    """Record the weight trajectory of ``Trainer.fit`` into the store at ``path``.

    ``optimizer_names``: names of the optimizers in the observables when there are several
    (default ``opt0``, ``opt1``, ... in ``configure_optimizers`` order). Every other keyword goes
    to :class:`~trajstore.recorders.Recorder` (``every``, ``schedule``, ``gradients``,
    ``buffers``, ``metadata``, ``overwrite``, ``resume``, ...; ``progress`` defaults to False:
    Lightning shows its own). The store is created when training starts (after a checkpoint's
    weights are restored, so ``resume=True`` checks continuity against them) and closed when it
    ends or fails. ``recorder``: the running :class:`Recorder` (None outside ``fit``).
    """

    def __init__(self, path: str | os.PathLike = "run.zarr", *, optimizer_names=None, **options: Any):
        super().__init__()
        self.path = os.fspath(path)
        self.optimizer_names = None if optimizer_names is None else list(optimizer_names)
        self.options = {"progress": False, **options}
        self.recorder: Recorder | None = None
        self._names: dict[int, str] = {}
        self._several = False
        self._losses: list[tuple[torch.Tensor, str]] = []
        self._inside = False  # between an attached optimizer's step pre- and post-hook
        self._awaiting = None  # optimizer whose step began (gradients ready) and has not ended
        self._handles: list = []

    # -- start and end ---------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        strategy = type(trainer.strategy).__name__
        if "DeepSpeed" in strategy or "FSDP" in strategy or "ModelParallel" in strategy:
            raise UnsupportedPatternError(
                f"the {strategy} strategy shards parameters across ranks; trajstore records full, "
                "unsharded parameters only: record with the default, DDP or single-device strategy"
            )
        optimizers = list(trainer.optimizers)
        names = optimizer_names(len(optimizers), self.optimizer_names)
        self._names = {id(o): n for o, n in zip(optimizers, names, strict=True)}
        self._several = len(optimizers) > 1
        self.recorder = start_recorder(
            "Lightning",
            self.path,
            pl_module,
            canonical_named_tensors(pl_module),
            list(zip(optimizers, names, strict=True)),
            self.options,
        )
        record_provenance(
            self.recorder,
            "trajstore.recorders.lightning.TrajstoreCallback",
            {"lightning": pl.__version__},
            accumulate_grad_batches=int(trainer.accumulate_grad_batches),
            gradient_clip_val=trainer.gradient_clip_val,
            precision=str(trainer.precision),
        )
        for opt in optimizers:
            self._handles.append(opt.register_step_pre_hook(self._pre_step))
            self._handles.append(opt.register_step_post_hook(self._post_step))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._settle_skip()
        self.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException):
        try:
            self.close()  # the store stays valid with every record so far
        except Exception:
            pass  # the training error is the one to see; a write failure was said in it or before

    def close(self) -> None:
        """Close the store (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        rec, self.recorder = self.recorder, None
        if rec is not None:
            rec.close()

    # -- per step --------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.recorder is not None:
            self.recorder.set_epoch(trainer.current_epoch)

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor):
        if self.recorder is None or loss.numel() != 1:
            return
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        scaled = scaler is not None and scaler.is_enabled()
        value = loss.detach().reshape(())
        if scaled:  # the scale is a power of two: dividing by it is exact
            value = value / scaler._scale.detach().reshape(()).clone()
        self._losses.append((value, framework_loss_unit(loss, scaled, int(pl_module.automatic_optimization))))

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        rec = self.recorder
        if rec is None:
            return
        if self._inside and self._awaiting is optimizer:
            self._losses.clear()  # a later evaluation of the step's closure: not this step's loss
            return
        self._settle_skip()
        if self._losses:
            units = {u for _, u in self._losses}
            total = functools.reduce(lambda a, b: a + b, (v for v, _ in self._losses))
            rec.log_loss(total, unit=units.pop() if len(units) == 1 else "")
            self._losses.clear()
        norm = gradient_norm(optimizer)
        if norm is not None:
            name = grad_norm_name(self._names.get(id(optimizer), "opt0"), self._several)
            attrs = dict(GRAD_NORM_ATTRS)
            if rec._stepped:  # an earlier optimizer of the iteration stepped: no record holds these weights
                attrs["evaluated_at"] = spec.WITHIN_STEP
            rec.log(name, norm, step=rec.step + 1, **attrs)
        self._awaiting = optimizer

    def _pre_step(self, optimizer, args, kwargs) -> None:
        self._inside = True

    def _post_step(self, optimizer, args, kwargs) -> None:
        self._inside = False
        self._awaiting = None

    def _settle_skip(self) -> None:
        """A step whose gradients were ready but whose optimizer never stepped: AMP's GradScaler
        skipped it (inf/NaN gradients). It counts in the iteration, as under trajstore record."""
        if self._awaiting is not None and not self._inside and self.recorder is not None:
            opt, self._awaiting = self._awaiting, None
            self._losses.clear()
            self.recorder.mark_skipped(opt)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, idx):
        self._settle_skip()

    # -- validation ------------------------------------------------------------------------

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rec = self.recorder
        if rec is None or trainer.sanity_checking or not rec.bound:
            return
        log_validation(rec, trainer.callback_metrics, rec.step)
