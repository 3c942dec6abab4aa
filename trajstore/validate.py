"""Checking a store against every rule of the spec, checksums and digests included.

Each rule of ``docs/format.md`` that a store can break has an id (``[V12]``) written beside it
in the spec and at the end of every problem this module reports; :data:`RULES` lists them.
``validate`` never raises: a store damaged anywhere (metadata included) yields problems.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from . import spec
from .backends import Backend, backend_kind, open_backend
from .backends.locking import is_being_written
from .backends.zarr_backend import unreadable_metadata
from .description import problems as description_problems
from .errors import TrajstoreError, in_words
from .integrity import IntegrityIndex, StoredObjects, digest, parse_index
from .layout import Layout

_SCAN_BYTES = 64 * 1024 * 1024  # read committed records in pieces of about this size
_MAX_LISTED = 20  # problems listed per array before a count
_MAX_SCANNED_CHUNKS = 10**7  # a grid with more chunks than this is refused, not walked

RULES: dict[str, str] = {
    "V01": "the store opens and its root attribute spec_name is 'trajstore'",
    "V02": "spec_version is a 'MAJOR.MINOR' string whose major version this reader knows",
    "V03": "creator is {'program': str, 'version': str}",
    "V04": "created is an ISO 8601 time stamp with a UTC offset",
    "V05": "provenance and metadata, when present, are objects",
    "V06": "lossy is null or {'method': 'bitround', 'keepbits': 0..23, 'groups': [group names]}",
    "V10": "the weights group exists",
    "V11": "every time-dependent group has value and step arrays (time, when present, is an array)",
    "V12": "layout is a non-empty list of well-typed tensors, contiguous from 0, names unique",
    "V13": "the layout's sizes add up to value.shape[1]",
    "V14": "the gradients layout equals the weights layout",
    "V15": "n_committed is a non-negative integer",
    "V16": "value, step and time hold at least n_committed records",
    "V17": "steps strictly increase",
    "V18": "observable attributes: evaluated_at is pre_step or post_step; unit and description are strings",
    "V20": "value dtype: IEEE float (weights/gradients/buffers, 2-D) or float64 (observables, 1-D)",
    "V21": "step is 1-D int64; time is 1-D float64",
    "V22": "dimension names are ['record', 'param'] or ['record']",
    "V30": "Zarr codecs come from the allowed list (spec.ZARR_CODECS), no storage transformers",
    "V31": "Zarr 'bytes' codecs are little endian",
    "V32": "chunk grid: regular, positive chunk shapes, shards a whole number of inner chunks",
    "V33": "HDF5 filters come from the allowed list (spec.HDF5_FILTERS)",
    "V35": "every chunk holding committed records decodes and passes its checksum",
    "V40": "(1.1) every time-dependent group has an integrity index",
    "V41": "(1.1) the integrity index is well-formed and covers the committed records",
    "V42": "(1.1) every stored object (shard/chunk) holding committed records exists and is not empty",
    "V43": "(1.1) a full block's stored object has the size and tail digest recorded for it",
    "V44": "(1.1) the decoded values of every block match their recorded digests",
    "V45": "(1.1) every group listed in the root attribute 'groups' exists",
    "V46": "(1.1) trainable lists {'step': int, 'trainable': [bool per tensor]} by increasing step",
    "V47": "(1.1) segments lists objects with integer start_record, start_step, boolean continuous",
    "V48": "(1.1) gradient_source is 'update' or 'first_closure_evaluation'",
    "V50": "(1.1) dataset, when present, is a well-formed dataset description",
    "V51": "(1.1) store_id, when present, is a UUID",
    "V52": "(1.1) derived_from, when present, is an object with a string 'operation'",
    # (1.2) sketch recording: checked in trajstore.sketch_rules
    "V60": "(1.2) the sketch group's 'sketch' attribute describes the CountSketch (method, hash, dim = "
    "columns, seed, n_params = the weights' parameters)",
    "V61": "(1.2) sketch/value is float64 and the sketch layout is one tensor 'sketch' of [dim]",
    "V62": "(1.2) the sample group's 'sample' attribute is well-formed (method, size = columns, seed, "
    "n_params = the weights' parameters, index_crc32c)",
    "V63": "(1.2) sample/index is int64 (size,) ['sample'], strictly increasing within 0 … n_params − 1, "
    "matching index_crc32c",
    "V64": "(1.2) sample/value has the dtype of weights/value and the layout one tensor 'sample' of [size]",
    "V65": "(1.2) full_weights, when present, is a boolean; false only with a sketch or sample and no "
    "committed weights records",
    "V66": "(1.2) sketch and sample records are at the same steps (and at the weights' steps when the "
    "weights are recorded in full)",
    "V67": "(1.2) a store with a sketch or sample declares spec_version 1.2 or later",
    "V76": "(1.2) weights_taken is 'after_step' or 'next_step'",
    "V90": "(1.2) tensor_modules, when present, lists one string or null per weights tensor",
}


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

    @property
    def rules_broken(self) -> set[str]:
        """Ids of the rules the problems name (``{"V12", ...}``)."""
        return {m for p in self.problems for m in re.findall(r"\[(V\d\d)\]", p)}

    def add(self, rule: str, text: str) -> None:
        self.problems.append(f"{_one_line(text)} [{rule}]")


def validate(path: str | os.PathLike, *, checksums: bool = True, isolate: bool | None = None) -> Report:
    """Check every rule of ``docs/format.md``; with ``checksums``, decode every committed chunk
    and recompute every digest. Never raises: each problem becomes one line of the report.

    ``isolate`` (default: for HDF5 files) runs the check in a child process: libhdf5 can crash
    (segfault) on some damaged metadata, which would otherwise end the caller with it.
    """
    path = os.fspath(path)
    if isolate is None:
        isolate = os.path.isfile(path) and backend_kind_or_none(path) == "hdf5"
    if isolate:
        return _validate_in_child(path, checksums)
    return _validate_here(path, checksums)


def backend_kind_or_none(path: str) -> str | None:
    try:
        return backend_kind(path)
    except TrajstoreError:
        return None


def _validate_in_child(path: str, checksums: bool) -> Report:
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(sender, path, checksums), daemon=True)
    child.start()
    sender.close()
    try:
        fields = json.loads(receiver.recv_bytes())  # our own child's JSON, not untrusted bytes
    except (EOFError, OSError, ValueError):
        fields = None
    finally:
        receiver.close()
        child.join()
    if fields is None:
        report = Report(path)
        report.add(
            "V01",
            f"{path}: the HDF5 library crashed reading this file (exit code {child.exitcode}); "
            "the file is damaged",
        )
        return report
    return Report(**fields)


def _child(sender, path: str, checksums: bool) -> None:
    import faulthandler

    faulthandler.disable()  # a libhdf5 crash here is expected and reported by the parent
    report = _validate_here(path, checksums)
    sender.send_bytes(json.dumps(dataclasses.asdict(report)).encode())
    sender.close()


_LIVE = "{path} is being written (a live recording); validate it when the writer has closed it"


def _validate_here(path: str, checksums: bool) -> Report:
    report = Report(path)
    try:
        backend = open_backend(path, "r")
    except Exception as exc:  # noqa: BLE001 - a store that does not open breaks V01
        if "://" not in path and is_being_written(path):  # a live writer, caught mid-update
            report.problems = [_LIVE.format(path=path)]
            return report
        if not isinstance(exc, TrajstoreError):
            report.add("V01", f"cannot open: {exc}")
        else:  # its message names the path already, or is about it
            report.add("V01", str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}")
        return report
    try:
        with _guard(report, "V01", "store"):
            _validate(backend, report, checksums)
        live = getattr(backend, "is_being_written", None)
        if report.problems and live is not None and live():
            # A live HDF5 writer changes metadata under the checks: say so, never "damaged".
            report.problems = [_LIVE.format(path=path)]
    finally:
        try:
            backend.close()
        except Exception:  # noqa: BLE001 - closing a damaged file must not raise either
            pass
    return report


@contextmanager
def _guard(r: Report, rule: str, where: str) -> Iterator[None]:
    """Turn any failure inside (damaged metadata, library errors) into one problem line."""
    try:
        yield
    except RecursionError:
        r.add(rule, f"{where}: metadata nested too deeply to read")
    except Exception as exc:  # noqa: BLE001 - validate never raises
        bad = unreadable_metadata(r.path) if isinstance(exc, ValueError) else None
        if bad is not None:  # name the file that broke, not only the JSON parser's position
            r.add(rule, f"{r.path}: {bad}; restore that file from a copy of the store")
        else:
            r.add(rule, f"{where}: cannot be read ({type(exc).__name__}: {exc})")


def _one_line(text: str) -> str:
    line = " ".join(in_words(text).split())
    return line if len(line) <= 400 else line[:397] + "..."


# -- root ---------------------------------------------------------------------------------


def _validate(b: Backend, r: Report, checksums: bool) -> None:
    attrs = b.attrs("")
    if attrs.get(spec.ATTR_SPEC_NAME) != spec.SPEC_NAME:
        r.add(
            "V01",
            f"root attribute {spec.ATTR_SPEC_NAME!r} is {attrs.get(spec.ATTR_SPEC_NAME)!r}, "
            f"not {spec.SPEC_NAME!r}",
        )
        return
    raw_version = attrs.get(spec.ATTR_SPEC_VERSION)
    try:
        if not isinstance(raw_version, str):
            raise ValueError(f"spec_version {raw_version!r} is not a string")
        version = spec.parse_version(raw_version)
    except ValueError as exc:
        r.add("V02", f"root: {exc}")
        return
    if version[0] > spec.SPEC_MAJOR:
        r.add("V02", f"root: spec version {raw_version} is newer than {spec.SPEC_VERSION}; upgrade trajstore")
        return
    _check_root_attrs(attrs, r)
    if not b.exists(spec.WEIGHTS):
        r.add("V10", f"missing required group '{spec.WEIGHTS}'")
    layouts: dict[str, Layout] = {}
    for g in spec.VECTOR_GROUPS:
        if not b.exists(g):
            continue
        with _guard(r, "V11", g):
            layout = _check_layout(b, g, r)
            if layout is not None:
                layouts[g] = layout
            _check_series(b, g, r, 2, layout.n_params if layout else None, checksums, version)
    _check_recording_attrs(attrs, layouts.get(spec.WEIGHTS), r)
    if (
        spec.GRADIENTS in layouts
        and spec.WEIGHTS in layouts
        and layouts[spec.GRADIENTS] != layouts[spec.WEIGHTS]
    ):
        r.add("V14", "gradients: layout differs from the weights layout")
    names: list[str] = []
    with _guard(r, "V11", spec.OBSERVABLES):
        names = b.groups(spec.OBSERVABLES)
    for name in names:
        group = f"{spec.OBSERVABLES}/{name}"
        with _guard(r, "V11", group):
            _check_observable_attrs(b.attrs(group), group, r)
            _check_series(b, group, r, 1, None, checksums, version)
    if version >= (1, 1):
        with _guard(r, "V45", "root"):
            _check_group_list(b, attrs, r)
    from . import sketch_rules  # (1.2) sketch and sample groups

    sketch_rules.check(b, attrs, layouts, r, checksums, version)


def _check_root_attrs(attrs: dict, r: Report) -> None:
    for rule, text in root_attr_problems(attrs) + sharing_attr_problems(attrs):
        r.add(rule, text)


def sharing_attr_problems(attrs: dict) -> list[tuple[str, str]]:
    """(rule, text) for the (1.1) sharing attributes ``dataset``, ``store_id``, ``derived_from``
    (V50-V52). Readers do not run these: a malformed description does not make data unreadable."""
    out = [("V50", text) for text in description_problems(attrs.get(spec.ATTR_DATASET))]
    sid = attrs.get(spec.ATTR_STORE_ID)
    if sid is not None:
        try:
            uuid.UUID(str(sid))
        except ValueError:
            out.append(("V51", f"root: attribute {spec.ATTR_STORE_ID!r} must be a UUID, not {_short(sid)}"))
    src = attrs.get(spec.ATTR_DERIVED_FROM)
    if src is not None and not (isinstance(src, dict) and isinstance(src.get("operation"), str)):
        text = f"root: attribute {spec.ATTR_DERIVED_FROM!r} must be an object with a string 'operation'"
        out.append(("V52", text))
    return out


def root_attr_problems(attrs: dict) -> list[tuple[str, str]]:
    """(rule, text) for each root attribute of the wrong type (V03-V06); readers run it too."""
    out: list[tuple[str, str]] = []
    creator = attrs.get(spec.ATTR_CREATOR)
    if not (
        isinstance(creator, dict)
        and isinstance(creator.get("program"), str)
        and isinstance(creator.get("version"), str)
    ):
        out.append(("V03", f"root: creator {_short(creator)} is not {{'program': str, 'version': str}}"))
    created = attrs.get(spec.ATTR_CREATED)
    if not _is_iso_utc(created):
        out.append(
            ("V04", f"root: created {_short(created)} is not an ISO 8601 time stamp with a UTC offset")
        )
    for key in (spec.ATTR_PROVENANCE, spec.ATTR_METADATA):
        if key in attrs and not isinstance(attrs[key], dict):
            out.append(("V05", f"root: attribute {key!r} must be an object, not {_short(attrs[key])}"))
    if spec.ATTR_LOSSY in attrs and not _is_lossy(attrs[spec.ATTR_LOSSY]):
        out.append(
            ("V06", f"root: lossy {_short(attrs[spec.ATTR_LOSSY])} is neither null nor a bitround object")
        )
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_iso_utc(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return stamp.utcoffset() is not None


def _is_lossy(value: object) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, dict)
        and value.get("method") == "bitround"
        and _is_int(value.get("keepbits"))
        and 0 <= value["keepbits"] <= 23
        and isinstance(value.get("groups"), list)
        and all(g in spec.VECTOR_GROUPS for g in value["groups"])
    )


def _check_group_list(b: Backend, attrs: dict, r: Report) -> None:
    listed = attrs.get(spec.ATTR_GROUPS)
    if listed is None:
        return  # optional: written by trajstore 1.1 writers
    if not isinstance(listed, list) or not all(isinstance(g, str) for g in listed):
        r.add("V45", f"root: groups {_short(listed)} is not a list of group paths")
        return
    for g in listed:
        if not b.exists(g):
            r.add("V45", f"root lists group {g!r} but the store has no such group (lost or renamed?)")


def _check_observable_attrs(attrs: dict, group: str, r: Report) -> None:
    ev = attrs.get(spec.ATTR_EVALUATED_AT, spec.POST_STEP)
    if ev not in spec.EVALUATED_AT_VALUES:
        r.add(
            "V18",
            f"{group}: attribute {spec.ATTR_EVALUATED_AT!r} is {_short(ev)}, "
            f"not one of {spec.EVALUATED_AT_VALUES}",
        )
    for key in (spec.ATTR_UNIT, spec.ATTR_DESCRIPTION):
        if key in attrs and not isinstance(attrs[key], str):
            r.add("V18", f"{group}: attribute {key!r} is {_short(attrs[key])}, not a string")


def _check_layout(b: Backend, g: str, r: Report) -> Layout | None:
    try:
        return Layout.from_json(b.attrs(g).get(spec.ATTR_LAYOUT))
    except TrajstoreError as exc:
        r.add("V12", f"{g}: {exc}")
        return None


# -- arrays -------------------------------------------------------------------------------


_DTYPES = {  # allowed dtypes by kind of array (Zarr names; numpy kinds for HDF5)
    "vector": ("float16", "float32", "float64"),
    "scalar": ("float64",),
    "step": ("int64",),
    "time": ("float64",),
}


def array_problems(b: Backend, path: str, kind: str) -> list[tuple[str, str]]:
    """(rule, text) for what is wrong with the dtype, shape, dimension names, chunk grid and
    codecs of one array; ``kind`` is ``vector``, ``scalar``, ``step`` or ``time``. Reads metadata
    only (for Zarr the raw ``zarr.json``), so readers run it too before they trust an array."""
    meta = b.array_metadata(path)
    ndim = 2 if kind == "vector" else 1
    rule = "V20" if kind in ("vector", "scalar") else "V21"
    if "zarr_format" in meta or "node_type" in meta:
        if meta.get("node_type") != "array":
            return [("V11", f"{path}: is not an array")]
        shape = meta.get("shape")
        if not isinstance(shape, list) or len(shape) != ndim or not all(_is_int(d) and d >= 0 for d in shape):
            return [(rule, f"{path}: shape {_short(shape)} is not {ndim} non-negative integers")]
        out: list[tuple[str, str]] = []
        if meta.get("data_type") not in _DTYPES[kind]:
            out.append(
                (rule, f"{path}: data type {_short(meta.get('data_type'))} is not {'/'.join(_DTYPES[kind])}")
            )
        got = meta.get("dimension_names")
        got = tuple(got) if isinstance(got, list) else got
        out.extend(_dims_problem(path, got, ndim))
        out.extend(_zarr_problems(path, meta, ndim))
        grid = ((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape")
        chunks = grid if _positive_shape(grid, ndim) else None
    else:
        shape = b.shape(path)
        dtype = b.dtype(path)
        if len(shape) != ndim:
            return [(rule, f"{path}: has {len(shape)} dimensions, expected {ndim}")]
        out = []
        if dtype.kind not in "fiu" or dtype.name not in _DTYPES[kind]:
            out.append((rule, f"{path}: dtype {dtype} is not {'/'.join(_DTYPES[kind])}"))
        out.extend(_dims_problem(path, b.dimension_names(path), ndim))
        out.extend(_hdf5_problems(path, meta))
        chunks = b.chunks(path)
    if chunks and all(c > 0 for c in chunks):
        n_chunks = math.prod(max(1, math.ceil(s / c)) for s, c in zip(shape, chunks, strict=False))
        if n_chunks > _MAX_SCANNED_CHUNKS:
            out.append(
                ("V32", f"{path}: shape {list(shape)} in chunks {list(chunks)} declares {n_chunks} chunks")
            )
    return out


def _dims_problem(path: str, got: object, ndim: int) -> list[tuple[str, str]]:
    expected = (spec.DIM_RECORD, spec.DIM_PARAM)[:ndim]
    if got != expected:
        return [("V22", f"{path}: dimension names {_short(got)} should be {list(expected)}")]
    return []


def _positive_shape(value: object, ndim: int) -> bool:
    return (
        isinstance(value, (list, tuple)) and len(value) == ndim and all(_is_int(c) and c > 0 for c in value)
    )


def _zarr_problems(path: str, meta: dict, ndim: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    grid = meta.get("chunk_grid") or {}
    outer = (grid.get("configuration") or {}).get("chunk_shape")
    if grid.get("name") != "regular" or not _positive_shape(outer, ndim):
        out.append(("V32", f"{path}: chunk grid {_short(grid)} is not regular with positive chunk sizes"))
    if meta.get("storage_transformers"):
        out.append(("V30", f"{path}: storage transformers are not allowed"))

    def walk(codecs, shape) -> None:
        for c in codecs or ():
            d = c if isinstance(c, dict) else c.to_dict()
            name = d.get("name")
            conf = d.get("configuration") or {}
            if name not in spec.ZARR_CODECS:
                out.append(("V30", f"{path}: codec {name!r} is not allowed"))
            if name == "bytes" and conf.get("endian", "little") != "little":
                out.append(("V31", f"{path}: codec 'bytes' is {conf.get('endian')!r} endian, not little"))
            if name == "transpose" and sorted(conf.get("order") or ()) != list(range(ndim)):
                out.append(("V32", f"{path}: transpose order {conf.get('order')!r} is not a permutation"))
            if name == "sharding_indexed":
                inner = conf.get("chunk_shape")
                if not _positive_shape(inner, ndim) or (
                    _positive_shape(shape, ndim) and any(s % c for s, c in zip(shape, inner, strict=True))
                ):
                    out.append(("V32", f"{path}: shard {shape} is not a whole number of chunks {inner}"))
                walk(conf.get("codecs"), inner)
                walk(conf.get("index_codecs"), None)

    walk(meta.get("codecs"), outer)
    return out


def _hdf5_problems(path: str, meta: dict) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in meta.get("filters", ()):
        if name not in spec.HDF5_FILTERS:
            out.append(("V33", f"{path}: HDF5 filter {name!r} is not allowed"))
    chunks = meta.get("chunks")
    if chunks is not None and not all(_is_int(c) and c > 0 for c in chunks):
        out.append(("V32", f"{path}: chunk shape {chunks} is not positive"))
    return out


def _check_series(
    b: Backend, g: str, r: Report, ndim: int, n_params: int | None, checksums: bool, version: tuple[int, int]
) -> None:
    value, step, time = f"{g}/{spec.VALUE}", f"{g}/{spec.STEP}", f"{g}/{spec.TIME}"
    if getattr(b, "skips_empty_chunks", False):
        # Zarr: judge each zarr.json as written, before zarr's parser refuses or normalises it.
        bad = False
        for path, kind in ((value, "vector" if ndim == 2 else "scalar"), (step, "step"), (time, "time")):
            if not b.array_metadata(path):
                continue
            for rule, text in array_problems(b, path, kind):
                r.add(rule, text)
                bad = True
        if bad:
            return
    if not b.is_array(value) or not b.is_array(step):
        r.add("V11", f"{g}: missing array '{spec.VALUE}' or '{spec.STEP}'")
        return
    has_time = b.exists(time)
    if has_time and not b.is_array(time):
        r.add("V11", f"{g}: '{spec.TIME}' is not an array")
        has_time = False
    kinds = {value: "vector" if ndim == 2 else "scalar", step: "step"}
    if has_time:
        kinds[time] = "time"
    sound = True  # arrays whose metadata can be trusted enough to read them
    for path, kind in kinds.items():
        with _guard(r, "V32", path):
            problems = array_problems(b, path, kind)
            for rule, text in problems:
                r.add(rule, text)
            sound &= not problems
    shape = b.shape(value)
    if n_params is not None and len(shape) == 2 and shape[1] != n_params:
        r.add("V13", f"{value}: has {shape[1]} columns but the layout has {n_params} parameters")
        sound = False
    attrs = b.attrs(g)
    n = attrs.get(spec.ATTR_N_COMMITTED)
    if not _is_int(n) or n < 0:
        r.add("V15", f"{g}: attribute {spec.ATTR_N_COMMITTED!r} is {_short(n)}, not a non-negative integer")
        return
    stored = min(b.shape(p)[0] if b.shape(p) else 0 for p in kinds)
    if n > stored:
        r.add("V16", f"{g}: {n} records committed but only {stored} stored (truncated)")
        return
    index = _check_index(b, g, attrs, n, has_time, version, r)
    if not sound:
        return  # reading arrays with broken metadata would read garbage or allocate wildly
    damaged = False
    # Objects of the wrong size or tail [V43], or shards cut short [V35], by array and grid
    # position, as (rule, line): the scan joins each with its chunks that fail to decode, so a
    # truncated shard is one line, not one per chunk.
    altered: dict[str, dict[tuple[int, ...], tuple[str, str]]] = {}
    for path in kinds:
        objects = StoredObjects(b, path, n, index, fill_ok=index is None and _fill_ok_10(b, g, path, n))
        for coords, text in objects.damaged_objects(0, n, limit=_MAX_LISTED):
            if "[V42]" in text:
                r.add("V42", text.replace(" [V42]", ""))
                damaged = True
            else:
                rule = "V35" if text.endswith(" [V35]") else "V43"
                altered.setdefault(path, {})[coords] = (rule, text.removesuffix(f" [{rule}]"))
    if not checksums or damaged:
        for lines in altered.values():
            for rule, text in lines.values():
                r.add(rule, text)
        if damaged:
            r.warnings.append(f"{g}: not decoded, as stored objects are missing")
        return
    for path in kinds:
        _scan(b, path, n, index, r, altered.get(path, {}))
    try:
        steps = b.read(step, slice(0, n))
    except Exception:  # noqa: BLE001 - already reported by the scan
        return
    if n > 1 and np.any(np.diff(steps) <= 0):
        i = int(np.flatnonzero(np.diff(steps) <= 0)[0])
        r.add("V17", f"{step}: steps must increase; record {i + 1} has step {steps[i + 1]} after {steps[i]}")


def _fill_ok_10(b: Backend, g: str, path: str, n: int) -> bool:
    """1.0 Zarr stores: arrays whose all-zero chunks their writer let zarr skip (see reader)."""
    if not getattr(b, "skips_empty_chunks", False):
        return False
    name = path.rsplit("/", 1)[-1]
    return (
        name == spec.TIME
        or (name == spec.STEP and n <= 1)
        or (g.startswith(f"{spec.OBSERVABLES}/") and name == spec.VALUE)
    )


def _check_index(
    b: Backend, g: str, attrs: dict, n: int, has_time: bool, version: tuple[int, int], r: Report
) -> IntegrityIndex | None:
    raw = attrs.get(spec.ATTR_INTEGRITY)
    if raw is None:
        if version >= (1, 1):
            r.add("V40", f"{g}: no integrity index, although the store is format {version[0]}.{version[1]}")
        return None
    try:
        index = parse_index(b, g, raw, g)
    except TrajstoreError as exc:
        r.add("V41", str(exc).replace(" [V41]", ""))
        return None
    if index.n_committed < n:
        r.add("V41", f"{g}: the integrity index covers {index.n_committed} records, {n} are committed")
        return None
    if (spec.TIME in index.arrays) != has_time:
        r.add("V41", f"{g}: the integrity index lists arrays {list(index.arrays)}, the group disagrees")
        return None
    return index


def _scan(
    b: Backend,
    path: str,
    n: int,
    index: IntegrityIndex | None,
    r: Report,
    altered: dict[tuple[int, ...], tuple[str, str]] | None = None,
) -> None:
    """Decode the committed records of ``path`` once: checksums (V35), digests (V44), and the
    count of non-finite values. Each block is read in column pieces of whole chunks, which is
    the order its digest chains in (column-major), so every chunk is decoded once. Problems come
    one line per damaged stored object (a shard of several chunks, or one chunk): ``altered``
    holds the [V43] lines of objects of the wrong size or tail, joined here with their chunks
    that fail to decode."""
    shape = b.shape(path)
    chunks = b.chunks(path)
    itemsize = b.dtype(path).itemsize
    name = path.rsplit("/", 1)[-1]
    spans = []
    for blk in index.blocks if index else ():
        if blk.start >= n:
            break
        if blk.stop <= n or blk.stop <= shape[0]:
            # A block past the commit (a crash between index and count) is still on disk.
            spans.append((blk.start, blk.stop, blk.digests.get(name)))
        else:
            spans.append((blk.start, n, None))
    covered = spans[-1][1] if spans else 0
    step = chunks[0] if len(shape) == 2 else max(chunks[0], _SCAN_BYTES // itemsize)
    spans += [(a, min(a + step, n), None) for a in range(covered, n, step)]
    mismatched = nonfinite = 0
    bad: dict[tuple[int, ...], str] = {}  # chunk index -> why it fails; each chunk once
    for start, stop, expected in spans:
        if stop <= start:
            continue
        crc, ok = 0, True
        if len(shape) == 2:
            width = max(chunks[1], (_SCAN_BYTES // ((stop - start) * itemsize)) // chunks[1] * chunks[1])
            pieces = [
                (slice(start, stop), slice(c, min(c + width, shape[1]))) for c in range(0, shape[1], width)
            ]
        else:
            rows = max(1, _SCAN_BYTES // itemsize)
            pieces = [(slice(a, min(a + rows, stop)),) for a in range(start, stop, rows)]
        for piece in pieces:
            try:
                data = b.read(path, piece)
            except Exception as exc:  # noqa: BLE001 - name the chunks that fail
                ok = False
                _find_bad_chunks(b, path, piece, bad, _one_line(str(exc)) or type(exc).__name__)
                continue
            crc = digest(data, crc, width=chunks[1] if len(shape) == 2 else None)
            if data.dtype.kind == "f":
                nonfinite += int(data.size - np.count_nonzero(np.isfinite(data)))
        if ok and expected is not None and crc != expected:
            mismatched += 1
            if mismatched <= _MAX_LISTED:
                r.add(
                    "V44",
                    f"{path} records {start}..{stop - 1} differ from what was written "
                    "(a stored object was swapped, moved or altered, or the array's description "
                    "in its metadata edited)",
                )
    _report_bad_objects(b, path, bad, altered or {}, r)
    if nonfinite:
        r.nonfinite[path] = nonfinite
        r.warnings.append(f"{path}: {nonfinite} non-finite values (NaN or inf), stored as recorded")


def _find_bad_chunks(
    b: Backend, path: str, piece: tuple, bad: dict[tuple[int, ...], str], failure: str
) -> None:
    """Decode chunk by chunk a piece that failed; add each chunk that fails (index -> why) to
    ``bad``. Chunks already there are not decoded again (pieces of several blocks of records
    can share a chunk: a 1-D ``step`` chunk holds many blocks)."""
    chunks = b.chunks(path)
    ranges = [
        range(sl.start // c, max(sl.start // c + 1, math.ceil(sl.stop / c)))
        for sl, c in zip(piece, chunks, strict=False)
    ]
    found = False
    for idx in np.ndindex(*[len(x) for x in ranges]):
        cidx = tuple(x[i] for x, i in zip(ranges, idx, strict=True))
        if cidx in bad:
            found = True
            continue
        sel = tuple(
            slice(max(k * c, sl.start), min((k + 1) * c, sl.stop))
            for k, c, sl in zip(cidx, chunks, piece, strict=False)
        )
        try:
            b.read(path, sel)
        except Exception as exc:  # noqa: BLE001 - any decode failure is a damaged chunk
            msg = in_words(str(exc)).strip().splitlines()
            bad[cidx] = msg[0] if msg else type(exc).__name__
            found = True
    if not found:  # the piece failed as a whole (``failure``), yet no chunk alone: name its first
        first = tuple(x[0] for x in ranges)
        bad.setdefault(first, f"{failure}; no chunk fails when read alone")


def _report_bad_objects(
    b: Backend,
    path: str,
    bad: dict[tuple[int, ...], str],
    altered: dict[tuple[int, ...], tuple[str, str]],
    r: Report,
) -> None:
    """One line per damaged stored object: its (rule, line) of ``altered`` ([V43] wrong size or
    tail, [V35] a shard cut short) and/or its chunks that fail to decode [V35] (the chunk
    itself when the object holds one chunk)."""
    chunks, grid = b.chunks(path), b.object_grid(path)
    per_object: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for cidx in sorted(bad):
        obj = tuple(k * c // g for k, c, g in zip(cidx, chunks, grid, strict=False))
        per_object.setdefault(obj, []).append(cidx)
    listed = 0
    for obj in sorted(set(per_object) | set(altered)):
        listed += 1
        if listed > _MAX_LISTED:
            continue
        cidxs = per_object.get(obj, [])
        if not cidxs:
            r.add(*altered[obj])
            continue
        first = cidxs[0]
        if len(cidxs) == 1:
            what = f"chunk {first} is corrupted ({bad[first]})"
        else:
            what = f"{len(cidxs)} of its chunks are corrupted, the first, chunk {first}: {bad[first]}"
        if obj in altered:
            rule, line = altered[obj]
            r.add("V35", f"{line} [{rule}]; {what}" if rule != "V35" else f"{line}; {what}")
        elif len(cidxs) == 1:
            r.add("V35", f"{path}: {what}")
        else:
            r.add("V35", f"{path}: stored object {b.object_key(path, obj)}: {what}")
    if listed > _MAX_LISTED:
        r.add("V35", f"{path}: {listed - _MAX_LISTED} more damaged stored objects")


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
                r.add(
                    "V46",
                    f"root: attribute {spec.ATTR_TRAINABLE!r} must list {{'step': int, 'trainable': "
                    "[one bool per weights tensor]}",
                )
                return
            steps.append(c["step"])
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            r.add("V46", f"root: attribute {spec.ATTR_TRAINABLE!r} steps must strictly increase")
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
        r.add(
            "V47",
            f"root: attribute {spec.ATTR_SEGMENTS!r} must list objects with integer 'start_record', "
            "'start_step' and boolean 'continuous'",
        )
    _check_tensor_modules(attrs, layout, r)
    source = attrs.get(spec.ATTR_GRADIENT_SOURCE)
    if source is not None and source not in spec.GRADIENT_SOURCES:
        r.add(
            "V48",
            f"root: attribute {spec.ATTR_GRADIENT_SOURCE!r} is {source!r}, "
            f"not one of {spec.GRADIENT_SOURCES}",
        )
    taken = attrs.get(spec.ATTR_WEIGHTS_TAKEN)
    if taken is not None and taken not in spec.WEIGHTS_TAKEN:
        r.add(
            "V76",
            f"root: attribute {spec.ATTR_WEIGHTS_TAKEN!r} is {taken!r}, not one of {spec.WEIGHTS_TAKEN}",
        )


def _check_tensor_modules(attrs: dict, layout: Layout | None, r: Report) -> None:
    """The (1.2) root attribute ``tensor_modules``: one module class name (or null) per tensor."""
    modules = attrs.get(spec.ATTR_TENSOR_MODULES)
    if modules is None:
        return
    if not (
        isinstance(modules, list)
        and all(m is None or (isinstance(m, str) and 0 < len(m) <= 256) for m in modules)
        and (layout is None or len(modules) == len(layout))
    ):
        r.add(
            "V90",
            f"root: attribute {spec.ATTR_TENSOR_MODULES!r} must list one module class name "
            "(a non-empty string of at most 256 characters) or null per weights tensor",
        )
