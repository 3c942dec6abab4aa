"""compare over a sweep: the hyper-parameter that varies, and the exponents against it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from trajstore.analysis.compare import compare as run_compare
from trajstore.analysis.fbm import fbm

import trajstore

pytest.importorskip("matplotlib")


def _run(path, lr: float, seed: int, hurst: float) -> None:
    """A store of 40 independent exact fBm coordinates (α = 2H), with an SGD provenance."""
    rng = np.random.default_rng(seed)
    walks = fbm(400, hurst, size=40, rng=rng).astype(np.float32)  # (400, 40)
    prov = {
        "seed": seed,
        "optimizer_class": "torch.optim.sgd.SGD",
        "optimizer": [{"lr": lr, "momentum": 0.0}],
    }
    with trajstore.create(path, 40, provenance=prov) as w:
        for step, row in enumerate(walks):
            w.append(step, row)


def test_compare_plots_exponents_against_the_varying_hyper_parameter(tmp_path):
    runs = []
    for lr, hurst in ((0.01, 0.3), (0.1, 0.5), (1.0, 0.7)):
        _run(tmp_path / f"lr{lr}.zarr", lr, seed=7, hurst=hurst)
        runs.append(str(tmp_path / f"lr{lr}.zarr"))
    summary = run_compare(runs, tmp_path / "cmp", window=400, progress=False)
    sweep = summary["sweep"]
    assert sweep["parameter"] == "lr" and sweep["also_varying"] == []
    assert [p["lr"] for p in sweep["points"]] == [0.01, 0.1, 1.0]
    alphas = [p["alpha"] for p in sweep["points"]]
    assert alphas[0] < alphas[1] < alphas[2]  # α = 2H rises with the run's H
    assert (tmp_path / "cmp" / "sweep.png").exists() and (tmp_path / "cmp" / "sweep.svg").exists()
    assert "sweep.png" in (tmp_path / "cmp" / "index.html").read_text()
    assert json.loads((tmp_path / "cmp" / "summary.json").read_text())["sweep"]["parameter"] == "lr"


def test_no_sweep_when_nothing_varies(tmp_path):
    runs = []
    for i in range(2):
        _run(tmp_path / f"r{i}.zarr", 0.1, seed=7, hurst=0.5)
        runs.append(str(tmp_path / f"r{i}.zarr"))
    summary = run_compare(runs, tmp_path / "cmp", window=400, progress=False)
    assert "sweep" not in summary and not (tmp_path / "cmp" / "sweep.png").exists()
