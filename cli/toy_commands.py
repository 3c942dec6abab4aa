"""``trajstore toy`` and ``trajstore compare``."""

from __future__ import annotations

import os

import click

from trajstore.safety import check_output_folder

from .dask_option import dask_engine_for, dask_option
from .errors import fail, one_line_errors
from .output import emit_json, inform, json_option, quiet_option, selection_options, window_options
from .params import NON_NEGATIVE, POSITIVE, FiniteFloatRange
from .paths import check_report_dir

# the cone is the authors' convex control; the Gaussian bowl (a commented-out line in their code)
# is kept as a second smooth control
TOY_DEFAULTS = ("diamond-square", "bowl", "cone", "shuffled")


@click.command()
@click.option(
    "--landscape",
    type=click.Choice(["diamond-square", "diamond-square-clipped", "fbm", "cone", "bowl", "shuffled"]),
    default="diamond-square",
    show_default=True,
    help="Loss landscape U(x, y) on [-1, 1]^2: diamond-square fractal (the paper's), fractional "
    "Brownian surface (fbm), convex cone or bowl, or a shuffled fractal (same values, no correlations).",
)
@click.option(
    "--hurst",
    type=FiniteFloatRange(0, 1, min_open=True, max_open=True),
    default=0.8,
    show_default=True,
    help="Hurst exponent of the fbm landscape.",
)
@click.option(
    "--size",
    type=int,
    default=513,
    show_default=True,
    help="Grid points per side (2^k + 1 for diamond-square and shuffled).",
)
@click.option(
    "--lr", type=POSITIVE, default=0.02, show_default=True, help="Learning rate of the gradient step (> 0)."
)
@click.option(
    "--noise",
    type=NON_NEGATIVE,
    default=0.01,
    show_default=True,
    help="Standard deviation of the Gaussian noise added to each step (>= 0).",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 10**7),
    default=1000,
    show_default=True,
    help="Steps per walker (1..10^7).",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 10**4),
    default=5,
    show_default=True,
    help="Independent walkers (1..10^4), a tensor each.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the landscape and of the walkers' noise."
)
@click.option("-o", "--out", required=True, help="Store to write (.zarr or .h5).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@json_option
@quiet_option
@one_line_errors
def toy(landscape, hurst, size, lr, noise, steps, repeats, seed, out, overwrite, as_json, quiet) -> None:
    """Simulate the paper's 2-D toy model and write it as an ordinary trajstore store."""
    from trajstore.analysis.toy import Dynamics, write_toy_store

    if os.path.exists(out) and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")
    check_output_folder(out)
    dyn = Dynamics(lr=lr, noise=noise, steps=steps, repeats=repeats, seed=seed)
    write_toy_store(out, landscape, size=size, hurst=hurst, dynamics=dyn, landscape_seed=seed, overwrite=True)
    import trajstore

    with trajstore.open(out) as t:
        meta = t.metadata["toy"]
    phases = meta["phases"]
    if as_json:
        emit_json({"store": out, "toy": meta})
    parts = []
    for name, ph in phases.items():
        a = "n/a (too short)" if ph["alpha"] is None else f"{ph['alpha']:.2f}"
        parts.append(f"{name.replace('_', '-')} alpha {a} ({ph['n_walkers']} walkers)")
    inform(f"wrote {out}: " + "; ".join(parts), quiet)


def default_toy_runs(folder: str, seed: int = 0) -> list[str]:
    """The fractal, cone (the authors' convex control), Gaussian bowl and shuffled toy runs (paper
    parameters) in ``folder``."""
    from trajstore.analysis.toy import Dynamics, write_toy_store

    os.makedirs(folder, exist_ok=True)
    paths = []
    for kind in TOY_DEFAULTS:
        path = os.path.join(folder, f"toy-{kind}.zarr")
        write_toy_store(
            path, kind, size=513, dynamics=Dynamics(seed=seed), landscape_seed=seed, overwrite=True
        )
        paths.append(path)
    return paths


@click.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("-o", "--out", "outdir", required=True, help="Report folder.")
@window_options
@selection_options
@dask_option
@json_option
@quiet_option
@one_line_errors
def compare(
    stores,
    outdir,
    window,
    memory_limit,
    steps,
    tensors,
    exclude,
    trainable_only,
    dask_address,
    as_json,
    quiet,
) -> None:
    """Analyse STORES side by side: table and overlays in OUT/index.html and OUT/summary.json."""
    engine = click.get_current_context().with_resource(dask_engine_for(dask_address))  # closed at exit
    from trajstore.analysis.compare import compare as run_compare

    check_report_dir(outdir)  # before minutes of analysis, not after
    summary = run_compare(
        list(stores),
        outdir,
        window=window,
        memory_limit=memory_limit,
        progress=not quiet,
        selection={"steps": steps, "tensors": tensors, "exclude": exclude, "trainable_only": trainable_only},
        engine=engine,
    )
    if as_json:
        emit_json(summary)
    inform(f"report: {os.path.join(outdir, 'index.html')}", quiet)
