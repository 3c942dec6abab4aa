"""Why a path does not open as a store, said in trajstore's words (one line, what to do).

Two cases get their own words instead of the storage library's: a local folder with no root
``zarr.json`` (zarr says "No group found in store ..."), and an HDF5 file that libhdf5 refuses,
most often one cut short by an interrupted copy ("truncated file: eof = ..., stored_eof = ...").
"""

from __future__ import annotations

import os
import re

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_STORE_SUFFIXES = (".zarr", ".h5", ".hdf5", ".hdf", ".zip")
_LISTED_STORES = 3  # stores named when a folder of stores is given instead of one of them
_CHECKED_ENTRIES = 200  # entries of a folder looked at for stores: a big folder stays quick
_A_STORE = "a store is a .zarr folder holding zarr.json, or a .h5 file, as trajstore writes them"
# libhdf5's H5Fsuper.c: "truncated file: eof = 20000, sblock->base_addr = 0, stored_eof = 45222"
_TRUNCATED = re.compile(r"truncated file: eof = (\d+),.*?stored_eof = (\d+)")
_ERRNO = re.compile(r"errno = (\d+)")


def describe_folder(path: str) -> str | None:
    """What the local folder ``path`` is, when it has no root ``zarr.json`` and so is no Zarr v3
    store: empty, a Zarr v2 store, a store that lost its root metadata, a folder of stores, or
    other files. None when it has a root ``zarr.json`` (or cannot be listed): the store is then
    opened, and judged, as usual."""
    try:
        if os.path.lexists(os.path.join(path, "zarr.json")):
            return None
        entries = sorted(os.listdir(path))
    except OSError:
        return None
    if not entries:
        return f"{path} is an empty folder, not a trajstore store; check the path ({_A_STORE})"
    if ".zgroup" in entries or ".zarray" in entries:
        return (
            f"{path} is a Zarr v2 store, not a trajstore store (trajstore stores are Zarr v3, "
            "with a zarr.json at their root); check the path"
        )
    if os.path.isfile(os.path.join(path, "weights", "zarr.json")):
        return (
            f"{path} has lost its root zarr.json (it still holds weights/zarr.json): the store is "
            "damaged; restore zarr.json from a copy of the store"
        )
    stores = _stores_in(path, entries)
    if stores:
        more = len(stores) - _LISTED_STORES
        named = ", ".join(stores[:_LISTED_STORES]) + (f" and {more} more" if more > 0 else "")
        return f"{path} is a folder of stores, not a store; give one of them: {named}"
    return f"{path} is a folder but not a trajstore store (it has no zarr.json); check the path ({_A_STORE})"


def _stores_in(path: str, entries: list[str]) -> list[str]:
    """The trajstore stores among the first entries of the folder ``path`` named like stores."""
    from .safety import is_store

    named = [e for e in entries[:_CHECKED_ENTRIES] if e.lower().rstrip("/").endswith(_STORE_SUFFIXES)]
    return [os.path.join(path, e) for e in named if is_store(os.path.join(path, e))]


def describe_hdf5_failure(path: str, exc: BaseException, first_line: str) -> str:
    """One line for an HDF5 file that libhdf5 would not open (``exc``, whose first line is
    ``first_line``): cut short, empty, not HDF5 at all, or otherwise damaged."""
    m = _TRUNCATED.search(str(exc))
    if m:
        has, written = int(m.group(1)), int(m.group(2))
        return (
            f"{path} is truncated: it has {has} of the {written} bytes its HDF5 header says were "
            "written (a copy or download cut short?); copy the whole file again from its source"
        )
    if "unable to lock file" in str(exc):
        return (
            f"{path} is locked by another process (a recording still writing it?); "
            "retry when it has closed"
        )
    errno = _ERRNO.search(str(exc))
    if errno:  # not the file's fault: permissions, a missing mount, ...
        return f"{path} cannot be opened: {os.strerror(int(errno.group(1)))}"
    head = _head(path)
    if head is not None and "signature" in first_line:
        if not head:
            return f"{path} is empty (0 bytes); if it is a copy, copy the whole file again from its source"
        if len(head) < len(_HDF5_SIGNATURE) and _HDF5_SIGNATURE.startswith(head):
            return (
                f"{path} is truncated: it has {len(head)} bytes, fewer than an HDF5 header; "
                "copy the whole file again from its source"
            )
        return (
            f"{path} is not an HDF5 file (it does not start with HDF5's signature); "
            f"check the path ({_A_STORE})"
        )
    return (
        f"{path} is a damaged HDF5 file that cannot be opened ({first_line}); "
        "restore it from an intact copy of the store"
    )


def _head(path: str) -> bytes | None:
    """The first 8 bytes of the local file ``path``; None for a URL or an unreadable file."""
    if "://" in path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read(len(_HDF5_SIGNATURE))
    except OSError:
        return None
