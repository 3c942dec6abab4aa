"""An iteration whose update AMP's GradScaler skipped is recorded when the schedule selects it
(docs/format.md 3.3, 1.2): its record holds the live weights, unchanged by the skipped update,
and the step grid stays regular, with the Recorder API as with ``trajstore record``.

Before: such an iteration had no weights record, so ``every:10`` with step 50 skipped stored
steps ..., 40, 60, ...: the weights after iteration 50 (known live) were lost and ``analyze``
called the run's records not equally spaced (and left its gradient noise undetermined).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from trajstore.analysis.fluctuations import gradient_noise
from trajstore.analysis.pipeline import analyze
from trajstore.recorders import Recorder

import trajstore
from trajstore.validate import validate

from .conftest import run_cli


def _flat(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().copy()


def _train_api(path, every: int, n: int, skips: set[int], gradients: bool = False) -> dict[int, np.ndarray]:
    """``n`` AMP iterations (a real GradScaler on the CPU), the updates of ``skips`` skipped
    (an inf in one gradient); returns the hand-copied weights after every iteration."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=10**6)
    weights = {0: _flat(model)}
    with Recorder(model, path, every=every, gradients=gradients, overwrite=True, progress=False) as rec:
        rec.attach(opt)
        rec.set_epoch(0)
        for i in range(1, n + 1):
            x = torch.randn(16, 6)
            loss = (model(x) - x[:, :1]).pow(2).mean()
            opt.zero_grad()
            scaler.scale(loss).backward()
            if i in skips:
                model[0].weight.grad[0, 0] = float("inf")  # the loss is finite; the update is skipped
            rec.log_loss(loss)
            scaler.step(opt)
            scaler.update()
            weights[i] = _flat(model)
    return weights


@pytest.mark.parametrize(("every", "n", "skips"), [(1, 40, {3, 20, 21}), (10, 200, {50, 53})])
def test_a_skipped_scheduled_iteration_is_recorded_and_the_grid_stays_regular(tmp_path, every, n, skips):
    path = tmp_path / f"amp{every}.zarr"
    weights = _train_api(path, every, n, skips)
    with trajstore.open(path) as t:
        assert t.steps.tolist() == list(range(0, n + 1, every))  # no gap at the skipped steps
        stored = np.asarray(t.weights[:])
        for k, step in enumerate(t.steps.tolist()):
            np.testing.assert_array_equal(stored[k], weights[step])
        for s in skips:
            np.testing.assert_array_equal(weights[s], weights[s - 1])  # the update really was skipped
        assert t.observable("skipped")[0].tolist() == sorted(skips)
        assert validate(path).valid
        notes = " ".join(analyze(t, window=t.n_records, progress=False).notes)
    assert "not equally spaced" not in notes and "GradScaler" not in notes


def test_record_keeps_the_grid_regular_at_a_skipped_scheduled_step(tmp_path):
    """``trajstore record --every 10``: step 50 skipped; its record holds the weights after
    iteration 49, which the script saved itself."""
    script = tmp_path / "amp10.py"
    hand = tmp_path / "hand.npy"
    script.write_text(
        "import numpy as np, torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Linear(4, 2)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.05)\n"
        "scaler = torch.amp.GradScaler('cpu', init_scale=4.0)\n"
        "seen = {}\n"
        "for i in range(1, 71):\n"
        "    loss = m(torch.randn(8, 4)).pow(2).mean()\n"
        "    opt.zero_grad(); scaler.scale(loss).backward()\n"
        "    if i == 50: m.weight.grad[0, 0] = float('nan')\n"
        "    scaler.step(opt); scaler.update()\n"
        "    if i in (49, 50): seen[i] = torch.cat([p.detach().flatten() for p in m.parameters()]).numpy()\n"
        f"np.save({str(hand)!r}, np.stack([seen[49], seen[50]]))\n"
    )
    out = tmp_path / "amp10.zarr"
    p = run_cli("record", "--every", "10", "-o", out, script)
    assert p.returncode == 0, p.stderr
    after_49, after_50 = np.load(hand)
    np.testing.assert_array_equal(after_49, after_50)
    with trajstore.open(out) as t:
        assert t.steps.tolist() == list(range(0, 71, 10))
        np.testing.assert_array_equal(t.weights[5], after_50)
        assert t.observable("skipped")[0].tolist() == [50]


def test_gradient_noise_leaves_out_the_gradient_of_a_skipped_update(tmp_path):
    """The record of a skipped iteration holds gradient 0 (no update used one): gradient noise
    leaves it out of the epoch mean instead of counting a zero gradient as a sample. Reference:
    the norms computed by hand from the stored gradients without that record."""
    path = tmp_path / "grads.zarr"
    _train_api(path, 1, 30, {7}, gradients=True)
    with trajstore.open(path) as t:
        g = np.asarray(t.gradients.values[:], dtype=np.float64)
        steps = t.gradients.steps.tolist()
        assert not g[steps.index(7)].any()  # format.md 3.3: no update used a gradient
        assert g[steps.index(8)].any()
        gn = gradient_noise(t, window=1000)
        keep = np.array([s != 7 for s in steps])
        mean = g[keep].mean(axis=0)  # one epoch
        np.testing.assert_allclose(gn.noise_norm[keep], np.linalg.norm(g[keep] - mean, axis=1), rtol=1e-9)
        np.testing.assert_allclose(gn.grad_norm[keep], np.linalg.norm(g[keep], axis=1), rtol=1e-9)
        assert np.isnan(gn.noise_norm[~keep]).all() and gn.skipped_records == 1
        notes = " ".join(analyze(t, window=t.n_records, progress=False).notes)
    assert "leaves out 1 record of iterations whose update" in notes
