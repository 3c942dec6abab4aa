"""Options and output shared by the commands: ``--json`` (strict JSON on stdout), ``--quiet``."""

from __future__ import annotations

import sys
from typing import Any

import click

from trajstore import jsonsafe

from .params import BYTE_SIZE

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON on stdout (schema in docs/schemas/; NaN and infinity as null).",
)
quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no notes on stderr (errors still show)."
)


def emit_json(value: Any) -> None:
    """Write ``value`` as strict JSON (non-finite numbers as null) and a newline to stdout;
    a value of another type (none is expected) is printed as its text, not a traceback."""
    sys.stdout.write(jsonsafe.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def inform(message: str, quiet: bool) -> None:
    """An informational line on stderr unless ``quiet``."""
    if not quiet:
        click.echo(message, err=True)


def window_options(func):
    """``--window`` (records per window) and ``--memory-limit`` (bytes of data in memory at
    once): how the analysis commands read a store."""
    func = click.option(
        "--memory-limit",
        type=BYTE_SIZE,
        default="1G",
        show_default=True,
        help="Bytes of data in memory at once.",
    )(func)
    return click.option(
        "--window",
        type=int,  # the least is the fits' own (analysis.exponents.min_window), checked below
        default=1000,
        show_default=True,
        callback=_check_window,
        help="Records per window (at least 4: fewer give no lags to fit).",
    )(func)


def _check_window(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """Refuse a window too short for any MSD fit before a store is opened or a toy simulated."""
    from trajstore.analysis.exponents import check_window

    try:
        check_window(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value

def selection_options(func):
    """``--steps``, ``--tensors``, ``--exclude`` and ``--trainable-only/--all``: analyse part of a
    store (trajstore.selection)."""
    func = click.option(
        "--trainable-only/--all",
        "trainable_only",
        default=True,
        show_default=True,
        help="Analyse only tensors that were trainable at every selected record (the store's "
        "trainable change points); --all includes frozen ones.",
    )(func)
    func = click.option(
        "--exclude",
        multiple=True,
        metavar="GLOB",
        help="Leave out tensors whose names match GLOB (repeatable).",
    )(func)
    func = click.option(
        "--tensors",
        multiple=True,
        metavar="GLOB",
        help="Analyse only tensors whose names match GLOB, e.g. 'layer3.*' (repeatable; default all).",
    )(func)
    return click.option(
        "--steps",
        default=None,
        metavar="START:STOP[:STRIDE]",
        help="Analyse only the records of optimizer steps START <= step < STOP (every STRIDE-th step "
        "from START); either bound may be left empty.",
    )(func)
