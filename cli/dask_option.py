"""``--dask ADDRESS|local:N``: run an analysis's passes over the data on a Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

dask_option = click.option(
    "--dask",
    "dask_address",
    default=None,
    metavar="ADDRESS|local:N",
    help="Run the passes over the data as Dask tasks: a scheduler address (tcp://HOST:8786), a "
    "scheduler file (.json), or local:N for N worker processes on this machine "
    "(needs the dask extra; docs/scale.md).",
)


@contextmanager
def dask_engine_for(address: str | None) -> Iterator[Any]:
    """The :class:`~trajstore.analysis.distributed.DaskEngine` for ``--dask`` (closed at the
    end), or None without the option."""
    if address is None:
        yield None
        return
    from trajstore.analysis.distributed import dask_engine

    with dask_engine(address) as engine:
        yield engine
