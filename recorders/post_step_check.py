"""Seeing code that changes the weights between one iteration's end and the next one's start.

A record is taken when the iteration's last ``optimizer.step()`` returns. Code that runs after
it and changes the weights (WGAN weight clipping, a projection onto a constraint set, a pruning
mask, a hand-written weight decay, a checkpoint loaded after the recorder attached) makes every
record differ from the weights training continues from: plausible, and wrong. On some
iterations (the first few, then every ``EVERY``-th) the weights are copied when the record is
taken and compared, bit for bit, with the weights when the next iteration's first step begins;
a difference refuses the recording with :class:`WeightsChangedAfterStepError`, which names
``record_at="next_step"``: records taken when the next iteration begins hold those weights.
"""

from __future__ import annotations

import math

import torch

from .errors import WeightsChangedAfterStepError

MAX_VALUES = 1 << 20  # a larger model is compared on every stride-th value of each tensor (4 MiB)
FIRST = 4  # iterations 0..FIRST-1 are all checked: code that runs after every step shows at once
EVERY = 32  # then every EVERY-th: two copies of the weights and one comparison (see docs/api.md)


class PostStepCheck:
    """Compares the weights at an iteration's end with those at the next iteration's start.

    ``sizes``: values of each recorded tensor; the methods take them as 1-D views (``flat``,
    ``ParameterWatch.flat``). Past ``MAX_VALUES`` values in all, every ``stride``-th value of
    each tensor is compared. On a GPU the comparison stays on the device and is read at the
    next :meth:`settle` (the next iteration's end, or at close), so the check never waits for
    the device."""

    def __init__(self, sizes: list[int], device: torch.device, every: int = EVERY, first: int = FIRST):
        self.every, self.first = every, first
        self.stride = max(1, math.ceil(sum(sizes) / MAX_VALUES))
        n = sum(math.ceil(s / self.stride) for s in sizes)
        self._then = torch.empty(n, dtype=torch.float32, device=device)
        self._now = torch.empty(n, dtype=torch.float32, device=device)
        self._iteration: int | None = None  # whose end ``_then`` holds
        self._pending: tuple[int, torch.Tensor] | None = None  # (iteration, differs) not yet read
        self._immediate = device.type != "cuda"
        self._ends = 0  # iteration ends seen since the recorder bound (a resumed run starts anew)

    def _due(self) -> bool:
        k = self._ends
        return k < self.first or k % self.every == 0

    @property
    def armed(self) -> bool:
        """Weights of an iteration's end are kept: the next iteration's start is compared."""
        return self._iteration is not None

    def at_end(self, iteration: int, flat: list[torch.Tensor]) -> None:
        """The iteration ``iteration`` ended and its record was taken: keep its weights if due."""
        self.settle()
        self._iteration = None
        due, self._ends = self._due(), self._ends + 1
        if not due or self._then.numel() == 0:
            return
        with torch.no_grad():
            torch.cat(self._values(flat), out=self._then)
        self._iteration = iteration

    def at_start(self, flat: list[torch.Tensor]) -> None:
        """The next iteration's first step begins: compare its weights with those kept."""
        if self._iteration is None:
            return
        iteration, self._iteration = self._iteration, None
        with torch.no_grad():
            torch.cat(self._values(flat), out=self._now)
            # Bit for bit (NaN equals NaN): a record is a copy, so any difference is a change.
            then, now = self._then.view(torch.int32), self._now.view(torch.int32)
            # on the CPU torch.equal (no temporary, stops at the first difference: 3x faster)
            differs = not torch.equal(then, now) if self._immediate else (then != now).any()
        self._pending = (iteration, differs)
        if self._immediate:
            self.settle()

    def _values(self, flat: list[torch.Tensor]) -> list[torch.Tensor]:
        s = self.stride
        picked = flat if s == 1 else [f[::s] for f in flat]
        return [f if f.dtype == torch.float32 else f.float() for f in picked]

    def settle(self) -> None:
        """Read a comparison left on the device; raise if the weights had changed."""
        if self._pending is None:
            return
        (iteration, differs), self._pending = self._pending, None
        if bool(differs) and iteration == 0:
            raise WeightsChangedAfterStepError(
                "the weights changed after the recorder took the initial record (step 0) and before "
                "the first optimizer step (weights loaded or initialised after the recorder attached?), "
                "so step 0 is not where training starts; attach the recorder once the weights are "
                "final, or record with --record-at next-step (Recorder(record_at='next_step'))"
            )
        if bool(differs):
            raise WeightsChangedAfterStepError(
                f"the weights changed after optimizer.step() of iteration {iteration} returned and "
                f"before iteration {iteration + 1} began (code after step() such as weight clipping, "
                "a projection, a mask or a loaded checkpoint), so records taken when step() returns "
                "are not the weights training continues from; record with --record-at next-step "
                "(Recorder(record_at='next_step')), which takes each record when the next "
                "iteration begins"
            )
