"""Remote against local reads: time and bytes for one tensor's slice and a whole-store analysis.

A store of ``--tensors`` tensors is served on 127.0.0.1 by the tests' counting HTTP server (full
Range support, logs the bytes it sends). Each case runs locally and by URL in the same run; the
ratio is remote/local time, and bytes is what the server sent against the store's size on disk.

    python bench/remote.py [--records 2000] [--tensors 40] [--no-record]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trajstore.analysis.pipeline import analyze  # noqa: E402

import trajstore  # noqa: E402
from bench.common import finish  # noqa: E402
from tests.servers import bytes_sent, counting_http_server  # noqa: E402


def write(path: Path, records: int, tensors: int) -> None:
    rng = np.random.default_rng(0)
    params = {f"layer{i}.weight": (40, 50) for i in range(tensors)}
    n = 2000 * tensors
    w = np.zeros(n, dtype=np.float32)
    with trajstore.create(path, params, chunk_records=256, chunk_params=2000) as wr:
        for step in range(records):
            w += rng.normal(scale=0.01, size=n).astype(np.float32)
            wr.append(step, w)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--tensors", type=int, default=40)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root / "run.zarr", args.records, args.tensors)
        on_disk = sum(p.stat().st_size for p in (root / "run.zarr").rglob("*") if p.is_file())
        log = str(root / "bytes.log")
        lines = [
            f"Store: {args.records} records x {2000 * args.tensors} float32 in {args.tensors} tensors, "
            f"{on_disk / 1e6:.1f} MB on disk; served on 127.0.0.1 by tests/counting_http_server.py.",
            "",
            "| case | local (s) | remote (s) | remote/local | bytes sent / on disk |",
            "|---|---|---|---|---|",
        ]
        with counting_http_server(str(root), log) as url:
            cases = {
                "one tensor, every record": lambda t: t.tensor("layer3.weight")[:],
                "whole-store analysis (window 1000)": lambda t: analyze(t, 1000, progress=False),
            }
            for name, fn in cases.items():
                with trajstore.open(root / "run.zarr") as t:
                    local = timed(lambda fn=fn, t=t: fn(t))
                before = bytes_sent(log)
                with trajstore.open(f"{url}/run.zarr") as t:
                    remote = timed(lambda fn=fn, t=t: fn(t))
                sent = bytes_sent(log) - before
                lines.append(
                    f"| {name} | {local:.2f} | {remote:.2f} | {remote / local:.2f} | {sent / on_disk:.3f} |"
                )
    finish("bench/remote.py", lines, args.no_record)


if __name__ == "__main__":
    main()
