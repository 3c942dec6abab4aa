"""``extract``: a smaller store derived from another, to share part of a run.

A selection of optimizer steps (``START:STOP[:STRIDE]``) and of tensors (glob patterns), and
optionally a lossy BitRound, written as a new store whose ``derived_from`` names its source and
the selection.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import spec
from .convert import copy_observable, derived_from
from .errors import TrajstoreError
from .layout import Layout, TensorSpec
from .lossy import bitround
from .reader import LazyArray
from .reader import open as open_store
from .writer import create

_BLOCK_BYTES = 64 * 1024 * 1024


class SelectionError(TrajstoreError, ValueError):
    """A step range or tensor pattern is malformed or selects nothing."""


@dataclass(frozen=True)
class StepRange:
    """Optimizer steps ``start <= s < stop`` with ``(s - start) % stride == 0``."""

    start: int = 0
    stop: int | None = None
    stride: int = 1

    @classmethod
    def parse(cls, text: str) -> StepRange:
        """``"START:STOP[:STRIDE]"``; START and STOP may be empty (``":5000"``, ``"1000:"``)."""
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise SelectionError(f"steps {text!r}: write START:STOP or START:STOP:STRIDE, e.g. 0:5000:10")
        try:
            start = int(parts[0]) if parts[0] else 0
            stop = int(parts[1]) if parts[1] else None
            stride = int(parts[2]) if len(parts) == 3 and parts[2] else 1
        except ValueError:
            raise SelectionError(f"steps {text!r}: START, STOP and STRIDE must be integers") from None
        if start < 0 or stride < 1 or (stop is not None and stop <= start):
            raise SelectionError(f"steps {text!r}: need 0 <= START < STOP and STRIDE >= 1")
        return cls(start, stop, stride)

    def mask(self, steps: np.ndarray) -> np.ndarray:
        keep = steps >= self.start
        if self.stop is not None:
            keep &= steps < self.stop
        return keep & ((steps - self.start) % self.stride == 0)

    def __str__(self) -> str:
        return f"{self.start}:{'' if self.stop is None else self.stop}:{self.stride}"


def select_tensors(
    layout: Layout, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[TensorSpec]:
    """Tensors whose names match any ``include`` glob (all when none) and no ``exclude`` glob."""
    chosen = [
        t
        for t in layout
        if (not include or any(fnmatch.fnmatchcase(t.name, p) for p in include))
        and not any(fnmatch.fnmatchcase(t.name, p) for p in exclude)
    ]
    if not chosen:
        raise SelectionError(
            f"the tensor patterns {list(include) or ['*']} (excluding {list(exclude)}) match no tensor; "
            f"tensors: {', '.join(layout.names[:8])}{' ...' if len(layout) > 8 else ''}"
        )
    return chosen


def _sub_layout(tensors: list[TensorSpec]) -> Layout:
    out, offset = [], 0
    for t in tensors:
        out.append(TensorSpec(t.name, t.shape, t.dtype, offset))
        offset += t.size
    return Layout(out)


def _columns(tensors: list[TensorSpec]) -> np.ndarray:
    return np.concatenate([np.arange(t.offset, t.stop) for t in tensors])


def extract(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    steps: StepRange | str | None = None,
    tensors: Sequence[str] = (),
    exclude: Sequence[str] = (),
    keepbits: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Write ``out`` with the selected records and tensors of ``src``; return the selection.

    Weights, gradients and buffers keep the records whose step is selected (the tensor patterns
    apply to the buffers' layout too); observables keep every value in ``[start, stop)``.
    """
    src, out = os.fspath(src), os.fspath(out)
    rng = StepRange.parse(steps) if isinstance(steps, str) else (steps or StepRange())
    with open_store(src) as traj:
        chosen = select_tensors(traj.layout, tensors, exclude)
        selection = {
            "steps": str(rng),
            "tensors": list(tensors) or ["*"],
            "exclude": list(exclude),
            "keepbits": keepbits,
        }
        buffers = traj.buffers
        buffer_tensors = [t for t in buffers.layout if _matches(t.name, tensors, exclude)] if buffers else []
        if not rng.mask(traj.steps).any():
            raise SelectionError(f"steps {rng} select none of the {traj.n_records} records of {src}")
        w = create(
            out,
            _sub_layout(chosen),
            mode="w" if overwrite else "x",
            buffers=_sub_layout(buffer_tensors) if buffer_tensors else None,
            keepbits=keepbits,
        )
        try:
            kept = (spec.ATTR_PROVENANCE, spec.ATTR_METADATA, spec.ATTR_DATASET)
            root = {k: v for k, v in traj.attrs.items() if k in kept}
            root[spec.ATTR_DERIVED_FROM] = derived_from(src, traj, "extract", **selection)
            root[spec.ATTR_LOSSY] = _lossy(traj.lossy, keepbits)
            modules = traj.attrs.get(spec.ATTR_TENSOR_MODULES)
            if isinstance(modules, list) and len(modules) == len(traj.layout):  # (1.2) the kept tensors'
                index = {t.name: i for i, t in enumerate(traj.layout)}
                root[spec.ATTR_TENSOR_MODULES] = [modules[index[t.name]] for t in chosen]
            w._backend.set_attrs("", root)
            groups = [(spec.WEIGHTS, traj.steps, traj.times, traj.weights, chosen)]
            if traj.gradients is not None:
                g = traj.gradients
                groups.append((spec.GRADIENTS, g.steps, g.times, g.values, chosen))
            if buffer_tensors:
                groups.append((spec.BUFFERS, buffers.steps, buffers.times, buffers.values, buffer_tensors))
            for name, gsteps, times, values, picked in groups:
                layout = _sub_layout(picked)
                series = w._vector_series(name, layout)
                _copy_rows(
                    w, name, series, values, gsteps, times, rng.mask(gsteps), _columns(picked), keepbits
                )
            in_range = StepRange(rng.start, rng.stop, 1)
            for name in traj.observables:
                copy_observable(w, traj, name, keep=in_range.mask(traj.observable(name)[0]))
        finally:
            w.close()
    return selection


def _lossy(source: dict | None, keepbits: int | None) -> dict | None:
    """The ``lossy`` attribute of the result: a lossy source stays lossy (the coarser rounding wins)."""
    if keepbits is None:
        return source
    bits = min(int(keepbits), int(source["keepbits"])) if source else int(keepbits)
    return {"method": "bitround", "keepbits": bits, "groups": list(spec.VECTOR_GROUPS)}


def _matches(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    return (not include or any(fnmatch.fnmatchcase(name, p) for p in include)) and not any(
        fnmatch.fnmatchcase(name, p) for p in exclude
    )


def _copy_rows(
    w, name, series, values: LazyArray, steps, times, keep: np.ndarray, cols: np.ndarray, keepbits: int | None
) -> None:
    """Append the kept records' selected columns, reading contiguous record blocks."""
    rows = np.flatnonzero(keep)
    if not len(rows):
        return
    lo_col, hi_col = int(cols.min()), int(cols.max()) + 1
    per = max(1, _BLOCK_BYTES // max(1, (hi_col - lo_col) * values.dtype.itemsize))
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        block = values[int(chunk[0]) : int(chunk[-1]) + 1, lo_col:hi_col]
        picked = block[chunk - chunk[0]][:, cols - lo_col]
        if keepbits is not None:
            picked = bitround(np.array(picked, dtype=np.float32), keepbits)
        for r, row in zip(chunk, picked, strict=True):
            t = float(times[r]) if times is not None else math.nan
            w._commit_if(series.append(int(steps[r]), row, t), name)
