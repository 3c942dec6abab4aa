"""MSD speed and memory: trajstore against tidynamics and the original all-pairs method.

In one run, on the same data: (1) in-memory trajectories of T records × N parameters: the
all-pairs method of the original code (Σ over every pair, measured on a parameter subset and
scaled linearly in N, which is exact for its cost), tidynamics (per-coordinate FFT), and
trajstore's windowed MSD read from a store; (2) a store larger than the memory limit: peak
traced memory of the MSD (tracemalloc) against the limit, and MSD time against one plain
read-and-decompress pass of the same store in the same block pattern.

    python bench/msd.py [--quick] [--no-record]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import tidynamics
from common import finish
from trajstore.analysis.msd import windowed_msd

import trajstore


def all_pairs_msd(x: np.ndarray) -> np.ndarray:
    """The original analysis: every lag, every pair of records, summed over parameters."""
    T = len(x)
    out = np.zeros(T)
    for tau in range(1, T):
        d = x[tau:] - x[:-tau]
        out[tau] = np.einsum("ij,ij->", d, d) / (T - tau)
    return out


def make_store(path: Path, T: int, N: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=N).astype(np.float32)
    with trajstore.create(path, N) as wr:
        for i in range(T):
            w += rng.normal(scale=1e-3, size=N).astype(np.float32)
            wr.append(i, w)


def timeit(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def read_pass(traj, window: int, limit: int, param_major: bool = False) -> None:
    """Read every window's blocks and do nothing with them: as (records, params) through zarr,
    or parameter-major as the MSD pass reads them (straight from the shards)."""
    for r0 in range(0, traj.n_records - window + 1, window):
        blocks = traj.blocks(
            records=slice(r0, r0 + window),
            memory_limit=limit // 6,
            split_records=False,
            param_major=param_major,
        )
        for _ in blocks:
            pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--out-of-core-only", action="store_true", help="skip the in-memory comparisons")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    lines = [
        "| T | N | all-pairs s (scaled) | tidynamics s | trajstore s | vs all-pairs | vs tidynamics |",
        "|---|---|---|---|---|---|---|",
    ]
    sizes = [(1000, 10_000), (1000, 100_000), (4000, 10_000), (10_000, 2_000)]
    if not args.quick:
        sizes.append((1000, 1_000_000))
    if args.quick:
        sizes = [(1000, 5_000), (2000, 2_000)]
    if args.out_of_core_only:
        sizes, lines = [], []
    for T, N in sizes:
        path = tmp / f"m{T}x{N}.zarr"
        make_store(path, T, N)
        traj = trajstore.open(path)
        sub = min(N, 2000)
        xs = traj.weights[:, :sub].astype(np.float64)
        t_pairs = timeit(lambda xs=xs: all_pairs_msd(xs)) * N / sub
        x = traj.weights[:].astype(np.float64) if N <= 100_000 else None
        t_tid = timeit(lambda x=x: tidynamics.msd(x)) if x is not None else float("nan")
        t_ts = timeit(lambda traj=traj, T=T: windowed_msd(traj, window=T))
        lines.append(
            f"| {T} | {N} | {t_pairs:.2f} | {t_tid:.2f} | {t_ts:.2f} | {t_pairs / t_ts:.0f}x | "
            f"{t_tid / t_ts:.2f}x |"
        )
        print(lines[-1], flush=True)
        del x
        traj.close()
        shutil.rmtree(path)
    # out of core: a store larger than the memory limit
    T, N, limit = (2000, 250_000, 256 << 20) if not args.quick else (1000, 50_000, 32 << 20)
    path = tmp / "big.zarr"
    make_store(path, T, N)
    traj = trajstore.open(path)
    raw = T * N * 4
    t_read = timeit(lambda: read_pass(traj, 1000, limit), repeats=2)
    t_read_pm = timeit(lambda: read_pass(traj, 1000, limit, param_major=True), repeats=2)
    tracemalloc.start()
    t_msd = timeit(lambda: windowed_msd(traj, window=1000, memory_limit=limit), repeats=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t_msd = min(t_msd, timeit(lambda: windowed_msd(traj, window=1000, memory_limit=limit)))
    lines += [
        "",
        f"Out of core: store {raw / 1e9:.2f} GB raw ({traj.nbytes_stored() / 1e9:.2f} GB on disk), "
        f"memory limit {limit >> 20} MiB: MSD peak traced memory {peak / 2**20:.0f} MiB "
        f"({peak / limit:.2f} of the limit); MSD {t_msd:.1f} s vs one read pass {t_read:.1f} s "
        f"= {t_msd / t_read:.2f}x (zarr's read, records x params); vs the parameter-major read "
        f"the MSD pass uses (straight from the shards, checksums verified) {t_read_pm:.1f} s = "
        f"{t_msd / t_read_pm:.2f}x.",
        "",
        "Targets: >= 20x all-pairs at T = 1000; <= 1.5x one read pass; peak memory under the limit.",
    ]
    traj.close()
    shutil.rmtree(tmp)
    finish("bench/msd.py", lines, args.no_record)


if __name__ == "__main__":
    main()
