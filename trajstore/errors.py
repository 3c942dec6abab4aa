"""One exception hierarchy whose messages are complete one-line explanations.

The CLI prints ``str(error)`` as it is, so every message says what is wrong and what to do.
"""

from __future__ import annotations


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
