"""Storage back ends behind one protocol, chosen from the path."""

from __future__ import annotations

import os
import zipfile

from .. import remote
from ..errors import NotAStoreError, StoreNotFoundError, TrajstoreError
from ..open_failures import describe_folder, describe_hdf5_failure
from .base import Backend, Compression

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
ZARR_SUFFIXES = (".zarr",)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

__all__ = ["Backend", "Compression", "backend_kind", "open_backend"]


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def backend_kind(path: str, *, for_create: bool = False) -> str:
    """Return ``"zarr"`` or ``"hdf5"`` for a path, from its suffix or (existing files) its bytes."""
    path = str(path)
    lower = path.lower().rstrip("/")
    if lower.endswith(HDF5_SUFFIXES):
        return "hdf5"
    if lower.endswith(".zip"):
        if for_create:
            raise NotAStoreError(
                f"{path}: a .zip store is written by 'trajstore pack' from a finished store; "
                "record into a .zarr folder or a .h5 file"
            )
        if not _is_remote(path) and not zipfile.is_zipfile(path):
            raise NotAStoreError(
                f"{path} is not a zip file (truncated?); a packed store is a zip of a .zarr folder"
            )
        return "zarr"
    if lower.endswith(ZARR_SUFFIXES) or _is_remote(path):
        return "zarr"
    if not for_create and os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read(8) == _HDF5_SIGNATURE:
                return "hdf5"
        raise NotAStoreError(
            f"{path} is a file but not an HDF5 file; a store is a .zarr folder or a .h5 file"
        )
    if not for_create and os.path.isdir(path):
        return "zarr"
    raise NotAStoreError(f"cannot tell the back end of {path!r}: name it *.zarr (Zarr v3) or *.h5 (HDF5)")


def open_backend(path: str, mode: str, kind: str | None = None) -> Backend:
    """Open ``path`` with the right back end; ``mode`` is one of r, r+, w, a.

    Read modes raise :class:`StoreNotFoundError` / :class:`NotAStoreError` with a one-line
    explanation instead of the storage library's own errors.
    """
    path = str(path)
    reading = mode in ("r", "r+")
    if reading and not _is_remote(path) and not os.path.exists(path):
        raise StoreNotFoundError(f"{path}: no such file or folder; check the path")
    kind = kind or backend_kind(path, for_create=not reading)
    fileobj = None
    if reading and _is_remote(path):
        single_file = kind == "hdf5" or path.lower().endswith(".zip")
        remote.require_fsspec(path)
        remote.check_http(path if single_file else path.rstrip("/") + "/zarr.json", suffix=not single_file)
        if single_file:
            fileobj = remote.open_file(path)
    if kind == "hdf5":
        from .hdf5_backend import HDF5Backend

        try:
            return HDF5Backend(path, mode, fileobj=fileobj)
        except TrajstoreError:
            raise  # already one line, e.g. a link leaving the file
        except Exception as exc:  # noqa: BLE001 - damaged files raise many kinds; one line
            if reading:
                raise NotAStoreError(describe_hdf5_failure(path, exc, _first_line(exc))) from None
            raise
    from .zarr_backend import ZarrBackend

    if reading and os.path.isdir(path):
        from ..safety import check_zarr_links

        not_a_store = describe_folder(path)  # no root zarr.json: say what the folder is instead
        if not_a_store:
            raise NotAStoreError(not_a_store)
        check_zarr_links(path)
    try:
        return ZarrBackend(path, mode, fileobj=fileobj)
    except TrajstoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged zarr.json (bad JSON, 100 000-deep nesting)
        if reading and remote.is_remote(path) and _unreachable(exc):
            raise remote.RemoteError(
                f"{path}: cannot reach the server ({_first_line(exc)}); check the address and the network"
            ) from None
        if reading and type(exc).__name__ == "GroupNotFoundError":  # zarr: "No group found in store"
            where = "URL" if remote.is_remote(path) else "path"
            raise NotAStoreError(
                f"{path} is not a Zarr v3 store: it has no zarr.json at its root; check the {where}"
            ) from None
        if reading:
            raise NotAStoreError(
                f"{path} is not a Zarr v3 store (no readable zarr.json): {_first_line(exc)}"
            ) from None
        raise


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a failure to connect, not an answer from a server:
    a store never reached is not 'not a store'."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (ConnectionError, TimeoutError)) or type(e).__name__ in _CONNECT_ERRORS:
            return True
        e = e.__cause__ or e.__context__
    return False


# aiohttp's (HTTP, S3, GCS) connection failures, by name: aiohttp is an optional dependency.
_CONNECT_ERRORS = {"ClientConnectorError", "ClientConnectorDNSError", "ServerTimeoutError", "ClientOSError"}


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "metadata nested too deeply"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
