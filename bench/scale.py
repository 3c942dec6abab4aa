"""Scale by simulation: write a large synthetic store, analyse it under a 256 MiB limit, and
extrapolate time, memory and storage from the measured per-byte costs (issue 13, item 5).

The store holds N parameters × T records of independent Gaussian random walks (float32; each
parameter its own step size, log-uniform over two decades, so the writer and the codec see
realistic spreads). The whole analysis (``trajstore analyze STORE -o OUT --memory-limit 256M``,
report included) runs in a child process whose peak resident memory (``ru_maxrss``) is
measured; so is the child's resident memory once its imports are done (the floor).

    python bench/scale.py [--size 2000000x2500] [--memory-limit 256M] [--sketch 4096]
                          [--window 1000] [--dir DIR] [--keep] [--no-record]

``--size``: N x T, or ``20g`` (the full 2e6 x 2500 run, 20 GB raw), or ``small`` (2e5 x 500,
0.4 GB raw, about a minute). The store is deleted at the end unless ``--keep``.
``--sketch K`` / ``--sample M``: the sketch dimension and sampled parameters used for the
10^9-parameter extrapolation (a record: K float64 + M float32 values).
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
SAMPLE_M = 10_000  # exact values kept beside a sketch (--sample M of the sketch recorder)

# The analysis child: what ``trajstore analyze STORE -o OUT --memory-limit L --window W`` runs
# (analysis pipeline + report), with its resident memory after the imports and at the end.
_CHILD = """
import json, sys, time
import trajstore
from trajstore.analysis.pipeline import analyze
from trajstore.analysis.report import write_report

def hwm():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM'))

floor = hwm()
t0 = time.perf_counter()
with trajstore.open(sys.argv[1]) as traj:
    result = analyze(traj, int(sys.argv[4]), memory_limit=int(sys.argv[3]), progress=False)
summary = write_report(result, sys.argv[2])
print(json.dumps({"floor": floor, "peak": hwm(), "seconds": time.perf_counter() - t0,
                  "windows": len(summary.get("windows", []))}))
"""


def parse_size(text: str) -> tuple[int, int]:
    if text in SIZES:
        return SIZES[text]
    n, t = text.lower().split("x")
    return int(float(n)), int(float(t))


def parse_bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().rstrip("ib")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def write_store(path: Path, n: int, t: int, seed: int = 0) -> tuple[float, float]:
    """Write the synthetic store; return (wall seconds, CPU seconds of this process)."""
    rng = np.random.default_rng(seed)
    scale = (10.0 ** rng.uniform(-4, -2, size=n)).astype(np.float32)
    w = rng.normal(scale=0.1, size=n).astype(np.float32)
    noise = np.empty(n, dtype=np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    with trajstore.create(path, {"w": (n,)}) as wr:
        for step in range(t):
            wr.append(step, w)
            rng.standard_normal(out=noise, dtype=np.float32)
            noise *= scale
            w += noise
    return time.perf_counter() - t0, time.process_time() - c0


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, CPU seconds (user + system), output)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    return seconds, usage.ru_utime + usage.ru_stime, out


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


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(fixed, per unit) of ys = fixed + per_unit * xs; one point: (0, y/x), an upper bound."""
    if len(xs) < 2:
        return 0.0, ys[0] / xs[0]
    slope, fixed = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return max(float(fixed), 0.0), float(slope)


def extrapolate(runs: list[dict], sketch: int, sample: int) -> list[str]:
    """Rows of the extrapolation table from the measured costs per stored value.

    A sketch record is K float64 sketch values + M float32 sampled values (8K + 4M bytes, as the
    sketch recorder stores them): its time is extrapolated per value, its storage per byte."""
    raws = [r["raw"] for r in runs]
    # CPU seconds, not wall: the shared machine's load is not the cost of the work.
    w0, w1 = fit(raws, [r["write_cpu"] for r in runs])
    a0, a1 = fit(raws, [r["analyse_cpu"] for r in runs])
    ratio = sum(raws) / sum(r["on_disk"] for r in runs)
    rows = []
    cases = [  # label, values per record, bytes per record, records
        ("ResNet-56, full, every step", RESNET56_PARAMS, 4.0 * RESNET56_PARAMS, RESNET56_STEPS),
        (
            f"10^9 params, sketch K={sketch} + M={sample:,}",
            sketch + sample,
            8.0 * sketch + 4.0 * sample,
            BIG_STEPS,
        ),
        ("10^9 params, full (for scale)", BIG_PARAMS, 4.0 * BIG_PARAMS, BIG_STEPS),
    ]
    for label, n, nbytes, t in cases:
        raw, work = nbytes * t, 4.0 * n * t  # stored bytes; float32-equivalent bytes of work
        rows.append(
            f"| {label} | {n:,} | {t:,} | {human(raw)} | {human(raw / ratio)} | "
            f"{duration(w0 + work * w1)} | {duration(a0 + work * a1)} |"
        )
    rows += [
        "",
        f"Per-byte CPU costs fitted over the runs above (time = fixed + per byte x raw bytes): write "
        f"{w1 * 1e9:.2f} s/GB (fixed {w0:.0f} s), analysis {a1 * 1e9:.2f} s/GB (fixed {a0:.0f} s); "
        f"storage ratio {ratio:.2f}.",
    ]
    return rows


