"""Training step time with and without recording, alternated in one run; median ratio.

Cases: the digits CNN (every step) and a CIFAR ResNet-20 on synthetic data (every step,
batch 128), on the CPU by default (``--device cuda`` on a GPU machine, see gpu_check.sh).

    python bench/recording_overhead.py [--cases digits,resnet20] [--device cpu] [--no-record]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import finish, load_example
from trajstore.recorders import Recorder


def make_case(name: str, device: torch.device):
    """Return (model, batches) with batches a list of (x, y) on the device."""
    torch.manual_seed(0)
    if name == "digits":
        ex = load_example("train_digits")
        xtr, ytr, _, _ = ex.load(0)
        model = ex.DigitsCNN()
        batches = [(xtr[i : i + 32], ytr[i : i + 32]) for i in range(0, 32 * 40, 32)]
    else:
        ex = load_example("train_cifar")
        model = ex.build_model(name)
        g = torch.Generator().manual_seed(0)
        batches = [
            (torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g))
            for _ in range(4)
        ]
    model = model.to(device)
    return model, [(x.to(device), y.to(device)) for x, y in batches]


def timed_steps(model, opt, batches, steps: int, device: torch.device) -> list[float]:
    out = []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(steps):
        x, y = batches[i % len(batches)]
        sync()
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def measure(
    name: str, device: torch.device, trials: int, steps: int, tmp: Path, schedule: str = "every:1"
) -> tuple[float, float, float]:
    """Median step time without and with recording (alternating trials) and their ratio."""
    model, batches = make_case(name, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    timed_steps(model, opt, batches, max(3, steps // 5), device)  # warm up
    plain, recorded = [], []
    for trial in range(trials):
        plain += timed_steps(model, opt, batches, steps, device)
        path = tmp / f"{name}-{trial}.zarr"
        with Recorder(model, path, overwrite=True, progress=False, schedule=schedule) as rec:
            rec.attach(opt)
            recorded += timed_steps(model, opt, batches, steps, device)
        shutil.rmtree(path)
    a, b = statistics.median(plain), statistics.median(recorded)
    return a, b, b / a


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="digits,resnet20")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--steps", type=int, default=0, help="steps per trial (default per case)")
    ap.add_argument("--schedule", default="every:1", help="what the recorder records (default every step)")
    ap.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp())
    lines = ["| case | device | plain ms/step | recorded ms/step | ratio |", "|---|---|---|---|---|"]
    for name in args.cases.split(","):
        steps = args.steps or (200 if name == "digits" else (60 if device.type == "cuda" else 8))
        a, b, r = measure(name, device, args.trials, steps, tmp, args.schedule)
        lines.append(f"| {name} {args.schedule} | {device} | {a * 1e3:.2f} | {b * 1e3:.2f} | {r:.3f} |")
        print(lines[-1], flush=True)
    shutil.rmtree(tmp)
    lines.append("")
    lines.append("Targets (CPU): digits <= 1.10, ResNet-20 <= 1.03; (CUDA) ResNet-20/56 <= 1.05.")
    finish(f"bench/recording_overhead.py ({args.device})", lines, args.no_record)


if __name__ == "__main__":
    main()
