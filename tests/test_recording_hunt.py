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


def _steps(model, opt, rec, n: int, start: int, losses: dict) -> None:
    for i in range(start, start + n):
        opt.zero_grad()
        loss = model(torch.randn(4, 3)).pow(2).mean()
        loss.backward()
        rec.log_loss(loss)
        opt.step()
        losses[i] = float(loss.detach())


def test_a_resume_from_the_last_record_while_observables_ran_ahead_is_refused(tmp_path):
    """``every=10``; the first run stops after step 37 (its loss is stored to step 37, its last
    record is step 30); the second restarts from the step-30 checkpoint. Before: its iterations
    were numbered 38, 39, ... (every step 7 too high: the record called 40 held the weights after
    step 33) in a segment marked continuous. Now refused in one line; with resume_new_segment,
    a separate segment past every stored step."""
    import copy

    from trajstore.recorders.errors import ResumeGapError

    path = tmp_path / "ahead.zarr"
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses: dict = {}
    with Recorder(model, path, every=10, progress=False) as rec:
        rec.attach(opt)
        for block in range(3):
            _steps(model, opt, rec, 10, 1 + 10 * block, losses)
            checkpoint = copy.deepcopy(model.state_dict())  # after step 10, 20, 30
        _steps(model, opt, rec, 7, 31, losses)
    model.load_state_dict(checkpoint)
    again = Recorder(model, path, every=10, resume=True, progress=False)
    try:
        again.attach(opt)
        raise AssertionError("the resume was not refused")
    except ResumeGapError as exc:
        message = str(exc)
    finally:
        again.close()
    assert "from step 38" in message and "step 30" in message and "7 too high" in message
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0, 10, 20, 30] and t.observable("loss")[0][-1] == 37

    with Recorder(model, path, every=10, resume=True, resume_new_segment=True, progress=False) as rec:
        rec.attach(opt)
        _steps(model, opt, rec, 12, 31, losses)
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0, 10, 20, 30, 38, 40, 50]
        assert [(s.start, s.stop) for s in t.segments] == [(0, 4), (4, 7)]
        np.testing.assert_array_equal(t.weights[4], t.weights[3])  # the segment starts at step 30's weights
        assert t.attrs["segments"][-1]["continuous"] is False


def test_a_validation_loader_iterated_mid_epoch_does_not_change_the_epoch(tmp_path):
    """``trajstore record`` counts epochs by DataLoader passes. Before: the count of the loader
    iterated last, so validating every 3 steps in the middle of an epoch set the training steps
    after it to the validation loader's count (epochs 0 0 0 0 0 1 1 1 1 2 2 2 3 3 3 for 3 epochs)."""
    code, out, ref = record(
        tmp_path,
        """
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        data = torch.utils.data.TensorDataset(torch.randn(40, 4), torch.randn(40, 1))
        train = torch.utils.data.DataLoader(data, batch_size=8)
        val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 4)), batch_size=8)
        epochs, step = [], 0
        for epoch in range(3):
            for x, y in train:
                opt.zero_grad(); F.mse_loss(model(x), y).backward(); opt.step()
                step += 1
                epochs.append(epoch)
                if step % 3 == 0:
                    with torch.no_grad():
                        for (v,) in val:
                            model(v)
        save(epochs=epochs)
        """,
    )
    assert code == 0
    with trajstore.open(out) as t:
        steps, epochs = t.observable("epoch")
    assert steps.tolist() == list(range(1, 16))
    np.testing.assert_array_equal(epochs, load(ref, "epochs"))
