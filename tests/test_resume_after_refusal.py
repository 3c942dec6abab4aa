"""A resumed recording after a refusal: the metadata keys that said how the earlier run ended
(``trajstore_recording_refused``, ``trajstore_partial_last_iteration``) move into the new
segment's entry (docs/format.md 3.5), so the metadata says the current state.

Before: the keys stayed, and a store whose resumed run completed said it was refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Recorder
from trajstore.recorders.errors import IterationOrderError

import trajstore
from trajstore.validate import validate


def _gan():
    torch.manual_seed(0)
    d, g = nn.Linear(2, 1), nn.Linear(2, 2)
    return nn.ModuleDict({"d": d, "g": g}), d, g


def _train(path, pattern, *, resume=False, start=None):
    """Critic steps per iteration as in ``pattern``, each iteration ended by the generator."""
    gan, d, g = _gan()
    if start is not None:
        torch.nn.utils.vector_to_parameters(torch.from_numpy(start.copy()), gan.parameters())
    opt_d = torch.optim.SGD(d.parameters(), lr=0.1)
    opt_g = torch.optim.SGD(g.parameters(), lr=0.1)
    with Recorder(gan, path, progress=False, resume=resume) as rec:
        rec.attach(opt_d, name="critic")
        rec.attach(opt_g, name="generator")
        for n_critic in pattern:
            for _ in range(n_critic):
                opt_d.zero_grad()
                d(torch.randn(4, 2)).sum().backward()
                opt_d.step()
            opt_g.zero_grad()
            g(torch.randn(4, 2)).sum().backward()
            opt_g.step()


def test_resume_moves_how_the_earlier_run_ended_into_the_new_segment(tmp_path):
    path = tmp_path / "run.zarr"
    with pytest.raises(IterationOrderError):
        _train(path, [2, 2, 1])  # the third iteration's generator steps early: refused
    with trajstore.open(path) as t:
        refused = t.metadata["trajstore_recording_refused"]
        partial = t.metadata["trajstore_partial_last_iteration"]
        last = np.asarray(t.weights[-1], dtype=np.float32)
        assert t.steps.tolist() == [0, 1, 2] and refused["error"] == "IterationOrderError"
    _train(path, [2, 2], resume=True, start=last)
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0, 1, 2, 3, 4]
        assert "trajstore_recording_refused" not in t.metadata
        assert "trajstore_partial_last_iteration" not in t.metadata
        segment = t.attrs["segments"][-1]
        assert segment["start_step"] == 3 and segment["continuous"] is True
        assert segment["previous_run_refused"] == refused
        assert segment["previous_run_partial_iteration"] == partial
    assert validate(path).valid


def test_a_resume_after_a_clean_end_adds_nothing(tmp_path):
    path = tmp_path / "run.zarr"
    _train(path, [2, 2])
    with trajstore.open(path) as t:
        last = np.asarray(t.weights[-1], dtype=np.float32)
    _train(path, [2], resume=True, start=last)
    with trajstore.open(path) as t:
        segment = t.attrs["segments"][-1]
        assert not any(k.startswith("previous_run") for k in segment)
        assert t.steps.tolist() == [0, 1, 2, 3]
