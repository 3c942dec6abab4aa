"""Checking a store against every rule of the spec, checksums included."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import spec
from .backends import Backend, open_backend
from .errors import LayoutError, NotAStoreError, SpecVersionError, TrajstoreError
from .layout import Layout

_SCAN_BYTES = 64 * 1024 * 1024  # read chunk columns in pieces of about this size


@dataclass
class Report:
    """Problems (rule violations) and warnings (allowed but noteworthy, e.g. non-finite weights)."""

    path: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems


def validate(path: str | os.PathLike, *, checksums: bool = True) -> Report:
    """Check every rule of ``docs/format.md``; with ``checksums``, decode every chunk.

    Never raises for a damaged store: each problem becomes one line of the report.
    """
    path = os.fspath(path)
    report = Report(path)
    try:
        backend = open_backend(path, "r")
    except TrajstoreError as exc:
        report.problems.append(str(exc))
        return report
    try:
        _validate(backend, report, checksums)
    finally:
        backend.close()
    return report


def _validate(b: Backend, r: Report, checksums: bool) -> None:
    attrs = b.attrs("")
    if attrs.get(spec.ATTR_SPEC_NAME) != spec.SPEC_NAME:
        r.problems.append(
            str(NotAStoreError(f"root attribute {spec.ATTR_SPEC_NAME!r} is not {spec.SPEC_NAME!r}"))
        )
        return
    try:
        major, _ = spec.parse_version(attrs.get(spec.ATTR_SPEC_VERSION, ""))
        if major > spec.SPEC_MAJOR:
            raise SpecVersionError(
                f"spec version {attrs[spec.ATTR_SPEC_VERSION]} is newer than {spec.SPEC_VERSION}"
            )
    except (ValueError, SpecVersionError) as exc:
        r.problems.append(f"root: {exc}")
        return
    for key in (spec.ATTR_CREATOR, spec.ATTR_CREATED):
        if key not in attrs:
            r.problems.append(f"root: missing attribute {key!r}")
    for key in (spec.ATTR_PROVENANCE, spec.ATTR_METADATA):
        if key in attrs and not isinstance(attrs[key], dict):
            r.problems.append(f"root: attribute {key!r} must be an object")
    if not b.exists(spec.WEIGHTS):
        r.problems.append(f"missing required group '{spec.WEIGHTS}'")
    groups = [g for g in spec.VECTOR_GROUPS if b.exists(g)]
    layouts: dict[str, Layout] = {}
    for g in groups:
        layout = _check_layout(b, g, r)
        if layout is not None:
            layouts[g] = layout
        _check_series(b, g, r, 2, layout.n_params if layout else None, checksums)
    _check_recording_attrs(attrs, layouts.get(spec.WEIGHTS), r)
    if (
        spec.GRADIENTS in layouts
        and spec.WEIGHTS in layouts
        and layouts[spec.GRADIENTS] != layouts[spec.WEIGHTS]
    ):
        r.problems.append("gradients: layout differs from the weights layout")
    for name in b.groups(spec.OBSERVABLES):
        group = f"{spec.OBSERVABLES}/{name}"
        ev = b.attrs(group).get(spec.ATTR_EVALUATED_AT, spec.POST_STEP)
        if ev not in spec.EVALUATED_AT_VALUES:
            r.problems.append(
                f"{group}: attribute {spec.ATTR_EVALUATED_AT!r} is {ev!r}, "
                f"not one of {spec.EVALUATED_AT_VALUES}"
            )
        _check_series(b, group, r, 1, None, checksums)


def _check_layout(b: Backend, g: str, r: Report) -> Layout | None:
    try:
        return Layout.from_json(b.attrs(g).get(spec.ATTR_LAYOUT))
    except LayoutError as exc:
        r.problems.append(f"{g}: {exc}")
        return None


def _check_series(b: Backend, g: str, r: Report, ndim: int, n_params: int | None, checksums: bool) -> None:
    value, step, time = f"{g}/{spec.VALUE}", f"{g}/{spec.STEP}", f"{g}/{spec.TIME}"
    if not b.is_array(value) or not b.is_array(step):
        r.problems.append(f"{g}: missing array '{spec.VALUE}' or '{spec.STEP}'")
        return
    shape = b.shape(value)
    if len(shape) != ndim:
        r.problems.append(f"{value}: has {len(shape)} dimensions, expected {ndim}")
        return
    if n_params is not None and shape[1] != n_params:
        r.problems.append(f"{value}: has {shape[1]} columns but the layout has {n_params} parameters")
    if ndim == 2 and b.dtype(value).kind != "f":
        r.problems.append(f"{value}: dtype {b.dtype(value)} is not floating point")
    if b.dtype(step) != np.dtype("<i8"):
        r.problems.append(f"{step}: dtype {b.dtype(step)} is not int64")
    n = b.attrs(g).get(spec.ATTR_N_COMMITTED)
    lengths = [shape[0], b.shape(step)[0]]
    has_time = b.is_array(time)
    if has_time:
        lengths.append(b.shape(time)[0])
        if b.dtype(time) != np.dtype("<f8"):
            r.problems.append(f"{time}: dtype {b.dtype(time)} is not float64")
    if not isinstance(n, int) or n < 0:
        r.problems.append(
            f"{g}: attribute {spec.ATTR_N_COMMITTED!r} is missing or not a non-negative integer"
        )
        return
    if n > min(lengths):
        r.problems.append(f"{g}: {n} records committed but only {min(lengths)} stored (truncated)")
        return
    expected_dims = (spec.DIM_RECORD, spec.DIM_PARAM)[:ndim]
    for path, dims in ((value, expected_dims), (step, expected_dims[:1])) + (
        ((time, expected_dims[:1]),) if has_time else ()
    ):
        got = b.dimension_names(path)
        if got != dims:
            r.problems.append(f"{path}: dimension names {got} should be {dims}")
    if checksums:
        _scan_chunks(b, r, [p for p in (value, step, time) if b.is_array(p)])
    try:
        steps = b.read(step, slice(0, n))
    except Exception:  # noqa: BLE001 - already reported by the chunk scan
        return
    if n > 1 and np.any(np.diff(steps) <= 0):
        i = int(np.flatnonzero(np.diff(steps) <= 0)[0])
        r.problems.append(
            f"{step}: steps must increase; record {i + 1} has step {steps[i + 1]} after {steps[i]}"
        )


def _scan_chunks(b: Backend, r: Report, paths: list[str]) -> None:
    """Decode every chunk (verifying checksums); count non-finite values of float data."""
    for path in paths:
        bad = 0
        nonfinite = 0
        for idx, sel in b.chunk_selections(path):
            try:
                data = b.read(path, sel)
            except Exception as exc:  # noqa: BLE001 - any decode failure is a damaged chunk
                bad += 1
                if bad <= 20:
                    msg = str(exc).strip().splitlines()
                    r.problems.append(
                        f"{path}: chunk {tuple(int(i) for i in idx)} is corrupted "
                        f"({msg[0] if msg else type(exc).__name__})"
                    )
                continue
            if data.dtype.kind == "f":
                nonfinite += int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad > 20:
            r.problems.append(f"{path}: {bad - 20} more corrupted chunks")
        if nonfinite:
            r.nonfinite[path] = nonfinite
            r.warnings.append(f"{path}: {nonfinite} non-finite values (NaN or inf), stored as recorded")


def _check_recording_attrs(attrs: dict, layout: Layout | None, r: Report) -> None:
    """The (1.1) root attributes ``trainable``, ``segments`` and ``gradient_source``."""
    changes = attrs.get(spec.ATTR_TRAINABLE)
    if changes is not None:
        steps = []
        for c in changes if isinstance(changes, list) else [None]:
            flags = c.get("trainable") if isinstance(c, dict) else None
            if (
                not isinstance(c, dict)
                or not isinstance(c.get("step"), int)
                or not isinstance(flags, list)
                or not all(isinstance(f, bool) for f in flags)
                or (layout is not None and len(flags) != len(layout))
            ):
                r.problems.append(
                    f"root: attribute {spec.ATTR_TRAINABLE!r} must list {{'step': int, 'trainable': "
                    "[one bool per weights tensor]}"
                )
                return
            steps.append(c["step"])
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            r.problems.append(f"root: attribute {spec.ATTR_TRAINABLE!r} steps must strictly increase")
    segments = attrs.get(spec.ATTR_SEGMENTS)
    if segments is not None and not (
        isinstance(segments, list)
        and all(
            isinstance(s, dict)
            and isinstance(s.get("start_record"), int)
            and isinstance(s.get("start_step"), int)
            and isinstance(s.get("continuous"), bool)
            for s in segments
        )
    ):
        r.problems.append(
            f"root: attribute {spec.ATTR_SEGMENTS!r} must list objects with integer 'start_record', "
            "'start_step' and boolean 'continuous'"
        )
    source = attrs.get(spec.ATTR_GRADIENT_SOURCE)
    if source is not None and source not in spec.GRADIENT_SOURCES:
        r.problems.append(
            f"root: attribute {spec.ATTR_GRADIENT_SOURCE!r} is {source!r}, not one of {spec.GRADIENT_SOURCES}"
        )
