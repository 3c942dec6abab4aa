"""Tail-fit speed: trajstore's Clauset–Shalizi–Newman fit against powerlaw.Fit, same data.

python bench/tailfit.py [--n 100000] [--no-record]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from common import finish
from trajstore.analysis.tails import fit_power_law_tail


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    import powerlaw

    rng = np.random.default_rng(0)
    n_tail = args.n // 2
    x = np.concatenate([rng.lognormal(0, 0.5, args.n - n_tail), 3 * (1 - rng.random(n_tail)) ** (-1 / 1.5)])
    t0 = time.perf_counter()
    ours = fit_power_law_tail(x)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(x, verbose=False)
        ref_alpha, ref_xmin = ref.alpha, ref.xmin
    t_ref = time.perf_counter() - t0
    lines = [
        f"n = {args.n} (lognormal body + Pareto tail α = 2.5):",
        f"trajstore {t_ours:.2f} s (α = {ours.alpha:.4f}, x_min = {ours.xmin:.5g}); "
        f"powerlaw.Fit {t_ref:.1f} s (α = {ref_alpha:.4f}, x_min = {ref_xmin:.5g}); "
        f"speed-up {t_ref / t_ours:.0f}x.",
        "Target: >= 50x faster than powerlaw at n = 10^5.",
    ]
    finish("bench/tailfit.py", lines, args.no_record)


if __name__ == "__main__":
    main()
