"""What the framework callbacks (:mod:`~trajstore.recorders.lightning`, :mod:`~trajstore.recorders.hf`)
share: the recorder they start and its provenance, validation metric names, the gradient norm.
No framework import.

Observables the callbacks add to those of ``trajstore record`` (docs/format.md 3.2, 3.6):
``grad_norm`` (``grad_norm.<optimizer>`` with several optimizers), ``val_loss``,
``val_accuracy`` and ``val_<metric>`` for the framework's other validation metrics.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from trajstore import live, spec

from .errors import UnsupportedPatternError
from .observables import _NATS_NODES
from .recorder import Recorder

# Validation metric prefixes as frameworks and users write them (Lightning: the user's own
# `self.log` name; transformers: `eval_`); the stored name is `val_<rest>`.
_VALIDATION_PREFIXES = ("validation_", "validation/", "valid_", "valid/", "val_", "val/", "eval_", "eval/")
# transformers' timing figures of an evaluation: not measurements of the model.
_NOT_METRICS = frozenset(
    {"runtime", "samples_per_second", "steps_per_second", "epoch", "model_preparation_time"}
)
_ACCURACY = frozenset({"acc", "accuracy"})


def start_recorder(
    framework: str,
    path: str | os.PathLike,
    module: torch.nn.Module,
    named: tuple[list, list],
    optimizers: list[tuple[torch.optim.Optimizer, str]],
    options: Mapping[str, Any],
) -> Recorder:
    """A bound :class:`Recorder` for ``module`` with every optimizer attached (before binding,
    so the step-0 trainable mask already knows all of them). ``named``: (parameters, buffers)
    under the naming rule. Refuses (one line) when another recorder already records here."""
    if live._sinks:
        raise UnsupportedPatternError(
            f"another trajstore recorder (trajstore record, or a Recorder) is already recording this "
            f"process; use either it or the {framework} callback, not both: two recorders would count "
            "each step twice"
        )
    if not optimizers:
        raise UnsupportedPatternError(
            f"the {framework} run has no optimizer when training starts: nothing to record"
        )
    rec = Recorder(None, path, **dict(options))
    rec._watch_scaler = False  # the callbacks mark GradScaler's skipped steps themselves
    try:
        for opt, name in optimizers:
            rec.attach(opt, name=name)
        rec._model = module  # for provenance (model class and repr), as trajstore record does
        rec.bind(*named)
    except BaseException:
        with contextlib.suppress(Exception):
            rec.close()  # unregisters it: a later callback in this process may record
        raise
    return rec


def record_provenance(rec: Recorder, recorded_by: str, versions: Mapping[str, str], **settings: Any) -> None:
    """Queue the callback's provenance for the store of ``rec`` (a no-op unless bound): torch and
    CUDA versions plus the framework's ``versions``, the callback ``recorded_by``, the
    framework's training ``settings`` (accumulation, clipping, precision)."""
    if not rec.bound:
        return
    framework = {"torch": torch.__version__, "cuda": torch.version.cuda, **versions}
    write = rec._writer.set_provenance
    rec._submit(functools.partial(write, framework=framework, recorded_by=recorded_by, **settings))


def framework_loss_unit(loss: torch.Tensor, scaled: bool, divisions: int) -> str:
    """``nats`` when the model's loss is a cross-entropy / NLL, seen through the framework's own
    operations on it: the AMP scaler's multiplication (``scaled``), then up to ``divisions``
    divisions by the number of accumulated micro-batches (Lightning's automatic optimization
    divides once; the transformers Trainer and accelerate once each; by 1 too)."""
    node = getattr(loss, "grad_fn", None)
    kinds = (["MulBackward0"] if scaled else []) + ["DivBackward0"] * divisions
    for kind in kinds:
        if node is None or type(node).__name__ != kind or not node.next_functions:
            break
        node = node.next_functions[0][0]
    return "nats" if node is not None and type(node).__name__ in _NATS_NODES else ""


def optimizer_names(count: int, given: Iterable[str] | None) -> list[str]:
    """``given`` (checked: one unique name per optimizer, no '/' or '.'), else ``opt<i>``."""
    if given is None:
        return [f"opt{i}" for i in range(count)]
    names = [str(n) for n in given]
    if len(names) != count or len(set(names)) != count or any(not n or "/" in n or "." in n for n in names):
        raise ValueError(
            f"optimizer_names must give {count} unique, non-empty names without '/' or '.', got {names}"
        )
    return names


def validation_name(key: str) -> str | None:
    """The observable for a framework's validation metric ``key`` (``val_loss``, ``val/acc``,
    ``eval_accuracy`` -> ``val_loss``, ``val_accuracy``, ``val_accuracy``), or None when ``key``
    is not a validation metric."""
    low = key.lower()
    for prefix in _VALIDATION_PREFIXES:
        if low.startswith(prefix) and len(low) > len(prefix):
            rest = low[len(prefix) :].replace("/", "_").replace(".", "_")
            if rest in _NOT_METRICS:
                return None
            return "val_" + ("accuracy" if rest in _ACCURACY else rest)
    return None


def validation_attrs(name: str) -> dict:
    """Units only where known: an accuracy is a fraction; a validation loss's function is the
    user's (an MSE is not in nats), so its unit stays unknown."""
    attrs = {"evaluated_at": spec.POST_STEP, "description": "validation metric reported by the framework"}
    if name == "val_accuracy":
        attrs["unit"] = "1"
    return attrs


def log_validation(rec: Recorder, metrics: Mapping[str, Any], step: int) -> list[str]:
    """Log every scalar validation metric of ``metrics`` at ``step``; returns the names logged."""
    logged = []
    for key, value in metrics.items():
        name = validation_name(str(key))
        if name is None or name in logged:
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.detach().reshape(())
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        rec.log(name, value, step=step, **validation_attrs(name))
        logged.append(name)
    return logged


def gradient_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
    """Euclidean norm (float64, on the device: no synchronisation) of the gradients of the
    parameters ``optimizer`` holds, or None when none has a gradient."""
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return None
    norms = torch.stack([torch.linalg.vector_norm(g.detach(), dtype=torch.float64) for g in grads])
    return torch.linalg.vector_norm(norms)


def grad_norm_name(optimizer: str, several: bool) -> str:
    return f"grad_norm.{optimizer}" if several else "grad_norm"


GRAD_NORM_ATTRS = {
    "unit": "1",
    "evaluated_at": spec.PRE_STEP,
    "description": "Euclidean norm of the gradient of the step before clipping (unscaled under AMP)",
}
