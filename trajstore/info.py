"""A JSON-ready summary of a store: what ``trajstore info`` prints."""

from __future__ import annotations

import numpy as np

from . import spec
from .errors import CorruptDataError, InvalidStoreError, TrajstoreError
from .layout import Layout
from .reader import Trajectory

_NONFINITE_SCAN_BYTES = 256 * 1024 * 1024
AUTO_SCAN_LIMIT = 2 * 1024**3  # raw weight bytes up to which ``info`` counts non-finite values


def summarize_store(path: str, *, scan_nonfinite: bool | None = None) -> dict:
    """:func:`summarize` of the store at ``path``; for a store whose data is damaged (a shard,
    chunk or integrity index that fails its checks) what can be read of it, with ``damage``:
    the one-line error of each damaged part found. Metadata that cannot be read (root
    attributes, the weights' layout, count and shape) raises the store's error as ``open`` does."""
    from .reader import open as open_store

    try:
        traj = open_store(path)
    except (CorruptDataError, InvalidStoreError) as exc:
        return _header_only(str(path), exc)
    with traj:
        return summarize(traj, scan_nonfinite=scan_nonfinite)


def summarize(traj: Trajectory, *, scan_nonfinite: bool | None = None) -> dict:
    """Records, step range, parameters, tensors, bytes on disk, compression ratio, observables,
    provenance; with ``scan_nonfinite`` (default: when the weights are at most 2 GiB raw), the
    number of non-finite weights, which reads every weight (``validate`` always does).
    Damaged data met on the way (an observable, a weights block) is listed in ``damage``, one
    line each, and what it would have given is null."""
    out = _header(
        traj.path,
        traj.backend_name,
        traj.attrs,
        traj.layout,
        traj.n_records,
        traj.weights.dtype,
        list(traj.weights.chunks),
        traj.nbytes_stored(),
    )
    raw = out["raw_weight_bytes"]
    damage: list[str] = []
    out.update(
        {
            "step_range": [int(traj.steps[0]), int(traj.steps[-1])] if traj.n_records else None,
            "gradients": traj.gradients.n_records if traj.gradients else 0,
            "buffers": traj.buffers.n_records if traj.buffers else 0,
            # (1.1) what the records mean
            "segments": [[sl.start, sl.stop] for sl in traj.segments],
            "gradient_source": traj.gradient_source if traj.gradients else None,
            # (1.2) when the records were taken: "after_step" unless the store says otherwise
            "weights_taken": traj.attrs.get(spec.ATTR_WEIGHTS_TAKEN) or "after_step",
            "frozen_tensors_at_last_record": _frozen_at_last(traj),
        }
    )
    from .sketch import sketch_summary

    try:
        sketched = sketch_summary(traj)
    except CorruptDataError as exc:
        sketched, _ = None, damage.append(str(exc))
    if sketched is not None:  # (1.2) a sketch and/or sample of the weights
        out["sketch"] = sketched
    skipped: list[np.ndarray] = []  # steps of skipped updates (AMP), to name record gaps
    for name in traj.observables:
        attrs = traj.observable_attrs(name)
        try:
            steps, values = traj.observable(name)
        except CorruptDataError as exc:
            damage.append(str(exc))
            out["observables"][name] = _observable(attrs, None, None, read=False)
            continue
        entry = _observable(attrs, len(steps), float(values[-1]) if len(values) else None)
        entry["nan"] = int(np.count_nonzero(np.isnan(values)))
        entry["inf"] = int(np.count_nonzero(np.isinf(values)))
        out["observables"][name] = entry
        if name == "skipped" or name.startswith("skipped."):
            skipped.append(np.asarray(steps)[np.asarray(values) != 0])
    if traj.n_records:
        out["schedule"] = _schedule(traj, np.concatenate(skipped) if skipped else None)
    if scan_nonfinite is None:
        scan_nonfinite = raw <= AUTO_SCAN_LIMIT
    if not scan_nonfinite:
        out["nonfinite_weights"] = None  # not counted: use --scan or trajstore validate
    elif traj.n_records:
        bad = 0
        try:
            for block in traj.blocks(memory_limit=_NONFINITE_SCAN_BYTES):
                bad += int(block.data.size - np.count_nonzero(np.isfinite(block.data)))
            out["nonfinite_weights"] = bad
        except CorruptDataError as exc:
            out["nonfinite_weights"] = None  # not counted: the weights are damaged
            damage.append(str(exc))
    if damage:
        out["damage"] = damage
    return out


