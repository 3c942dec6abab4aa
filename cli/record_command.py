"""``trajstore record``: run an unmodified training script and record its weight trajectory."""

from __future__ import annotations

import os
import sys

import click

from trajstore.safety import check_output_folder

from .errors import fail, one_line_errors
from .output import inform, quiet_option
from .params import POSITIVE_SECONDS
from .share_commands import description_fields, description_options, parse_meta
from .sketch_options import sketch_options, sketch_recorder_options


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-o", "--out", default="run.zarr", show_default=True, help="Store to write (.zarr or .h5).")
@click.option(
    "--every", type=click.IntRange(min=1), default=1, show_default=True, help="Record every K-th step."
)
@click.option(
    "--schedule", default=None, help="every:K, log:N or ranges:START:STOP:STRIDE[,...] (overrides --every)."
)
@click.option("--gradients", is_flag=True, help="Also record the minibatch gradient of each recorded step.")
@click.option("--buffers", is_flag=True, help="Also record floating-point buffers (BatchNorm statistics).")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("--resume", is_flag=True, help="Continue an existing store after its last complete record.")
@click.option(
    "--resume-tolerance",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="--resume: largest max |dw| between the last stored and the first resumed weights.",
)
@click.option(
    "--resume-new-segment",
    is_flag=True,
    help="--resume from weights that do not continue the store: record them as a new segment.",
)
@click.option(
    "--policy",
    type=click.Choice(["block", "drop"]),
    default="block",
    show_default=True,
    help="When the writer falls behind: make training wait, or drop records (counted).",
)
@click.option(
    "--flush-seconds",
    type=POSITIVE_SECONDS,
    default=10.0,
    show_default=True,
    help="Flush the store this often: a crash loses at most this much.",
)
@click.option(
    "--keepbits",
    type=click.IntRange(0, 23),
    default=None,
    help="Lossy: keep this many float32 mantissa bits (recorded in the metadata).",
)
@click.option(
    "--codec",
    type=click.Choice(["fast", "balanced", "small"]),
    default="balanced",
    show_default=True,
    help="Lossless codec preset: lz4 (fast), zstd-1 (balanced) or zstd-5 (small); see docs/scale.md.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads that compress full blocks (beside the writer thread); more where cores are free.",
)
@click.option(
    "--record-at",
    type=click.Choice(["step", "next-step"]),
    default="step",
    show_default=True,
    help="Take each record when the iteration's last step() returns, or when the next iteration "
    "begins (after code that changes the weights after step(): clipping, projections).",
)
@click.option(
    "--all-optimizers-per-iteration",
    is_flag=True,
    help="Every optimizer the script has made by its first step steps in every iteration, in a "
    "fixed sequence learned from the first iteration (WGAN n_critic: the critic k times, then "
    "the generator); without it, an optimizer that steps twice ends the first iteration.",
)
@sketch_options
@description_options
@quiet_option
@click.argument("script")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@one_line_errors
def record(
    out,
    every,
    schedule,
    gradients,
    buffers,
    overwrite,
    resume,
    resume_tolerance,
    resume_new_segment,
    policy,
    flush_seconds,
    keepbits,
    codec,
    threads,
    record_at,
    all_optimizers_per_iteration,
    sketch,
    sample,
    sketch_seed,
    full,
    title,
    description_text,
    authors,
    license_,
    keywords,
    related,
    meta,
    quiet,
    script,
    script_args,
) -> None:
    """Run SCRIPT (with SCRIPT_ARGS after --) and record every optimizer step into OUT.

    The script needs no change: its optimizers' steps, parameter names and minibatch losses are
    found through PyTorch's hooks. The script's exit status becomes this command's. Progress
    goes to stderr on its own line: a bar on a terminal, else a plain line every 10 s
    ($TRAJSTORE_PROGRESS_SECONDS); the script's output is passed through unchanged.
    """
    if not os.path.isfile(script):
        fail(f"{script}: no such script; give the path of a Python training script")
    if resume_new_segment and not resume:
        fail("--resume-new-segment only applies with --resume")
    if overwrite and resume:
        fail("--overwrite and --resume contradict each other; choose one")
    if os.path.exists(out) and not (overwrite or resume):
        fail(f"{out} exists; pass --overwrite to replace it or --resume to continue it")
    from trajstore.backends import backend_kind
    from trajstore.safety import may_replace

    backend_kind(out, for_create=True)  # an unknown suffix fails now, not at the first step
    check_output_folder(out)  # a typo in its folder, too
    if overwrite and os.path.lexists(out) and not may_replace(out):
        fail(f"{out} exists and is not a trajstore store; refusing to delete it (choose another path)")
    from trajstore.recorders import Recorder, parse_schedule
    from trajstore.recorders.runner import run_script

    from trajstore.progress import script_output

    dataset = description_fields(title, description_text, authors, license_, keywords, related)
    store_options: dict = {"dataset": dataset} if dataset else {}
    if keepbits is not None:
        store_options["keepbits"] = keepbits
    sched = parse_schedule(schedule) if schedule else None
    args = list(script_args)
    if args[:1] == ["--"]:
        args = args[1:]
    rec = Recorder(
        None,
        out,
        every=every,
        schedule=sched,
        gradients=gradients,
        buffers=buffers,
        overwrite=overwrite,
        resume=resume,
        resume_new_segment=resume_new_segment,
        resume_tolerance=resume_tolerance,
        policy=policy,
        flush_seconds=flush_seconds,
        script=script,
        metadata=parse_meta(meta),
        store_options=store_options,
        progress=not quiet,
        codec=codec,
        threads=threads,
        record_at=record_at.replace("-", "_"),
        sketch=sketch_recorder_options(sketch, sample, sketch_seed, full),
    )
    rec.all_optimizers_per_iteration = all_optimizers_per_iteration
    with script_output():  # progress never lands in the middle of a line the script writes
        code = run_script(script, args, rec)
    if rec.dropped:
        click.echo(f"trajstore: dropped {rec.dropped} records (writer fell behind; policy 'drop')", err=True)
    inform(f"trajstore: recorded {out}", quiet)
    sys.exit(code)
