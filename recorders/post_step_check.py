"""Seeing code that changes the weights between one iteration's end and the next one's start.

A record is taken when the iteration's last ``optimizer.step()`` returns. Code that runs after
it and changes the weights (WGAN weight clipping, a projection onto a constraint set, a pruning
mask, a hand-written weight decay, a checkpoint loaded after the recorder attached) makes
records differ from the weights training continues from: plausible, and wrong. On some
iterations (the first ``FIRST``, then one in ``EVERY`` on average, at random so that a change
every k iterations cannot stay between the checks) the weights are copied when the iteration
ends and compared, bit for bit, with the weights when the next iteration's first step begins;
a difference refuses the recording with :class:`WeightsChangedAfterStepError`, which names
``record_at="next_step"``: records taken when the next iteration begins hold those weights.
"""

from __future__ import annotations

import math
import random

import torch

from .errors import WeightsChangedAfterStepError

MAX_VALUES = 1 << 20  # past this, each check compares one of ``stride`` interleaved subsets (4 MiB)
FIRST = 4  # iterations 0..FIRST-1 are all checked: code that runs after every step shows at once
EVERY = 32  # then one iteration in EVERY, at random: two copies and one comparison (docs/api.md)


class PostStepCheck:
    """Compares the weights at an iteration's end with those at the next iteration's start.

    ``sizes``: values of each recorded tensor; the methods take them as 1-D views (``flat``,
    ``ParameterWatch.flat``). Past ``MAX_VALUES`` values in all, check ``c`` compares every
    ``stride``-th value of each tensor from offset ``c % stride``, so a change of any value on
    every iteration is seen within ``stride`` checks. On a GPU the comparison stays on the
    device and is read at the next :meth:`settle` (the next iteration's end, or at close), so
    the check never waits for the device."""

    def __init__(
        self, sizes: list[int], device: torch.device, every: int = EVERY, first: int = FIRST, seed: int = 0
    ):
        self.every, self.first = every, first
        self.stride = max(1, math.ceil(sum(sizes) / MAX_VALUES))
        n = sum(math.ceil(s / self.stride) for s in sizes)
        self._then = torch.empty(n, dtype=torch.float32, device=device)
        self._now = torch.empty(n, dtype=torch.float32, device=device)
        self._iteration: int | None = None  # whose end ``_then`` holds
        self._pending: tuple[int, torch.Tensor | bool] | None = None  # (iteration, differs) unread
        self._immediate = device.type != "cuda"
        self._ends = 0  # iteration ends seen since the recorder bound (a resumed run starts anew)
        self._checks = 0  # comparisons made: the subset of a large model that the next one takes
        self._random = random.Random(seed)
        self.last_passed: int | None = None  # the last iteration whose check found no change

    def _due(self) -> bool:
        return self._ends < self.first or self._random.random() * self.every < 1.0

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
            self._copy(flat, self._then)
        self._iteration = iteration

    def at_start(self, flat: list[torch.Tensor]) -> None:
        """The next iteration's first step begins: compare its weights with those kept."""
        if self._iteration is None:
            return
        iteration, self._iteration = self._iteration, None
        with torch.no_grad():
            m = self._copy(flat, self._now)
            # Bit for bit (NaN equals NaN): a record is a copy, so any difference is a change.
            then, now = self._then[:m].view(torch.int32), self._now[:m].view(torch.int32)
            # on the CPU torch.equal (no temporary, stops at the first difference: 3x faster)
            differs = not torch.equal(then, now) if self._immediate else (then != now).any()
        self._checks += 1
        self._pending = (iteration, differs)
        if self._immediate:
            self.settle()

    def _copy(self, flat: list[torch.Tensor], out: torch.Tensor) -> int:
        """Copy this check's subset of ``flat`` (as float32) into ``out``; return its length."""
        s, o = self.stride, self._checks % self.stride
        picked = flat if s == 1 else [f[o::s] for f in flat]
        picked = [f if f.dtype == torch.float32 else f.float() for f in picked]
        m = sum(f.numel() for f in picked)
        torch.cat(picked, out=out[:m])
        return m

    def settle(self) -> None:
        """Read a comparison left on the device; raise if the weights had changed."""
        if self._pending is None:
            return
        (iteration, differs), self._pending = self._pending, None
        if not bool(differs):
            self.last_passed = iteration
            return
        if iteration == 0:
            raise WeightsChangedAfterStepError(
                "the weights changed after the recorder took the initial record (step 0) and before "
                "the first optimizer step (weights loaded or initialised after the recorder attached?), "
                "so step 0 is not where training starts; attach the recorder once the weights are "
                "final, or record with --record-at next-step (Recorder(record_at='next_step'))"
            )
        since = (
            f"; records after iteration {self.last_passed} (the last check that found none) may hold "
            "weights training did not continue from"
            if self.last_passed is not None and self.last_passed < iteration - 1
            else ""
        )
        raise WeightsChangedAfterStepError(
            f"the weights changed after the last optimizer.step() of iteration {iteration} returned and "
            f"before iteration {iteration + 1} began (code after step() such as weight clipping, a "
            "projection, a mask or a loaded checkpoint), so records taken when step() returns are not "
            f"the weights training continues from{since}; record with --record-at next-step "
            "(Recorder(record_at='next_step')), which takes each record when the next iteration begins"
        )
