"""Entry point of the ``trajstore`` console script."""

from __future__ import annotations

import logging

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
    cli(prog_name="trajstore")


if __name__ == "__main__":
    main()
