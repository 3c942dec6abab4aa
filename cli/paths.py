"""Default output paths derived from a store's name or URL."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from trajstore.safety import check_output_folder

# Suffixes that name a store's container, longest first, removed to get the run's name.
STORE_SUFFIXES = (".zarr.zip", ".zarr", ".hdf5", ".hdf", ".h5", ".zip")


def store_stem(name: str) -> str:
    """``name`` without a known store suffix (case-insensitive); other dots are part of the name:
    ``run.zarr`` -> ``run``, ``run.v2`` -> ``run.v2``, ``run.zarr.zip`` -> ``run``."""
    lower = name.lower()
    for suffix in STORE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def default_report_dir(store: str | os.PathLike, suffix: str = "-report") -> str:
    """Where ``trajstore analyze STORE`` writes without ``-o``.

    A local store gets a sibling folder named after it (``data/exp.v2/run`` ->
    ``data/exp.v2/run-report``, ``runs/a.zarr/`` -> ``runs/a-report``, ``b.h5`` -> ``b-report``).
    A URL (``s3://bucket/x/run.zarr``, ``https://host/run.zarr``) gets a folder in the current
    directory named after its last path segment (``./run-report``); a URL with no path segment is
    named after its host or bucket. ``file://`` URLs are local paths.
    """
    text = os.fspath(store)
    if "://" in text:
        parts = urlsplit(text)
        path = unquote(parts.path)
        if parts.scheme == "file":
            return default_report_dir(path or "/", suffix)
        segments = [s for s in path.split("/") if s not in ("", ".", "..")]
        name = segments[-1] if segments else (parts.hostname or parts.scheme or "store")
        return store_stem(name) + suffix
    stripped = text.rstrip("/" + os.sep) or text
    head, name = os.path.split(stripped)
    if name in ("", ".", ".."):  # "." or "/" : name the report after the resolved folder
        resolved = os.path.abspath(stripped)
        head, name = os.path.split(resolved)
        name = name or "store"
    return os.path.join(head, store_stem(name) + suffix)


def check_report_dir(outdir: str, what: str = "the report") -> None:
    """Refuse, before any analysis runs, a report folder that cannot be one: an existing file,
    or a path whose folder is missing or a file (one line saying what to give instead;
    :func:`trajstore.safety.check_output_folder`). The report folder itself is created when missing."""
    if "://" not in outdir and os.path.lexists(outdir) and not os.path.isdir(outdir):
        raise ValueError(
            f"{outdir} is a file, not a folder; give -o a folder for {what} "
            "(it is created when missing, inside an existing folder)"
        )
    check_output_folder(outdir)
