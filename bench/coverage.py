"""Coverage of the bootstrap intervals and calibration of the two-regime test at the size of the
held-out check of issue 11 (200 exact-fBm coordinates × 1000 records; a 1.6 → 0.6 crossover at
τ0 = 100). The CI test (tests/test_analysis_intervals.py) runs the same code on smaller walks.

    python bench/coverage.py [--replicates 100] [--no-record]
"""

from __future__ import annotations

import time

import numpy as np
from common import finish, replicate_args
from trajstore.analysis.calibration import crossover_coverage, fbm_coverage


def main() -> None:
    args = replicate_args()
    t0 = time.perf_counter()
    fb = fbm_coverage(n_records=1000, n_params=200, replicates=args.replicates, seed=1)
    cr = crossover_coverage(1.6, 0.6, 100.0, n_records=1000, n_params=200, replicates=args.replicates, seed=1)
    lines = [
        f"Exact fBm, 200 coordinates x 1000 records, {args.replicates} replicates per α, nominal 95 %:",
        "",
        "| α | coverage | mean width | 'one regime' |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {a} | {c:.2f} | {w:.3f} | {o:.2f} |"
        for a, c, w, o in zip(fb.alphas, fb.coverage, fb.width, fb.one_regime, strict=True)
    ]
    lines += [
        "",
        f"Pooled coverage {fb.pooled_coverage:.3f}; 'one regime' {np.mean(fb.one_regime):.3f}.",
        "",
        f"Crossover 1.6 -> 0.6 at τ0 = 100 (200 coordinates x 1000 records, {args.replicates} replicates); "
        f"truth (fit of the exact MSD) α_short {cr.truth[0]:.3f}, α_long {cr.truth[1]:.3f}, "
        f"τ0 {cr.truth[2]:.1f}: "
        f"coverage α_short {cr.coverage[0]:.2f}, α_long {cr.coverage[1]:.2f}, τ0 {cr.coverage[2]:.2f}; "
        f"break found in {cr.found:.2f}.",
        "",
        f"Targets: coverage 0.90-0.98; 'one regime' >= 0.90 on fBm; break found >= 0.90. "
        f"({time.perf_counter() - t0:.0f} s)",
    ]
    finish("bench/coverage.py", lines, args.no_record)


if __name__ == "__main__":
    main()
