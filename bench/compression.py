"""Lossless ratio and write throughput of the storage codecs on a real weight trajectory.

Records the digits CNN (plain SGD, every step) once in memory, then writes the same records
with each codec in the same run: default Zarr (transpose + Blosc-zstd-shuffle + crc32c), the
HDF5 default (shuffle + deflate + Fletcher-32), Zarr without compression, and Zarr
Blosc-zstd-shuffle without the transpose (the baseline). Blosc runs on one thread.

    python bench/compression.py [--steps 3000] [--no-record]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numcodecs.blosc
from common import digits_trajectory, finish

import trajstore

CASES = [
    ("zarr default (transpose+blosc-zstd+crc32c)", ".zarr", "default"),
    ("zarr blosc-zstd, no transpose (baseline)", ".zarr", "no-transpose"),
    ("zarr no compression", ".zarr", "none"),
    ("hdf5 default (shuffle+deflate+fletcher32)", ".h5", "default"),
]


def write(path: Path, weights, compression: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with trajstore.create(path, weights.shape[1], compression=compression) as w:
        for i, row in enumerate(weights):
            w.append(i, row, time=float(i))
    elapsed = time.perf_counter() - t0
    with trajstore.open(path) as t:
        size = t.nbytes_stored()
    return elapsed, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    numcodecs.blosc.set_nthreads(1)
    weights = digits_trajectory(args.steps)
    raw = weights.nbytes
    tmp = Path(tempfile.mkdtemp())
    rows = {}
    for _ in range(args.repeats):  # interleaved repeats; best time of each, to damp machine noise
        for name, suffix, comp in CASES:
            path = tmp / f"s{suffix}"
            elapsed, size = write(path, weights, comp)
            shutil.rmtree(path, ignore_errors=True) if suffix == ".zarr" else path.unlink()
            best = rows.get(name, (float("inf"), size))[0]
            rows[name] = (min(best, elapsed), size)
    shutil.rmtree(tmp)
    base_ratio = raw / rows[CASES[1][0]][1]
    lines = [
        f"digits CNN, {weights.shape[0]} records x {weights.shape[1]} params, {raw / 1e6:.1f} MB raw float32",
        "",
        "| codec | ratio | vs no-transpose | write MB/s |",
        "|---|---|---|---|",
    ]
    for name, _, _ in CASES:
        elapsed, size = rows[name]
        ratio = raw / size
        lines.append(f"| {name} | {ratio:.2f} | {ratio / base_ratio:.2f}x | {raw / elapsed / 1e6:.0f} |")
    d_el, d_size = rows[CASES[0][0]]
    lines += [
        "",
        f"Targets: default ratio >= 2.0 (got {raw / d_size:.2f}), >= 1.5x no-transpose "
        f"(got {raw / d_size / base_ratio:.2f}x), >= 150 MB/s (got {raw / d_el / 1e6:.0f}).",
    ]
    finish("bench/compression.py", lines, args.no_record)


if __name__ == "__main__":
    main()