def _header(
    path: str,
    backend: str,
    attrs: dict,
    layout: Layout,
    n_records: int,
    dtype: np.dtype,
    chunks: list[int],
    on_disk: int | None,
) -> dict:
    """The part of the summary read from metadata alone (attributes, layout, array shapes)."""
    raw = n_records * layout.n_params * dtype.itemsize
    return {
        "path": path,
        "backend": backend,
        "spec_version": str(attrs.get(spec.ATTR_SPEC_VERSION)),
        "creator": attrs.get(spec.ATTR_CREATOR),
        "created": attrs.get(spec.ATTR_CREATED),
        "n_records": n_records,
        "step_range": None,
        "n_params": layout.n_params,
        "dtype": str(dtype),
        "chunks": chunks,
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "offset": t.offset, "dtype": t.dtype} for t in layout
        ],
        "bytes_on_disk": on_disk,
        "raw_weight_bytes": raw,
        "compression_ratio": (raw / on_disk) if on_disk and raw else None,
        "gradients": 0,
        "buffers": 0,
        "observables": {},
        "segments": [],
        "gradient_source": None,
        "weights_taken": None,
        "frozen_tensors_at_last_record": [],
        "lossy": attrs.get(spec.ATTR_LOSSY),
        "provenance": dict(attrs.get(spec.ATTR_PROVENANCE) or {}),
        "metadata": dict(attrs.get(spec.ATTR_METADATA) or {}),
    }


def _observable(attrs: dict, n: int | None, last: float | None, read: bool = True) -> dict:
    """An observable's entry; ``read`` False (and ``last`` null) when its values were not read
    because the store is damaged there."""
    out = {
        "n": n,
        "unit": attrs.get(spec.ATTR_UNIT, ""),
        "evaluated_at": attrs.get(spec.ATTR_EVALUATED_AT, spec.POST_STEP),
        "last": last,
    }
    if not read:
        out["read"] = False
    return out


def _header_only(path: str, damage: TrajstoreError) -> dict:
    """The summary of a store that does not open because its data is damaged: what its
    metadata says (no step range, no observable values, nothing counted) and ``damage``.
    Re-raises ``damage`` when that metadata cannot be read either."""
    from .backends import open_backend
    from .reader import check_header

    try:
        backend = open_backend(path, "r")
    except TrajstoreError:
        raise damage from None
    try:
        attrs = check_header(backend, path)
        group = backend.attrs(spec.WEIGHTS)
        layout = Layout.from_json(group.get(spec.ATTR_LAYOUT))
        value = f"{spec.WEIGHTS}/{spec.VALUE}"
        n = _count(group, backend.shape(value))
        if n is None or backend.shape(value)[1:] != (layout.n_params,):
            raise damage
        name = "hdf5" if type(backend).__name__.startswith("HDF5") else "zarr"
        dtype, chunks = backend.dtype(value), list(backend.chunks(value))
        out = _header(path, name, attrs, layout, n, dtype, chunks, backend.nbytes_stored())
        for kind in (spec.GRADIENTS, spec.BUFFERS):
            if backend.exists(kind):
                out[kind] = _count(backend.attrs(kind)) or 0
        for obs in backend.groups(spec.OBSERVABLES):
            attrs_obs = backend.attrs(f"{spec.OBSERVABLES}/{obs}")
            out["observables"][obs] = _observable(attrs_obs, _count(attrs_obs), None, read=False)
        out["nonfinite_weights"] = None
        line = str(damage)
        if "trajstore validate" not in line:  # say what to do, as the lines of damaged values do
            line += "; run 'trajstore validate' to list every damaged part"
        out["damage"] = [line]
        return out
    except Exception:  # noqa: BLE001 - metadata unreadable too: the store's own error, one line
        raise damage from None
    finally:
        backend.close()


