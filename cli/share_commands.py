"""``trajstore annotate``, ``card``, ``manifest``, ``verify``, ``pack`` and ``unpack``: sharing."""

from __future__ import annotations

import json
import os

import click

from trajstore.errors import TrajstoreError
from trajstore.safety import check_output_folder

from .dask_option import dask_engine_for, dask_option
from .errors import fail, one_line_errors, problem_line
from .paths import check_report_dir


def parse_meta(items: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` options -> a dict; a malformed item is a usage error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        out[key.strip()] = value
    return out


def description_options(func):
    """The dataset-description options shared by ``record`` and ``annotate``."""
    options = [
        click.option("--title", help="Title of the dataset."),
        click.option("--description", "description_text", help="What the run is and why it was made."),
        click.option(
            "--author",
            "authors",
            multiple=True,
            help="Author, repeatable: 'Given Family' or 'Given Family <ORCID; affiliation>'.",
        ),
        click.option("--license", "license_", help="SPDX licence identifier, e.g. CC-BY-4.0 or CC0-1.0."),
        click.option("--keyword", "keywords", multiple=True, help="Keyword, repeatable."),
        click.option(
            "--related", multiple=True, help="DOI or URL of a related paper or dataset, repeatable."
        ),
        click.option("--meta", multiple=True, help="Free-form metadata KEY=VALUE, repeatable."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def description_fields(title, description_text, authors, license_, keywords, related) -> dict:
    """The description fields given on the command line, checked (licence against SPDX) before
    anything runs, so a typo never surfaces after training has started."""
    from trajstore.description import check_license_known, normalise

    fields: dict = {}
    if title is not None:
        fields["title"] = title
    if description_text is not None:
        fields["description"] = description_text
    if authors:
        fields["authors"] = list(authors)
    if license_ is not None:
        fields["license"] = check_license_known(license_)
    if keywords:
        fields["keywords"] = list(keywords)
    if related:
        fields["related"] = list(related)
    return normalise(fields)


@click.command()
@click.argument("store")
@description_options
@one_line_errors
def annotate(store, title, description_text, authors, license_, keywords, related, meta) -> None:
    """Add or change STORE's dataset description (no data is rewritten).

    Authors, keywords and related items given replace the stored lists.
    """
    from trajstore.annotate import annotate as annotate_store

    fields = description_fields(title, description_text, authors, license_, keywords, related)
    metadata = parse_meta(meta)
    if not fields and not metadata:
        fail("nothing to change: give --title, --author, --license, ... or --meta KEY=VALUE", 2)
    result = annotate_store(store, fields, metadata=metadata or None)
    click.echo(json.dumps(result, indent=2))


@click.command()
@click.argument("store")
@click.option("-o", "--out", "out_dir", help="Folder for the card files (default: inside a .zarr store).")
@one_line_errors
def card(store: str, out_dir: str | None) -> None:
    """Write STORE's dataset card: README.md, CITATION.cff and datacite.json."""
    write_card = _sharing("card").write_card
    if out_dir is not None:
        check_report_dir(out_dir, what="the card files")
    for path in write_card(store, out_dir):
        click.echo(f"wrote {path}")


@click.command()
@click.argument("store")
@one_line_errors
def manifest(store: str) -> None:
    """Write the SHA-256 manifest of every file of STORE (and its content digest)."""
    from trajstore.manifest import write_manifest

    click.echo(f"wrote {write_manifest(store)}")


@click.command()
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@one_line_errors
def verify(store: str, as_json: bool) -> None:
    """Check STORE against its manifest and every chunk checksum. Exit 0 when intact, 1 when not."""
    from trajstore.verify import verify as verify_store

    report = verify_store(store)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": report.path,
                    "ok": report.ok,
                    "problems": report.problems,
                    "warnings": report.warnings,
                    "files_checked": report.files_checked,
                    "content_digest": report.content_digest,
                },
                indent=2,
            )
        )
    else:
        for w in report.warnings:
            click.echo(f"warning: {w}", err=True)
        for p in report.problems:
            click.echo(problem_line(store, p))
        if report.ok:
            click.echo(
                f"{store}: intact ({report.files_checked} files match the manifest; every chunk decodes)"
            )
    if not report.ok:
        raise SystemExit(1)


@click.command()
@click.argument("store")
@click.option("-o", "--out", required=True, help="The package to write, *.zip (e.g. run.trajstore.zip).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@one_line_errors
def pack(store: str, out: str, overwrite: bool) -> None:
    """Pack STORE into one zip file (entries stored, byte-range readable) with card and manifest."""
    check_output_folder(out)
    m = _sharing("pack").pack(store, out, overwrite=overwrite)
    click.echo(f"wrote {out} ({len(m['files'])} files, content {m['content_digest']})")


@click.command()
@click.argument("package")
@click.option("-o", "--out", required=True, help="The directory store to restore, e.g. run.zarr.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it is a trajstore store.")
@one_line_errors
def unpack(package: str, out: str, overwrite: bool) -> None:
    """Restore the directory store packed in PACKAGE, verified against its manifest."""
    check_output_folder(out)
    m = _sharing("pack").unpack(package, out, overwrite=overwrite)
    click.echo(f"wrote {out} ({len(m['files'])} files verified)")


def _sharing(module: str):
    try:
        return __import__(f"trajstore.sharing.{module}", fromlist=[module])
    except ImportError as exc:
        raise TrajstoreError(
            f"{exc.name or 'a package'} is not installed: pip install 'trajstore[share]'"
        ) from None


def _transfer_options(what: str):
    """``--workers`` (parallel ``what``: uploads, downloads) and ``--quiet`` of push and pull."""

    def add(func):
        func = click.option("--quiet", is_flag=True, help="No progress bar.")(func)
        return click.option(
            "--workers", type=click.IntRange(1, 64), default=8, show_default=True, help=f"Parallel {what}."
        )(func)

    return add


@click.command()
@click.argument("store")
@click.argument("url")
@_transfer_options("uploads")
@one_line_errors
def push(store: str, url: str, workers: int, quiet: bool) -> None:
    """Copy STORE to URL (s3://, gs://, file://, ...): resumable, manifest last, checked."""
    check_output_folder(url)  # a file:// URL is a local path
    m = _sharing("transfer").push(store, url, workers=workers, progress=not quiet)
    click.echo(f"pushed {store} to {url} ({len(m['files'])} files, content {m['content_digest']})")


@click.command()
@click.argument("url")
@click.argument("dest")
@_transfer_options("downloads")
@one_line_errors
def pull(url: str, dest: str, workers: int, quiet: bool) -> None:
    """Copy the store at URL (https://, s3://, ...) to DEST by its manifest: resumable, verified."""
    check_output_folder(dest)
    m = _sharing("transfer").pull(url, dest, workers=workers, progress=not quiet)
    click.echo(f"pulled {url} to {dest} ({len(m['files'])} files verified)")


@click.command()
@click.argument("store")
@click.option("-o", "--out", required=True, help="The derived store to write (.zarr or .h5).")
@click.option("--steps", help="Optimizer steps START:STOP[:STRIDE], e.g. 0:5000:10.")
@click.option("--tensors", multiple=True, help="Glob of tensor names to keep, repeatable (default all).")
@click.option("--exclude", multiple=True, help="Glob of tensor names to leave out, repeatable.")
@click.option("--keepbits", type=click.IntRange(0, 23), help="Lossy: keep this many float32 mantissa bits.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@one_line_errors
def extract(store, out, steps, tensors, exclude, keepbits, overwrite) -> None:
    """Write a smaller store from STORE: some steps, some tensors; its provenance names the source."""
    from trajstore.extract import extract as extract_store

    check_output_folder(out)
    sel = extract_store(
        store, out, steps=steps, tensors=tensors, exclude=exclude, keepbits=keepbits, overwrite=overwrite
    )
    click.echo(f"wrote {out} (steps {sel['steps']}, tensors {' '.join(sel['tensors'])})")


@click.command()
@click.argument("places", nargs=-1, required=True)
@click.option("-o", "--out", help="Write the table to this file: .csv, .json or .html (default: print it).")
@dask_option
@one_line_errors
def catalog(places: tuple[str, ...], out: str | None, dask_address: str | None) -> None:
    """Tabulate stores (given, or found below folders): model, optimizer, steps, sizes, exponents."""
    if out is not None:
        check_output_folder(out)
    mod = _sharing("catalog")
    engine = click.get_current_context().with_resource(dask_engine_for(dask_address))  # closed at exit
    rows = mod.catalog(places, engine=engine)
    if not rows:
        fail(f"no trajstore store found in {' '.join(places)}", 1)
    if out is None:
        click.echo(mod.render(rows, "table"), nl=False)
        return
    fmt = os.path.splitext(out)[1].lower().lstrip(".")
    if fmt not in ("csv", "json", "html"):
        fail(f"{out}: name the output .csv, .json or .html", 2)
    with open(out, "w", encoding="utf-8") as f:
        f.write(mod.render(rows, fmt))
    click.echo(f"wrote {out} ({len(rows)} stores)")
