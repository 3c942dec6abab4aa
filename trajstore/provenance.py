"""Provenance that any writer can collect without the training framework."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import socket
import subprocess
import sys


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def parse_iso(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time stamp (0.0 when it does not parse)."""
    try:
        return _dt.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return 0.0


def code_revision(path: str | None = None) -> str | None:
    """The git commit of the checkout holding ``path`` (with ``-dirty`` when modified), or None."""
    cwd = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def host_provenance() -> dict:
    """Host, Python and command line of the current process."""
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "command_line": shlex.join(sys.argv),
        "cwd": os.getcwd(),
    }
