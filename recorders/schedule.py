"""Which optimizer steps are recorded.

Textual forms (``--schedule``): ``every:K``, ``log:N`` (N steps per decade, log-spaced),
``ranges:START:STOP:STRIDE,...`` (STOP may be empty for "to the end"), e.g.
``ranges:0:10000:1,10000::10`` records every step for the first 10^4 steps, then every 10th.
Step 0 (the initial weights) is always recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class Schedule:
    """Decides whether the weights after optimizer step ``step`` (1-based) are recorded."""

    def selects(self, step: int) -> bool:
        raise NotImplementedError

    def spec(self) -> str | None:
        """The textual form (``every:10``) that :func:`parse_schedule` reads, None for a
        schedule of one's own (kept in the store's provenance as ``schedule``)."""
        return None

    def steps_up_to(self, last: int) -> list[int]:
        """All selected steps in 0..last (for tests and planning)."""
        return [s for s in range(last + 1) if s == 0 or self.selects(s)]


@dataclass(frozen=True)
class Every(Schedule):
    k: int = 1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"every: the stride must be a positive integer, got {self.k}")

    def selects(self, step: int) -> bool:
        return step % self.k == 0

    def spec(self) -> str:
        return f"every:{self.k}"


@dataclass(frozen=True)
class LogSpaced(Schedule):
    """Steps round(10^(i/per_decade)) for i = 0, 1, ..., without repeats."""

    per_decade: int = 10

    def __post_init__(self) -> None:
        if self.per_decade < 1:
            raise ValueError(f"log: steps per decade must be a positive integer, got {self.per_decade}")

    def selects(self, step: int) -> bool:
        if step < 1:
            return step == 0
        i = self.per_decade * math.log10(step)
        return any(round(10 ** (j / self.per_decade)) == step for j in (math.floor(i), math.ceil(i)))

    def spec(self) -> str:
        return f"log:{self.per_decade}"


@dataclass(frozen=True)
class Ranges(Schedule):
    """Union of ``(start, stop, stride)`` ranges; ``stop`` None means unbounded."""

    ranges: tuple[tuple[int, int | None, int], ...]

    def __post_init__(self) -> None:
        for start, stop, stride in self.ranges:
            if start < 0 or stride < 1 or (stop is not None and stop <= start):
                raise ValueError(f"ranges: bad range {start}:{'' if stop is None else stop}:{stride}")

    def selects(self, step: int) -> bool:
        return any(
            step >= start and (stop is None or step < stop) and (step - start) % stride == 0
            for start, stop, stride in self.ranges
        )

    def spec(self) -> str:
        return "ranges:" + ",".join(
            f"{start}:{'' if stop is None else stop}:{stride}" for start, stop, stride in self.ranges
        )


def parse_schedule(text: str) -> Schedule:
    """Parse ``every:K``, ``log:N`` or ``ranges:A:B:S,...``; raise ValueError with the rule."""
    kind, _, rest = text.partition(":")
    try:
        if kind == "every":
            return Every(int(rest))
        if kind == "log":
            return LogSpaced(int(rest))
        if kind == "ranges":
            parts = []
            for piece in rest.split(","):
                start, stop, stride = piece.split(":")
                parts.append((int(start or 0), int(stop) if stop else None, int(stride or 1)))
            return Ranges(tuple(parts))
    except ValueError as exc:
        if "ranges:" in str(exc) or "every:" in str(exc) or "log:" in str(exc):
            raise
    raise ValueError(f"cannot read schedule {text!r}: use every:K, log:N or ranges:START:STOP:STRIDE[,...]")