def measure(n: int, t: int, limit: int, window: int | None, where: str | None, keep: bool) -> dict:
    """Write an N x T store, analyse it in a child process; the figures of one run."""
    work = Path(tempfile.mkdtemp(prefix="trajstore-scale-", dir=where))
    store, report = work / "scale.zarr", work / "report"
    raw = 4.0 * n * t
    try:
        print(f"writing {n:,} params x {t:,} records ({human(raw)} raw) to {store}", flush=True)
        write_s, write_cpu = write_store(store, n, t)
        on_disk = dir_bytes(store)
        print(
            f"written in {write_s:.0f} s ({raw / write_s / 1e6:.0f} MB/s), {human(on_disk)} on disk",
            flush=True,
        )
        window = window or min(1000, t)
        _, analyse_cpu, out = run_child(
            [sys.executable, "-c", _CHILD, str(store), str(report), str(limit), str(window)]
        )
        got = json.loads(out.strip().splitlines()[-1])
        print(f"analysed in {got['seconds']:.0f} s, peak RSS {got['peak'] / 2**20:.0f} MiB", flush=True)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "n": n,
        "t": t,
        "raw": raw,
        "on_disk": on_disk,
        "write_s": write_s,
        "write_cpu": write_cpu,
        "analyse_cpu": analyse_cpu,
        "analyse_s": got["seconds"],
        "floor": got["floor"],
        "peak": got["peak"],
        "window": window,
        "windows": got["windows"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--size",
        default="20g",
        help="N x T ('20g': 2e6 x 2500, 'small': 2e5 x 500); several, comma-separated",
    )
    ap.add_argument("--memory-limit", default="256M")
    ap.add_argument("--window", type=int, default=None, help="records per window (default min(1000, T))")
    ap.add_argument("--sketch", type=int, default=4096, help="sketch dimension K for the 10^9 case")
    ap.add_argument("--sample", type=int, default=SAMPLE_M, help="sampled parameters M for the 10^9 case")
    ap.add_argument("--dir", default=None, help="where to write the store (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the store")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = ap.parse_args()
    limit = parse_bytes(args.memory_limit)
    runs = [
        measure(*parse_size(size), limit, args.window, args.dir, args.keep) for size in args.size.split(",")
    ]
    lines = [
        "Synthetic stores of Gaussian random walks (float32; they compress less than real training,",
        "whose ratio is ~2.2, see bench/compression.py). Analysis = analysis pipeline + report, as",
        f"`trajstore analyze --memory-limit {args.memory_limit}` runs it, in a child process.",
        "",
        "| N params | T records | raw | on disk | write s (CPU s) | write MB/s | window | analyze s (CPU s) "
        "| analyze MB/s | RSS after imports | peak RSS | limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['n']:,} | {r['t']:,} | {human(r['raw'])} | {human(r['on_disk'])} | "
            f"{r['write_s']:.0f} ({r['write_cpu']:.0f}) | "
            f"{r['raw'] / r['write_s'] / 1e6:.0f} | {r['window']} | "
            f"{r['analyse_s']:.0f} ({r['analyse_cpu']:.0f}) | "
            f"{r['raw'] / r['analyse_s'] / 1e6:.1f} | {r['floor'] / 2**20:.0f} MiB | "
            f"{r['peak'] / 2**20:.0f} MiB | {limit / 2**20:.0f} MiB |"
        )
    lines += [
        "",
        "Extrapolated from CPU seconds per byte (one idle core of this machine per phase, at the",
        "window above; memory: see docs/scale.md):",
        "",
        "| run | values/record | records | raw | on disk (ratio above) | write | analyze |",
        "|---|---|---|---|---|---|---|",
        *extrapolate(runs, args.sketch, args.sample),
    ]
    finish(f"bench/scale.py --size {args.size}", lines, args.no_record)


if __name__ == "__main__":
    main()
