"""``trajstore info``, ``validate`` and ``convert``."""

from __future__ import annotations

import click

from trajstore.convert import convert as convert_store
from trajstore.info import format_summary, summarize_store
from trajstore.safety import check_output_folder
from trajstore.validate import validate as validate_store

from .errors import EXIT_ERROR, one_line_errors, problem_line
from .output import emit_json, inform, json_option, quiet_option


@click.command()
@click.argument("store")
@json_option
@click.option(
    "--scan/--no-scan",
    default=None,
    help="Count non-finite weights (reads every weight; default: stores up to 2 GiB raw).",
)
@one_line_errors
def info(store: str, as_json: bool, scan: bool | None) -> None:
    """Show records, steps, parameters, size, observables and provenance of STORE."""
    s = summarize_store(store, scan_nonfinite=scan)
    if as_json:
        emit_json(s)
    else:
        click.echo(format_summary(s))
    if s.get("damage"):  # what could be read is shown above; the damage, one line each, then exit 1
        for line in s["damage"]:
            click.echo(f"error: {line}", err=True)
        raise SystemExit(EXIT_ERROR)


@click.command()
@click.argument("store")
@click.option("--no-checksums", is_flag=True, help="Skip decoding every chunk (fast, structure only).")
@json_option
@quiet_option
@one_line_errors
def validate(store: str, no_checksums: bool, as_json: bool, quiet: bool) -> None:
    """Check STORE against every rule of the format spec. Exit 0 when valid, 1 when not."""
    report = validate_store(store, checksums=not no_checksums)
    if as_json:
        emit_json(validation_json(store, report, checksums=not no_checksums))
        raise SystemExit(0 if report.valid else 1)
    for w in report.warnings:
        inform(f"warning: {w}", quiet)
    if report.valid:
        click.echo(f"{store}: valid trajstore store")
        return
    for p in report.problems:
        click.echo(problem_line(store, p))
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
@click.option(
    "--codec",
    type=click.Choice(["fast", "balanced", "small"]),
    default=None,
    help="Lossless codec preset of the destination (as in record; overrides --compression).",
)
@one_line_errors
def convert(src: str, dst: str, overwrite: bool, compression: str, codec: str | None) -> None:
    """Copy SRC into DST (Zarr <-> HDF5 by suffix), streaming, lossless, metadata kept."""
    check_output_folder(dst)
    convert_store(src, dst, overwrite=overwrite, compression=codec or compression)
    click.echo(f"wrote {dst}")


def validation_json(store: str, report, *, checksums: bool) -> dict:
    """What ``validate --json`` prints (docs/schemas/validate.schema.json)."""
    return {
        "store": str(store),
        "valid": report.valid,
        "checksums": checksums,
        "problems": list(report.problems),
        "warnings": list(report.warnings),
        "nonfinite": dict(report.nonfinite),
    }
