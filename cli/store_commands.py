"""``trajstore info``, ``validate`` and ``convert``."""

from __future__ import annotations

import json

import click

import trajstore
from trajstore.convert import convert as convert_store
from trajstore.info import format_summary, summarize
from trajstore.validate import validate as validate_store

from .errors import one_line_errors


@click.command()
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--scan/--no-scan",
    default=None,
    help="Count non-finite weights (reads every weight; default: stores up to 2 GiB raw).",
)
@one_line_errors
def info(store: str, as_json: bool, scan: bool | None) -> None:
    """Show records, steps, parameters, size, observables and provenance of STORE."""
    with trajstore.open(store) as traj:
        s = summarize(traj, scan_nonfinite=scan)
    click.echo(json.dumps(s, indent=2, default=str) if as_json else format_summary(s))


@click.command()
@click.argument("store")
@click.option("--no-checksums", is_flag=True, help="Skip decoding every chunk (fast, structure only).")
@one_line_errors
def validate(store: str, no_checksums: bool) -> None:
    """Check STORE against every rule of the format spec. Exit 0 when valid, 1 when not."""
    report = validate_store(store, checksums=not no_checksums)
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if report.valid:
        click.echo(f"{store}: valid trajstore store")
        return
    for p in report.problems:
        click.echo(f"{store}: {p}")
    raise SystemExit(1)


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@click.option(
    "--compression",
    type=click.Choice(["default", "none", "no-transpose", "zstd"]),
    default="default",
    show_default=True,
    help="Codec of the destination.",
)
@one_line_errors
def convert(src: str, dst: str, overwrite: bool, compression: str) -> None:
    """Copy SRC into DST (Zarr <-> HDF5 by suffix), streaming, lossless, metadata kept."""
    convert_store(src, dst, overwrite=overwrite, compression=compression)
    click.echo(f"wrote {dst}")
