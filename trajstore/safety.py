"""Write paths that cannot destroy a source: overlap checks, store-only deletion, temporary
siblings, and refusal of Zarr stores whose files are symbolic links leading outside the store.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import uuid
from urllib.parse import unquote, urlsplit

from . import spec
from .errors import UnsafePathError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MAX_ROOT_JSON = 64 * 1024 * 1024  # a root zarr.json larger than this is not ours to judge


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_distinct(src: str, dst: str) -> None:
    """Refuse when ``dst`` is ``src``, lies inside it, or contains it (symlinks and relative
    paths resolved), so that writing ``dst`` can never delete or change ``src``."""
    s, d = _real(src), _real(dst)
    if s == d:
        raise UnsafePathError(f"{dst} is the source store itself; write to another path")
    if _inside(d, s):
        raise UnsafePathError(f"{dst} lies inside the source store {src}; write to a path outside it")
    if _inside(s, d):
        raise UnsafePathError(f"{dst} contains the source store {src}; write to another path")


def check_output_folder(path: str | os.PathLike) -> None:
    """Refuse an output whose folder does not exist or is a file (``UnsafePathError``, one line
    that says how to create it). Commands create the output itself (a store, a report folder, a
    package) but never the folders above it, so a typo in the path (``runs/tpyo/run.zarr``) is
    an error, not a new folder tree. URLs other than ``file://`` are not checked (object stores
    have no folders)."""
    text = os.fspath(path)
    local = text
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme != "file":
            return
        local = unquote(parts.path)
    parent = os.path.dirname(local.rstrip("/" + os.sep) or local)
    if not parent or os.path.isdir(parent):  # "" is the current folder
        return
    existing = parent
    while existing and not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if existing and os.path.lexists(existing) and not os.path.isdir(existing):
        raise UnsafePathError(
            f"{text}: {existing} is a file, not a folder; give a path inside an existing folder"
        )
    raise UnsafePathError(
        f"{text}: the folder {parent} does not exist; create it first (mkdir -p {shlex.quote(parent)}) "
        "or correct the path"
    )


def is_store(path: str) -> bool:
    """True when ``path`` is a trajstore store: a Zarr folder whose root ``zarr.json`` names the
    spec, or an HDF5 file whose root attribute does. Reads a few bytes; executes nothing."""
    if os.path.isdir(path):
        root = os.path.join(path, "zarr.json")
        try:
            if os.path.islink(root) or os.path.getsize(root) > _MAX_ROOT_JSON:
                return False
            with open(root, "rb") as f:
                meta = json.loads(f.read())
        except (OSError, ValueError):
            return False
        attrs = meta.get("attributes") if isinstance(meta, dict) else None
        return isinstance(attrs, dict) and attrs.get(spec.ATTR_SPEC_NAME) == spec.SPEC_NAME
    try:
        with open(path, "rb") as f:
            if f.read(8) != _HDF5_SIGNATURE:
                return False
        import h5py

        with h5py.File(path, "r", locking=False) as f:
            name = f.attrs.get(spec.ATTR_SPEC_NAME)
    except (OSError, ValueError, KeyError):
        return False
    return (name.decode() if isinstance(name, bytes) else name) == spec.SPEC_NAME


def may_replace(path: str) -> bool:
    """True when ``--overwrite`` may delete ``path``: a trajstore store or an empty folder,
    never a symbolic link."""
    if os.path.islink(path):
        return False
    return is_store(path) or (os.path.isdir(path) and not os.listdir(path))


def remove_store(path: str) -> None:
    """Delete the store at ``path``; refuse (one line) when it is not a trajstore store, so that
    ``--overwrite`` can never delete a folder or file that merely has a store's name. An empty
    folder is removed too (it holds nothing to lose)."""
    if os.path.islink(path):
        raise UnsafePathError(
            f"{path} is a symbolic link; refusing to overwrite through it (remove the link yourself)"
        )
    if os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)
        return
    if not is_store(path):
        raise UnsafePathError(
            f"{path} exists and is not a trajstore store; refusing to delete it "
            "(choose another output path or remove it yourself)"
        )
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def temporary_sibling(path: str) -> str:
    """A fresh hidden name next to ``path`` (same folder, so a rename is atomic), with the same
    suffix so the back end is chosen the same way: ``dir/.name.tmp-1a2b3c.zarr``."""
    folder, name = os.path.split(os.path.abspath(path.rstrip("/")))
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot else ""
    return os.path.join(folder, f".{stem or name}.tmp-{uuid.uuid4().hex[:8]}{suffix}")


def replace_with(tmp: str, dst: str, *, overwrite: bool) -> None:
    """Move the finished ``tmp`` onto ``dst``. An existing ``dst`` is deleted only when
    ``overwrite`` and only when it is a store; it is moved aside first, so a failure leaves one
    of the two complete."""
    if os.path.lexists(dst):
        if not overwrite:
            raise UnsafePathError(f"{dst} exists; pass --overwrite to replace it")
        aside = temporary_sibling(dst)
        if not may_replace(dst):
            remove_store(dst)  # raises the one-line refusal
        os.rename(dst, aside)
        os.rename(tmp, dst)
        remove_store(aside)
    else:
        os.rename(tmp, dst)


def remove_quietly(path: str) -> None:
    """Delete a temporary file or folder that we created; ignore what is already gone."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except OSError:
            pass


def check_zarr_links(path: str) -> None:
    """Refuse a local Zarr store that holds a symbolic link (file or folder) resolving outside
    the store: reading through it would read, and converting would copy, files that are not
    part of the store."""
    root = _real(path)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full) and not _inside(_real(full), root):
                rel = os.path.relpath(full, root)
                raise UnsafePathError(
                    f"{path}: {rel} is a symbolic link leading outside the store "
                    f"(to {os.readlink(full)}); refusing to read it"
                )


# zarr's LocalStore writes every file as "<name>.<32 hex digits>.partial" and renames it; a
# writer killed in between leaves that file behind.
_ZARR_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_stale_temporaries(path: str) -> list[str]:
    """Delete the half-written temporary files a killed writer left in the Zarr store ``path``
    (never a committed file); return their paths relative to the store."""
    removed = []
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            if _ZARR_PARTIAL.search(name):
                full = os.path.join(dirpath, name)
                if not os.path.islink(full):
                    os.remove(full)
                    removed.append(os.path.relpath(full, path))
    return removed
