"""Stores by URL (``https://``, ``s3://``, any fsspec protocol): checks that make failures plain.

fsspec and its protocol packages (aiohttp for HTTP, s3fs for S3) are optional: a missing one
is a one-line "install trajstore[remote]" error. HTTP servers are probed once before a store is
opened, because a server that ignores ``Range`` requests returns whole files where byte ranges
were asked for, and sharded chunks would then fail to decode as if the store were damaged.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from typing import IO

from .errors import NotAStoreError, StoreNotFoundError, TrajstoreError

_PROTOCOL_PACKAGES = {"http": "aiohttp", "https": "aiohttp", "s3": "s3fs", "gs": "gcsfs", "az": "adlfs"}
_PROTOCOL_EXTRAS = {"gs": "trajstore[gcs]", "az": "adlfs"}  # what to pip install; else trajstore[remote]
_BLOCK_BYTES = 4 * 1024 * 1024  # read-ahead of remote file objects (HDF5, zip)


class RemoteError(TrajstoreError):
    """A URL cannot be reached or served the way a store needs."""


def is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def protocol(url: str) -> str:
    return str(url).split("://", 1)[0].lower()


def require_fsspec(url: str):
    """Import fsspec and the package of ``url``'s protocol, or raise a one-line install hint."""
    proto = protocol(url)
    try:
        import fsspec
    except ImportError:
        raise RemoteError(f"reading {proto}:// URLs needs fsspec: pip install 'trajstore[remote]'") from None
    package = _PROTOCOL_PACKAGES.get(proto)
    if package:
        try:
            __import__(package)
        except ImportError:
            extra = _PROTOCOL_EXTRAS.get(proto, "trajstore[remote]")
            raise RemoteError(
                f"reading {proto}:// URLs needs the {package} package: pip install '{extra}'"
            ) from None
    if proto == "gs":
        _quiet_gcs_bucket_probe()
    return fsspec


class _DropBucketTypeProbe(logging.Filter):
    """gcsfs asks a control-plane API for every bucket's layout and, where it may not (anonymous
    reads of a public bucket, an emulator), warns on each call that it falls back to plain GCS:
    lines on every command that say nothing the user can act on. And when its retries run out it
    logs the exception with its traceback (~40 lines) before raising it, which trajstore then
    reports in one line. Other gcsfs messages pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "back to GCSFileSystem" not in msg and "out of retries" not in msg


def _quiet_gcs_bucket_probe() -> None:
    log = logging.getLogger("gcsfs")
    if not any(isinstance(f, _DropBucketTypeProbe) for f in log.filters):
        log.addFilter(_DropBucketTypeProbe())


def check_http(url: str, *, suffix: bool = False) -> None:
    """For http(s) URLs: the resource exists and the server honours ``Range`` (HTTP 206).

    ``url`` is a file (``.../zarr.json``, an ``.h5`` or ``.zip``). With ``suffix``, the server
    must also honour suffix ranges (``bytes=-N``), which zarr uses to read a shard's index.
    Raises a one-line error for an unreachable host, 403/404, or a server that answers a range
    request with the whole file or refuses it.
    """
    if protocol(url) not in ("http", "https"):
        return
    _probe_range(url, "bytes=0-0")
    if suffix:
        _probe_range(url, "bytes=-1")


def _probe_range(url: str, byte_range: str) -> None:
    request = urllib.request.Request(url, headers={"Range": byte_range})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
            accepts = response.headers.get("Accept-Ranges", "")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise StoreNotFoundError(f"{url}: HTTP 404, not found; check the URL") from None
        if exc.code in (400, 416) and byte_range.startswith("bytes=-"):
            raise RemoteError(
                f"{url}: the server refuses suffix byte ranges ({byte_range}), which reading a sharded "
                "Zarr store in place needs; serve it with nginx, Apache or S3, or download it with "
                "'trajstore pull'"
            ) from None
        if exc.code in (401, 403):
            raise RemoteError(
                f"{url}: HTTP {exc.code}, access denied; check the URL and credentials"
            ) from None
        raise RemoteError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteError(f"{url}: cannot reach the server ({reason}); check the address") from None
    if status != 206:
        raise RemoteError(
            f"{url}: the server ignores HTTP Range requests (answered {status}, Accept-Ranges "
            f"{accepts or 'absent'}), which reading a store in place needs; serve it with a server that "
            "supports ranges (nginx, Apache, S3) or download it with 'trajstore pull'"
        )


def open_file(url: str) -> IO[bytes]:
    """A seekable, read-only file object for a remote single-file store (HDF5, zip)."""
    fsspec = require_fsspec(url)
    try:
        return fsspec.open(url, "rb", block_size=_BLOCK_BYTES).open()
    except FileNotFoundError:
        raise StoreNotFoundError(f"{url}: not found; check the URL") from None
    except OSError as exc:
        raise NotAStoreError(f"{url}: cannot be opened ({exc})") from None
