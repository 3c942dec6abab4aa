"""A lock that says "a process is writing this store", released by the kernel if it dies.

The lock is an advisory ``flock`` on a sidecar file ``<store>.lock`` beside the store (never
inside it, so it is no part of the data, the manifest or a package). A writer holds it from
creation to ``close``; commands that change a finished store (``annotate``) refuse while it is
held. After a crash the sidecar file may remain, but unlocked: it is then ignored.
"""

from __future__ import annotations

import fcntl
import os

from .errors import TrajstoreError


class StoreBusyError(TrajstoreError):
    """Another process is writing the store."""


def lock_path(store: str) -> str:
    """The sidecar lock file of ``store``: ``run.zarr`` -> ``run.zarr.lock``."""
    return os.fspath(store).rstrip("/") + ".lock"


class WriterLock:
    """Exclusive, non-blocking lock of one local store; a no-op for remote URLs."""

    def __init__(self, store: str):
        self.store = os.fspath(store)
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        if "://" in self.store:
            return self
        path = lock_path(self.store)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            return self  # the store's own creation reports the missing folder
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusyError(
                f"{self.store} is being written by another process; wait until it finishes "
                f"(or remove {path} if no process is writing it)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(lock_path(self.store))
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def ensure_not_being_written(store: str) -> None:
    """Raise :class:`StoreBusyError` if a process holds the writer lock of ``store``."""
    WriterLock(store).acquire().release()
