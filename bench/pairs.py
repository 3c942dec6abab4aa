"""Cost of the pair-based MSD (records not equally spaced) against the FFT window pass.

Writes two stores of T records × N parameters (a random walk): one recorded every step, one at
a ranged schedule (every step, then every 7th), and times one window of each (CPU seconds of
this process, which a loaded machine distorts less than wall time).

    python bench/pairs.py [--records 400] [--params 50000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from trajstore.analysis.msd import windowed_msd

import trajstore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400)
    ap.add_argument("--params", type=int, default=50_000)
    args = ap.parse_args()
    T, N = args.records, args.params
    rng = np.random.default_rng(0)
    regular = np.arange(T)
    ranged = np.r_[np.arange(T // 2), T // 2 + 7 * np.arange(T - T // 2)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, steps in (("every step (FFT)", regular), ("ranged (pairs)", ranged)):
            path = Path(tmp) / f"{name[:5]}.zarr"
            with trajstore.create(path, {"w": (N,)}, mode="w") as w:
                x = np.zeros(N, np.float32)
                for s in steps:
                    x += rng.normal(size=N).astype(np.float32)
                    w.append(int(s), x)
            with trajstore.open(path) as t:
                c0, w0 = time.process_time(), time.perf_counter()
                m = windowed_msd(t, window=T)[0]
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            print(f"{name:18s} T = {T}, N = {N}: {cpu:.2f} s CPU, {wall:.2f} s wall, {len(m.msd) - 1} lags")


if __name__ == "__main__":
    main()
