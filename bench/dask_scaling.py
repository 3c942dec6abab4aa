"""Speed-up of the passes over the weights on a Dask LocalCluster: 1 worker process against 2.

A synthetic random-walk store (``--params`` × ``--records`` float32) is written to a temporary
folder; then, in the same run, the window pass (MSD, step lengths, fragments, bootstrap blocks)
and the landscape's pair distances are timed in this process (serial), on a LocalCluster of one
worker process and on one of two (one thread each, 127.0.0.1). Cluster start-up is not timed;
the 1- and 2-worker runs alternate ``--repeats`` times, so that both see the same load on a
shared machine: best times, and the median ratio of the adjacent pairs. The results are checked
equal to the serial pass.

    python bench/dask_scaling.py [--params 50000] [--records 2000] [--window 500] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trajstore.analysis.distributed import dask_engine  # noqa: E402
from trajstore.analysis.landscape import pair_distances  # noqa: E402
from trajstore.analysis.windows import iter_windows, window_bounds  # noqa: E402

import trajstore  # noqa: E402
from bench.common import finish, timed  # noqa: E402

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


def max_rel_diff(got: list, ref: list) -> float:
    return max(
        float(np.max(np.abs(g - r)) / max(np.max(np.abs(r)), 1e-300)) for g, r in zip(got, ref, strict=True)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, default=50_000)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.zarr"
        write(path, args.params, args.records)
        raw = args.params * args.records * 4
        with trajstore.open(path) as traj, dask_engine("local:1") as one, dask_engine("local:2") as two:
            for e in (one, two):
                e.client.run(lambda: None)  # workers up before timing
            serial, ref = timed(lambda: passes(traj, args.window))
            times: dict[int, list[float]] = {1: [], 2: []}
            err = 0.0
            for _ in range(args.repeats):  # interleaved: both see the same load on a shared machine
                for n, e in ((1, one), (2, two)):
                    t, got = timed(lambda e=e: passes(traj, args.window, e))
                    times[n].append(t)
                    err = max(err, max_rel_diff(got, ref))
    ratios = sorted(a / b for a, b in zip(times[1], times[2], strict=True))
    best = {n: min(v) for n, v in times.items()}
    load = os.getloadavg()[0]
    lines = [
        f"synthetic random walk, {args.params} params x {args.records} records ({raw / 1e6:.0f} MB raw "
        f"float32), window {args.window}, memory limit {MEMORY_LIMIT >> 20} MiB per task; window pass "
        f"+ pair distances; 1- and 2-worker runs interleaved, {args.repeats} each",
        "",
        "| run | best seconds | MB/s |",
        "|---|---|---|",
        f"| serial (this process, once) | {serial:.2f} | {raw / serial / 1e6:.0f} |",
        f"| LocalCluster, 1 worker | {best[1]:.2f} | {raw / best[1] / 1e6:.0f} |",
        f"| LocalCluster, 2 workers | {best[2]:.2f} | {raw / best[2] / 1e6:.0f} |",
        "",
        f"Speed-up 1 -> 2 workers: {best[1] / best[2]:.2f}x (best times), median of the interleaved "
        f"pairs {ratios[len(ratios) // 2]:.2f}x (all: {', '.join(f'{r:.2f}' for r in ratios)}). "
        f"Largest relative difference from the serial pass: {err:.1e}. Load average {load0:.1f} "
        f"before, {load:.1f} after: the machine is shared with other jobs, so these figures are "
        "lower bounds of what idle cores give.",
    ]
    finish("bench/dask_scaling.py", lines, args.no_record)


if __name__ == "__main__":
    main()
