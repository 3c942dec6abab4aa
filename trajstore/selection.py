"""Part of a store seen as a whole one: a range of optimizer steps and a set of tensors.

``select(traj, steps="0:5000", tensors=["layer3.*"])`` returns a :class:`SelectedTrajectory`
with the attributes of a :class:`~trajstore.reader.Trajectory` that the analyses use, so
``analyze(select(...))`` analyses only that part; reads fetch only the selected columns (and,
for a contiguous range, only the selected records).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import spec
from .errors import InvalidStoreError
from .layout import Layout, TensorSpec
from .reader import DEFAULT_MEMORY_LIMIT, Block, Trajectory, VectorGroup, WeightsAccess, iter_blocks


@dataclass(frozen=True)
class StepRange:
    """Optimizer steps ``start <= step < stop`` with ``(step - start) % stride == 0``; None
    bounds are open. Written ``START:STOP[:STRIDE]`` (either bound may be empty)."""

    start: int | None = None
    stop: int | None = None
    stride: int = 1

    @classmethod
    def parse(cls, text: str) -> StepRange:
        parts = text.strip().split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--steps {text!r}: write START:STOP or START:STOP:STRIDE (e.g. 0:5000 or ::10)")
        try:
            start, stop, stride = (int(p) if p.strip() else None for p in (parts + [""])[:3])
        except ValueError:
            raise ValueError(f"--steps {text!r}: START, STOP and STRIDE must be whole numbers") from None
        if stride is not None and stride < 1:
            raise ValueError(f"--steps {text!r}: STRIDE must be at least 1")
        if start is not None and stop is not None and stop <= start:
            raise ValueError(f"--steps {text!r}: STOP must be greater than START")
        if start is not None and start < 0:
            raise ValueError(f"--steps {text!r}: START must not be negative")
        return cls(start, stop, stride or 1)

    def mask(self, steps: np.ndarray) -> np.ndarray:
        """(n,) bool: which of ``steps`` are selected."""
        ok = np.ones(len(steps), bool)
        if self.start is not None:
            ok &= steps >= self.start
        if self.stop is not None:
            ok &= steps < self.stop
        if self.stride > 1:
            ok &= (steps - (self.start or 0)) % self.stride == 0
        return ok

    def __str__(self) -> str:
        text = f"{'' if self.start is None else self.start}:{'' if self.stop is None else self.stop}"
        return text + (f":{self.stride}" if self.stride > 1 else "")


def trainable_table(traj: Trajectory, steps: np.ndarray) -> np.ndarray:
    """(len(steps), n_tensors) bool: whether each layout tensor was trainable at the records of
    ``steps``, from the store's ``trainable`` change points (docs/format.md 3.4: the mask of a
    record is that of the last change point at or before its step; none: all trainable)."""
    changes = traj.attrs.get(spec.ATTR_TRAINABLE) or []
    n_tensors = len(traj.layout)
    table = np.ones((len(steps), n_tensors), dtype=bool)
    if not changes:
        return table
    change_steps = np.array([int(c["step"]) for c in changes], dtype=np.int64)
    masks = [[bool(f) for f in c["trainable"]] for c in changes]
    if any(len(m) != n_tensors for m in masks):
        raise InvalidStoreError(
            f"{traj.path}: a 'trainable' change point does not have one entry per tensor ({n_tensors}); "
            "run 'trajstore validate'"
        )
    idx = np.searchsorted(change_steps, np.asarray(steps, dtype=np.int64), side="right") - 1
    table[idx >= 0] = np.array(masks, dtype=bool)[idx[idx >= 0]]
    return table


def not_always_trainable(traj: Trajectory, steps: np.ndarray) -> list[str]:
    """Names of the tensors that were frozen at some record of ``steps`` (layout order)."""
    always = trainable_table(traj, steps).all(axis=0)
    return [t.name for t, ok in zip(traj.layout, always, strict=True) if not ok]


@dataclass(frozen=True)
class Selection:
    """Which records (by optimizer step) and tensors (by glob on their names) to analyse, and
    whether tensors that were frozen at any selected record are left out (``trainable_only``,
    the default: a parameter is analysed only where it was trained at every analysed record)."""

    steps: StepRange | None = None
    tensors: tuple[str, ...] = ()  # fnmatch patterns; none = every tensor
    exclude: tuple[str, ...] = ()
    trainable_only: bool = True
    frozen: tuple[str, ...] = ()  # tensors frozen at some selected record (left out or included)

    @property
    def is_everything(self) -> bool:
        return (
            self.steps in (None, StepRange())
            and not self.tensors
            and not self.exclude
            and not (self.trainable_only and self.frozen)
        )

    def tensor_names(self, layout: Layout, path: str) -> list[str]:
        """Names of the selected tensors in layout order; an error when a pattern matches none or
        nothing is left (``trainable_only`` leaves out the tensors of ``frozen``)."""
        names = layout.names

        def matches(name: str, patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(name, p) for p in patterns)

        for pattern in (*self.tensors, *self.exclude):
            if not any(matches(n, (pattern,)) for n in names):
                shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
                raise ValueError(
                    f"{path}: the pattern {pattern!r} matches no tensor (tensors: {shown}; "
                    "trajstore info lists them all)"
                )
        chosen = [n for n in names if (not self.tensors or matches(n, self.tensors))]
        chosen = [n for n in chosen if not matches(n, self.exclude)]
        if not chosen:
            raise ValueError(f"{path}: --tensors/--exclude leave no tensor to analyse")
        if self.trainable_only:
            kept = [n for n in chosen if n not in self.frozen]
            if not kept:
                raise ValueError(
                    f"{path}: no selected tensor was trainable at every selected record (frozen at some: "
                    f"{', '.join(chosen[:5])}{', …' if len(chosen) > 5 else ''}); analyse the steps where "
                    "they trained with --steps, or include frozen ones with --all"
                )
            chosen = kept
        return chosen

    def to_dict(self) -> dict:
        return {
            "steps": None if self.steps is None else str(self.steps),
            "tensors": list(self.tensors),
            "exclude": list(self.exclude),
            "trainable_only": self.trainable_only,
            "frozen_tensors": list(self.frozen),
        }


def _column_ranges(layout: Layout, names: Sequence[str]) -> tuple[Layout, list[tuple[int, int]]]:
    """The selected tensors as a new contiguous layout, and the source column ranges they come
    from (adjacent tensors merged into one range)."""
    tensors, ranges, offset = [], [], 0
    for name in names:
        t = layout[name]
        tensors.append(TensorSpec(t.name, t.shape, t.dtype, offset))
        offset += t.size
        if ranges and ranges[-1][1] == t.offset:
            ranges[-1] = (ranges[-1][0], t.stop)
        else:
            ranges.append((t.offset, t.stop))
    return Layout(tensors), [r for r in ranges if r[1] > r[0]]


class SelectedArray:
    """A lazy (records, columns) view of ``base``: rows ``rows`` (indices into ``base``) and the
    concatenation of the column ranges ``ranges``. Reads only the selected columns."""

    def __init__(self, base: Any, rows: np.ndarray, ranges: list[tuple[int, int]]):
        self._base = base
        self._rows = rows
        self._ranges = ranges
        self._starts = np.cumsum([0] + [b - a for a, b in ranges])  # selected column of each range
        self.shape: tuple[int, int] = (len(rows), int(self._starts[-1]))
        self.dtype = base.dtype
        self.chunks = base.chunks
        contiguous = len(rows) > 0 and np.all(np.diff(rows) == 1)
        self._row_slice = slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else None

    @property
    def ndim(self) -> int:
        return 2

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _base_rows(self, key: Any) -> Any:
        if isinstance(key, slice) and self._row_slice is not None:
            a, b, step = key.indices(self.shape[0])
            if step == 1:
                return slice(self._row_slice.start + a, self._row_slice.start + max(a, b))
        if isinstance(key, (int, np.integer)):
            i = int(key) + self.shape[0] if key < 0 else int(key)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"record {key} out of range for {self.shape[0]} records")
            return int(self._rows[i])
        return self._rows[key]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows = self._base_rows(key[0])
        cols = key[1] if len(key) > 1 else slice(None)
        if isinstance(cols, (int, np.integer)):
            c = int(cols) + self.shape[1] if cols < 0 else int(cols)
            return self[key[0], c : c + 1][..., 0]
        if not isinstance(cols, slice) or cols.indices(self.shape[1])[2] != 1:
            return self[key[0], :][..., cols]
        c0, c1, _ = cols.indices(self.shape[1])
        pieces = []
        for (a, b), s in zip(self._ranges, self._starts[:-1], strict=True):
            lo, hi = max(c0, s), min(c1, s + (b - a))
            if lo < hi:
                pieces.append(self._base[rows, a + lo - s : a + hi - s])
        if not pieces:  # an empty column range
            return self._base[rows, 0:0]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-1)

    def read_param_major(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """As :meth:`LazyArray.read_param_major`: selected records [r0, r1) of selected columns
        [c0, c1), (c1 − c0, r1 − r0), C-contiguous."""
        direct = getattr(self._base, "read_param_major", None)
        if direct is None or self._row_slice is None or r1 <= r0:
            return np.ascontiguousarray(self[r0:r1, c0:c1].T)
        b0 = self._row_slice.start + r0
        pieces = []
        for (a, b), s in zip(self._ranges, self._starts[:-1], strict=True):
            lo, hi = max(c0, s), min(c1, s + (b - a))
            if lo < hi:
                pieces.append(direct(b0, b0 + r1 - r0, a + lo - s, a + hi - s))
        if not pieces:
            return np.empty((0, r1 - r0), dtype=self.dtype)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


class SelectedGroup:
    """A weights or gradients group restricted to a selection (same attributes as VectorGroup)."""

    def __init__(self, group: VectorGroup, steps: StepRange | None, names: Sequence[str]):
        self.name = group.name
        rows = np.flatnonzero(steps.mask(group.steps)) if steps is not None else np.arange(group.n_records)
        self.layout, ranges = _column_ranges(group.layout, names)
        self.values = SelectedArray(group.values, rows, ranges)
        self.steps = group.steps[rows]
        self.times = group.times[rows] if group.times is not None else None

    @property
    def n_records(self) -> int:
        return self.values.shape[0]


class SelectedTrajectory(WeightsAccess):
    """The part of ``traj`` that ``selection`` picks, with a Trajectory's reading interface.

    Observables keep the values logged within the selected step range (one step beyond its
    last record, for losses paired pre-step); gradients are selected like the weights; buffers
    are left out. Everything else (metadata, provenance, ...) is the store's.
    """

    def __init__(self, traj: Trajectory, selection: Selection):
        self.base = traj
        self.selection = selection
        names = selection.tensor_names(traj.layout, traj.path)
        self._weights = SelectedGroup(traj._weights, selection.steps, names)
        n = self._weights.n_records
        if n < 2:
            raise ValueError(
                f"{traj.path}: --steps {selection.steps} selects {n} record(s) of steps "
                f"{int(traj.steps[0])}..{int(traj.steps[-1])}; the analyses need at least 2"
            )
        grads = traj.gradients
        self.gradients = None
        if grads is not None and set(names) <= set(grads.layout.names):
            self.gradients = SelectedGroup(grads, selection.steps, names)
        self.buffers = None
        self._observables: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getattr__(self, name: str) -> Any:  # path, attrs, metadata, provenance, lossy, ...
        return getattr(self.base, name)

    @property
    def segments(self) -> list[slice]:
        """The store's segments (``Trajectory.segments``) in the selected records' numbering."""
        rows = self._weights.values._rows
        seg_of = np.zeros(self.base.n_records, dtype=np.int64)
        for k, seg in enumerate(self.base.segments):
            seg_of[seg] = k
        ids = seg_of[rows]
        bounds = [0, *(np.flatnonzero(np.diff(ids)) + 1).tolist(), len(rows)]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]

    def observable(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._observables:
            steps, values = self.base.observable(name)
            lo, hi = int(self.steps[0]), int(self.steps[-1]) + 1
            keep = (steps >= lo) & (steps <= hi)
            self._observables[name] = (steps[keep], values[keep])
        return self._observables[name]

    def describe(self) -> str:
        """One line: what was selected, and how much of the store that is."""
        sel = self.selection
        parts = [f"steps {sel.steps}"] if sel.steps is not None else []
        parts += [f"tensors {' '.join(sel.tensors)}"] if sel.tensors else []
        parts += [f"excluding {' '.join(sel.exclude)}"] if sel.exclude else []
        if sel.frozen:
            shown = ", ".join(sel.frozen[:5]) + (", …" if len(sel.frozen) > 5 else "")
            what = "left out (trainable only)" if sel.trainable_only else "included (--all)"
            parts += [f"{len(sel.frozen)} tensor(s) frozen at some selected record {what}: {shown}"]
        return (
            f"{', '.join(parts)}: {self.n_records} of {self.base.n_records} records "
            f"(steps {int(self.steps[0])}..{int(self.steps[-1])}), {len(self.layout)} of "
            f"{len(self.base.layout)} tensors ({self.n_params} of {self.base.n_params} parameters)"
        )

    def summary(self) -> dict:
        """What summary.json records about the selection."""
        return {
            **self.selection.to_dict(),
            "n_records": self.n_records,
            "n_params": self.n_params,
            "n_tensors": len(self.layout),
            "step_range": [int(self.steps[0]), int(self.steps[-1])],
            "store_n_records": self.base.n_records,
            "store_n_params": self.base.n_params,
        }

    def blocks(
        self,
        records: slice | None = None,
        params: slice | None = None,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        record_block: int | None = None,
        split_records: bool = True,
        group: str = "weights",
        param_major: bool = False,
    ) -> Iterator[Block]:
        """As :meth:`Trajectory.blocks`, over the selected records and columns."""
        g = self._weights if group == "weights" else self.gradients
        if g is None:
            raise KeyError(f"{self.path}: the selection has no {group}")
        return iter_blocks(g.values, records, params, memory_limit, record_block, split_records, param_major)

    def close(self) -> None:
        self.base.close()

    def __enter__(self) -> SelectedTrajectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def select(
    traj: Trajectory,
    steps: str | StepRange | None = None,
    tensors: Sequence[str] = (),
    exclude: Sequence[str] = (),
    trainable_only: bool = True,
) -> Trajectory | SelectedTrajectory:
    """``traj`` restricted to optimizer steps ``steps`` (``"START:STOP[:STRIDE]"``) and the
    tensors whose names match a glob of ``tensors`` (all when empty) and none of ``exclude``;
    with ``trainable_only`` (the default) also to the tensors that were trainable at every
    selected record (the store's ``trainable`` change points; ``False``: frozen ones too, CLI
    ``--all``). ``traj`` itself when nothing is restricted. One-line ValueError for a selection
    that is empty or a pattern that matches no tensor."""
    rng = StepRange.parse(steps) if isinstance(steps, str) else steps
    picked = traj.steps[rng.mask(traj.steps)] if rng is not None else traj.steps
    frozen = tuple(not_always_trainable(traj, picked)) if len(picked) else ()
    selection = Selection(rng, tuple(tensors), tuple(exclude), trainable_only, frozen)
    if selection.is_everything:
        return traj
    return SelectedTrajectory(traj, selection)


def selection_summary(traj: Trajectory | SelectedTrajectory) -> dict | None:
    """summary.json ``selection`` of what an analysis was given: the selection of a
    :class:`SelectedTrajectory`; for a whole store whose tensors were not all trainable
    throughout, the store with those tensors included (``trainable_only`` false); else None."""
    if isinstance(traj, SelectedTrajectory):
        return traj.summary()
    frozen = not_always_trainable(traj, traj.steps)
    if not frozen:
        return None
    return {
        **Selection(trainable_only=False, frozen=tuple(frozen)).to_dict(),
        "n_records": traj.n_records,
        "n_params": traj.n_params,
        "n_tensors": len(traj.layout),
        "step_range": [int(traj.steps[0]), int(traj.steps[-1])],
        "store_n_records": traj.n_records,
        "store_n_params": traj.n_params,
    }
