"""Writing a trajectory store: ``trajstore.create(...)`` returns a :class:`Writer`."""

from __future__ import annotations

import os
import time as _time
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import __version__, spec
from .backends import Compression, backend_kind, open_backend
from .chunking import SCALAR_CHUNK_RECORDS, choose_chunks
from .description import normalise as normalise_description
from .errors import ClosedError, LayoutError, StoreExistsError
from .layout import Layout
from .lossy import bitround
from .provenance import parse_iso, utc_now_iso
from .reader import check_header
from .safety import (
    check_output_folder,
    remove_quietly,
    remove_stale_temporaries,
    remove_store,
    temporary_sibling,
)
from .series import SeriesWriter, list_group
from .shards import EncoderPool

ParamsLike = int | Mapping[str, Any] | Layout
# Series created during a run are built under this hidden group and moved into place, so a
# crash in the middle of creating one never leaves a group without its arrays.
CREATING = ".creating"


def _as_layout(params: ParamsLike) -> Layout:
    return params if isinstance(params, Layout) else Layout.from_params(params)


class Writer:
    """Streams records into a store; keeps it valid at every flush.

    Use :func:`create` to make one. ``append`` buffers one record; full blocks of
    ``chunk_records`` records are written as they fill and committed at once; ``flush`` writes
    and commits everything buffered; ``close`` flushes and trims the arrays.
    """

    def __init__(
        self,
        backend,
        layout: Layout,
        *,
        compression: Compression,
        chunk_records,
        chunk_params,
        keepbits: int | None,
        created_epoch: float,
        buffers_layout: Layout | None,
        threads: int = 0,
        shard_params: int | None = None,
        nice: int = 0,
    ):
        self._backend = backend
        # Threads that encode full blocks in the background (trajstore.shards); 0: the caller.
        self.threads = int(threads)
        self._pool = EncoderPool(self.threads, nice) if self.threads > 0 else None
        self.layout = layout
        self.buffers_layout = buffers_layout
        self.path = backend.path
        self._compression = compression
        self._chunk_records = chunk_records
        self._chunk_params = chunk_params
        self._shard_params = shard_params
        self._keepbits = keepbits
        self._created_epoch = created_epoch
        self._series: dict[str, Any] = {}
        self._closed = False

    # -- public API ----------------------------------------------------------------------

    @property
    def n_records(self) -> int:
        """Records of ``weights`` appended so far (written or buffered)."""
        return self._series[spec.WEIGHTS].n_records

    @property
    def last_step(self) -> int | None:
        """Step of the last weights record."""
        return self._series[spec.WEIGHTS].last_step

    @property
    def max_step(self) -> int | None:
        """Largest step of any series (observables may run ahead of the weights after a crash)."""
        steps = [s.last_step for s in self._series.values() if s.last_step is not None]
        return max(steps) if steps else None

    def append(
        self,
        step: int,
        weights,
        *,
        time: float | None = None,
        gradients=None,
        buffers=None,
    ) -> None:
        """Record the flat parameter vector ``weights`` (n_params,) after optimizer step ``step``.

        ``gradients`` (n_params,): the minibatch gradient used by step ``step`` (computed before
        the update). ``buffers`` (n_buffer_values,): non-trainable state after the step.
        ``time``: seconds since the store's creation (default: now).
        """
        self._check_open()
        step = int(step)
        t = (_time.time() - self._created_epoch) if time is None else float(time)
        w = self._vector(weights, self.layout, "weights")
        if gradients is not None:
            g = self._vector(gradients, self.layout, "gradients")
        if buffers is not None:
            if self.buffers_layout is None:
                raise LayoutError("append: buffers given but the store was created without a buffers layout")
            bvec = self._vector(buffers, self.buffers_layout, "buffers")
        # Check every step before any series changes, so a bad call leaves nothing half-done.
        for name, given in ((spec.GRADIENTS, gradients), (spec.BUFFERS, buffers)):
            s = self._series.get(name)
            if given is not None and s is not None and s.last_step is not None and step <= s.last_step:
                raise ValueError(f"{name}: step {step} is not after the last recorded step {s.last_step}")
        self._commit_if(self._series[spec.WEIGHTS].append(step, w, t), spec.WEIGHTS)
        if gradients is not None:
            self._commit_if(
                self._vector_series(spec.GRADIENTS, self.layout).append(step, g, t), spec.GRADIENTS
            )
        if buffers is not None:
            self._commit_if(
                self._vector_series(spec.BUFFERS, self.buffers_layout).append(step, bvec, t), spec.BUFFERS
            )

    def log(
        self,
        name: str,
        step: int,
        value: float,
        *,
        unit: str | None = None,
        description: str | None = None,
        evaluated_at: str | None = None,
    ) -> None:
        """Record a scalar observable ``name`` at optimizer step ``step``.

        ``evaluated_at``: ``"pre_step"`` when the value was computed at the weights before step
        ``step`` (a minibatch training loss), ``"post_step"`` when after it (the default).
        The first call for a name fixes its unit, description and pairing.
        """
        self._check_open()
        if not name or "/" in name:
            raise ValueError(f"observable name {name!r} must be non-empty and contain no '/'")
        group = f"{spec.OBSERVABLES}/{name}"
        series = self._series.get(group)
        if series is None:
            series = self._open_observable(group, unit, description, evaluated_at or spec.POST_STEP)
        t = _time.time() - self._created_epoch
        self._commit_if(series.append(int(step), float(value), t), group)

    def set_metadata(self, **values: Any) -> None:
        """Merge ``values`` into the root ``metadata`` attribute (free-form, JSON-serialisable)."""
        self._check_open()
        meta = dict(self._backend.attrs("").get(spec.ATTR_METADATA) or {})
        meta.update(values)
        self._backend.set_attrs("", {spec.ATTR_METADATA: meta})

    def drop_metadata(self, *keys: str) -> None:
        """Remove ``keys`` from the root ``metadata`` attribute (absent ones are ignored)."""
        self._check_open()
        meta = dict(self._backend.attrs("").get(spec.ATTR_METADATA) or {})
        if any(k in meta for k in keys):
            kept = {k: v for k, v in meta.items() if k not in keys}
            self._backend.set_attrs("", {spec.ATTR_METADATA: kept})

    def set_provenance(self, **values: Any) -> None:
        """Merge ``values`` into the root ``provenance`` attribute."""
        self._check_open()
        prov = dict(self._backend.attrs("").get(spec.ATTR_PROVENANCE) or {})
        prov.update(values)
        self._backend.set_attrs("", {spec.ATTR_PROVENANCE: prov})

    def set_recording_attribute(self, key: str, value: Any) -> None:
        """Set one of the (1.1) root attributes that say what the records mean:
        ``trainable``, ``segments`` or ``gradient_source`` (docs/format.md 3.3-3.5)."""
        self._check_open()
        if key not in spec.RECORDING_ATTRS:
            raise ValueError(f"{key!r} is not a recording attribute; use one of {spec.RECORDING_ATTRS}")
        version = self._backend.attrs("").get(spec.ATTR_SPEC_VERSION)
        try:  # raise a 1.0 store to this version; never lower a newer one (1.2: a sketch store)
            keep = spec.parse_version(version) > spec.parse_version(spec.SPEC_VERSION)
        except ValueError:
            keep = False
        version = version if keep else spec.SPEC_VERSION
        self._backend.set_attrs("", {key: value, spec.ATTR_SPEC_VERSION: version})

    def flush(self) -> None:
        """Write every buffered record and commit it: the store is valid and complete after this."""
        self._check_open()
        for s in self._series.values():
            s.write_pending()
        self._backend.flush()  # data first, then the commit marker
        for s in self._series.values():
            s.commit()
        self._backend.flush()

    def close(self) -> None:
        """Flush, shrink the arrays to the committed records and close the store. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
            for s in self._series.values():
                s.trim()
        finally:
            self._closed = True
            self._stop_threads()
            self._backend.close()

    def abort(self) -> None:
        """Close the store without writing anything more, after a failed write: it keeps the
        records of its last commit (what a crash would leave). Never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            self._stop_threads()
            self._backend.close()
        except Exception:  # noqa: BLE001 - the write error that led here is the one to report
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _stop_threads(self) -> None:
        """Let the encoder threads finish what they hold (never counted after a failure)."""
        for s in self._series.values():
            s.abandon()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the writer of {self.path} is closed; open it again with mode='a'")

    def _vector(self, values, layout: Layout, what: str) -> np.ndarray:
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.shape[0] != layout.n_params:
            raise LayoutError(
                f"append: {what} has shape {arr.shape}, the layout has {layout.n_params} parameters; "
                "pass one flat vector in layout order"
            )
        if self._keepbits is not None:
            arr = bitround(np.array(arr, dtype=np.float32), self._keepbits)
        return arr

    def _commit_if(self, wrote_block: bool, name: str) -> None:
        if wrote_block:
            self._backend.flush()
            self._series[name].commit()

    def _publish(self, group: str, series: SeriesWriter, attrs: dict) -> SeriesWriter:
        """Create ``series`` (named ``group``) under a hidden name, then move it into place."""
        b = self._backend
        if not getattr(b, "can_move", False):
            series.create(self._compression, attrs)
            return series
        tmp = f"{CREATING}/{group.replace('/', '_')}"
        if b.exists(tmp):
            b.delete(tmp)
        series.group = tmp
        series.create(self._compression, attrs)
        b.move(tmp, group)
        b.delete(CREATING)  # leave no trace in a store that was not interrupted
        series.group = group
        list_group(b, group)
        return series

    def _vector_series(self, name: str, layout: Layout):
        series = self._series.get(name)
        if series is None:
            tc, pc = choose_chunks(layout.n_params, 4, self._chunk_records, self._chunk_params)
            series = SeriesWriter(
                self._backend,
                name,
                layout.n_params,
                "<f4",
                tc,
                pc,
                pool=self._pool,
                shard_cols=self._shard_params,
            )
            self._publish(name, series, {spec.ATTR_LAYOUT: layout.to_json()})
            self._series[name] = series
        return series

    def _open_observable(self, group: str, unit, description, evaluated_at: str):
        if evaluated_at not in spec.EVALUATED_AT_VALUES:
            raise ValueError(f"evaluated_at must be one of {spec.EVALUATED_AT_VALUES}, got {evaluated_at!r}")
        self._backend.create_group(spec.OBSERVABLES)
        series = SeriesWriter(self._backend, group, None, "<f8", SCALAR_CHUNK_RECORDS, with_time=True)
        attrs = {
            spec.ATTR_EVALUATED_AT: evaluated_at,
            spec.ATTR_UNIT: unit or "",
            spec.ATTR_DESCRIPTION: description or "",
        }
        self._publish(group, series, attrs)
        self._series[group] = series
        return series


