"""How much a writer's work on the *other* core slows training, with no GIL and no memory shared.

A recorder's writer threads compress records on the cores training leaves free. On a machine
whose cores share execution units, caches or memory bandwidth (SMT siblings, a virtual machine's
vCPUs), that work slows training even though it never holds the GIL. This benchmark measures the
floor that no in-process writer can beat: a *separate process* transposes and compresses chunks
shaped like a store's (256 records x 4096 parameters, float32, a random walk per parameter) with
the default codec (``balanced``: Blosc zstd-1, byte-shuffle, 512 KiB blocks) at a paced rate,
while the parent trains a digits CNN on one torch thread. Trials alternate, the other process
stopped (SIGSTOP) and running (SIGCONT), so that the machine's drift cancels; the result is the
median ratio of training time with it running to without.

    python bench/core_contention.py [--case cnn141k/b32] [--rates 60,120,240,0] [--pairs 10]
        [--steps 400] [--no-record]

``--rates``: MB/s of raw records the other process encodes; 0 = as fast as it can (one core).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

CHUNK = (256, 4096)  # records x parameters of one inner chunk of a store
BLOCKSIZE = 512 * 1024


def random_walk() -> np.ndarray:
    """One chunk (records x parameters) of float32 random walks: each parameter moves by steps
    of 1e-3 from its own start, what the other process encodes (and its duty is measured on)."""
    rng = np.random.default_rng(0)
    steps = rng.standard_normal(CHUNK).astype(np.float32) * np.float32(1e-3)
    return steps.cumsum(axis=0) + rng.standard_normal(CHUNK[1]).astype(np.float32)


def burn(rate_mb: float) -> None:
    """Encode chunks as a writer would, ``rate_mb`` MB/s of raw records (0: flat out). Forever."""
    import numcodecs

    codec = numcodecs.Blosc("zstd", 1, numcodecs.Blosc.SHUFFLE, blocksize=BLOCKSIZE)
    walk = random_walk()
    interval = walk.nbytes / (rate_mb * 1e6) if rate_mb > 0 else 0.0
    while True:
        t0 = time.perf_counter()
        codec.encode(np.ascontiguousarray(walk.T))
        # Paced from the end of each chunk, not by an absolute clock: a stopped process must
        # not catch up in a burst when it is continued.
        rest = interval - (time.perf_counter() - t0)
        if rest > 0:
            time.sleep(rest)


def duty(rate_mb: float, seconds: float = 2.0) -> float:
    """Share of one core the paced encoder uses at ``rate_mb`` (measured here, one thread)."""
    import numcodecs

    codec = numcodecs.Blosc("zstd", 1, numcodecs.Blosc.SHUFFLE, blocksize=BLOCKSIZE)
    walk = random_walk()
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        codec.encode(np.ascontiguousarray(walk.T))
        n += walk.nbytes
    speed = n / (time.process_time() - t0) / 1e6  # MB per CPU-second
    return 1.0 if rate_mb <= 0 else min(1.0, rate_mb / speed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="cnn141k/b32")
    ap.add_argument("--rates", default="60,120,240,0")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--burner", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    if args.burner is not None:
        burn(args.burner)
        return

    import torch
    from common import finish
    from recording_overhead import make_case, timed_steps

    torch.set_num_threads(1)
    device = torch.device("cpu")
    model, batches = make_case(args.case, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = sum(p.numel() for p in model.parameters())
    timed_steps(model, opt, batches, 200, device)  # warm up
    lines = [
        f"Training {args.case} ({n} parameters) on 1 torch thread; another process transposes and "
        f"encodes {CHUNK[0]} x {CHUNK[1]} float32 chunks with Blosc zstd-1 byte-shuffle at the given "
        f"raw rate; {args.pairs} pairs of {args.steps}-step trials alternate it stopped / running.",
        "",
        "| other process encodes (MB/s raw) | its share of a core | median step ratio | median trial ratio "
        "| trial ratios (min-max) |",
        "|---|---|---|---|---|",
    ]
    for rate in [float(r) for r in args.rates.split(",")]:
        share = duty(rate)
        proc = subprocess.Popen([sys.executable, __file__, "--burner", str(rate)])
        try:
            time.sleep(1.0)  # its imports
            os.kill(proc.pid, signal.SIGSTOP)
            trials, steps_ratio = [], []
            for _ in range(args.pairs):
                a = timed_steps(model, opt, batches, args.steps, device)
                os.kill(proc.pid, signal.SIGCONT)
                b = timed_steps(model, opt, batches, args.steps, device)
                os.kill(proc.pid, signal.SIGSTOP)
                trials.append(sum(b) / sum(a))
                steps_ratio.append(statistics.median(b) / statistics.median(a))
        finally:
            proc.kill()
            proc.wait()
        label = "flat out" if rate <= 0 else f"{rate:.0f}"
        step, trial = statistics.median(steps_ratio), statistics.median(trials)
        lines.append(
            f"| {label} | {share:.2f} | {step:.3f} | {trial:.3f} | {min(trials):.2f}-{max(trials):.2f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "No GIL and no memory are shared with training: the ratios are what the cores' sharing "
        "alone costs, the floor of any in-process writer encoding at that rate on this machine.",
    ]
    finish("bench/core_contention.py", lines, args.no_record)


if __name__ == "__main__":
    main()
