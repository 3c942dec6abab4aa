"""Hugging Face transformers callback: ``Trainer(..., callbacks=[TrajstoreCallback("run.zarr")])``
(extra ``hf``).

It records what ``trajstore record`` records (docs/format.md 3.3-3.6) through the same
:class:`~trajstore.recorders.Recorder`: one record per optimizer step (a gradient-accumulation
window is one step), every parameter of the model, trainable or frozen, with change points;
``loss`` (the sum of the scalars ``backward`` ran on in the window: the objective the update
used, unscaled under fp16 AMP), ``lr`` (``lr.opt0.<group>`` when the optimizer has several
parameter groups, as the Trainer's default AdamW has), ``epoch``, ``skipped`` (AMP overflow),
provenance. In addition: ``grad_norm``, the gradient norm before clipping that the Trainer
computes and logs (at its logging steps: ``logging_steps=1`` gives every step), and the
evaluation metrics (``eval_loss``, ``eval_accuracy``, ... -> ``val_loss``, ``val_accuracy``,
``val_<metric>``) at the step after which each evaluation ran.

The Trainer has no callback for a failed run: use the callback as a context manager (or call
:meth:`TrajstoreCallback.close`) so that the store is closed with every record when
``train()`` raises; otherwise the store keeps what was committed (docs/format.md 5).
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from typing import Any

import torch

try:
    import transformers
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "trajstore.recorders.hf needs transformers: pip install 'trajstore[hf]'"
    ) from None

from .discovery import canonical_named_tensors
from .errors import UnsupportedPatternError
from .integrations import (
    GRAD_NORM_ATTRS,
    framework_loss_unit,
    log_validation,
    record_provenance,
    start_recorder,
)
from .loss_capture import capture_backward_losses
from .recorder import Recorder

__all__ = ["TrajstoreCallback"]


def _trainer_loss_unit(loss: torch.Tensor) -> str:
    """The Trainer, then accelerate, divide the model's loss by the accumulation steps (by 1 too)."""
    return framework_loss_unit(loss, scaled=hasattr(loss, "_trajstore_scale"), divisions=2)


class TrajstoreCallback(TrainerCallback):
    """Record the weight trajectory of ``Trainer.train`` into the store at ``path``.

    Keywords go to :class:`~trajstore.recorders.Recorder` (``every``, ``schedule``,
    ``gradients``, ``buffers``, ``metadata``, ``overwrite``, ``resume``, ...; ``progress``
    defaults to False). The store is created when training starts, after a checkpoint given to
    ``train(resume_from_checkpoint=...)`` is loaded (so ``resume=True`` checks continuity
    against it), and closed when training ends. ``recorder``: the running :class:`Recorder`.
    """

    def __init__(self, path: str | os.PathLike = "run.zarr", **options: Any):
        self.path = os.fspath(path)
        self.options = {"progress": False, **options}
        self.recorder: Recorder | None = None
        self._wrapper = None  # accelerate's AcceleratedOptimizer: knows when AMP skipped a step
        self._optimizer = None
        self._capture: ExitStack | None = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if getattr(args, "deepspeed", None) or getattr(args, "fsdp", None):
            raise UnsupportedPatternError(
                "DeepSpeed / FSDP training shards parameters across ranks; trajstore records full, "
                "unsharded parameters only: record without deepspeed/fsdp in TrainingArguments"
            )
        if model is None or optimizer is None:
            raise UnsupportedPatternError("the Trainer passed no model or optimizer to its callbacks")
        self._wrapper = optimizer
        self._optimizer = getattr(optimizer, "optimizer", optimizer)
        rec = start_recorder(
            "transformers",
            self.path,
            model,
            canonical_named_tensors(model),
            [(self._optimizer, "opt0")],
            self.options,
        )
        self.recorder = rec
        record_provenance(
            rec,
            "trajstore.recorders.hf.TrajstoreCallback",
            {"transformers": transformers.__version__},
            gradient_accumulation_steps=int(args.gradient_accumulation_steps),
            max_grad_norm=float(args.max_grad_norm),
            precision="fp16" if args.fp16 else ("bf16" if args.bf16 else "fp32"),
        )
        self._capture = ExitStack()
        self._capture.enter_context(capture_backward_losses(rec, _trainer_loss_unit))

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.recorder is not None and getattr(self._wrapper, "step_was_skipped", False):
            self.recorder.mark_skipped(self._optimizer)  # GradScaler found inf/NaN gradients

    def on_log(self, args, state, control, logs=None, **kwargs):
        rec = self.recorder
        if rec is None or not logs or "grad_norm" not in logs or logs.get("grad_norm") is None:
            return
        rec.log("grad_norm", float(logs["grad_norm"]), step=rec.step, **GRAD_NORM_ATTRS)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.recorder is not None and metrics:
            log_validation(self.recorder, metrics, self.recorder.step)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """Stop observing ``backward`` and close the store (idempotent)."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.close()
        rec, self.recorder = self.recorder, None
        if rec is not None:
            rec.close()

    def __enter__(self) -> TrajstoreCallback:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
