"""The layout keeps each tensor's dtype in training (docs/format.md 3.1), the values float32.

Before: the recorder wrote ``"float32"`` for every tensor, so a bfloat16 run (whose stored values
are exact, but hold only 8 significant bits) could not be told from a float32 one.
"""

from __future__ import annotations

import numpy as np
import torch
from trajstore.recorders import Recorder

import trajstore

from .conftest import run_cli


def _train(model, path, buffers=False):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dtype = next(model.parameters()).dtype
    with Recorder(model, path, overwrite=True, progress=False, buffers=buffers) as rec:
        rec.attach(opt)
        for _ in range(3):
            loss = model(torch.randn(16, 4, dtype=dtype)).float().pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return torch.cat([p.detach().float().flatten() for p in model.parameters()]).numpy()


def test_a_bfloat16_run_says_so_in_its_layout_and_info(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    model = model.to(torch.bfloat16)
    path = tmp_path / "bf16.zarr"
    last = _train(model, path, buffers=True)
    with trajstore.open(path) as t:
        assert {s.dtype for s in t.layout} == {"bfloat16"}
        assert t.weights.dtype == np.float32
        np.testing.assert_array_equal(t.weights[-1], last)  # bfloat16 values are exact in float32
    p = run_cli("info", path)
    assert p.returncode == 0, p.stderr
    assert "65 float32 in 6 tensors" in p.stdout and "trained as bfloat16" in p.stdout


def test_a_float32_run_names_no_other_dtype(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "f32.zarr"
    _train(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1)), path)
    with trajstore.open(path) as t:
        assert {s.dtype for s in t.layout} == {"float32"}
    p = run_cli("info", path)
    assert p.returncode == 0 and "trained as" not in p.stdout
