"""Training code that replaces a parameter's storage, or the parameter itself, after the recorder
attached: the store follows the live weights bit for bit, or recording stops with one line.

Each run copies its weights by hand (``torch.cat`` of the live parameters) after every optimizer
step, exactly when the recorder snapshots, and compares them with the store.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Recorder
from trajstore.recorders.errors import RecordingRefusedError

import trajstore
from trajstore.validate import validate

from .test_record_patterns import load, record, record_cli


def _flat(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().float().flatten() for p in model.parameters()]).numpy().copy()


def _train(path, model, steps: int, after_step=None, *, buffers: bool = False, record_at="step"):
    """A real SGD run recorded by a Recorder; ``after_step(i, model, opt)`` runs after each
    step (after the record). Returns the hand-copied weights (step 0 and after every step, or
    with ``record_at="next_step"`` after ``after_step`` too) and, with ``buffers``, the
    floating-point buffers after every step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    snaps, bufs = [], []
    with Recorder(model, path, progress=False, buffers=buffers, record_at=record_at) as rec:
        rec.attach(opt)
        snaps.append(_flat(model))
        for i in range(steps):
            x = torch.randn(8, 4, generator=g).to(next(model.parameters()).dtype)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            snaps.append(_flat(model))
            floats = [b.detach().float().flatten() for b in model.buffers() if b.is_floating_point()]
            bufs.append(torch.cat(floats).numpy().copy() if floats else None)
            if after_step is not None:
                after_step(i, model, opt)
                if record_at == "next_step":  # the record holds the weights the next step starts from
                    snaps[-1] = _flat(model)
    return (np.stack(snaps), np.stack(bufs)) if buffers else np.stack(snaps)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1))


def _stored(path) -> np.ndarray:
    with trajstore.open(path) as t:
        return np.asarray(t.weights[:])


def clip(i, model, opt):  # WGAN weight clipping written with .data assignment
    for p in model.parameters():
        p.data = p.data.clamp(-0.3, 0.3)


def reinit(i, model, opt):  # re-initialise a layer mid-run
    if i == 2:
        model[0].weight.data = torch.randn(6, 4, generator=torch.Generator().manual_seed(5))


def swap_in_average(i, model, opt):  # swap averaged weights in through .data and keep training
    if i == 3:
        for p in model.parameters():
            p.data = (p.data * 0.5).clone()


@pytest.mark.parametrize("after_step", [clip, reinit, swap_in_average], ids=lambda f: f.__name__)
def test_the_store_follows_replaced_storage_bit_for_bit(tmp_path, after_step):
    """Records taken when the next iteration begins (the weights these changes leave); taken
    when step() returns, changes of the values are refused (tests/test_post_step_change.py)."""
    path = tmp_path / "run.zarr"
    ref = _train(path, _model(), 6, after_step, record_at="next_step")
    np.testing.assert_array_equal(_stored(path), ref)
    assert np.any(ref[-1] != ref[-2])  # the run kept training after the replacement
    assert validate(path).valid


