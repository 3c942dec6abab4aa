"""``catalog``: one table over many stores, the way a lab looks over a sweep.

Each row comes from what a store says about itself (description, provenance, sizes) and, where
an ``analyze`` report sits beside it (``<name>-report/summary.json``), its first window's
diffusion exponents. A store that cannot be opened is a row with its error, never skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import jinja2

from trajstore import spec
from trajstore.errors import TrajstoreError
from trajstore.reader import open as open_store

COLUMNS = (
    "store",
    "title",
    "model",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "seed",
    "records",
    "first_step",
    "last_step",
    "recording",
    "parameters",
    "bytes",
    "license",
    "alpha",
    "alpha_short",
    "alpha_long",
    "tau0",
    "exponents_window",
    "error",
)
# Headers of the html and plain-text tables where a column's key does not say its unit or scope
# (csv and json keep the keys).
_HEADERS = {"tau0": "tau0 (steps)", "exponents_window": "exponents of"}
_STORE_SUFFIXES = (".zarr", ".h5", ".hdf5", ".zip")

_HTML = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>trajstore catalog</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px}</style>
</head><body><h1>trajstore catalog</h1><p>{{ rows|length }} stores.</p>
<table><thead><tr>{% for c in columns %}<th>{{ headers.get(c, c) }}</th>{% endfor %}</tr></thead><tbody>
{% for r in rows %}<tr>{% for c in columns %}<td>{{ r[c] if r[c] is not none else "" }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></body></html>
""",
    autoescape=True,
)


def find_stores(places: Iterable[str]) -> list[str]:
    """Stores named directly, and stores found below local folders (not inside other stores)."""
    found: list[str] = []
    for place in places:
        place = os.fspath(place).rstrip("/")
        if "://" in place or place.lower().endswith(_STORE_SUFFIXES) or _is_zarr_store(place):
            found.append(place)
            continue
        if not os.path.isdir(place):
            raise TrajstoreError(f"{place}: no such store or folder; check the path")
        for dirpath, dirnames, files in os.walk(place):
            dirnames.sort()
            for d in list(dirnames):
                full = os.path.join(dirpath, d)
                if _is_zarr_store(full):
                    found.append(full)
                    dirnames.remove(d)
            found += [
                os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(_STORE_SUFFIXES[1:])
            ]
    return found


def _is_zarr_store(path: str) -> bool:
    meta = os.path.join(path, "zarr.json")
    if not os.path.isfile(meta):
        return False
    try:
        with open(meta, encoding="utf-8") as f:
            return json.load(f).get("attributes", {}).get(spec.ATTR_SPEC_NAME) == spec.SPEC_NAME
    except (OSError, ValueError, AttributeError):
        return False


def row(path: str) -> dict:
    """The catalog row of one store (``error`` says why a store could not be read)."""
    out: dict = dict.fromkeys(COLUMNS)
    out["store"] = path
    try:
        with open_store(path) as t:
            prov = t.provenance
            group = (prov.get("optimizer") or [{}])[0]
            out.update(
                title=t.dataset.get("title"),
                model=str(prov.get("model_class", "")).rsplit(".", 1)[-1] or None,
                optimizer=str(prov.get("optimizer_class", "")).rsplit(".", 1)[-1] or None,
                lr=group.get("lr"),
                momentum=group.get("momentum"),
                weight_decay=group.get("weight_decay"),
                seed=prov.get("seed"),
                records=t.n_records,
                first_step=int(t.steps[0]) if t.n_records else None,
                last_step=int(t.steps[-1]) if t.n_records else None,
                parameters=t.n_params,
                bytes=t.nbytes_stored(),
                license=t.dataset.get("license") or prov.get("license"),
                recording=_how_it_ended(t.metadata),
            )
            store_id = t.store_id
            if "batch_size" in t.observables:
                values = t.observable("batch_size")[1]
                out["batch_size"] = int(values.max()) if len(values) else None
    except TrajstoreError as exc:
        out["error"] = str(exc)
        return out
    out.update(_exponents(path, store_id, out))
    return out


