"""What the integrity checks of format 1.1 cost: reads with and without them, in one run.

Reads a store (random-walk float32 weights) four ways: every block of the whole store
(``Trajectory.blocks``), one small tensor over every record (the worst case: a few columns of
each shard, while the check is per shard), 200 random single records, and ``open`` (which
checks the step and time digests). "Without" switches the per-read object checks off on the same
``Trajectory`` (the behaviour before 1.1); ``open`` is compared with the store's index removed.
Writing is compared with the writer's index turned off. Best of ``--repeat`` runs, interleaved
(the order alternates). The checks alone are timed too: on a busy machine the ratios above are
within the noise, the absolute cost of the checks is not.

    python bench/read_integrity.py [--records 1024] [--params 65536] [--no-record]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import finish, timed

import trajstore
from trajstore import spec


def _write(path: Path, w: np.ndarray, chunk_records: int, index: bool) -> float:
    t0 = time.perf_counter()
    with trajstore.create(
        path, {"big": (w.shape[1] - 10,), "small": (10,)}, chunk_records=chunk_records
    ) as wr:
        if not index:
            wr._series[spec.WEIGHTS].blocks = None
        for i, row in enumerate(w):
            wr.append(i, row, time=float(i))
    return time.perf_counter() - t0


def _timed(fn) -> float:
    return timed(fn)[0]


def _read_cases(path: Path, checks: bool, rng_seed: int) -> dict[str, float]:
    out = {}
    t = trajstore.open(path)
    if not checks:
        t.weights._objects = None
    out["whole store (blocks)"] = _timed(lambda: [b.data.sum() for b in t.blocks(memory_limit=64 * 2**20)])
    t.close()
    t = trajstore.open(path)
    if not checks:
        t.weights._objects = None
    out["one 10-value tensor, all records"] = _timed(lambda: np.asarray(t.tensor("small")))
    t.close()
    t = trajstore.open(path)
    if not checks:
        t.weights._objects = None
    rows = np.random.default_rng(rng_seed).integers(0, t.n_records, 200)
    out["200 random records"] = _timed(lambda: [t.weights[int(i)] for i in rows])
    t.close()
    return out


def _check_alone(path: Path) -> float:
    """The per-read checks by themselves: every shard of the store, nothing cached."""
    from trajstore.integrity import StoredObjects

    with trajstore.open(path) as t:
        group = t._weights
        objects = StoredObjects(t._backend, group.values.path, t.n_records, group.index, fill_ok=False)
        return _timed(lambda: objects.check(0, t.n_records))


def _checks_alone_note(seconds: float, n_shards: int) -> str:
    return (
        f"The checks by themselves (stat + 4 KiB tail + CRC-32 per shard, uncached): {seconds * 1e3:.2f} ms "
        f"for the {n_shards} shards ({seconds / n_shards * 1e3:.3f} ms per shard), "
        "once per shard per open store."
    )


def _open_time(path: Path, repeat: int) -> float:
    return min(_timed(lambda: trajstore.open(path).close()) for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1024)
    ap.add_argument("--params", type=int, default=65536)
    ap.add_argument("--chunk-records", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    w = np.cumsum(rng.normal(scale=1e-3, size=(args.records, args.params)).astype(np.float32), axis=0)
    tmp = Path(tempfile.mkdtemp())
    try:
        with_index, without_index = tmp / "with.zarr", tmp / "without.zarr"
        writes = {"with": [], "without": []}
        for _ in range(args.repeat):
            for name, path, index in (("without", without_index, False), ("with", with_index, True)):
                shutil.rmtree(path, ignore_errors=True)
                writes[name].append(_write(path, w, args.chunk_records, index))
        # The store without an index, as 1.0: no index to check at open.
        legacy = tmp / "legacy.zarr"
        shutil.copytree(with_index, legacy)
        import zarr

        root = zarr.open_group(legacy, mode="r+")
        root.attrs["spec_version"] = "1.0"
        del root.attrs[spec.ATTR_GROUPS]
        del root[spec.WEIGHTS].attrs[spec.ATTR_INTEGRITY]
        reads: dict[str, dict[str, list[float]]] = {}
        for r in range(args.repeat):
            for checks in (False, True) if r % 2 == 0 else (True, False):
                for case, secs in _read_cases(with_index, checks, r).items():
                    reads.setdefault(case, {True: [], False: []})[checks].append(secs)
        opens = {False: _open_time(legacy, 5 * args.repeat), True: _open_time(with_index, 5 * args.repeat)}
        alone = min(_check_alone(with_index) for _ in range(5 * args.repeat))
        n_shards = -(-args.records // args.chunk_records)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw = args.records * args.params * 4 / 2**20
    lines = [
        f"Zarr store, {args.records} records x {args.params} float32 ({raw:.0f} MiB raw), "
        f"{args.chunk_records} records per shard; best of {args.repeat}, checks off/on interleaved.",
        "",
        "| operation | before 1.1 (s) | with integrity checks (s) | ratio |",
        "|---|---|---|---|",
    ]
    for case, by in reads.items():
        a, b = min(by[False]), min(by[True])
        lines.append(f"| read: {case} | {a:.3f} | {b:.3f} | {b / a:.3f} |")
    a, b = opens[False], opens[True]
    lines.append(f"| open (step/time digests) | {a:.4f} | {b:.4f} | {b / a:.3f} |")
    a, b = min(writes["without"]), min(writes["with"])
    lines.append(f"| write (digests, shard tails) | {a:.3f} | {b:.3f} | {b / a:.3f} |")
    lines += ["", _checks_alone_note(alone, n_shards)]
    finish("bench/read_integrity.py", lines, args.no_record)


if __name__ == "__main__":
    main()
