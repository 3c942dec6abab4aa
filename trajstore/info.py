"""A JSON-ready summary of a store: what ``trajstore info`` prints."""

from __future__ import annotations

import numpy as np

from . import spec
from .reader import Trajectory

_NONFINITE_SCAN_BYTES = 256 * 1024 * 1024
AUTO_SCAN_LIMIT = 2 * 1024**3  # raw weight bytes up to which ``info`` counts non-finite values


def summarize(traj: Trajectory, *, scan_nonfinite: bool | None = None) -> dict:
    """Records, step range, parameters, tensors, bytes on disk, compression ratio, observables,
    provenance; with ``scan_nonfinite`` (default: when the weights are at most 2 GiB raw), the
    number of non-finite weights, which reads every weight (``validate`` always does)."""
    raw = traj.n_records * traj.n_params * traj.weights.dtype.itemsize
    on_disk = traj.nbytes_stored()
    out: dict = {
        "path": traj.path,
        "backend": traj.backend_name,
        "spec_version": traj.spec_version,
        "creator": traj.attrs.get(spec.ATTR_CREATOR),
        "created": traj.attrs.get(spec.ATTR_CREATED),
        "n_records": traj.n_records,
        "step_range": [int(traj.steps[0]), int(traj.steps[-1])] if traj.n_records else None,
        "n_params": traj.n_params,
        "dtype": str(traj.weights.dtype),
        "chunks": list(traj.weights.chunks),
        "tensors": [{"name": t.name, "shape": list(t.shape), "offset": t.offset} for t in traj.layout],
        "bytes_on_disk": on_disk,
        "raw_weight_bytes": raw,
        "compression_ratio": (raw / on_disk) if on_disk and raw else None,
        "gradients": traj.gradients.n_records if traj.gradients else 0,
        "buffers": traj.buffers.n_records if traj.buffers else 0,
        "observables": {},
        # (1.1) what the records mean
        "segments": [[sl.start, sl.stop] for sl in traj.segments],
        "gradient_source": traj.gradient_source if traj.gradients else None,
        "frozen_tensors_at_last_record": _frozen_at_last(traj),
        "lossy": traj.lossy,
        "provenance": traj.provenance,
        "metadata": traj.metadata,
    }
    from .sketch import sketch_summary

    sketched = sketch_summary(traj)
    if sketched is not None:  # (1.2) a sketch and/or sample of the weights
        out["sketch"] = sketched
    for name in traj.observables:
        steps, values = traj.observable(name)
        attrs = traj.observable_attrs(name)
        out["observables"][name] = {
            "n": int(len(steps)),
            "unit": attrs.get(spec.ATTR_UNIT, ""),
            "evaluated_at": attrs.get(spec.ATTR_EVALUATED_AT, spec.POST_STEP),
            "last": float(values[-1]) if len(values) else None,
        }
    if scan_nonfinite is None:
        scan_nonfinite = raw <= AUTO_SCAN_LIMIT
    if not scan_nonfinite:
        out["nonfinite_weights"] = None  # not counted: use --scan or trajstore validate
    elif traj.n_records:
        bad = 0
        for block in traj.blocks(memory_limit=_NONFINITE_SCAN_BYTES):
            bad += int(block.data.size - np.count_nonzero(np.isfinite(block.data)))
        out["nonfinite_weights"] = bad
    return out


def format_summary(s: dict) -> str:
    """Human-readable lines for :func:`summarize`'s dict."""

    def mb(n: int | None) -> str:
        return "unknown (remote)" if n is None else f"{n / 1e6:.2f} MB"

    lines = [
        f"store        {s['path']} ({s['backend']}, trajstore format {s['spec_version']})",
        f"records      {s['n_records']}"
        + (f", steps {s['step_range'][0]}..{s['step_range'][1]}" if s["step_range"] else ""),
        f"parameters   {s['n_params']} {s['dtype']} in {len(s['tensors'])} tensors, chunks {s['chunks']}",
        f"size         {mb(s['bytes_on_disk'])} on disk, {mb(s['raw_weight_bytes'])} raw weights"
        + (f", ratio {s['compression_ratio']:.2f}" if s["compression_ratio"] else ""),
    ]
    if s.get("sketch"):
        lines.append(f"sketch       {s['sketch']['text']}")
    if s.get("gradients"):
        lines.append(f"gradients    {s['gradients']} records")
    if s.get("buffers"):
        lines.append(f"buffers      {s['buffers']} records")
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
        lines.append(f"observable   {name}{unit}: {o['n']} values, {o['evaluated_at']}, last {last}")
    for t in s["tensors"][:50]:
        lines.append(f"tensor       {t['name']} {tuple(t['shape'])} @ {t['offset']}")
    if len(s["tensors"]) > 50:
        lines.append(f"tensor       ... {len(s['tensors']) - 50} more")
    for key, value in (s.get("provenance") or {}).items():
        if key == "script_text" and isinstance(value, str):
            value = f"<{len(value)} characters; see --json>"
        lines.append(f"provenance   {key}: {value}")
    for key, value in (s.get("metadata") or {}).items():
        lines.append(f"metadata     {key}: {value}")
    return "\n".join(lines)


def _frozen_at_last(traj: Trajectory) -> list[str]:
    """Names of the tensors not trainable at the last record (1.1 ``trainable``), else []."""
    if not traj.n_records or not traj.attrs.get(spec.ATTR_TRAINABLE):
        return []
    mask = traj.trainable_mask(-1)
    return [t.name for t in traj.layout if t.size and not mask[t.offset]]
