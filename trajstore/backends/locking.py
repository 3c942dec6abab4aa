"""The writer's lock: an advisory exclusive ``flock`` on the store itself (the HDF5 file or the
Zarr folder), held while a trajstore writer has it open and released by the kernel however the
writer ends, ``kill -9`` included. Nothing is written beside or inside the store for it."""

from __future__ import annotations

import fcntl
import os

from ..errors import StoreBusyError


def is_being_written(path: str) -> bool:
    """True while a trajstore writer holds ``path`` (file or folder) open for writing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no locks on this file system (some network mounts): cannot tell
        return False
    finally:
        os.close(fd)  # closing drops a lock we got
    return False


def writer_lock(path: str) -> int:
    """Take the writer's exclusive lock on ``path`` (see :func:`is_being_written`); return its fd."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if not isinstance(exc, BlockingIOError):
            return fd  # no locks on this file system (some network mounts): write unlocked
        os.close(fd)
        raise StoreBusyError(
            f"{path} is being written by another process; wait for it to finish (or stop it) first"
        ) from None
    return fd
