"""Validation of the (1.2) sketch and sample groups: rules V60-V67 (docs/format.md 3.7).

Called by :func:`trajstore.validate.validate` after the vector groups; the generic rules of a
time-dependent group (V11-V22, V30-V35, V40-V44) are checked for ``sketch`` and ``sample``
with the same code as for ``weights``.
"""

from __future__ import annotations

import numpy as np

from . import spec
from .backends import Backend
from .layout import Layout
from .sketch import (
    ATTR_FULL_WEIGHTS,
    ATTR_SAMPLE,
    ATTR_SKETCH,
    DIM_SAMPLE,
    SAMPLE,
    SAMPLE_INDEX,
    SKETCH,
    index_problem,
    sample_attr_problem,
    sketch_attr_problem,
)
from .validate import Report, _check_layout, _check_series, _guard, _is_int, _scan, array_problems


def check(
    b: Backend,
    attrs: dict,
    layouts: dict[str, Layout],
    r: Report,
    checksums: bool,
    version: tuple[int, int],
) -> None:
    """Add to ``r`` every problem of the sketch/sample groups and the ``full_weights`` attribute."""
    present = [g for g in (SKETCH, SAMPLE) if b.exists(g)]
    full = attrs.get(ATTR_FULL_WEIGHTS)
    if ATTR_FULL_WEIGHTS in attrs and not isinstance(full, bool):
        r.add("V65", f"root: {ATTR_FULL_WEIGHTS} is {full!r}, not a boolean")
    if not present:
        if full is False:
            r.add("V65", f"root: {ATTR_FULL_WEIGHTS} is false but the store has no sketch and no sample")
        return
    if version < (1, 2):
        r.add(
            "V67", f"root: spec_version is {attrs.get(spec.ATTR_SPEC_VERSION)!r} but the store has {present}"
        )
    weights = layouts.get(spec.WEIGHTS)
    n_params = weights.n_params if weights is not None else None
    steps: dict[str, np.ndarray] = {}
    for g in present:
        with _guard(r, "V11", g):
            layout = _check_layout(b, g, r)
            columns = layout.n_params if layout is not None else None
            _check_series(b, g, r, 2, columns, checksums, version)
            if layout is not None:
                _check_kind(b, g, layout, r)
            key = ATTR_SKETCH if g == SKETCH else ATTR_SAMPLE
            problem = (sketch_attr_problem if g == SKETCH else sample_attr_problem)(
                b.attrs(g).get(key), n_params, columns
            )
            if problem:
                r.add("V60" if g == SKETCH else "V62", f"{g}: {problem}")
            elif g == SAMPLE and n_params is not None:
                _check_index(b, b.attrs(g)[key], n_params, checksums, r)
            steps[g] = _committed_steps(b, g)
    with _guard(r, "V66", "sketch/sample steps"):
        if full is False:
            n_w = b.attrs(spec.WEIGHTS).get(spec.ATTR_N_COMMITTED) if b.exists(spec.WEIGHTS) else 0
            if _is_int(n_w) and n_w > 0:
                r.add("V65", f"root: {ATTR_FULL_WEIGHTS} is false but weights holds {n_w} committed records")
        elif b.exists(spec.WEIGHTS):
            steps[spec.WEIGHTS] = _committed_steps(b, spec.WEIGHTS)
        known = {g: s for g, s in steps.items() if s is not None}
        if len(known) > 1:
            (g0, s0), *rest = known.items()
            for g, s in rest:
                if not np.array_equal(s, s0):
                    r.add("V66", f"{g}: its {len(s)} steps differ from the {len(s0)} steps of {g0}")


def _committed_steps(b: Backend, g: str) -> np.ndarray | None:
    n = b.attrs(g).get(spec.ATTR_N_COMMITTED)
    path = f"{g}/{spec.STEP}"
    if not _is_int(n) or n < 0 or not b.is_array(path) or b.shape(path)[0] < n:
        return None  # reported by the series checks
    try:
        return np.asarray(b.read(path, slice(0, n)))
    except Exception:  # noqa: BLE001 - a damaged step array is reported by the series checks
        return None


def _check_kind(b: Backend, g: str, layout: Layout, r: Report) -> None:
    value = f"{g}/{spec.VALUE}"
    dtype = b.dtype(value)
    if g == SKETCH:
        if dtype != np.float64 or [(t.name, t.shape) for t in layout] != [(SKETCH, (layout.n_params,))]:
            r.add(
                "V61",
                f"{g}: value is {dtype} with layout {layout.names}, not float64 with one tensor 'sketch'",
            )
        return
    wvalue = f"{spec.WEIGHTS}/{spec.VALUE}"
    wdtype = b.dtype(wvalue) if b.is_array(wvalue) else None
    if (wdtype is not None and dtype != wdtype) or layout.names != [SAMPLE]:
        r.add(
            "V64", f"{g}: value is {dtype} with layout {layout.names}, not {wdtype} with one tensor 'sample'"
        )


def _check_index(b: Backend, attrs: dict, n_params: int, checksums: bool, r: Report) -> None:
    path = f"{SAMPLE}/{SAMPLE_INDEX}"
    size = attrs["size"]
    if not b.is_array(path):
        r.add("V63", f"{path}: missing")
        return
    problems = [(rule, text) for rule, text in array_problems(b, path, "step") if rule != "V22"]
    for rule, text in problems:
        r.add(rule, text)
    if problems:
        return
    dims = b.dimension_names(path) if not getattr(b, "skips_empty_chunks", False) else None
    meta = b.array_metadata(path) if getattr(b, "skips_empty_chunks", False) else {}
    dims = tuple(meta.get("dimension_names") or ()) if meta else tuple(dims or ())
    if tuple(b.shape(path)) != (size,) or dims != (DIM_SAMPLE,):
        r.add("V63", f"{path}: shape {list(b.shape(path))} dims {list(dims)}, not [{size}] ['{DIM_SAMPLE}']")
        return
    if checksums:
        _scan(b, path, size, None, r)
    try:
        index = np.asarray(b.read(path, slice(0, size)))
    except Exception:  # noqa: BLE001 - reported by the scan
        return
    problem = index_problem(index, size, n_params, attrs["index_crc32c"])
    if problem:
        r.add("V63", f"{path}: {problem}")
