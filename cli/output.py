"""Options and output shared by the commands: ``--json`` (strict JSON on stdout), ``--quiet``."""

from __future__ import annotations

import sys
from typing import Any

import click

from trajstore import jsonsafe

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