def create(
    path: str | os.PathLike,
    params: ParamsLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    mode: str = "x",
    backend: str | None = None,
    compression: str = "default",
    level: int | None = None,
    chunk_records: int | None = None,
    chunk_params: int | None = None,
    gradients: bool = False,
    buffers: ParamsLike | None = None,
    keepbits: int | None = None,
    dataset: Mapping[str, Any] | None = None,
    threads: int = 0,
    shard_params: int | None = None,
    nice: int = 0,
) -> Writer:
    """Create (or continue) a trajectory store and return its :class:`Writer`.

    ``params``: the parameter layout, as a count, a mapping tensor name → shape (in flat order),
    or a :class:`Layout`. ``mode``: ``"x"`` fail if the path exists, ``"w"`` overwrite, ``"a"``
    continue an existing store after its last committed record (create it if absent).
    ``backend``: ``"zarr"`` or ``"hdf5"``; default from the suffix (``.zarr`` / ``.h5``).
    ``compression``: see :class:`trajstore.backends.Compression`. ``chunk_records`` ×
    ``chunk_params``: chunk shape of the (records, params) arrays; default a few MiB.
    ``gradients``: create the gradients group up front (it is also created on first use).
    ``buffers``: the layout of non-trainable buffers, when they will be recorded.
    ``keepbits``: lossy BitRound to this many float32 mantissa bits (recorded in the metadata).
    ``dataset``: the dataset description (title, authors, license, ...; see
    :mod:`trajstore.description`). ``threads``: threads that compress full blocks in the
    background while the next block fills (Zarr; 0: on the calling thread, each block committed
    as it fills; with threads a block is committed at the first ``append`` after it is written,
    or at ``flush``). The store is the same either way. ``nice``: how many steps below the
    calling thread's priority those threads run (Linux nice; 0: the same): a recorder uses it so
    that training keeps its cores and the encoders take what is left.
    ``shard_params``: columns per stored object (Zarr shard) of the vector groups, a multiple of
    ``chunk_params``; default one object per time block spanning every column. Narrower shards let
    several processes write disjoint column ranges of one record (sharded models).
    """
    if int(threads) < 0:
        raise ValueError(f"threads must be 0 or more, got {threads}")
    if not 0 <= int(nice) <= 19:
        raise ValueError(f"nice must be 0 to 19, got {nice}")
    path = os.fspath(path)
    if mode not in ("x", "w", "a"):
        raise ValueError(f"mode must be 'x', 'w' or 'a', got {mode!r}")
    kind = backend or backend_kind(path, for_create=True)
    layout = _as_layout(params)
    buffers_layout = _as_layout(buffers) if buffers is not None else None
    comp = Compression(compression, level)
    description = normalise_description(dataset) if dataset else None
    if "://" not in path:
        # The store is made, never the folders above it (as convert and every CLI command):
        # a typo in the path is an error, not a new folder tree; and the same for both back
        # ends (zarr would make them, h5py would fail naming a temporary file).
        check_output_folder(path)
    exists = os.path.exists(path)
    if exists and mode == "a":
        return _reopen(path, kind, layout, comp, keepbits, threads, nice)
    if exists and mode == "x":
        raise StoreExistsError(f"{path} exists; pass overwrite (mode='w') or append (mode='a')")
    if exists:
        remove_store(path)  # refuses anything that is not a trajstore store
    # Build the new store under a hidden sibling name and rename it into place: a crash while
    # creating it (kill -9 at the first optimizer step) never leaves a half-made store at path.
    local = "://" not in path
    build = temporary_sibling(path) if local else path
    b = open_backend(build, "w", kind)
    try:
        created = utc_now_iso()
        lossy = None
        if keepbits is not None:
            lossy = {"method": "bitround", "keepbits": int(keepbits), "groups": list(spec.VECTOR_GROUPS)}
        b.set_attrs(
            "",
            {
                spec.ATTR_SPEC_NAME: spec.SPEC_NAME,
                spec.ATTR_SPEC_VERSION: spec.SPEC_VERSION,
                spec.ATTR_CREATOR: {"program": "trajstore", "version": __version__},
                spec.ATTR_CREATED: created,
                spec.ATTR_PROVENANCE: dict(provenance or {}),
                spec.ATTR_METADATA: dict(metadata or {}),
                spec.ATTR_LOSSY: lossy,
                spec.ATTR_GROUPS: [],
                spec.ATTR_STORE_ID: str(uuid.uuid4()),
                **({spec.ATTR_DATASET: description} if description else {}),
            },
        )
        w = Writer(
            b,
            layout,
            compression=comp,
            chunk_records=chunk_records,
            chunk_params=chunk_params,
            keepbits=keepbits,
            created_epoch=parse_iso(created),
            buffers_layout=buffers_layout,
            shard_params=shard_params,
        )
        w._vector_series(spec.WEIGHTS, layout)
        if gradients:
            w._vector_series(spec.GRADIENTS, layout)
        if buffers_layout is not None:
            w._vector_series(spec.BUFFERS, buffers_layout)
        b.flush()
    except BaseException:
        b.close()
        if local:
            remove_quietly(build)
        raise
    if not local:
        return w
    b.close()
    os.rename(build, path)
    w = _reopen(path, kind, layout, comp, keepbits, threads, nice)
    w._chunk_records, w._chunk_params = chunk_records, chunk_params  # for groups created later
    return w


