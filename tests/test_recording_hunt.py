"""Awkward but legal training scripts, recorded and compared with what trained (values copied
by hand in the script).

Before: a tensor the script changed in place after logging it was stored with its value at the
time the writer thread got to it (scalars travel in batches), not at the time it was logged: a
tensor learning rate (``Adam(lr=torch.tensor(...))``, which schedulers update with ``fill_``)
was stored as the last learning rate of the run at every step, and ``trajstore.log("count",
t)`` of a running count as its final value; ``rec.log(...)`` attributes given before the store
existed were dropped.
"""

from __future__ import annotations

import numpy as np
import torch
from trajstore.recorders import Recorder

import trajstore

from .test_record_patterns import load, record


def test_a_tensor_learning_rate_and_an_in_place_count_are_stored_as_they_were(tmp_path):
    code, out, ref = record(
        tmp_path,
        """
        import trajstore
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** e)  # fill_s the tensor lr
        used, counts = [], []
        count = torch.zeros(())
        for i in range(8):
            x = torch.randn(16, 4)
            opt.zero_grad(); (model(x) - x[:, :2]).pow(2).mean().backward()
            used.append(float(opt.param_groups[0]["lr"]))
            opt.step(); sched.step()
            count += 1  # in place
            trajstore.log("count", count)
            counts.append(float(count))
        save(lr=used, count=counts)
        """,
    )
    assert code == 0
    with trajstore.open(out) as t:
        steps, lr = t.observable("lr")
        assert steps.tolist() == list(range(1, 9))
        np.testing.assert_array_equal(lr, load(ref, "lr"))  # before: 3.9e-5 (0.01 / 2^8) at every step
        np.testing.assert_array_equal(t.observable("count")[1], load(ref, "count"))  # before: 8 everywhere


def test_log_before_the_store_exists_keeps_the_value_and_attributes_given(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, tmp_path / "early.zarr", progress=False)
    level = torch.full((), 0.25)
    rec.log("noise_level", level, step=0, unit="1", description="label noise")  # before attach: no store yet
    level.fill_(0.75)
    with rec:
        rec.attach(opt)
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    with trajstore.open(tmp_path / "early.zarr") as t:
        assert t.observable("noise_level")[1].tolist() == [0.25]
        attrs = t.observable_attrs("noise_level")
        assert attrs["unit"] == "1" and attrs["description"] == "label noise"
