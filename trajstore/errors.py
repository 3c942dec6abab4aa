"""One exception hierarchy whose messages are complete one-line explanations.

The CLI prints ``str(error)`` as it is, so every message says what is wrong and what to do.
"""

from __future__ import annotations

import re


class TrajstoreError(Exception):
    """Base class of every error trajstore raises on purpose."""


class StoreNotFoundError(TrajstoreError, FileNotFoundError):
    """The path does not exist."""


class NotAStoreError(TrajstoreError):
    """The path exists but is not a trajstore store."""


class SpecVersionError(TrajstoreError):
    """The store was written with a newer major version of the spec."""


class LayoutError(TrajstoreError, ValueError):
    """A parameter layout is malformed or does not match the data."""


class StoreExistsError(TrajstoreError, FileExistsError):
    """The output exists and neither overwrite nor append was asked for."""


class CorruptDataError(TrajstoreError):
    """A chunk failed to decode or its checksum does not match."""


class InvalidStoreError(TrajstoreError):
    """A store breaks a rule of the spec."""


class ClosedError(TrajstoreError):
    """The writer was used after it was closed."""


class UnsafePathError(TrajstoreError):
    """A write would destroy its own source or a non-store, or a store reaches outside itself."""


class StoreBusyError(TrajstoreError):
    """The store is being written right now and a read met a block being updated; retry."""


class RecordingError(TrajstoreError):
    """Recording stopped: the store could not be created or written (the message says how many
    records are safe)."""


def describe_os_error(exc: BaseException) -> str:
    """A short reason for an I/O failure: the ``strerror`` of the first OSError with an errno in
    the chain of ``exc`` ("No space left on device: 'run.zarr/weights/...'"), else its first line.

    HDF5 reports errors as text ("... errno = 28, error message = 'No space left on device'"),
    which is recognised too.
    """
    import errno as _errno
    import os as _os
    import re

    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno:
            text = _os.strerror(e.errno)  # h5py puts its whole multi-line report in strerror
            return f"{text}: {e.filename}" if e.filename else text
        m = re.search(r"errno = (\d+)", str(e))
        if m and int(m.group(1)) in _errno.errorcode:
            return _os.strerror(int(m.group(1)))
        e = e.__cause__ or e.__context__
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# zarr's crc32c codec: "Stored and computed checksum do not match. Stored: b'\x00f\x06\x00'.
# Computed: b'\xa0\x98e\x96'." Raw bytes mean nothing to a user; the words below say the same.
_CHECKSUM_MISMATCH = re.compile(
    r"Stored and computed checksum do not match\."
    r"(?:\s*Stored:\s*b(?:'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")\.?)?"
    r"(?:\s*Computed:\s*b(?:'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")\.?)?"
)
CHECKSUM_WORDS = "its CRC-32C checksum does not match its stored bytes"


def in_words(text: str) -> str:
    """``text`` (a library's error message) with checksum mismatches said in words, not bytes."""
    return _CHECKSUM_MISMATCH.sub(CHECKSUM_WORDS, str(text))
