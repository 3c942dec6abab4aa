"""Shared helpers of the benchmarks: machine description, results file, a real trajectory."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
T = TypeVar("T")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def record_result(title: str, lines: list[str]) -> None:
    """Append a dated section to bench/RESULTS.md."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [f"\n## {title}: {stamp}, commit {rev.stdout.strip() or '?'}", f"Machine: {machine()}", ""]
    text += lines
    with open(RESULTS, "a") as f:
        f.write("\n".join(text) + "\n")
    print("\n".join(text))


def finish(title: str, lines: list[str], no_record: bool) -> None:
    """Print the result, or append it to bench/RESULTS.md (and print it)."""
    if no_record:
        print("\n".join(lines))
    else:
        record_result(title, lines)


def replicate_args() -> argparse.Namespace:
    """The options of a coverage benchmark: ``--replicates N`` (default 100), ``--no-record``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--no-record", action="store_true")
    return ap.parse_args()


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(seconds ``fn()`` took, what it returned)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def load_example(name: str):
    """The module ``examples/<name>.py`` (the examples are scripts, not an installed package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def digits_trajectory(steps: int, seed: int = 0) -> np.ndarray:
    """Weights (steps + 1, 9802) float32 of the digits CNN trained with plain SGD, every step."""

    import torch
    from torch import nn

    ex = load_example("train_digits")
    torch.manual_seed(seed)
    xtr, ytr, _, _ = ex.load(seed)
    model = ex.DigitsCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    out = [torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()]
    while len(out) <= steps:
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            out.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy())
            if len(out) > steps:
                break
    return np.stack(out)


if __name__ == "__main__":
    print(machine(), file=sys.stderr)
