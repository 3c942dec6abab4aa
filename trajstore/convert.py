"""Lossless, streaming conversion between back ends (Zarr ↔ HDF5), metadata kept."""

from __future__ import annotations

import os

from . import spec
from .backends import backend_kind
from .errors import TrajstoreError, UnsafePathError, describe_os_error
from .reader import open as open_store
from .safety import (
    check_distinct,
    check_output_folder,
    may_replace,
    remove_quietly,
    replace_with,
    temporary_sibling,
)
from .series import SeriesWriter
from .writer import create

_COPY_BYTES = 128 * 1024 * 1024
# A derived store keeps its own identity (store_id from create) and names its source instead.
_NOT_COPIED = (
    spec.ATTR_SPEC_NAME,
    spec.ATTR_SPEC_VERSION,
    spec.ATTR_GROUPS,  # the writer keeps its own
    spec.ATTR_STORE_ID,
    spec.ATTR_DERIVED_FROM,
)


def derived_from(src: str, traj, operation: str, **selection) -> dict:
    """The ``derived_from`` attribute of a store made from ``traj``: its id, its content digest
    where a manifest beside it already states one (computing it would read the source again),
    and what was done."""
    from .manifest import read_manifest

    source = os.path.basename(src.rstrip("/"))
    out: dict = {"store_id": traj.store_id, "operation": operation, "source": source}
    manifest = read_manifest(src)
    if manifest and manifest.get("content_digest"):
        out["content_digest"] = manifest["content_digest"]
    if selection:
        out["selection"] = selection
    return out


def convert(
    src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False, compression: str = "default"
) -> None:
    """Copy every committed record, observable and attribute of ``src`` into a new store ``dst``.

    The destination back end comes from its suffix. Values are copied bit for bit; memory use is
    bounded by one block of records. The copy is written to a hidden sibling of ``dst`` and
    renamed onto it at the end, so ``src`` and an existing ``dst`` stay intact if anything fails;
    ``dst`` equal to ``src``, inside it or containing it is refused, and ``overwrite`` replaces
    only a trajstore store.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    check_distinct(src, dst)
    kind = backend_kind(dst, for_create=True)
    if os.path.lexists(dst):
        if not overwrite:
            raise UnsafePathError(f"{dst} exists; pass --overwrite to replace it")
        if not may_replace(dst):
            raise UnsafePathError(
                f"{dst} exists and is not a trajstore store; refusing to replace it "
                "(choose another destination or remove it yourself)"
            )
    check_output_folder(dst)
    tmp = temporary_sibling(dst)
    try:
        _copy(src, tmp, kind, compression)
        replace_with(tmp, dst, overwrite=overwrite)
    except TrajstoreError:
        remove_quietly(tmp)
        raise
    except OSError as exc:
        remove_quietly(tmp)
        raise TrajstoreError(
            f"convert failed writing {dst}: {describe_os_error(exc)}; "
            f"nothing was written and {src} is unchanged"
        ) from None
    except BaseException:
        remove_quietly(tmp)
        raise


def _copy(src: str, dst: str, kind: str, compression: str) -> None:
    traj = open_store(src)
    try:
        attrs = traj.attrs
        lossy = traj.lossy
        w = create(
            dst,
            traj.layout,
            mode="x",
            backend=kind,
            compression=compression,
            chunk_records=traj.weights.chunks[0],
            chunk_params=traj.weights.chunks[1],
            buffers=traj.buffers.layout if traj.buffers else None,
        )
        try:
            root = {k: v for k, v in attrs.items() if k not in _NOT_COPIED}
            root[spec.ATTR_LOSSY] = lossy
            root[spec.ATTR_DERIVED_FROM] = derived_from(src, traj, "convert")
            w._backend.set_attrs("", root)
            for name in spec.VECTOR_GROUPS:
                group = traj._weights if name == spec.WEIGHTS else traj._optional.get(name)
                if group is None:
                    continue
                series = w._vector_series(name, group.layout)
                _copy_series(w, name, series, group.values, group.steps, group.times)
            for name in traj.observables:
                copy_observable(w, traj, name)
            from .sketch import copy_sketch  # (1.2)

            copy_sketch(w, traj, _copy_series)
            w.close()
        except BaseException:
            try:  # the temporary copy is deleted anyway; keep the first error
                w.close()
            except Exception:  # noqa: BLE001
                pass
            raise
    finally:
        traj.close()


def copy_observable(w, traj, name: str, keep=None) -> None:
    """Copy observable ``name`` of ``traj`` (its attributes, steps, values and times, read with
    every check) into the writer ``w``; ``keep``: a boolean mask of the records to copy."""
    steps, values = traj.observable(name)
    times = traj.observable_times(name)
    if keep is not None:
        steps, values = steps[keep], values[keep]
        times = times[keep] if times is not None else None
    attrs = traj.observable_attrs(name)
    group = f"{spec.OBSERVABLES}/{name}"
    series = w._open_observable(
        group,
        attrs.get(spec.ATTR_UNIT),
        attrs.get(spec.ATTR_DESCRIPTION),
        attrs.get(spec.ATTR_EVALUATED_AT, spec.POST_STEP),
    )
    _copy_series(w, group, series, values, steps, times)


def _copy_series(w, name: str, series: SeriesWriter, values, steps, times) -> None:
    n = len(steps)
    width = values.shape[1] if len(values.shape) == 2 else 1
    per = max(
        series.chunk_records, (_COPY_BYTES // (8 * width)) // series.chunk_records * series.chunk_records
    )
    for start in range(0, n, per):
        stop = min(start + per, n)
        block = values[start:stop]
        for i in range(stop - start):
            t = float(times[start + i]) if times is not None else float("nan")
            w._commit_if(series.append(int(steps[start + i]), block[i], t), name)


__all__ = ["convert"]
