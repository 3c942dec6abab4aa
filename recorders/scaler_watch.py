"""Counting the optimizer steps that AMP's GradScaler skips.

``GradScaler.step(optimizer)`` does not call ``optimizer.step()`` when the unscaled gradients
hold inf or NaN, so no step hook fires: the recorder would never hear of the iteration, number
the following ones one too low, and sum the skipped iteration's loss into the next one. While
watched, a ``GradScaler.step`` that ran no attached optimizer step is reported to the recorder
as skipped (:meth:`Recorder.mark_skipped <trajstore.recorders.Recorder.mark_skipped>`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class ScalerWatch:
    """``torch.amp.GradScaler.step`` wrapped for one recorder; :meth:`remove` restores it."""

    def __init__(self, rec: Any, bind: Callable[[torch.optim.Optimizer], None] | None = None):
        """``bind(optimizer)``: binds ``rec`` when a skipped step comes before its first step
        (``trajstore record`` binds at the first step hook, which a skipped step never reaches)."""
        self._cls = getattr(torch.amp, "GradScaler", None)
        self._original = None
        if self._cls is None:
            return
        original = self._original = self._cls.step

        def step(scaler, optimizer, *args, **kwargs):
            begun = rec.steps_begun
            result = original(scaler, optimizer, *args, **kwargs)
            if rec.steps_begun == begun and not rec.closed:
                if not rec.bound and bind is not None:
                    bind(optimizer)
                if rec.bound and any(o is optimizer for o in rec.optimizers):
                    rec.mark_skipped(optimizer)
            return result

        self._wrapper = step
        self._cls.step = step

    def remove(self) -> None:
        if self._original is not None and self._cls.step is self._wrapper:
            self._cls.step = self._original
        self._original = None
