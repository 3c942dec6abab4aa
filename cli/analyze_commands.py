"""``trajstore analyze``: every analysis the store allows, into a report."""

from __future__ import annotations

import json
import sys

import click

import trajstore

from .errors import one_line_errors

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str) -> int:
    """'512M', '1GiB', '2g' or a plain number of bytes."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in _UNITS:
            return int(float(t[:-1]) * _UNITS[t[-1]])
        return int(float(t))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size; write e.g. 512M or 2G") from None


@click.command()
@click.argument("store")
@click.option(
    "-o", "--out", "outdir", default=None, help="Report folder (default: STORE's name + '-report')."
)
@click.option(
    "--window", type=click.IntRange(min=2), default=1000, show_default=True, help="Records per window."
)
@click.option("--memory-limit", default="1G", show_default=True, help="Bytes of data in memory at once.")
@click.option("--json", "as_json", is_flag=True, help="Also print summary.json to stdout.")
@click.option(
    "--with-toy",
    is_flag=True,
    help="Also simulate the default toy runs (fractal, convex, shuffled) "
    "and compare the store with them in OUT/compare/.",
)
@one_line_errors
def analyze(
    store: str, outdir: str | None, window: int, memory_limit: str, as_json: bool, with_toy: bool
) -> None:
    """Run every analysis STORE allows; write summary.json, figures and index.html to OUT."""
    from trajstore.analysis.pipeline import analyze as run_analysis
    from trajstore.analysis.report import write_report

    limit = parse_bytes(memory_limit)
    outdir = outdir or store.rstrip("/").rsplit(".", 1)[0] + "-report"
    with trajstore.open(store) as traj:
        result = run_analysis(traj, window, memory_limit=limit)
    summary = write_report(result, outdir)
    if with_toy:
        from trajstore.analysis.compare import compare

        from .toy_commands import default_toy_runs

        toys = default_toy_runs(f"{outdir}/toy")
        compare(
            [store, *toys],
            f"{outdir}/compare",
            window=window,
            memory_limit=limit,
            windows={t: 250 for t in toys},
        )
        from trajstore.analysis.report import add_link

        add_link(outdir, "compare/index.html", "Comparison with the toy model (fractal, cone, shuffled)")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    click.echo(f"report: {outdir}/index.html", err=True)