def _schedule(traj: Trajectory, skipped: np.ndarray | None) -> dict:
    """Which steps the records hold: ``declared``, the schedule the recorder was given (1.2
    provenance ``schedule``; null when the writer did not say), and per segment the spacing
    the records actually have (:func:`trajstore.spacing.record_spacing`)."""
    from .spacing import record_spacing

    prov = traj.attrs.get(spec.ATTR_PROVENANCE) or {}
    declared = prov.get("schedule") if isinstance(prov, dict) else None
    resumed = prov.get("resumed") if isinstance(prov, dict) else None
    on_resume = resumed.get("schedule") if isinstance(resumed, dict) else None
    return {
        "declared": declared if isinstance(declared, str) else None,
        "declared_on_resume": on_resume if isinstance(on_resume, str) and on_resume != declared else None,
        "segments": record_spacing(np.asarray(traj.steps[:]), traj.segments, skipped),
    }


def _schedule_text(sched: dict) -> str:
    """``every 10 steps (every:10)``; per segment when there are several."""
    declared = sched.get("declared")
    if sched.get("declared_on_resume"):
        declared = f"{declared}, then {sched['declared_on_resume']} on resume"
    said = f" (asked: {declared})" if declared else ""
    parts = sched["segments"]
    if len(parts) == 1:
        return parts[0]["text"] + said
    return (
        "; ".join(
            f"segment {i + 1} (steps {p['steps'][0]}..{p['steps'][1]}): {p['text']}"
            for i, p in enumerate(parts)
        )
        + said
    )


def _nonfinite_text(o: dict) -> str:
    """``, 2 NaN, 1 inf`` for an observable with non-finite values, else ``""``."""
    counts = [f"{o[k]} {label}" for k, label in (("nan", "NaN"), ("inf", "inf")) if o.get(k)]
    return (", " + ", ".join(counts)) if counts else ""


def _count(attrs: dict, shape: tuple[int, ...] | None = None) -> int | None:
    """A group's committed record count if it is a sane one (at most what is stored)."""
    n = attrs.get(spec.ATTR_N_COMMITTED)
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= spec.MAX_RECORDS:
        return None
    return n if shape is None or n <= shape[0] else None


def _trained_as(s: dict) -> str:
    """``", trained as bfloat16"`` when the layout names other dtypes than the stored one."""
    trained = sorted({t.get("dtype") for t in s["tensors"]} - {s["dtype"], None})
    return f", trained as {'/'.join(trained)}" if trained else ""


