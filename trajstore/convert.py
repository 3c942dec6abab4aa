"""Lossless, streaming conversion between back ends (Zarr ↔ HDF5), metadata kept."""

from __future__ import annotations

import os

from . import spec
from .reader import open as open_store
from .series import SeriesWriter
from .writer import create

_COPY_BYTES = 128 * 1024 * 1024


def convert(
    src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False, compression: str = "default"
) -> None:
    """Copy every committed record, observable and attribute of ``src`` into a new store ``dst``.

    The destination back end comes from its suffix. Values are copied bit for bit; memory use is
    bounded by one block of records.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    traj = open_store(src)
    try:
        attrs = traj.attrs
        lossy = traj.lossy
        w = create(
            dst,
            traj.layout,
            mode="w" if overwrite else "x",
            compression=compression,
            chunk_records=traj.weights.chunks[0],
            chunk_params=traj.weights.chunks[1],
            buffers=traj.buffers.layout if traj.buffers else None,
        )
        try:
            skip = (spec.ATTR_SPEC_NAME, spec.ATTR_SPEC_VERSION, spec.ATTR_GROUPS)  # the writer keeps these
            root = {k: v for k, v in attrs.items() if k not in skip}
            root[spec.ATTR_LOSSY] = lossy
            w._backend.set_attrs("", root)
            for name in spec.VECTOR_GROUPS:
                group = traj._weights if name == spec.WEIGHTS else traj._optional.get(name)
                if group is None:
                    continue
                series = w._vector_series(name, group.layout)
                _copy_series(w, name, series, group.values, group.steps, group.times)
            for name in traj.observables:
                steps, values = traj.observable(name)
                oattrs = traj.observable_attrs(name)
                series = w._open_observable(
                    f"{spec.OBSERVABLES}/{name}",
                    oattrs.get(spec.ATTR_UNIT),
                    oattrs.get(spec.ATTR_DESCRIPTION),
                    oattrs.get(spec.ATTR_EVALUATED_AT, spec.POST_STEP),
                )
                times = _read_times(traj, name, len(steps))
                _copy_series(w, f"{spec.OBSERVABLES}/{name}", series, values, steps, times)
            w.close()
        except BaseException:
            w.close()
            raise
    finally:
        traj.close()


def _read_times(traj, name: str, n: int):
    """The observable's times, checked like every read (present, digests matching)."""
    return traj.observable_times(name)


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
