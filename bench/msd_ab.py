"""A/B of the window pass before and after keeping the partial MSDs of 64 parameter blocks
(issue 11's bootstrap): the same out-of-core store, timed alternately (the machine is shared, so
only the ratio in one run means anything).

    python bench/msd_ab.py OLD_WINDOWS_PY [--records 2000] [--params 100000] [--rounds 3]

OLD_WINDOWS_PY: ``git show 244f9f5:analysis/windows.py > /tmp/old_windows.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

from msd import make_store, read_pass
from trajstore.analysis import windows as new

import trajstore


def load_old(path: str):
    spec = importlib.util.spec_from_file_location("old_windows", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_windows"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--params", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    old = load_old(args.old)
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "ab.zarr"
    make_store(path, args.records, args.params)
    limit = 64 << 20
    times: dict[str, list[float]] = {"read": [], "old": [], "new": []}
    with trajstore.open(path) as traj:
        for _ in range(args.rounds):
            for name, fn in (
                ("read", lambda: read_pass(traj, 1000, limit)),
                ("old", lambda: list(old.iter_windows(traj, 1000, memory_limit=limit, extras=False))),
                ("new", lambda: list(new.iter_windows(traj, 1000, memory_limit=limit, extras=False))),
            ):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    shutil.rmtree(tmp)
    best = {k: min(v) for k, v in times.items()}
    print(
        f"{args.records} records x {args.params} params, limit 64 MiB, best of {args.rounds}: read pass "
        f"{best['read']:.2f} s; MSD before {best['old']:.2f} s ({best['old'] / best['read']:.2f}x); "
        f"with block MSDs {best['new']:.2f} s ({best['new'] / best['read']:.2f}x); "
        f"new/old {best['new'] / best['old']:.3f}"
    )


if __name__ == "__main__":
    main()
