"""Cost of many small commits: write R records of W float32 parameters in C-record chunks (a
commit per chunk) to HDF5 and Zarr, and report seconds and stored size (issue 13).

Each commit records the new block's digests in the group's integrity index. Kept as one JSON
attribute rewritten whole (format 1.1), a commit cost O(all blocks so far) and writing
O(blocks²); both back ends now append the new blocks as rows of the group's ``integrity`` array
(format 1.2, docs/format.md §5.1). The first R/4 records are timed too, so the ratio
(time of R) / (time of R/4) shows the growth: 4 for linear, up to 16 for quadratic.

    python bench/commit_cost.py [--records 40000] [--width 16] [--chunk 8]
                                [--backends h5,zarr] [--no-record]

The trajstore imported is the one on ``sys.path``: put an older checkout first on PYTHONPATH
to measure it ("before").
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import finish

import trajstore


def stored_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write(path: Path, data: np.ndarray, chunk: int) -> float:
    """Seconds to write ``data`` (records × width) record by record, closed and trimmed."""
    t0 = time.perf_counter()
    with trajstore.create(path, data.shape[1], chunk_records=chunk, chunk_params=data.shape[1]) as w:
        for i, row in enumerate(data):
            w.append(i, row)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--width", type=int, default=16, help="parameters per record")
    ap.add_argument("--chunk", type=int, default=8, help="records per chunk (one commit each)")
    ap.add_argument("--backends", default="h5,zarr", help="comma-separated suffixes: h5, zarr")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    data = np.random.default_rng(0).standard_normal((args.records, args.width)).astype(np.float32)
    quarter = args.records // 4
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in args.backends.split(","):
            t_quarter = write(Path(tmp) / f"q.{suffix}", data[:quarter], args.chunk)
            path = Path(tmp) / f"run.{suffix}"
            seconds = write(path, data, args.chunk)
            with trajstore.open(path) as traj:  # what was written reads back
                assert np.array_equal(traj.weights[:], data)
            size = stored_bytes(path)
            rows.append(
                f"| {suffix} | {seconds:.1f} | {1e3 * seconds / (args.records / args.chunk):.2f} | "
                f"{t_quarter:.1f} | {seconds / t_quarter:.1f} | {size / 1e6:.1f} |"
            )
            print(rows[-1], flush=True)
    commits = args.records // args.chunk
    lines = [
        f"{args.records} records x {args.width} float32 parameters in {args.chunk}-record chunks "
        f"({commits} commits), trajstore {trajstore.__version__} from {os.path.dirname(trajstore.__file__)}",
        "",
        f"| back end | seconds | ms per commit | seconds for {quarter} records | ratio (4 = linear) "
        "| stored MB |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    finish("bench/commit_cost.py", lines, args.no_record)


if __name__ == "__main__":
    main()
