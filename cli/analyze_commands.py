"""``trajstore analyze``: every analysis the store allows, into a report."""

from __future__ import annotations

import os
import re

import click

import trajstore

from .dask_option import dask_engine_for, dask_option
from .errors import one_line_errors
from .output import emit_json, inform, json_option, quiet_option, selection_options, window_options
from .paths import check_report_dir, default_report_dir


@click.command()
@click.argument("store")
@click.option(
    "-o",
    "--out",
    "outdir",
    default=None,
    help="Report folder (default: beside STORE, its name without .zarr/.h5 + '-report'; "
    "for a URL, in the current folder).",
)
@window_options
@selection_options
@dask_option
@json_option
@quiet_option
@click.option(
    "--with-toy",
    is_flag=True,
    help="Also simulate the default toy runs (fractal, convex, shuffled) "
    "and compare the store with them in OUT/compare/.",
)
@click.option(
    "--from-sketch",
    is_flag=True,
    help="(1.2) Analyse the store's sketch (and sample) even when it holds the full weights "
    "(a store without full weights always is).",
)
@one_line_errors
def analyze(
    store: str,
    outdir: str | None,
    window: int,
    memory_limit: int,
    steps: str | None,
    tensors: tuple[str, ...],
    exclude: tuple[str, ...],
    trainable_only: bool,
    dask_address: str | None,
    as_json: bool,
    quiet: bool,
    with_toy: bool,
    from_sketch: bool,
) -> None:
    """Run every analysis STORE allows; write summary.json, figures and index.html to OUT."""
    engine = click.get_current_context().with_resource(dask_engine_for(dask_address))  # closed at exit
    from trajstore.analysis.pipeline import analyze as run_analysis
    from trajstore.analysis.report import write_report

    from trajstore.selection import select

    limit = memory_limit
    outdir = outdir or default_report_dir(store)
    check_report_dir(outdir)  # before minutes of analysis, not after
    from trajstore.analysis.sketch import analyze_sketch, uses_sketch

    with trajstore.open(store) as traj:
        if uses_sketch(traj, from_sketch):  # (1.2) a sketch store: MSD from the sketch, steps from the sample
            if steps or tensors or exclude:
                raise ValueError(
                    "--steps/--tensors/--exclude do not apply to a sketch: a sketch mixes every tensor"
                )
            if engine is not None:
                raise ValueError("--dask does not apply to a sketch store yet: analyse it without --dask")
            result = analyze_sketch(traj, window, memory_limit=limit, progress=not quiet)
        else:
            part = select(traj, steps, tensors, exclude, trainable_only=trainable_only)
            result = run_analysis(part, window, memory_limit=limit, progress=not quiet, engine=engine)
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
            progress=not quiet,
            selection={"trainable_only": trainable_only},
            engine=engine,
        )
        from trajstore.analysis.report import add_link

        add_link(outdir, "compare/index.html", "Comparison with the toy model (fractal, cone, shuffled)")
    for note in group_window_notes(result.notes):
        inform(f"note: {note}", quiet)
    if as_json:
        emit_json(summary)
    inform(f"report: {os.path.join(outdir, 'index.html')}", quiet)


_WINDOW_NOTE = re.compile(r"^(landscape )?window (\d+)(?: \(t_w = [^)]*\))?( skipped)?: (.*)$")


def group_window_notes(notes: list[str]) -> list[str]:
    """One line per note that windows share: "window 3: no fit …" for 22 windows becomes
    "windows 0–21 (22): no fit …" (summary.json keeps every note as it was)."""
    groups: dict[tuple, list[tuple[int, str]]] = {}
    order: list = []  # notes that name no window, and group keys, in order of first appearance
    for note in notes:
        m = _WINDOW_NOTE.match(note)
        if m is None:
            order.append(note)
            continue
        key = (m.group(1) or "", m.group(3) or "", m.group(4))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((int(m.group(2)), note))
    lines = []
    for item in order:
        if isinstance(item, str):
            lines.append(item)
        elif len(groups[item]) == 1:
            lines.append(groups[item][0][1])
        else:
            prefix, skipped, rest = item
            ks = [k for k, _ in groups[item]]
            lines.append(f"{prefix}windows {_ranges(ks)} ({len(ks)}){skipped}: {rest}")
    return lines


def _ranges(ks: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0–2, 5, 7–8"."""
    ks = sorted(set(ks))
    parts, start = [], ks[0]
    for a, b in zip(ks, ks[1:] + [None], strict=True):
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}–{a}")
            start = b
    return ", ".join(parts)

