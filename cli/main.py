"""Entry point of the ``trajstore`` console script."""

from __future__ import annotations

import logging
import sys

import click

import trajstore

from .analyze_commands import analyze
from .record_command import record
from .share_commands import annotate, card, catalog, extract, manifest, pack, pull, push, unpack, verify
from .store_commands import convert, info, validate
from .toy_commands import compare, toy


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(trajstore.__version__, prog_name="trajstore")
def cli() -> None:
    """Record, store and analyse neural-network weight trajectories."""


cli.add_command(info)
cli.add_command(validate)
cli.add_command(convert)


cli.add_command(record)
cli.add_command(analyze)
cli.add_command(toy)
cli.add_command(compare)
for command in (annotate, card, manifest, verify, pack, unpack, push, pull, extract, catalog):
    cli.add_command(command)


def main() -> None:
    # zarr's I/O loop logs "Task was destroyed but it is pending" at exit after a failed read;
    # the one-line error already said what went wrong.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        code = cli.main(prog_name="trajstore", standalone_mode=False)
    except click.ClickException as exc:  # a bad option or argument: one line, like every error
        hint = f"; see '{exc.ctx.command_path} --help'" if getattr(exc, "ctx", None) else ""
        click.echo(f"error: {exc.format_message().rstrip('.')}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
