"""Snapshot cost per record and the record rate the background writer sustains (a GPU check).

1. Snapshot: gather all parameters into a staging buffer and copy it to pinned host memory,
   waited for, per record (ms and GB/s).
2. Writer: optimizer steps that do no compute (lr 0), so the recorder's writer thread is the only
   work; records/s and raw MB/s it sustains, against the rate at which steps were submitted.

    python bench/snapshot_throughput.py [--model resnet56] [--device cuda] [--records 500]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import torch
from common import load_example
from trajstore.recorders import Recorder
from trajstore.recorders.snapshot import SnapshotPool


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--records", type=int, default=500)
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = load_example("train_cifar").build_model(args.model).to(dev)
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    pool = SnapshotPool(n, dev, size=4)
    flat = SnapshotPool.flat_views(params)
    for _ in range(10):
        s = pool.snapshot(flat)
        s.ready()
        s.release()
    sync()
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        s = pool.snapshot(flat)
        s.ready()
        s.release()
    dt = (time.perf_counter() - t0) / reps
    print(
        f"| {args.model} | {dev} | {n} params ({n * 4 / 1e6:.1f} MB) | snapshot + copy to host "
        f"{dt * 1e3:.3f} ms/record ({n * 4 / dt / 1e9:.1f} GB/s) |",
        flush=True,
    )
    tmp = tempfile.mkdtemp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with Recorder(model, f"{tmp}/w.zarr", progress=False) as rec:
        rec.attach(opt)
        t0 = time.perf_counter()
        for _ in range(args.records):
            opt.step()  # no compute: the writer is the bottleneck
        t_submit = time.perf_counter() - t0
    t_total = time.perf_counter() - t0
    print(
        f"| {args.model} | {dev} | writer | {args.records / t_total:.0f} records/s sustained "
        f"({args.records * n * 4 / t_total / 1e6:.0f} MB/s raw); steps submitted at "
        f"{args.records / t_submit:.0f}/s |",
        flush=True,
    )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
