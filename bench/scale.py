"""Scale by simulation: write a large synthetic store, analyse it under a 256 MiB limit, and
extrapolate time, memory and storage from the measured per-byte costs (issue 13, item 5).

The store holds N parameters × T records of independent Gaussian random walks (float32; each
parameter its own step size, log-uniform over two decades, so the writer and the codec see
realistic spreads). The whole analysis (``trajstore analyze STORE OUT --memory-limit 256M``,
report included) runs in a child process whose peak resident memory (``ru_maxrss``) is
measured; so is the child's resident memory once its imports are done (the floor).

    python bench/scale.py [--size 2000000x2500] [--memory-limit 256M] [--sketch 4096]
                          [--window 1000] [--dir DIR] [--keep] [--no-record]

``--size``: N x T, or ``20g`` (the full 2e6 x 2500 run, 20 GB raw), or ``small`` (2e5 x 500,
0.4 GB raw, about a minute). The store is deleted at the end unless ``--keep``.
``--sketch K``: the sketch dimension used for the 10^9-parameter extrapolation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import finish

import trajstore

SIZES = {"20g": (2_000_000, 2500), "small": (200_000, 500)}
RESNET56_PARAMS = 855_770  # CIFAR ResNet-56 (He et al. 2016), the paper's largest model
RESNET56_STEPS = 80_000
BIG_PARAMS = 10**9
BIG_STEPS = 80_000
SAMPLE_M = 100_000  # exact values kept beside a sketch (--sample M of the sketch recorder)

_FLOOR = "import trajstore.cli.main, trajstore.analysis.pipeline, trajstore.analysis.report"


def parse_size(text: str) -> tuple[int, int]:
    if text in SIZES:
        return SIZES[text]
    n, t = text.lower().split("x")
    return int(float(n)), int(float(t))


def parse_bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().rstrip("ib")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def write_store(path: Path, n: int, t: int, seed: int = 0) -> float:
    """Write the synthetic store; return seconds."""
    rng = np.random.default_rng(seed)
    scale = (10.0 ** rng.uniform(-4, -2, size=n)).astype(np.float32)
    w = rng.normal(scale=0.1, size=n).astype(np.float32)
    noise = np.empty(n, dtype=np.float32)
    t0 = time.perf_counter()
    with trajstore.create(path, {"w": (n,)}) as wr:
        for step in range(t):
            wr.append(step, w)
            rng.standard_normal(out=noise, dtype=np.float32)
            noise *= scale
            w += noise
    return time.perf_counter() - t0


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_child(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; return (seconds, peak RSS bytes, output)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    return seconds, usage.ru_maxrss * 1024, out


def human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} PB"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def extrapolate(costs: dict, sketch: int) -> list[str]:
    """Rows of the extrapolation table from measured per-byte costs."""
    write_s, analyse_s, ratio = costs["write_s_per_byte"], costs["analyse_s_per_byte"], costs["ratio"]
    rows = []
    cases = [
        ("ResNet-56, full, every step", RESNET56_PARAMS, RESNET56_STEPS),
        (f"10^9 params, sketch K={sketch} + M={SAMPLE_M} samples", sketch + SAMPLE_M, BIG_STEPS),
        ("10^9 params, full (for scale)", BIG_PARAMS, BIG_STEPS),
    ]
    for label, n, t in cases:
        raw = 4.0 * n * t
        rows.append(
            f"| {label} | {n:,} | {t:,} | {human(raw)} | {human(raw / ratio)} | "
            f"{duration(raw * write_s)} | {duration(raw * analyse_s)} | {costs['peak_rss'] / 2**20:.0f} MiB |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="20g", help="N x T, '20g' (2e6 x 2500) or 'small' (2e5 x 500)")
    ap.add_argument("--memory-limit", default="256M")
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--sketch", type=int, default=4096, help="sketch dimension K for the 10^9 case")
    ap.add_argument("--dir", default=None, help="where to write the store (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the store")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = ap.parse_args()
    n, t = parse_size(args.size)
    limit = parse_bytes(args.memory_limit)
    work = Path(tempfile.mkdtemp(prefix="trajstore-scale-", dir=args.dir))
    store, report = work / "scale.zarr", work / "report"
    try:
        raw = 4.0 * n * t
        print(f"writing {n:,} params x {t:,} records ({human(raw)} raw) to {store}", flush=True)
        write_time = write_store(store, n, t)
        on_disk = dir_bytes(store)
        print(
            f"written in {write_time:.0f} s ({raw / write_time / 1e6:.0f} MB/s raw), "
            f"{human(on_disk)} on disk",
            flush=True,
        )
        _, floor_rss, out = run_child([sys.executable, "-c", _FLOOR])
        cli = [sys.executable, "-m", "trajstore.cli.main", "analyze", str(store), str(report)]
        cli += ["--memory-limit", str(limit), "--window", str(args.window), "--quiet"]
        analyse_time, peak_rss, out = run_child(cli)
        summary = json.loads((report / "summary.json").read_text())
        windows = len(summary.get("windows", []))
        rate = raw / analyse_time / 1e6
        print(f"analysed in {analyse_time:.0f} s ({rate:.0f} MB/s raw), peak RSS {peak_rss / 2**20:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    costs = {
        "write_s_per_byte": write_time / raw,
        "analyse_s_per_byte": analyse_time / raw,
        "ratio": raw / on_disk,
        "peak_rss": peak_rss,
    }
    lines = [
        f"Store: {n:,} params x {t:,} records = {human(raw)} raw float32, {human(on_disk)} on disk "
        f"(ratio {raw / on_disk:.2f}; Gaussian random walks compress less than real training, "
        "whose ratio is ~2.2, see bench/compression.py).",
        "",
        "| phase | seconds | MB/s (raw) | peak RSS | limit |",
        "|---|---|---|---|---|",
        f"| write (trajstore.create + append, one thread) | {write_time:.0f} | "
        f"{raw / write_time / 1e6:.0f} | - | - |",
        f"| analyze CLI, window {args.window}, {windows} windows, report included | {analyse_time:.0f} | "
        f"{raw / analyse_time / 1e6:.0f} | {peak_rss / 2**20:.0f} MiB | {limit / 2**20:.0f} MiB |",
        f"| (child after imports, no data) | - | - | {floor_rss / 2**20:.0f} MiB | - |",
        "",
        "Extrapolated from these per-byte costs (same machine, one core for each phase; memory",
        "does not grow with the store: the analysis streams blocks under the limit):",
        "",
        "| run | values/record | records | raw | on disk (this ratio) | write | analyze | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
        *extrapolate(costs, args.sketch),
    ]
    finish(f"bench/scale.py --size {n}x{t}", lines, args.no_record)


if __name__ == "__main__":
    main()