def format_summary(s: dict) -> str:
    """Human-readable lines for :func:`summarize`'s dict."""

    def mb(n: int | None) -> str:
        return "unknown (remote)" if n is None else f"{n / 1e6:.2f} MB"

    lines = [
        f"store        {s['path']} ({s['backend']}, trajstore format {s['spec_version']})",
        f"records      {s['n_records']}" + _steps_text(s),
        *([f"schedule     {_schedule_text(s['schedule'])}"] if s.get("schedule") else []),
        f"parameters   {s['n_params']} {s['dtype']} in {len(s['tensors'])} tensors, chunks {s['chunks']}"
        + _trained_as(s),
        f"size         {mb(s['bytes_on_disk'])} on disk, {mb(s['raw_weight_bytes'])} raw weights"
        + (f", ratio {s['compression_ratio']:.2f}" if s["compression_ratio"] else ""),
    ]
    if s.get("sketch"):
        lines.append(f"sketch       {s['sketch']['text']}")
    if s.get("gradients"):
        lines.append(f"gradients    {s['gradients']} records")
    if s.get("buffers"):
        lines.append(f"buffers      {s['buffers']} records")
    if s.get("weights_taken") == "next_step":
        lines.append("taken        each record when the next iteration began (after code run after step())")
    if s.get("gradient_source") not in (None, "update"):
        lines.append(f"gradients    are the {s['gradient_source'].replace('_', ' ')}, not the update's")
    if len(s.get("segments") or []) > 1:
        lines.append(f"segments     {len(s['segments'])} (resumed discontinuously), records {s['segments']}")
    if s.get("frozen_tensors_at_last_record"):
        frozen = s["frozen_tensors_at_last_record"]
        lines.append(f"frozen       {len(frozen)} tensors at the last record: {', '.join(frozen[:10])}")
    if s.get("lossy"):
        lines.append(f"lossy        {s['lossy']}")
    if s.get("nonfinite_weights"):
        lines.append(f"WARNING      {s['nonfinite_weights']} non-finite weight values (NaN/inf)")
    for name, o in s["observables"].items():
        unit = f" [{o['unit']}]" if o["unit"] else ""
        last = f"{o['last']:.6g}" if isinstance(o["last"], float) else o["last"]
        if o.get("read") is False:  # its values were not read (damaged): no last value to show
            count = "values" if o["n"] is None else f"{o['n']} values"
            lines.append(f"observable   {name}{unit}: {count}, {o['evaluated_at']}, not read (damaged)")
            continue
        lines.append(
            f"observable   {name}{unit}: {o['n']} values, {o['evaluated_at']}, last {last}"
            + _nonfinite_text(o)
        )
    for t in s["tensors"][:50]:
        lines.append(f"tensor       {t['name']} {tuple(t['shape'])} @ {t['offset']}")
    if len(s["tensors"]) > 50:
        lines.append(f"tensor       ... {len(s['tensors']) - 50} more")
    provenance = dict(s.get("provenance") or {})
    lines += optimizer_lines(provenance)  # takes the optimizer keys out of ``provenance``
    for key, value in provenance.items():
        if key == "script_text" and isinstance(value, str):
            value = f"<{len(value)} characters; see --json>"
        elif isinstance(value, str) and "\n" in value:  # e.g. a model's repr: its first line
            value = f"{value.splitlines()[0]} ... <{value.count(chr(10)) + 1} lines; see --json>"
        lines.append(f"provenance   {key}: {value}")
    for key, value in (s.get("metadata") or {}).items():
        lines.append(f"metadata     {key}: {value}")
    return "\n".join(lines)


def optimizer_lines(provenance: dict) -> list[str]:
    """One ``optimizer`` line per optimizer of the provenance: its name (when several or not the
    default), class and each parameter group's settings. The keys it shows (``optimizers``
    (1.1) and, for one optimizer, the 1.0 ``optimizer_class`` / ``optimizer`` that repeat it)
    are removed from ``provenance``; entries of another shape are left there to print as they are."""
    entries = provenance.get("optimizers")
    single = {
        "name": None,
        "optimizer_class": provenance.get("optimizer_class"),
        "optimizer": provenance.get("optimizer"),
    }
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        entries = [single] if single["optimizer_class"] is not None else []
    lines = []
    for e in entries:
        groups = e.get("optimizer")
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            return []  # not the recorder's shape: printed as stored
        settings = "; ".join(
            (f"group {i}: " if len(groups) > 1 else "") + ", ".join(f"{k}={v}" for k, v in g.items())
            for i, g in enumerate(groups)
        )
        name = e.get("name")
        label = (
            f"{name} ({e.get('optimizer_class')})" if name and len(entries) > 1 else e.get("optimizer_class")
        )
        lines.append(f"optimizer    {label}: {settings or 'no parameter groups'}")
    provenance.pop("optimizers", None)
    if len(entries) == 1 and {k: single[k] for k in ("optimizer_class", "optimizer")} == {
        k: entries[0].get(k) for k in ("optimizer_class", "optimizer")
    }:
        provenance.pop("optimizer_class", None)
        provenance.pop("optimizer", None)
    return lines


def _steps_text(s: dict) -> str:
    if s["step_range"]:
        return f", steps {s['step_range'][0]}..{s['step_range'][1]}"
    return ", steps not read (damaged)" if s["n_records"] and s.get("damage") else ""


def _frozen_at_last(traj: Trajectory) -> list[str]:
    """Names of the tensors not trainable at the last record (1.1 ``trainable``), else []."""
    if not traj.n_records or not traj.attrs.get(spec.ATTR_TRAINABLE):
        return []
    mask = traj.trainable_mask(-1)
    return [t.name for t in traj.layout if t.size and not mask[t.offset]]
