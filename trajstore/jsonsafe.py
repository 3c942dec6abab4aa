"""Strict JSON for everything trajstore writes: ``--json`` output, summary.json, store metadata.

JSON has no NaN or infinity; Python's ``json`` writes them as bare ``NaN``/``Infinity`` tokens
that strict parsers (JavaScript, jq, Go, Rust) reject. Here a non-finite number becomes
``null``, numpy scalars and arrays become plain numbers and lists, tuples become lists, and
``allow_nan=False`` makes any value that slips through an error instead of invalid output.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np


def to_json(value: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """A copy of ``value`` made of dict, list, str, int, finite float, bool and None only.

    Non-finite floats become None; numpy scalars/arrays become numbers/lists; tuples and sets
    become lists; mapping keys become strings; paths become strings. Anything else goes through
    ``default`` (e.g. ``str``) or, without one, raises TypeError naming its type.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return to_json(value.tolist(), default)
    if isinstance(value, Mapping):
        return {str(k): to_json(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, default) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if default is not None:
        return to_json(default(value))
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError("complex numbers are not JSON serialisable; store real and imaginary parts")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any, *, indent: int | None = 2, default: Callable[[Any], Any] | None = None) -> str:
    """Strict JSON text of ``value`` (see :func:`to_json`)."""
    return json.dumps(to_json(value, default), indent=indent, allow_nan=False)


def dump(value: Any, fp: IO[str], *, indent: int | None = 2) -> None:
    """Write strict JSON of ``value`` to the text stream ``fp``."""
    fp.write(dumps(value, indent=indent))


def loads_strict(text: str) -> Any:
    """Parse JSON, rejecting the non-standard ``NaN``/``Infinity`` tokens (as strict parsers do)."""

    def reject(token: str) -> Any:
        raise ValueError(f"invalid JSON: bare {token}")

    return json.loads(text, parse_constant=reject)
