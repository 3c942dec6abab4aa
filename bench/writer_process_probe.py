"""Probe for issue 13: would a writer *process* fed through shared memory cost training less than
the recorder's writer thread? It is not a trajstore feature (yet): it measures the design.

Alternates, in one run, four loops of the same training (``cnn141k/b32`` of
recording_overhead.py by default, ~260 MB/s of raw records on an idle machine):

- ``plain``: no recording;
- ``thread``: ``Recorder`` as shipped (the writer and one encoder thread in the training process);
- ``no-encode`` (``--no-encode``): the same recorder with encoders that encode and write nothing
  (the store is invalid and thrown away): what the recorder costs training without the encoders;
- ``process``: each step's weights copied (one ``torch.cat``, as the recorder's snapshot) into a
  pool of shared-memory buffers; a separate Python process, ``nice`` 10, runs the same
  ``trajstore.create(...).append`` on them and hands each buffer back through a pipe. No GIL is
  shared with training.

Per loop: the ratio of its wall time to the plain loop's, and the training thread's time split
by Linux schedstat into on-CPU, runnable-but-waiting (another thread had the core: on a shared
machine mostly not ours) and blocked (the GIL, a wait for a free buffer). "Without the machine's
other load" is (on-CPU + blocked) over the plain loop's: what the loop would take if the cores
were ours alone. Linux only (``/proc/thread-self/schedstat``).

    python bench/writer_process_probe.py [--case cnn141k/b32] [--trials 5] [--steps 3000] [--no-encode]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import finish
from recording_overhead import make_case, timed_steps
from trajstore.recorders import Recorder

from trajstore import shards

_MSG = struct.Struct("<iq")  # buffer index, step; index -1 ends
_BACK = struct.Struct("<i")  # buffer index handed back


def child(shm_name: str, n: int, slots: int, path: str, codec: str, threads: int, nice: int) -> None:
    """The writer process: append each announced buffer to a new store, hand it back."""
    import trajstore

    os.nice(nice)
    shm = shared_memory.SharedMemory(name=shm_name)
    # Python < 3.13 registers an attached segment with this process's tracker, which would
    # unlink it at exit: the parent owns it.
    from multiprocessing import resource_tracker

    resource_tracker.unregister(shm._name, "shared_memory")
    pool = np.ndarray((slots, n), dtype=np.float32, buffer=shm.buf)
    w = trajstore.create(path, n, mode="w", compression=codec, threads=threads)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        slot, step = _MSG.unpack(inp.read(_MSG.size))
        if slot < 0:
            break
        w.append(step, pool[slot])
        out.write(_BACK.pack(slot))
        out.flush()
    w.close()
    del pool
    shm.close()


class ProcessWriter:
    """The training side: a ring of ``slots`` shared-memory records and the writer process."""

    def __init__(self, n: int, slots: int, path: Path, codec: str, threads: int, nice: int):
        self.shm = shared_memory.SharedMemory(create=True, size=slots * n * 4)
        self.pool = np.ndarray((slots, n), dtype=np.float32, buffer=self.shm.buf)
        self.views = [torch.from_numpy(self.pool[i]) for i in range(slots)]
        self.free = list(range(slots))
        args = [self.shm.name, n, slots, path, codec, threads, nice]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.back = self.proc.stdout.fileno()
        os.set_blocking(self.back, False)
        self.waited = 0.0  # seconds training waited for a free buffer

    def _collect(self, block: bool) -> None:
        if block:
            t = time.perf_counter()
            select.select([self.back], [], [])
            self.waited += time.perf_counter() - t
        try:
            data = os.read(self.back, 4096)
        except BlockingIOError:
            return
        self.free += [s for (s,) in _BACK.iter_unpack(data)]

    def snapshot(self, flat: list[torch.Tensor], step: int) -> None:
        self._collect(False)
        while not self.free:
            self._collect(True)
        slot = self.free.pop()
        with torch.no_grad():
            torch.cat(flat, out=self.views[slot])
        self.proc.stdin.write(_MSG.pack(slot, step))

    def close(self) -> None:
        self.proc.stdin.write(_MSG.pack(-1, 0))
        self.proc.stdin.close()
        self.proc.wait()
        del self.views, self.pool
        self.shm.close()
        self.shm.unlink()


def skip_encoding(self, encoder, chunks, path, tail_bytes) -> Future:
    """``EncoderPool.submit`` that encodes and writes nothing (the store is then invalid)."""
    done: Future = Future()
    done.set_result(shards.WrittenShard(tail_bytes, b"\0" * tail_bytes))
    return done


def sched() -> tuple[float, float, float]:
    """(wall, on-CPU, runnable-but-waiting) seconds of the calling thread so far (Linux)."""
    run, wait, _ = open("/proc/thread-self/schedstat").read().split()
    return time.perf_counter(), int(run) / 1e9, int(wait) / 1e9


def split(before, after) -> tuple[float, float, float]:
    """(on-CPU, runnable waiting, blocked) seconds between two :func:`sched`."""
    wall, run, wait = (a - b for a, b in zip(after, before, strict=True))
    return run, wait, wall - run - wait


def process_steps(model, opt, batches, steps: int, pw: ProcessWriter, flat, start: int) -> None:
    for i in range(steps):
        x, y = batches[i % len(batches)]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        pw.snapshot(flat, start + i)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        child(a[0], int(a[1]), int(a[2]), a[3], a[4], int(a[5]), int(a[6]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="cnn141k/b32")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--warm", type=int, default=512, help="steps before each loop is timed")
    ap.add_argument("--codec", default="balanced")
    ap.add_argument("--threads", type=int, default=1, help="encoder threads in the writer process")
    ap.add_argument("--nice", type=int, default=10, help="the writer process's nice steps")
    ap.add_argument("--slots", type=int, default=64, help="shared-memory records (the recorder's pool)")
    ap.add_argument("--no-encode", action="store_true", help="also the recorder with idle encoders")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # training on one core, the other free for the writer
    cpu = torch.device("cpu")
    model, batches = make_case(args.case, cpu)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = sum(p.numel() for p in model.parameters())
    flat = [p.detach().view(-1) for p in model.parameters()]
    timed_steps(model, opt, batches, 300, cpu)
    tmp = Path(tempfile.mkdtemp())
    kinds = ["plain", "thread", *(["no-encode"] if args.no_encode else []), "process"]
    parts: dict[str, list[tuple]] = {k: [] for k in kinds}  # (on-CPU, runnable, blocked) per trial
    closes: dict[str, list[float]] = {k: [] for k in kinds[1:]}  # closing seconds
    waits: dict[str, list[float]] = {k: [] for k in kinds[1:]}  # buffer waits in the loop

    def recorded(kind: str, trial: int) -> None:
        path = tmp / f"{kind}-{trial}.zarr"
        with Recorder(model, path, overwrite=True, progress=False, codec=args.codec) as rec:
            rec.attach(opt)
            timed_steps(model, opt, batches, args.warm, cpu)
            s0 = sched()
            timed_steps(model, opt, batches, args.steps, cpu)
            parts[kind].append(split(s0, sched()))
            t = time.perf_counter()
        closes[kind].append(time.perf_counter() - t)
        waits[kind].append(rec._pool.waited)
        shutil.rmtree(path)

    for trial in range(args.trials):
        s0 = sched()
        timed_steps(model, opt, batches, args.steps, cpu)
        parts["plain"].append(split(s0, sched()))
        recorded("thread", trial)
        if args.no_encode:
            submit = shards.EncoderPool.submit
            shards.EncoderPool.submit = skip_encoding
            try:
                recorded("no-encode", trial)
            finally:
                shards.EncoderPool.submit = submit
        path = tmp / f"process-{trial}.zarr"
        pw = ProcessWriter(n, args.slots, path, args.codec, args.threads, args.nice)
        process_steps(model, opt, batches, args.warm, pw, flat, 0)
        pw.waited = 0.0
        s0 = sched()
        process_steps(model, opt, batches, args.steps, pw, flat, args.warm)
        parts["process"].append(split(s0, sched()))
        t = time.perf_counter()
        pw.close()
        closes["process"].append(time.perf_counter() - t)
        waits["process"].append(pw.waited)
        shutil.rmtree(path)
        wall = {k: sum(p[-1]) for k, p in parts.items()}
        print(
            f"trial {trial}: plain {wall['plain']:.2f} s; "
            + ", ".join(f"{k} {wall[k] / wall['plain']:.3f}" for k in kinds[1:])
            + "; on-CPU/runnable/blocked s "
            + ", ".join(f"{k} " + "/".join(f"{x:.2f}" for x in p[-1]) for k, p in parts.items()),
            flush=True,
        )
    m = statistics.median
    plain_wall = [sum(p) for p in parts["plain"]]
    plain_own = [r + b for r, _, b in parts["plain"]]
    rate = n * 4 * args.steps / m(plain_wall) / 1e6
    lines = [
        f"{args.case}: {n} parameters, {rate:.0f} MB/s of raw records in plain training; codec "
        f"{args.codec}; {args.trials} trials of {args.steps} steps; medians; torch on 1 thread.",
        "",
        "| loop | wall / plain | without other load: (on-CPU + blocked) / plain | on-CPU / plain "
        "| blocked s | buffer waits s | close s |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in kinds[1:]:
        p = parts[k]
        wall_ratio = m([sum(x) / w for x, w in zip(p, plain_wall, strict=True)])
        own = m([(x[0] + x[2]) / o for x, o in zip(p, plain_own, strict=True)])
        on_cpu = m([x[0] / q[0] for x, q in zip(p, parts["plain"], strict=True)])
        blocked = m([x[2] for x in p])
        wait = f"{m(waits[k]):.2f}" if waits.get(k) else "-"
        close = f"{m(closes[k]):.2f}" if closes.get(k) else "-"
        lines.append(
            f"| {k} | {wall_ratio:.3f} | {own:.3f} | {on_cpu:.3f} | {blocked:.2f} | {wait} | {close} |"
        )
    shutil.rmtree(tmp)
    lines += ["", "Target (issue 13): <= 1.10 at ~240 MB/s of raw records on this 2-core machine."]
    finish("bench/writer_process_probe.py", lines, args.no_record)


if __name__ == "__main__":
    main()
