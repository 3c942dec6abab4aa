"""The ``record`` options of sketch recording (docs/format.md 3.7, docs/scale.md)."""

from __future__ import annotations

import click


def sketch_options(fn):
    """Add --sketch, --sample, --sketch-seed and --full to a command."""
    for option in reversed(
        [
            click.option(
                "--sketch",
                type=click.IntRange(1, 2**31 - 1),
                default=None,
                metavar="K",
                help="(1.2) Record a K-dimensional CountSketch of the weights per record (computed on "
                "the device); without --full, the full weights are not recorded.",
            ),
            click.option(
                "--sample",
                type=click.IntRange(min=1),
                default=None,
                metavar="M",
                help="(1.2) Record the exact values of M parameters chosen uniformly at random "
                "(their indices stored); without --full, the full weights are not recorded.",
            ),
            click.option(
                "--sketch-seed",
                type=click.IntRange(0, 2**63 - 1),
                default=0,
                show_default=True,
                help="Seed of the sketch's hash and of the sample's choice.",
            ),
            click.option(
                "--full",
                is_flag=True,
                help="With --sketch/--sample: record the full weights too.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def sketch_recorder_options(sketch: int | None, sample: int | None, sketch_seed: int, full: bool):
    """The Recorder's ``sketch`` argument from the command-line options."""
    from trajstore.recorders.sketch import SketchOptions

    if full and sketch is None and sample is None:
        raise click.UsageError("--full only applies with --sketch or --sample")
    return SketchOptions(dim=sketch, sample=sample, seed=sketch_seed, full=True if full else None)
