"""Running an unmodified training script under a :class:`Recorder` (``trajstore record``).

PyTorch's global optimizer step hooks tell us about every ``optimizer.step()`` (and let the
recorder observe a step's closure); the minibatch loss is the scalar on which ``backward()`` was
called (summed over calls between steps, divided by the AMP GradScaler's scale when it was
scaled); an AMP step that GradScaler skips is counted and logged as ``skipped``; the epoch is
the iteration count of the DataLoader whose batch came last before the step (a validation loader
iterated in the middle of an epoch does not change it). What a record is for each optimizer pattern
is the :class:`Recorder`'s business (docs/format.md 3.3).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import traceback
import weakref
from contextlib import ExitStack

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from trajstore.errors import RecordingError, TrajstoreError

from .discovery import discover_model, live_optimizers
from .errors import RecordingRefusedError
from .loss_capture import capture_backward_losses
from .loss_capture import patched as _patched
from .recorder import Recorder


class NoOptimizerStepError(TrajstoreError):
    """The script finished without calling ``optimizer.step()``."""


def _capture_hooks(rec: Recorder, stack: ExitStack) -> None:
    # Optimizers that existed before the script started are not the script's (in-process runs).
    before = weakref.WeakSet(live_optimizers())

    def bind(opt) -> None:
        """Bind at the script's first optimizer step (taken or skipped by GradScaler)."""
        optimizers = [o for o in live_optimizers() if o not in before or o is opt]
        named, buffers, model = discover_model(optimizers)
        rec._model = model
        rec._optimizers.extend(o for o in optimizers if o not in rec._optimizers)
        rec.bind(named, buffers)

    def pre(opt, args, kwargs):
        if not rec.bound:
            bind(opt)
        return rec.before_step(opt, args, kwargs)

    def post(opt, args, kwargs):
        _SIGNALS.in_hook = True
        try:
            rec.after_step(opt)
        finally:
            _SIGNALS.in_hook = False
        if _SIGNALS.pending is not None:  # a SIGTERM arrived while the step was being recorded
            signum, _SIGNALS.pending = _SIGNALS.pending, None
            raise SystemExit(128 + signum)

    for handle in (register_optimizer_step_pre_hook(pre), register_optimizer_step_post_hook(post)):
        stack.callback(handle.remove)

    stack.enter_context(capture_backward_losses(rec))

    rec.watch_grad_scaler(bind)  # an AMP step GradScaler skips counts as a skipped iteration

    counts: dict[int, int] = {}

    def loader_iter(original):
        def wrapped(self):
            counts[id(self)] = counts.get(id(self), 0) + 1
            it = original(self)
            try:  # the epoch is set by each batch this pass yields (below)
                it._trajstore_epoch = counts[id(self)] - 1
            except AttributeError:  # an iterator of its own that takes no attributes: set it now
                rec.set_epoch(counts[id(self)] - 1, auto=True)
            return it

        return wrapped

    def loader_next(original):
        # The epoch of a step is that of the loader whose batch came last: a validation loader
        # iterated mid-epoch would otherwise set the training steps after it to its own count.
        def wrapped(self):
            batch = original(self)
            epoch = getattr(self, "_trajstore_epoch", None)
            if epoch is not None:
                rec.set_epoch(epoch, auto=True)
            return batch

        return wrapped

    stack.enter_context(_patched(torch.utils.data.DataLoader, "__iter__", loader_iter))
    base_iter = torch.utils.data.dataloader._BaseDataLoaderIter
    stack.enter_context(_patched(base_iter, "__next__", loader_next))

    def destroy(original):
        def wrapped(*args, **kwargs):
            if rec.sharded:  # a sharded recording needs its ranks until the store is closed
                rec.close()
            return original(*args, **kwargs)

        return wrapped

    if torch.distributed.is_available():
        stack.enter_context(_patched(torch.distributed, "destroy_process_group", destroy))


class _SignalState:
    in_hook = False
    pending: int | None = None


_SIGNALS = _SignalState()


def _raise_on_sigterm(signum, frame):
    """SIGTERM ends the script like an exception, but never half-way through recording a step."""
    if _SIGNALS.in_hook:
        _SIGNALS.pending = signum
        return
    raise SystemExit(128 + signum)


def run_script(script: str, args: list[str], recorder: Recorder) -> int:
    """Run ``script`` as ``__main__`` with ``args``, recording its training; return its exit status.

    The store is closed validly however the script ends (normally, ``sys.exit``, an exception,
    Ctrl-C or SIGTERM). Raises :class:`NoOptimizerStepError` when nothing was recorded, and
    :class:`RecordingError` (one line: what happened, how many records are safe) when the store
    could not be created or written; training stops at the first step after a failed write.
    """
    script = os.path.abspath(script)
    old_argv, old_path = sys.argv, list(sys.path)
    old_term = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(script))
    code: int = 0
    try:
        with ExitStack() as stack:
            _capture_hooks(recorder, stack)
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except RecordingRefusedError as exc:
                recorder.refused = exc  # the store says why it ends here (when it closes, below)
                raise  # trajstore's own refusal: one line from the CLI, not the script's traceback
            except RecordingError:
                code = 1  # a write failure: said in one line when the recorder closes, below
            except KeyboardInterrupt:
                code = 130
                print("interrupted: the store was closed with every record so far", file=sys.stderr)
            except BaseException:  # the script's own error: show it as python would
                traceback.print_exc()
                code = 1
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
        signal.signal(signal.SIGTERM, old_term)
        recorder.close()
    if not recorder.bound and recorder.enabled:
        raise NoOptimizerStepError(
            f"{os.path.basename(script)} ended (exit status {code}) without calling optimizer.step(); "
            "nothing was recorded"
        )
    return code
