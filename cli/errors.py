"""Turning library errors into one-line messages and exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import click

from trajstore.errors import TrajstoreError, describe_os_error, in_words

EXIT_ERROR = 1


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {in_words(message)}", err=True)
    sys.exit(code)


def one_line_errors(func: Callable) -> Callable:
    """Run a command so that expected failures print one line instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TrajstoreError as exc:
            fail(str(exc))
        except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError) as exc:
            fail(f"{exc.strerror or exc}: {exc.filename}" if getattr(exc, "filename", None) else str(exc))
        except OSError as exc:  # disk full, read-only file system, I/O error ...
            fail(describe_os_error(exc))
        except (ValueError, KeyError) as exc:
            fail(str(exc.args[0]) if exc.args else type(exc).__name__)

    return wrapper


def problem_line(store: str, problem: str) -> str:
    """``STORE: problem`` for a report line, without repeating a path the problem already names."""
    named = problem.startswith((f"{store}:", f"{store} "))
    return problem if named else f"{store}: {problem}"
