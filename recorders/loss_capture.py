"""The minibatch loss of each step, seen where ``backward()`` is called on it.

Shared by ``trajstore record`` (:mod:`trajstore.recorders.runner`) and the Hugging Face
callback (:mod:`trajstore.recorders.hf`): while :func:`capture_backward_losses` is active, every
``backward()`` on a one-element tensor that requires grad hands that scalar to
:meth:`Recorder.log_loss <trajstore.recorders.Recorder.log_loss>` (summed between steps, so a
gradient-accumulation step's loss is the objective its update used), divided by the AMP
GradScaler's scale when the tensor came out of ``GradScaler.scale``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch


@contextmanager
def patched(owner, name: str, make):
    """``owner.name`` replaced by ``make(original)`` inside the block."""
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def capture_backward_losses(rec, unit_of: Callable[[torch.Tensor], str] | None = None) -> Iterator[None]:
    """Inside the block, ``backward()`` on a scalar logs it as the coming step's loss of ``rec``.
    ``unit_of(tensor)``: its unit (default: :func:`~trajstore.recorders.observables.loss_unit`)."""

    def backward(original):
        def wrapped(tensor, *args, **kwargs):
            if tensor.numel() == 1 and tensor.requires_grad:
                # unscaled by the GradScaler's scale in log_loss
                rec.log_loss(tensor, unit=unit_of(tensor) if unit_of is not None else None)
            return original(tensor, *args, **kwargs)

        return wrapped

    with ExitStack() as stack:
        stack.enter_context(patched(torch.Tensor, "backward", backward))
        scaler_cls = getattr(torch.amp, "GradScaler", None)
        if scaler_cls is not None:

            def scale(original):
                def wrapped(self, outputs):
                    out = original(self, outputs)
                    if isinstance(out, torch.Tensor) and self.is_enabled():
                        # The scale as a copied device tensor: get_scale() would synchronise with
                        # the GPU at every step, and update() later changes the scaler's tensor in place.
                        own = getattr(self, "_scale", None)
                        if isinstance(own, torch.Tensor):
                            out._trajstore_scale = own.detach().reshape(()).clone()
                        else:
                            out._trajstore_scale = self.get_scale()
                    return out

                return wrapped

            stack.enter_context(patched(scaler_cls, "scale", scale))
        yield
