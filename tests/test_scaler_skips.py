"""Steps that AMP's GradScaler skips (inf/NaN gradients) are counted as skipped iterations, with
the Recorder API as with ``trajstore record``, also when the very first step is skipped.

Before: the API recorder never heard of a skipped step (GradScaler does not call
``optimizer.step()``, so no step hook fires): the following iterations were numbered one too
low and the skipped iteration's loss was summed into the next one; ``trajstore record`` bound
at the first *taken* step, so a run whose first steps were skipped (AMP's scale calibration)
had every step number too low by that many.
"""

from __future__ import annotations

import numpy as np
import torch
from trajstore.recorders import Recorder

import trajstore

from .conftest import run_cli


def test_the_api_counts_a_skipped_step_and_keeps_each_iterations_loss(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    path = tmp_path / "amp.zarr"
    losses, weights = {}, {0: torch.cat([p.detach().flatten() for p in model.parameters()])}
    with Recorder(model, path, overwrite=True, progress=False) as rec:
        rec.attach(opt)
        for i in range(1, 7):
            x = torch.randn(8, 4)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            scaler.scale(loss).backward()
            if i == 3:
                model.weight.grad[0, 0] = float("inf")  # the loss is finite; the update is skipped
            rec.log_loss(loss)
            scaler.step(opt)
            scaler.update()
            losses[i] = float(loss.detach())
            weights[i] = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.testing.assert_close(weights[3], weights[2], rtol=0, atol=0)  # the update was skipped
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0, 1, 2, 3, 4, 5, 6]  # iteration 3 skipped: recorded, unchanged (1.2)
        for k, step in enumerate(t.steps.tolist()):
            np.testing.assert_array_equal(t.weights[k], weights[step].numpy())
        assert t.observable("skipped")[0].tolist() == [3]
        assert t.observable_attrs("skipped")["unit"] == "1"  # format.md 3.2
        steps, stored = t.observable("loss")
        assert steps.tolist() == [1, 2, 3, 4, 5, 6]
        np.testing.assert_allclose(stored, [losses[s] for s in steps.tolist()], rtol=1e-6)


def test_record_counts_skipped_steps_before_the_first_taken_one(tmp_path):
    script = tmp_path / "amp_first.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Linear(4, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler('cpu', init_scale=4.0)\n"
        "for i in range(1, 6):\n"
        "    loss = m(torch.randn(8, 4)).pow(2).mean()\n"
        "    opt.zero_grad(); scaler.scale(loss).backward()\n"
        "    if i <= 2: m.weight.grad[0, 0] = float('inf')\n"
        "    scaler.step(opt); scaler.update()\n"
    )
    out = tmp_path / "amp_first.zarr"
    p = run_cli("record", "-o", out, script)
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.steps.tolist() == [0, 1, 2, 3, 4, 5]  # iterations 1 and 2 skipped by GradScaler
        assert t.observable("skipped")[0].tolist() == [1, 2]
        torch.manual_seed(0)
        start = torch.nn.Linear(4, 1)  # the script's model before any step
        start = torch.cat([p.detach().flatten() for p in start.parameters()]).numpy()
        for k in range(3):  # the skipped steps changed nothing
            np.testing.assert_array_equal(t.weights[k], start)
        steps, loss = t.observable("loss")
        assert steps.tolist() == [1, 2, 3, 4, 5] and np.isfinite(loss).all()