def _reopen(
    path: str,
    kind: str,
    layout: Layout,
    comp: Compression,
    keepbits: int | None,
    threads: int = 0,
    nice: int = 0,
) -> Writer:
    if kind == "zarr" and os.path.isdir(path):
        remove_stale_temporaries(path)  # left by a writer killed in the middle of a file write
    b = open_backend(path, "r+", kind)
    try:
        attrs = check_header(b, path)
        if b.exists(CREATING):  # a series whose creation a crash interrupted: never committed
            b.delete(CREATING)
        stored = Layout.from_json(b.attrs(spec.WEIGHTS).get(spec.ATTR_LAYOUT))
        if stored != layout:
            raise LayoutError(
                f"{path} was recorded with a different parameter layout "
                f"({_layout_difference(stored, layout)}); record into a new store"
            )
        buffers_layout = None
        if b.exists(spec.BUFFERS):
            buffers_layout = Layout.from_json(b.attrs(spec.BUFFERS).get(spec.ATTR_LAYOUT))
        lossy = attrs.get(spec.ATTR_LOSSY) or {}
        w = Writer(
            b,
            layout,
            compression=comp,
            chunk_records=None,
            chunk_params=None,
            keepbits=lossy.get("keepbits", keepbits),
            created_epoch=parse_iso(attrs.get(spec.ATTR_CREATED, "")),
            buffers_layout=buffers_layout,
            threads=threads,
            nice=nice,
        )
        for name in spec.VECTOR_GROUPS:
            if b.exists(name):
                w._series[name] = SeriesWriter.reopen(b, name, w._pool)
        for name in b.groups(spec.OBSERVABLES):
            group = f"{spec.OBSERVABLES}/{name}"
            w._series[group] = SeriesWriter.reopen(b, group)
        return w
    except BaseException:
        b.close()
        raise


def _layout_difference(stored: Layout, new: Layout) -> str:
    for a, c in zip(stored, new, strict=False):
        if (a.name, a.shape) != (c.name, c.shape):
            return f"store has {a.name} {list(a.shape)}, new run has {c.name} {list(c.shape)}"
    return (
        f"store has {len(stored)} tensors / {stored.n_params} parameters, "
        f"new run has {len(new)} / {new.n_params}"
    )
