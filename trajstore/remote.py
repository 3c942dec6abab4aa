"""Stores by URL (``https://``, ``s3://``, any fsspec protocol): checks that make failures plain.

fsspec and its protocol packages (aiohttp for HTTP, s3fs for S3) are optional: a missing one
is a one-line "install trajstore[remote]" error. HTTP servers are probed once before a store is
opened, because a server that ignores ``Range`` requests returns whole files where byte ranges
were asked for, and sharded chunks would then fail to decode as if the store were damaged.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.parse
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
        check_reachable(url, _gcs_endpoint(fsspec))
    return fsspec


CONNECT_TIMEOUT_S = 10.0  # to open a TCP connection to an object store's server, once
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_reached: set[tuple[str, int]] = set()  # servers this process has connected to


def _gcs_endpoint(fsspec) -> str:
    """The server gcsfs talks to: an ``endpoint_url`` in fsspec's configuration, else the
    emulator named by ``STORAGE_EMULATOR_HOST`` (as gcsfs reads it), else Google's."""
    for key in ("gs", "gcs"):
        configured = (fsspec.config.conf.get(key) or {}).get("endpoint_url")
        if configured:
            return str(configured)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator not in ("", "default"):
        return emulator if emulator.startswith(("http://", "https://")) else f"http://{emulator}"
    return "https://storage.googleapis.com"


def check_reachable(url: str, endpoint: str) -> None:
    """Open (and close) one TCP connection to ``endpoint``, the server of ``url``, within
    :data:`CONNECT_TIMEOUT_S`; :class:`RemoteError` when that fails.

    gcsfs retries a request that cannot connect 6 times with exponential back-off (~50 s), a
    count it does not let callers change; this probe tells an unreachable server in a moment
    instead. It only connects: a server that accepts the connection passes however slowly it
    answers, and gcsfs's own retries then apply. Skipped behind a proxy (the direct connection
    may be blocked where the proxied one works), and done once per server and process."""
    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # not a port number: gcsfs reports the address
    if not host or (host, port) in _reached:
        return
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no connection within {CONNECT_TIMEOUT_S:g} s"
        raise RemoteError(
            f"{url}: cannot reach the server {parts.scheme}://{parts.netloc} ({reason}); check the "
            "address and the network"
        ) from None
    _reached.add((host, port))


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
