"""``trajstore toy`` and ``trajstore compare``."""

from __future__ import annotations

import os

import click

from .analyze_commands import parse_bytes
from .errors import fail, one_line_errors

# the cone is the authors' convex control; the Gaussian bowl (a commented-out line in their code)
# is kept as a second smooth control
TOY_DEFAULTS = ("diamond-square", "bowl", "cone", "shuffled")


@click.command()
@click.option(
    "--landscape",
    type=click.Choice(["diamond-square", "diamond-square-clipped", "fbm", "cone", "bowl", "shuffled"]),
    default="diamond-square",
    show_default=True,
)
@click.option(
    "--hurst", type=float, default=0.8, show_default=True, help="Hurst exponent of the fbm landscape."
)
@click.option(
    "--size",
    type=int,
    default=513,
    show_default=True,
    help="Grid points per side (2^k + 1 for diamond-square and shuffled).",
)
@click.option("--lr", type=float, default=0.02, show_default=True)
@click.option("--noise", type=float, default=0.01, show_default=True)
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--out", required=True, help="Store to write (.zarr or .h5).")
@click.option("--overwrite", is_flag=True)
@one_line_errors
def toy(landscape, hurst, size, lr, noise, steps, repeats, seed, out, overwrite) -> None:
    """Simulate the paper's 2-D toy model and write it as an ordinary trajstore store."""
    from trajstore.analysis.toy import Dynamics, write_toy_store

    if os.path.exists(out) and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")
    dyn = Dynamics(lr=lr, noise=noise, steps=steps, repeats=repeats, seed=seed)
    write_toy_store(out, landscape, size=size, hurst=hurst, dynamics=dyn, landscape_seed=seed, overwrite=True)
    import trajstore

    with trajstore.open(out) as t:
        phases = t.metadata["toy"]["phases"]
    parts = []
    for name, ph in phases.items():
        a = "n/a (too short)" if ph["alpha"] is None else f"{ph['alpha']:.2f}"
        parts.append(f"{name.replace('_', '-')} alpha {a} ({ph['n_walkers']} walkers)")
    click.echo(f"wrote {out}: " + "; ".join(parts), err=True)


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
@click.option("--window", type=click.IntRange(min=2), default=1000, show_default=True)
@click.option("--memory-limit", default="1G", show_default=True)
@one_line_errors
def compare(stores, outdir, window, memory_limit) -> None:
    """Analyse STORES side by side: table and overlays in OUT/index.html and OUT/summary.json."""
    from trajstore.analysis.compare import compare as run_compare

    run_compare(list(stores), outdir, window=window, memory_limit=parse_bytes(memory_limit))
    click.echo(f"report: {outdir}/index.html", err=True)