def test_replaced_buffers_are_followed(tmp_path):
    """New BatchNorm running-statistics tensors (a reset by assignment): the store follows them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 1))

    def reset_statistics(i, m, opt):
        if i == 1:
            m[1].running_mean = torch.zeros(6)
            m[1].running_var = torch.ones(6)

    path = tmp_path / "bn.zarr"
    weights, buffers = _train(path, model, 4, reset_statistics, buffers=True)
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(np.asarray(t.weights[:]), weights)
        np.testing.assert_array_equal(np.asarray(t.buffers.values[1:]), buffers)
    assert np.any(buffers[-1] != buffers[-2])


def _refused(path, after_step, steps=5):
    with pytest.raises(RecordingRefusedError) as info:
        _train(path, _model(), steps, after_step)
    message = str(info.value)
    assert "\n" not in message
    with trajstore.open(path) as t:  # what was recorded before stays, valid
        assert t.n_records >= 1
        last = int(t.steps[-1])
        # the store says why it ends here; the message says what it kept
        refused = t.metadata["trajstore_recording_refused"]
        assert refused["error"] == type(info.value).__name__ and refused["reason"] in message
        assert message.endswith(f"; {t.n_records} records (steps 0-{last}) are kept in {path}")
    assert validate(path).valid
    return message


def test_a_parameter_that_changes_shape_is_refused(tmp_path):
    def reshape(i, model, opt):  # as many values, and the bias still broadcasts: training goes on
        if i == 2:
            model[0].bias.data = model[0].bias.data.reshape(1, 6).clone()
            opt.state.clear()  # its momentum has the old shape

    message = _refused(tmp_path / "reshape.zarr", reshape)
    assert "0.bias" in message and "(6,)" in message and "(1, 6)" in message


def test_a_parameter_replaced_by_load_state_dict_assign_is_refused(tmp_path):
    def assign(i, model, opt):
        if i == 2:
            model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, assign=True)

    message = _refused(tmp_path / "assign.zarr", assign)
    assert "0.weight" in message and "replaced" in message


def test_pruning_after_attach_is_refused(tmp_path):
    def prune_half(i, model, opt):
        if i == 2:
            from torch.nn.utils import prune

            prune.l1_unstructured(model[0], "weight", amount=0.5)

    message = _refused(tmp_path / "prune.zarr", prune_half)
    assert "0.weight" in message and "prun" in message


def test_parameters_added_to_the_model_and_optimizer_after_attach_are_refused(tmp_path):
    def grow(i, model, opt):
        if i == 2:
            model.append(nn.Linear(1, 1))
            opt.add_param_group({"params": list(model[3].parameters())})

    message = _refused(tmp_path / "added.zarr", grow)
    assert "3.weight" in message and "after" in message


def test_storage_replaced_with_the_same_values_is_followed_when_records_are_taken_at_step(tmp_path):
    def fresh_storage(i, model, opt):  # new tensors, same values: nothing for the post-step check
        for p in model.parameters():
            p.data = p.data.clone()

    path = tmp_path / "run.zarr"
    ref = _train(path, _model(), 6, fresh_storage)
    np.testing.assert_array_equal(_stored(path), ref)


def test_zero_code_recording_follows_weight_clipping(tmp_path):
    code, out, ref = record(
        tmp_path,
        """
        torch.manual_seed(0)
        critic = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        opt = torch.optim.RMSprop(critic.parameters(), lr=5e-3)
        g = torch.Generator().manual_seed(1)
        snaps = [flat(critic.parameters())]
        for i in range(5):
            loss = -critic(torch.randn(8, 4, generator=g)).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            for p in critic.parameters():
                p.data = p.data.clamp(-0.05, 0.05)
            snaps.append(flat(critic.parameters()))
        save(w=np.stack(snaps))
        """,
        record_at="next_step",
    )
    assert code == 0
    np.testing.assert_array_equal(_stored(out), load(ref, "w"))


def test_an_optimizer_that_steps_the_model_without_being_attached_is_refused(tmp_path):
    """Switching optimizers mid-run (Adam, then SGD) with only the first attached: the second's
    updates would change the weights with no record; recording stops at its first step."""
    path = tmp_path / "switch.zarr"
    model = _model()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    with pytest.raises(RecordingRefusedError) as info:
        with Recorder(model, path, progress=False) as rec:
            rec.attach(adam)
            opt = adam
            for i in range(6):
                if i == 3:
                    opt = torch.optim.SGD(model.parameters(), lr=0.05)
                loss = model(torch.randn(8, 4, generator=g)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    message = str(info.value)
    assert "\n" not in message and "SGD" in message and "attach" in message
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0, 1, 2, 3]
    assert validate(path).valid


def test_optimizers_stepped_inside_an_attached_one_are_not_refused(tmp_path):
    """A wrapper optimizer that steps an inner one (both torch.optim optimizers, one attached)
    records as before, whichever of the two is attached."""

    class Wrapper(torch.optim.Optimizer):
        def __init__(self, inner):
            self.inner = inner
            super().__init__(inner.param_groups, {})
            self.param_groups = inner.param_groups

        def step(self, closure=None):
            return self.inner.step(closure)

    for which in ("outer", "inner"):
        model = _model()
        inner = torch.optim.SGD(model.parameters(), lr=0.05)
        outer = Wrapper(inner)
        g = torch.Generator().manual_seed(1)
        path = tmp_path / f"{which}.zarr"
        snaps = [_flat(model)]
        with Recorder(model, path, progress=False) as rec:
            rec.attach(outer if which == "outer" else inner)
            for _ in range(3):
                loss = model(torch.randn(8, 4, generator=g)).pow(2).mean()
                outer.zero_grad()
                loss.backward()
                outer.step()
                snaps.append(_flat(model))
        np.testing.assert_array_equal(_stored(path), np.stack(snaps))


def test_an_optimizer_that_trains_none_of_the_recorded_parameters_is_refused(tmp_path):
    """torch.func.functional_call training on its own copies of the weights: the model's
    parameters never change, and recording them would store a constant trajectory."""
    model = _model()
    weights = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(weights.values(), lr=0.05)
    path = tmp_path / "functional.zarr"
    with pytest.raises(RecordingRefusedError) as info:
        with Recorder(model, path, progress=False) as rec:
            rec.attach(opt)
            g = torch.Generator().manual_seed(1)
            for _ in range(3):
                x = torch.randn(8, 4, generator=g)
                loss = torch.func.functional_call(model, weights, (x,)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    message = str(info.value)
    assert "\n" not in message and "none" in message and "bind" in message


def test_a_parameter_moved_to_another_device_is_refused(tmp_path):
    """Module.to() after attach (here to the meta device, the one every machine has; .cuda() is
    the real case): the recorder's buffers are on the old device, so recording stops."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    path = tmp_path / "moved.zarr"
    with pytest.raises(RecordingRefusedError) as info:
        with Recorder(model, path, progress=False) as rec:
            rec.attach(opt)
            model.to("meta")
            opt.zero_grad()
            opt.step()  # no gradients: updates nothing, but completes an iteration
    message = str(info.value)
    assert "\n" not in message and "0.weight" in message and "cpu" in message and "meta" in message
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_a_model_whose_dtype_changes_after_attach_is_refused(tmp_path, dtype):
    """``model.double()`` / ``.half()`` / ``.to(torch.bfloat16)`` after the recorder attached.
    Before: the recorder followed the new storage, so float64 weights were stored rounded to
    float32 (by up to 1e-8 here) and fp16/bf16 ones exactly, all under a layout that said the
    model trained in float32. The layout is fixed at attach: recording stops in one line."""

    def convert(i, model, opt):
        if i == 1:
            model.to(dtype)

    message = _refused(tmp_path / "dtype.zarr", convert)
    short = str(dtype).removeprefix("torch.")
    assert f"changed dtype from float32 to {short} before step 3" in message
    with trajstore.open(tmp_path / "dtype.zarr") as t:
        assert t.steps.tolist() == [0, 1, 2] and {s.dtype for s in t.layout} == {"float32"}


