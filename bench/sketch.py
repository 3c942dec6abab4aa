"""Sketch recording against full recording for a 10^7-parameter model, in one run.

An MLP of 9.98 million parameters (1024 → 4096 → 1024 → 1536 → 10) trained with SGD on random
batches; each case trains the same steps from the same start, recording every step: plain
(no recorder), full weights, a K-dimensional sketch + a sample of M parameters (no full
weights), and both. Reported per case: ms per step (loop plus the drain at close, divided by
the steps), the ratio to plain training, and bytes on disk per record (value arrays); plus the device time
of one sketch (index_add_ of all parameters into K float64 buckets).

    python bench/sketch.py [--device cpu] [--steps 12] [--dim 4096] [--sample 10000] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from common import finish
from trajstore.recorders import Recorder
from trajstore.recorders.sketch import DeviceSketcher, SketchOptions


def make_model(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    sizes = [1024, 4096, 1024, 1536, 10]
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).to(device)


def train(model, steps: int, device: torch.device, recorder: Recorder | None) -> tuple[float, float]:
    """(setup, loop) seconds: attaching the recorder (store creation, hash tables, step 0), then
    ``steps`` SGD steps including closing the recorder (its drain)."""
    g = torch.Generator(device="cpu").manual_seed(1)
    batches = [
        (torch.randn(64, 1024, generator=g), torch.randint(0, 10, (64,), generator=g)) for _ in range(4)
    ]
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t_setup = time.perf_counter()
    if recorder is not None:
        recorder.attach(opt)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    if recorder is not None:
        recorder.close()
    return t0 - t_setup, time.perf_counter() - t0


def steady_bytes(dim: int, sample: int, n: int, records: int = 1024) -> float:
    """Bytes on disk per record of a sketch + sample alone over a full chunk of records (a
    random walk of n parameters, sketched with numpy): the rate of a long run."""
    import numpy as np

    import trajstore
    from trajstore.sketch import SketchRecording

    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="trajstore-sketch-bytes-"))
    try:
        path = tmp / "s.zarr"
        with trajstore.create(path, {"w": (n,)}) as writer:
            rec = SketchRecording(writer, sketch_dim=dim, sample_size=sample, full_weights=False)
            y = rng.normal(size=dim) * 30
            v = rng.normal(size=sample).astype(np.float32)
            for r in range(records):
                y = y + rng.normal(size=dim) * 0.1
                v = v + (rng.normal(size=sample) * 1e-3).astype(np.float32)
                rec.append(r, sketch=y, sample=v)
        return value_bytes(path) / records
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def value_bytes(path: Path) -> int:
    """Bytes on disk of the per-record data (the value arrays of weights, sketch, sample):
    what grows with the run, without the one-off metadata and sample indices."""
    return sum(
        f.stat().st_size
        for g in ("weights", "sketch", "sample")
        for f in (path / g / "value").rglob("*")
        if f.is_file()
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--sample", type=int, default=10_000)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # the other core is the writer's
    tmp = Path(tempfile.mkdtemp(prefix="trajstore-sketch-bench-"))
    n = sum(p.numel() for p in make_model(device).parameters())
    sk = SketchOptions(dim=args.dim, sample=args.sample)
    cases = [
        ("plain", None),
        ("full weights", SketchOptions()),
        (f"sketch K={args.dim} + sample M={args.sample}", sk),
        ("full + sketch + sample", SketchOptions(dim=args.dim, sample=args.sample, full=True)),
        ("plain (again)", None),
    ]
    rows = []
    try:
        train(make_model(device), 3, device, None)  # warm-up
        for name, options in cases:
            model = make_model(device)
            path = tmp / f"{len(rows)}.zarr"
            rec = None if options is None else Recorder(model, path, sketch=options, progress=False)
            setup, seconds = train(model, args.steps, device, rec)
            size = value_bytes(path) if path.exists() else 0
            rows.append((name, 1000 * seconds / args.steps, size / (args.steps + 1), setup))
            shutil.rmtree(path, ignore_errors=True)
        model = make_model(device)
        flat = [p.detach().view(-1) for p in model.parameters()]
        sketcher = DeviceSketcher([f.numel() for f in flat], device, dim=args.dim, sample_size=args.sample)
        sketcher.compute(flat)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        for _ in range(5):
            sketcher.compute(flat)
        sync()
        sketch_ms = 1000 * (time.perf_counter() - t0) / 5
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steady = steady_bytes(args.dim, args.sample, n)
    plain = min(rows[0][1], rows[-1][1])
    full_bytes = rows[1][2]
    lines = [
        f"Model: MLP with {n:,} parameters, batch 64, SGD, {args.steps} steps per case, every step "
        f"recorded, device {args.device} ({torch.get_num_threads()} torch thread(s)); "
        f"TRAJSTORE_BENCH_NOTE={os.environ.get('TRAJSTORE_BENCH_NOTE', '')}",
        "",
        "| case | setup s | ms/step (incl. drain) | ratio to plain | value bytes/record | bytes vs full |",
        "|---|---|---|---|---|---|",
    ]
    for name, ms, b, setup in rows:
        rel = f"{b / full_bytes:.5f}" if b and full_bytes else "–"
        lines.append(f"| {name} | {setup:.2f} | {ms:.1f} | {ms / plain:.3f} | {b:,.0f} | {rel} |")
    lines += [
        "",
        f"One sketch (K = {args.dim}) + sample (M = {args.sample}) of all {n:,} parameters on the "
        f"device: {sketch_ms:.1f} ms. Bytes per record of a long run (1024 records, sketch + sample "
        f"only): {steady:,.0f} ({steady / full_bytes:.5f} of the full record above; the short runs above "
        "carry partly filled chunks).",
    ]
    finish(f"bench/sketch.py ({args.device})", lines, args.no_record)


if __name__ == "__main__":
    main()
