"""Speed-up of the passes over the weights on a Dask LocalCluster: 1 worker process against 2.

A synthetic random-walk store (``--params`` × ``--records`` float32) is written to a temporary
folder; then, in the same run, the window pass (MSD, step lengths, fragments, bootstrap blocks)
and the landscape's pair distances are timed in this process (serial), on a LocalCluster of one
worker process and on one of two (one thread each, 127.0.0.1). Cluster start-up is not timed;
each time is the best of ``--repeats``. The results are checked equal to the serial pass.

    python bench/dask_scaling.py [--params 50000] [--records 2000] [--window 500] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trajstore.analysis.distributed import dask_engine  # noqa: E402
from trajstore.analysis.landscape import pair_distances  # noqa: E402
from trajstore.analysis.windows import iter_windows, window_bounds  # noqa: E402

import trajstore  # noqa: E402
from bench.common import finish  # noqa: E402

MEMORY_LIMIT = 256 << 20


def write(path: Path, params: int, records: int) -> None:
    rng = np.random.default_rng(0)
    w = np.zeros(params, dtype=np.float32)
    with trajstore.create(path, {"w": (params,)}, chunk_records=256, chunk_params=4096) as wr:
        for step in range(records):
            w += rng.normal(scale=0.01, size=params).astype(np.float32)
            wr.append(step, w)


def passes(traj, window: int, engine=None) -> list:
    """The window pass and the pair distances of every window: what --dask runs on the cluster."""
    kw = {"memory_limit": MEMORY_LIMIT}
    stats = list((engine.iter_windows if engine else iter_windows)(traj, window, partial=True, **kw))
    bounds = window_bounds(traj.n_records, window)
    if engine is None:
        d2 = [pair_distances(traj, slice(a, b), **kw) for a, b in bounds]
    else:
        d2 = list(engine.pair_distances(traj, bounds, **kw))
    return [s.msd for s in stats] + d2


def best_of(repeats: int, fn) -> tuple[float, list]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, default=50_000)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.zarr"
        write(path, args.params, args.records)
        raw = args.params * args.records * 4
        with trajstore.open(path) as traj:
            t_serial, ref = best_of(args.repeats, lambda: passes(traj, args.window))
            rows, times = [], {}
            for n in (1, 2):
                with dask_engine(f"local:{n}") as engine:
                    engine.client.run(lambda: None)  # workers up before timing
                    times[n], got = best_of(args.repeats, lambda e=engine: passes(traj, args.window, e))
                    err = max(
                        float(np.max(np.abs(g - r)) / max(np.max(np.abs(r)), 1e-300))
                        for g, r in zip(got, ref, strict=True)
                    )
                    label = f"{n} worker{'s' if n > 1 else ''}"
                    rows.append(f"| {label} | {times[n]:.2f} | {raw / times[n] / 1e6:.0f} | {err:.1e} |")
    load = os.getloadavg()[0]
    lines = [
        f"synthetic random walk, {args.params} params x {args.records} records ({raw / 1e6:.0f} MB raw "
        f"float32), window {args.window}, memory limit {MEMORY_LIMIT >> 20} MiB per task; "
        f"window pass + pair distances, best of {args.repeats}",
        "",
        "| run | seconds | MB/s | max rel. diff vs serial |",
        "|---|---|---|---|",
        f"| serial (this process) | {t_serial:.2f} | {raw / t_serial / 1e6:.0f} | 0 |",
        *rows,
        "",
        f"Speed-up 1 -> 2 workers: {times[1] / times[2]:.2f}x (load average at the end: {load:.1f}; "
        "the machine is shared, so the figure is a lower bound of what 2 idle cores give).",
    ]
    finish("bench/dask_scaling.py", lines, args.no_record)


if __name__ == "__main__":
    main()
