"""Click parameter types for numeric options: NaN, infinities and meaningless zeros or negatives
are refused while parsing (click's one ``Error:`` line, exit status 2)."""

from __future__ import annotations

import math

import click

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan`` and ``inf`` (NaN passes every
    comparison, so a plain range accepts it)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


POSITIVE_SECONDS = FiniteFloatRange(min=0, min_open=True)
POSITIVE = FiniteFloatRange(min=0, min_open=True)
NON_NEGATIVE = FiniteFloatRange(min=0)


def parse_bytes(text: str) -> int:
    """'512M', '1GiB', '2g' or a plain number of bytes; ValueError unless a positive size."""
    t = str(text).strip().lower().removesuffix("ib").removesuffix("b")
    scale = 1
    if t and t[-1] in _UNITS:
        t, scale = t[:-1], _UNITS[t[-1]]
    value = float(t)  # ValueError for text
    if not math.isfinite(value) or value * scale < 1:
        raise ValueError(text)
    return int(value * scale)


class ByteSize(click.ParamType):
    """A positive number of bytes written like ``512M`` or ``2G``."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            return value if value > 0 else self.fail(f"{value} is not a positive size", param, ctx)
        try:
            return parse_bytes(value)
        except ValueError:
            self.fail(f"{value!r} is not a positive size; write e.g. 512M or 2G", param, ctx)


BYTE_SIZE = ByteSize()
