"""Coverage of the per-layer (per-tensor and per-layer-type) bootstrap intervals on exact fBm
with a different α per tensor, at a ResNet-like size: a 3×3 conv of 16 → 16 channels (2,304
coordinates), BatchNorm weights of 64 and 16 channels, a linear layer (64 → 10: 640 + a
10-coordinate bias), 1000 records. The CI test (tests/test_layers.py) runs the same code on
smaller tensors.

    python bench/layer_coverage.py [--replicates 100] [--no-record]
"""

from __future__ import annotations

import time

from common import finish, replicate_args
from trajstore.analysis.layer_calibration import layer_coverage

TENSORS = {
    "conv.weight": (2304, 0.5),
    "bn.weight": (64, 1.5),
    "bn16.weight": (16, 1.5),
    "fc.weight": (640, 1.0),
    "fc.bias": (10, 1.0),
}
TYPES = {
    "linear (fc.weight + fc.bias)": ["fc.weight", "fc.bias"],
    "weights (conv + bn + fc)": ["conv.weight", "bn.weight", "fc.weight"],
    "conv + norm": ["conv.weight", "bn.weight"],
    "conv + norm16": ["conv.weight", "bn16.weight"],
}


def main() -> None:
    args = replicate_args()
    t0 = time.perf_counter()
    cov = layer_coverage(TENSORS, TYPES, n_records=1000, replicates=args.replicates, n_boot=400, seed=1)
    lines = [
        f"Per-layer intervals, exact fBm with α per tensor, 1000 records, {args.replicates} replicates, "
        "nominal 95 %:",
        "",
        "| tensor or type | truth α | coverage | mean width | with an interval |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {cov.truth[k]:.3f} | {cov.coverage[k]:.2f} | {cov.width[k]:.3f} | "
        f"{cov.with_interval[k]:.2f} |"
        for k in cov.truth
    ]
    took = time.perf_counter() - t0
    lines += ["", f"Target: coverage 0.90-0.98 where there is an interval. ({took:.0f} s)"]
    finish("bench/layer_coverage.py", lines, args.no_record)


if __name__ == "__main__":
    main()
