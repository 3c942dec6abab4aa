"""Stores whose records were taken when the next iteration began (``weights_taken`` =
"next_step", docs/format.md 3.3, 1.2): the analyses pair a ``pre_step`` loss logged at step s with
the record of step s − 1, which must then hold exactly the weights that loss was computed at
(weight clipping after ``step()`` included), and the landscape analysis runs on them unchanged.
Reference: the weights and losses copied by hand in a real tiny training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from trajstore.analysis.landscape import paired_losses
from trajstore.analysis.pipeline import analyze
from trajstore.recorders import Recorder

import trajstore


def test_pre_step_losses_pair_with_next_step_records(tmp_path):
    path = tmp_path / "clip.zarr"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    at_loss: dict[int, tuple[np.ndarray, float]] = {}  # iteration → (weights it computed at, loss)
    with Recorder(model, path, progress=False, record_at="next_step") as rec:
        rec.attach(opt)
        for i in range(1, 61):
            x = torch.randn(16, 4)
            loss = (model(x) - x[:, :1]).pow(2).mean()
            flat = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().copy()
            at_loss[i] = (flat, float(loss.detach()))
            opt.zero_grad()
            loss.backward()
            rec.log_loss(loss)
            opt.step()
            with torch.no_grad():  # WGAN-style clipping after step(): in the next_step record
                for p in model.parameters():
                    p.clamp_(-0.3, 0.3)
    with trajstore.open(path) as t:
        assert t.attrs["weights_taken"] == "next_step"
        paired = paired_losses(t)
        w = np.asarray(t.weights[:])
        for r, step in enumerate(t.steps.tolist()):
            if step + 1 in at_loss:
                weights, value = at_loss[step + 1]
                np.testing.assert_array_equal(w[r], weights)  # the weights the loss was computed at
                assert paired[r] == np.float32(value)
            else:
                assert np.isnan(paired[r])  # the last record: no later loss
        s = analyze(t, window=t.n_records, progress=False).summary()
    assert s["landscape"] and s["loss_fluctuations"]["n"] == 60
    assert not any("pre_step" in n or "paired" in n for n in s["notes"])
