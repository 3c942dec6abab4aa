"""The README's toy example shows what the toy model is for: a descent phase, measured over
walkers, faster than the subdiffusive near-minimum phase. Its earlier parameters (fBm, H 0.7,
the paper's η = 0.02) took every walker to its minimum within a few steps: descent 'n/a (too
short)' for all walkers, nothing of the early regime in the figures."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .conftest import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_toy_args() -> list[str]:
    lines = [ln for ln in README.read_text().splitlines() if ln.startswith("trajstore toy ")]
    assert len(lines) == 1, lines
    args = shlex.split(lines[0].split("#")[0])[2:]
    out = args.index("-o")
    return args[:out] + args[out + 2 :]  # the example's options, without its output path


def test_the_readme_toy_example_has_a_descent_phase(tmp_path):
    args = _readme_toy_args()
    repeats = int(args[args.index("--repeats") + 1]) if "--repeats" in args else 5
    p = run_cli("toy", *args, "-o", tmp_path / "toy.zarr", "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    phases = json.loads(p.stdout)["toy"]["phases"]
    descent, near = phases["descent"], phases["near_minimum"]
    assert descent["alpha"] is not None and descent["n_walkers"] >= repeats // 2, descent
    assert descent["median_length"] >= 50, descent  # long enough to show in the figures
    assert near["alpha"] < 1 and descent["alpha"] > near["alpha"] + 0.1, phases
