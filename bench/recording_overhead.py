"""Training step time with and without recording, alternated in one run; median ratio.

Cases: the digits CNN (every step), a CIFAR ResNet-20 on synthetic data (every step,
batch 128), and two wider CNNs on the digits that produce records fast (issue 13): ``cnn34k``
(34k parameters, batch 64) and ``cnn141k`` (141k parameters, batch 64); ``NAME/bB`` changes a
digits case's batch to B (``cnn141k/b32``: the same model, records about 1.5 x as fast). On the CPU by default
(``--device cuda`` on a GPU machine, see gpu_check.sh). Besides the median step ratio, the
ratio of whole trials (the loop, and the loop plus closing the recorder, which drains the
writer) against plain training in the same run. With ``--warm N`` (default 512 for the wide
CNNs: two shards of records) the first N recorded steps of a trial are its start-up (the store
made, the first blocks' memory touched) and are reported apart, as extra seconds.

A trial must be long against what the recorder can hold back: the snapshot pool and the blocks
being filled and encoded hold up to ~570 records of cnn141k (a pool of 64, two blocks of 256),
so a 600-step trial (what this benchmark ran before 2026-12-01) has a loop ratio that leaves
a writer that falls behind unseen (the backlog is drained by the close). The wide CNNs
therefore run 3000 steps per trial (~13 shards), and the table shows the drain (close time over
loop time) and the writer's cores (CPU seconds of every thread but training's, over the loop and
the close). The loop ratio is the steady state only while the drain is small; otherwise read the
loop+close ratio. bench/core_contention.py measures what the same encoding costs training from
another process, with no GIL shared: the floor on a machine whose cores contend.

    python bench/recording_overhead.py [--cases digits,resnet20,cnn34k,cnn141k,cnn141k/b32] [--device cpu]
        [--codec balanced] [--threads 1] [--zarr-write-path] [--no-record]

``--zarr-write-path`` adds, per case, the recorder with the writer made to take zarr's own write
path (what trajstore did before it wrote shards itself), in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import finish, load_example
from torch import nn
from trajstore.recorders import Recorder

from trajstore import series

# The wide digits CNNs of issue 13: conv(1->c1) conv(c1->c2) maxpool fc(16*c2->h) fc(h->10).
WIDE = {"cnn34k": (4, 8, 242), "cnn141k": (8, 16, 523)}


class WideDigitsCNN(nn.Module):
    """A digits CNN whose first fully connected layer holds most parameters (34k or 141k)."""

    def __init__(self, c1: int, c2: int, hidden: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * c2, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def split_case(case: str) -> tuple[str, int | None]:
    """``"cnn141k/b32"`` -> ("cnn141k", 32): a digits case with its batch size changed (a smaller
    batch trains faster per step, so records come faster); ``"cnn141k"`` -> ("cnn141k", None)."""
    name, _, batch = case.partition("/b")
    return name, int(batch) if batch else None


def make_case(case: str, device: torch.device):
    """Return (model, batches) with batches a list of (x, y) on the device."""
    torch.manual_seed(0)
    name, batch = split_case(case)
    if name == "digits" or name in WIDE:
        ex = load_example("train_digits")
        xtr, ytr, _, _ = ex.load(0)
        model = ex.DigitsCNN() if name == "digits" else WideDigitsCNN(*WIDE[name])
        b = batch or (32 if name == "digits" else 64)
        batches = [(xtr[i : i + b], ytr[i : i + b]) for i in range(0, b * 20, b)]
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
    name: str,
    device: torch.device,
    trials: int,
    steps: int,
    tmp: Path,
    schedule: str = "every:1",
    codec: str = "balanced",
    threads: int = 1,
    zarr_path: bool = False,
    warm: int = 0,
    nice: int | None = None,
) -> dict:
    """Step and trial times without and with recording (alternating trials).

    Returns medians: ``plain`` / ``recorded`` step seconds, ``loop`` (recorded loop / plain
    loop) and ``closed`` (recorded loop plus closing the recorder / plain loop) ratios, and the
    raw record rate in MB/s of plain training; ``startup``: extra seconds of the first ``warm``
    recorded steps (the recorder made and started) over as many plain steps."""
    model, batches = make_case(name, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = sum(p.numel() for p in model.parameters())
    timed_steps(model, opt, batches, max(3, steps // 5), device)  # warm up
    plain, recorded, loops, closed, rates, startup = [], [], [], [], [], []
    drains, duties = [], []
    for trial in range(trials):
        a = timed_steps(model, opt, batches, steps, device)
        plain += a
        path = tmp / f"{name.replace('/', '-')}-{trial}.zarr"
        attach = series.SeriesWriter._attach_values
        if zarr_path:
            series.SeriesWriter._attach_values = zarr_write_path
        t0 = time.perf_counter()
        rec = Recorder(
            model,
            path,
            overwrite=True,
            progress=False,
            schedule=schedule,
            codec=codec,
            threads=max(threads, 1),
            # threads 0: each full block is encoded on the writer thread itself (one background thread)
            store_options={
                **({} if nice is None else {"nice": nice}),
                **({"threads": 0} if threads == 0 else {}),
            },
        )
        with rec:
            rec.attach(opt)
            timed_steps(model, opt, batches, warm, device)
            t1 = time.perf_counter()
            cpu1 = time.process_time() - time.thread_time()
            b = timed_steps(model, opt, batches, steps, device)
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        # CPU seconds of every thread but this (training) one, over the loop and the close.
        drains.append((t3 - t2) / (t2 - t1))  # closing drains what the loop left queued
        duties.append((time.process_time() - time.thread_time() - cpu1) / (t3 - t1))
        series.SeriesWriter._attach_values = attach
        recorded += b
        loops.append((t2 - t1) / sum(a))
        # (without warm-up steps the recorder's construction counts in the loop+close ratio)
        closed.append((t3 - (t1 if warm else t0)) / sum(a))
        startup.append((t1 - t0) - warm * statistics.median(a) if warm else float("nan"))
        rates.append(n * 4 * steps / sum(a) / 1e6)
        shutil.rmtree(path)
    m = statistics.median
    return {
        "plain": m(plain),
        "recorded": m(recorded),
        "loop": m(loops),
        "closed": m(closed),
        "rate": m(rates),
        "n": n,
        "startup": m(startup),
        "drain": m(drains),
        "duty": m(duties),
    }


def zarr_write_path(self) -> None:
    """SeriesWriter._attach_values as if the back end could not take whole shards."""
    self.values = None
    shape = (self.chunk_records,) if self.columns is None else (self.chunk_records, self.columns)
    self.buffer = np.zeros(shape, dtype=self.dtype)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="digits,resnet20")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--steps", type=int, default=0, help="steps per trial (default per case)")
    ap.add_argument("--schedule", default="every:1", help="what the recorder records (default every step)")
    ap.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s)")
    ap.add_argument("--codec", default="balanced", help="Recorder codec preset")
    ap.add_argument(
        "--threads", type=int, default=1, help="Recorder encoder threads (0: encode on the writer thread)"
    )
    ap.add_argument("--nice", type=int, default=None, help="writer threads' nice steps (default: Recorder's)")
    ap.add_argument("--zarr-write-path", action="store_true", help="also measure zarr's own write path")
    ap.add_argument(
        "--warm", type=int, default=None, help="recorded start-up steps per trial, reported apart"
    )
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # training on one core, the other free for the writer
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp())
    lines = [
        f"Recorder codec {args.codec}, threads {args.threads}, writer threads' nice "
        f"{'default' if args.nice is None else args.nice}; torch on 1 thread.",
        "",
        "| case | device | params | raw MB/s | plain ms/step | recorded ms/step | median ratio "
        "| loop ratio | loop+close ratio | drain / loop | writer cores | start-up s (steps) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.cases.split(","):
        wide = split_case(name)[0] in WIDE
        default = 3000 if wide else (200 if name == "digits" else (60 if device.type == "cuda" else 8))
        steps = args.steps or default
        warm = args.warm if args.warm is not None else (512 if wide else 0)
        for zarr_path in (False, True) if args.zarr_write_path else (False,):
            r = measure(
                name,
                device,
                args.trials,
                steps,
                tmp,
                args.schedule,
                args.codec,
                args.threads,
                zarr_path,
                warm,
                args.nice,
            )
            label = f"{name} {args.schedule}" + (" (zarr write path)" if zarr_path else "")
            lines.append(
                f"| {label} | {device} | {r['n']} | {r['rate']:.0f} | {r['plain'] * 1e3:.2f} "
                f"| {r['recorded'] * 1e3:.2f} | {r['plain'] and r['recorded'] / r['plain']:.3f} "
                f"| {r['loop']:.3f} | {r['closed']:.3f} | {r['drain']:.2f} | {r['duty']:.2f} | "
                + (f"{r['startup']:.2f} ({warm}) |" if warm else "- |")
            )
            print(lines[-1], flush=True)
    shutil.rmtree(tmp)
    lines.append("")
    lines.append(
        "Targets (CPU): digits <= 1.10, ResNet-20 <= 1.03, cnn141k (240 MB/s raw on an idle machine) "
        "<= 1.10; (CUDA) ResNet-20/56 <= 1.05."
    )
    finish(f"bench/recording_overhead.py ({args.device})", lines, args.no_record)


if __name__ == "__main__":
    main()