def _how_it_ended(meta: dict) -> str | None:
    """What the recorder said about how the recording ended (docs/format.md 3.3), so a run that
    was refused or cut short is not shown like a complete one; None when it said nothing."""
    said = []
    refused = meta.get("trajstore_recording_refused")
    if isinstance(refused, dict):
        said.append(f"refused at iteration {refused.get('iteration')} ({refused.get('error')})")
    partial = meta.get("trajstore_partial_last_iteration")
    if isinstance(partial, dict):
        said.append(f"ended inside iteration {partial.get('iteration')}")
    dropped = meta.get("trajstore_dropped_records")
    if dropped:
        said.append(f"{dropped} records dropped")
    return "; ".join(said) or None


def _exponents(path: str, store_id: str | None, row: dict) -> dict:
    """The first window's exponents from ``<name>-report/summary.json`` beside a local store
    (τ0 in optimizer steps), unless the report is not of this store as it is now: another
    store id (re-recorded since), other records or parameters, or a part of it (``--steps``,
    ``--tensors``); then none, and ``error`` says why."""
    if "://" in path:
        return {}
    summary = os.path.splitext(path.rstrip("/"))[0] + "-report/summary.json"
    try:
        with open(summary, encoding="utf-8") as f:
            s = json.load(f)
        windows = s.get("windows") or []
    except (OSError, ValueError, AttributeError):
        return {}
    sel = s.get("selection") if isinstance(s.get("selection"), dict) else {}
    differs = [
        what
        for what, ours, theirs in (
            ("store id", store_id, s.get("store_id")),
            ("records", row["records"], s.get("n_records")),
            ("parameters", row["parameters"], s.get("n_params")),
        )
        if theirs is not None and ours is not None and theirs != ours
    ]
    if sel.get("steps") or sel.get("tensors") or sel.get("exclude"):
        differs.append("selection (part of the store)")
    if differs:
        return {
            "error": f"exponents left out: {summary} is not of this store as it is ({', '.join(differs)} "
            "differ); run trajstore analyze again"
        }
    first = windows[0] if windows and isinstance(windows[0], dict) else {}
    tau0 = first.get("tau0_steps") if "tau0_steps" in first else first.get("tau0")
    out = {**{k: first.get(k) for k in ("alpha", "alpha_short", "alpha_long")}, "tau0": tau0}
    if first.get("t_w") is not None and (first.get("alpha") is not None or tau0 is not None):
        # which part of the run they describe: the first window, not the run
        stride = first.get("stride")
        every = "" if stride in (None, 1) else f", every {stride} steps"
        out["exponents_window"] = (
            f"window 1 of {len(windows)}: t_w = {first.get('t_w')}, {first.get('n_records')} records{every}"
        )
    return out


def catalog(places: Sequence[str], engine: Any = None) -> list[dict]:
    """One row per store found in ``places`` (stores, folders to scan, URLs of stores).

    ``engine``: anything with ``map(func, items)`` (a
    :class:`~trajstore.analysis.distributed.DaskEngine`) reads the stores as parallel tasks;
    local paths are made absolute for the workers, rows keep the paths as given."""
    stores = find_stores(places)
    if engine is None:
        return [row(p) for p in stores]
    rows = engine.map(row, [p if "://" in p else os.path.abspath(p) for p in stores])
    return [{**r, "store": p} for r, p in zip(rows, stores, strict=True)]


def render(rows: list[dict], fmt: str) -> str:
    """``rows`` as ``"csv"``, ``"json"``, ``"html"`` or a plain-text ``"table"``."""
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    if fmt == "html":
        return _HTML.render(rows=rows, columns=COLUMNS, headers=_HEADERS)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    shown = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]
    cells = [[_cell(r.get(c)) for c in shown] for r in rows]
    heads = [_HEADERS.get(c, c) for c in shown]
    widths = [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