def test_a_buffer_whose_dtype_changes_after_attach_is_refused(tmp_path):
    class Averaged(nn.Module):  # a module keeping a running average in a float buffer
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1)
            self.register_buffer("avg", torch.zeros(1))

        def forward(self, x):
            y = self.lin(x)
            with torch.no_grad():
                self.avg.mul_(0.9).add_(0.1 * y.mean().to(self.avg.dtype))
            return y

    def widen(i, model, opt):
        if i == 1:
            model.avg = model.avg.double()

    model = Averaged()
    path = tmp_path / "buf.zarr"
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(RecordingRefusedError) as info:
        with Recorder(model, path, progress=False, buffers=True) as rec:
            rec.attach(opt)
            for i in range(4):
                opt.zero_grad()
                model(torch.randn(8, 4)).pow(2).mean().backward()
                opt.step()
                widen(i, model, opt)
    message = str(info.value)
    assert "\n" not in message and "buffer avg changed dtype from float32 to float64 before step 3" in message
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0, 1, 2]


def test_record_refuses_a_dtype_change_in_one_line(tmp_path):
    """``trajstore record``: the model converted to half precision after the first step."""
    p, out, _ = record_cli(
        tmp_path,
        """
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for i in range(4):
            if i == 2:
                model.half()
            x = torch.randn(8, 4).to(next(model.parameters()).dtype)
            opt.zero_grad(); model(x).float().pow(2).mean().backward(); opt.step()
        """,
    )
    assert p.returncode != 0
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in p.stderr and len(errors) == 1, p.stderr
    assert "changed dtype from float32 to float16 before step 3" in errors[0]
    with trajstore.open(out) as t:
        assert t.steps.tolist() == [0, 1, 2]
        assert t.metadata["trajstore_recording_refused"]["error"] == "ReplacedParameterError"
