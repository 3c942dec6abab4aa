"""MSL speed and memory: trajstore's Gram-matrix pass against the original all-pairs method.

One 1000-record window at 10^6 parameters (``--params``), in the same run: the original
method (every pair's distance by direct differences; measured on a parameter subset and
scaled linearly in N, exact for its cost) against ``windowed_msl`` reading the store with a
memory limit; peak traced memory (tracemalloc) against the limit. Then the cost of the Hurst
exponent's interval (a parametric bootstrap over 100 Gaussian landscapes, docs/analysis.md) for
one window of the same length, on a random walk over an exact fractional Brownian landscape
(H = 0.5), against the MSL of that window without it.

    python bench/landscape.py [--params 1000000] [--no-record]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from common import finish
from trajstore.analysis import landscape_interval
from trajstore.analysis.landscape import msl_from_pairs, windowed_msl

import trajstore


def all_pairs_distances(x: np.ndarray) -> np.ndarray:
    """The original analysis: ‖w_j − w_i‖² for every pair, one row at a time."""
    T = len(x)
    d2 = np.zeros((T, T))
    for i in range(T - 1):
        d = x[i + 1 :] - x[i]
        d2[i, i + 1 :] = np.einsum("ij,ij->i", d, d)
    return d2


def interval_cost(T: int, dim: int = 200) -> tuple[float, float, str]:
    """Seconds of ``msl_from_pairs`` for one window with and without the H interval, on a
    random walk in ``dim`` dimensions over an exact fBm landscape with H = 0.5 plus noise."""
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(T, dim)), axis=0)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    field = landscape_interval.landscape_field(d2, 1.0, 1.0) @ rng.standard_normal(T - 1)
    losses = field + 0.05 * rng.standard_normal(T)
    steps = np.arange(T)
    real = landscape_interval.hurst_interval
    try:
        landscape_interval.hurst_interval = lambda *a, **k: ((0.0, 2.0), None)  # the point fit only
        t0 = time.perf_counter()
        msl_from_pairs(d2, losses, steps)
        t_point = time.perf_counter() - t0
    finally:
        landscape_interval.hurst_interval = real
    t0 = time.perf_counter()
    res = msl_from_pairs(d2, losses, steps)
    t_full = time.perf_counter() - t0
    if res.hurst is None:
        return t_full - t_point, t_point, f"H undetermined ({res.undetermined})"
    lo, hi = res.hurst_ci
    h = f"H = {res.hurst:.3f} [{lo:.3f}, {hi:.3f}] (truth 0.5)"
    return t_full - t_point, t_point, h


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--params", type=int, default=1_000_000)
    ap.add_argument("--limit-mib", type=int, default=512)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    T, N, limit = args.records, args.params, args.limit_mib << 20
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "l.zarr"
    rng = np.random.default_rng(0)
    w = rng.normal(size=N).astype(np.float32)
    with trajstore.create(path, N) as wr:
        for t in range(T):
            w += rng.normal(scale=1e-3, size=N).astype(np.float32)
            wr.append(t, w)
            wr.log("loss", t + 1, float(np.sin(t / 50.0) + rng.normal(scale=0.1)), evaluated_at="pre_step")
    traj = trajstore.open(path)
    sub = 5000
    xs = traj.weights[:, :sub].astype(np.float64)
    t0 = time.perf_counter()
    all_pairs_distances(xs)
    t_pairs = (time.perf_counter() - t0) * N / sub
    tracemalloc.start()
    t0 = time.perf_counter()
    res = windowed_msl(traj, window=T, memory_limit=limit)
    t_ours = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t_interval, t_point, h_line = interval_cost(T)
    h0 = f"H = {res[0].hurst:.3f}" if res[0].hurst is not None else f"H undetermined: {res[0].undetermined}"
    raw = T * N * 4
    lines = [
        f"window of {T} records x {N} parameters ({raw / 1e9:.1f} GB raw), memory limit {limit >> 20} MiB:",
        f"all-pairs (original method, scaled from {sub} parameters) {t_pairs:.0f} s; "
        f"trajstore MSL {t_ours:.1f} s = {t_pairs / t_ours:.1f}x faster; "
        f"peak traced memory {peak / 2**20:.0f} MiB ({peak / limit:.2f} of the limit); "
        f"{h0}.",
        f"H interval of one {T}-record window: {t_interval:.2f} s on top of its MSL fit "
        f"({t_point:.2f} s without the interval); {h_line}.",
        "Targets: >= 10x the all-pairs method; peak memory under the limit.",
    ]
    traj.close()
    shutil.rmtree(tmp)
    finish("bench/landscape.py", lines, args.no_record)


if __name__ == "__main__":
    main()
