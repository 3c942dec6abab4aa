"""How a store's records are spaced in optimizer steps, and why they are not equally spaced.

A record gap can come from a schedule (``log:N``, ranges), from a resume with another stride, or
from training iterations that AMP's GradScaler skipped (in stores of recorders before 1.2's rule,
docs/format.md 3.3, such an iteration has no weights record; since, it is recorded unchanged).
The analysis notes and ``trajstore info`` name which, with the steps, rather than guess.
"""

from __future__ import annotations

import numpy as np

_SHOWN = 3  # gaps named in a note


def describe_uneven_spacing(steps: np.ndarray, skipped: np.ndarray | None = None) -> str:
    """One phrase on how ``steps`` (int, increasing; the records' optimizer steps) depart from
    their most common stride, e.g. ``"every 10 steps but for 1 gap (40 → 60: the update of step
    50 was skipped by AMP's GradScaler, the skipped observable)"``. ``skipped``: the steps of
    the ``skipped`` observable, if the store has one."""
    steps = np.asarray(steps, dtype=np.int64)
    d = np.diff(steps)
    if len(d) == 0:
        return "a single record"
    changed = _one_change_of_stride(steps, d)
    if changed:
        return changed
    values, counts = np.unique(d, return_counts=True)
    stride = int(values[np.argmax(counts)])
    odd = np.flatnonzero(d != stride)
    if len(odd) == 0:
        return _every(stride)
    changes = [i for i in odd if i + 1 < len(d) and d[i + 1] == d[i] != stride]
    if changes and np.all(d[changes[0] :] == d[changes[0]]):  # one change of stride, kept to the end
        i = changes[0]
        before = int(d[i - 1]) if i else stride
        return f"{_every(before)}, then {_every(int(d[i]))} from step {int(steps[i])}"
    if len(odd) > max(1, len(d) // 4):  # no stride holds: a schedule
        shown = ", ".join(str(int(s)) for s in steps[:8])
        return f"at varying gaps (steps {shown}, …; a log or ranged schedule)"
    skipped_set = set(int(s) for s in (skipped if skipped is not None else []))
    parts = []
    for i in odd[:_SHOWN]:
        a, b = int(steps[i]), int(steps[i + 1])
        missing = [s for s in range(a + stride, b, stride)] if b > a + stride else []
        why = ""
        if missing and all(s in skipped_set for s in missing):
            listed = ", ".join(str(s) for s in missing[:_SHOWN]) + (", …" if len(missing) > _SHOWN else "")
            why = f": AMP's GradScaler skipped the update of step {listed}, see the skipped observable"
        parts.append(f"{a} → {b}{why}")
    more = f", and {len(odd) - _SHOWN} more" if len(odd) > _SHOWN else ""
    gaps = f"{len(odd)} gap" + ("s" if len(odd) != 1 else "")
    return f"{_every(stride)} but for {gaps} ({'; '.join(parts)}{more})"


def _one_change_of_stride(steps: np.ndarray, d: np.ndarray) -> str | None:
    """``"every step, then every 10 steps from step 5"`` when the gaps ``d`` are one stride and
    then another (each for at least 2 gaps), with at most one gap of a third length between
    them (a stride changed on resume, or after a warm-up recorded every step); else None.
    Whichever stride holds more records: before, a short first stretch of every step was called
    gaps of a stride of 10, or a log schedule."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(d) != 0) + 1])
    lengths = np.diff(np.concatenate([starts, [len(d)]]))
    if len(starts) == 2 and min(lengths) >= 2:
        i = int(starts[1])
        return f"{_every(int(d[0]))}, then {_every(int(d[i]))} from step {int(steps[i])}"
    if len(starts) == 3 and lengths[1] == 1 and min(lengths[0], lengths[2]) >= 2 and d[0] != d[-1]:
        i = int(starts[1])
        first, then = _every(int(d[0])), _every(int(d[-1]))
        return f"{first} to step {int(steps[i])}, then {then} from step {int(steps[i + 1])}"
    return None


def _every(stride: int) -> str:
    return "every step" if stride == 1 else f"every {stride} steps"


def record_spacing(steps: np.ndarray, segments: list[slice], skipped: np.ndarray | None = None) -> list[dict]:
    """Per segment (record ranges, ``Trajectory.segments``): ``records`` [first, stop),
    ``steps`` [first, last], ``stride`` (the steps between records when all are equal, else
    None) and ``text``, :func:`describe_uneven_spacing`'s phrase (``"every 10 steps"``)."""
    steps = np.asarray(steps, dtype=np.int64)
    out = []
    for sl in segments:
        s = steps[sl]
        if len(s) == 0:
            continue
        d = np.diff(s)
        stride = int(d[0]) if len(d) and np.all(d == d[0]) else None
        out.append(
            {
                "records": [int(sl.start), int(sl.stop)],
                "steps": [int(s[0]), int(s[-1])],
                "stride": stride,
                "text": describe_uneven_spacing(s, skipped),
            }
        )
    return out
