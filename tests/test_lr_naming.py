"""One ``lr`` naming per run (docs/format.md 3.6): an optimizer with one parameter group at its
first step keeps ``lr`` for group 0 after ``add_param_group``, also across a resume; the added
groups are ``lr.<optimizer>.<group>``.

Before: ``lr`` stopped at the step before add_param_group and ``lr.opt.0`` began, so a reader
of ``lr`` saw the run's learning rate end early.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Recorder

import trajstore
from trajstore.validate import validate


def _run(path, model, groups, steps, *, add_at=None, resume=False):
    opt = torch.optim.SGD(groups, lr=0.1)
    with Recorder(model, path, progress=False, resume=resume) as rec:
        rec.attach(opt, name="opt")
        for i in range(steps):
            if i == add_at:
                opt.add_param_group({"params": list(model[1].parameters()), "lr": 0.01})
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()


def test_lr_keeps_its_name_after_add_param_group_and_across_a_resume(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    path = tmp_path / "run.zarr"
    _run(path, model, list(model[0].parameters()), 4, add_at=2)
    with trajstore.open(path) as t:
        assert "lr.opt.0" not in t.observables
        assert t.observable("lr")[0].tolist() == [1, 2, 3, 4]
        assert t.observable("lr.opt.1")[0].tolist() == [3, 4]
        last = np.asarray(t.weights[-1], dtype=np.float32)
    torch.nn.utils.vector_to_parameters(torch.from_numpy(last.copy()), model.parameters())
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[1].parameters()), "lr": 0.01}]
    _run(path, model, groups, 2, resume=True)  # two groups from its first step
    with trajstore.open(path) as t:
        assert "lr.opt.0" not in t.observables
        steps, lr = t.observable("lr")
        assert steps.tolist() == [1, 2, 3, 4, 5, 6] and lr.tolist() == pytest.approx([0.1] * 6)
        assert t.observable("lr.opt.1")[0].tolist() == [3, 4, 5, 6]
    assert validate(path).valid


def test_two_groups_from_the_start_are_numbered(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[1].parameters()), "lr": 0.01}]
    _run(tmp_path / "run.zarr", model, groups, 2)
    with trajstore.open(tmp_path / "run.zarr") as t:
        assert "lr" not in t.observables
        assert t.observable("lr.opt.0")[0].tolist() == [1, 2]
