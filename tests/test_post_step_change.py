"""Code that changes the weights after ``optimizer.step()`` returns (WGAN weight clipping, a
projection, a hand-written weight decay, a checkpoint loaded after attach): records taken when
step() returns would never hold the weights training continues from. Taken at step, such runs
are refused in one line; ``record_at="next_step"`` records them faithfully.

Every run copies its weights by hand when training continues from them and compares the store.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Recorder
from trajstore.recorders.errors import WeightsChangedAfterStepError

import trajstore
from trajstore.validate import validate

from .test_record_patterns import load, record, record_cli


def _flat(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().float().flatten() for p in model.parameters()]).numpy().copy()


def _critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))


def _train(path, model, steps, after_step, *, every=1, record_at="step", before=None):
    """RMSprop on a critic; ``after_step(model)`` runs after each step. Returns the weights each
    iteration ended with, as training continues from them (after ``after_step``), and the
    buffers right after each step."""
    opt = torch.optim.RMSprop(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(1)
    weights, buffers = [], []
    with Recorder(model, path, progress=False, every=every, buffers=True, record_at=record_at) as rec:
        rec.attach(opt)
        if before is not None:
            before(model)
        weights.append(_flat(model))
        for _ in range(steps):
            loss = -model(torch.randn(8, 4, generator=g)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            floats = [b.flatten() for b in model.buffers() if b.is_floating_point()]
            buffers.append(torch.cat(floats).numpy().copy())
            after_step(model)
            weights.append(_flat(model))
    return np.stack(weights), np.stack(buffers)


def clip(model):  # WGAN, in place
    with torch.no_grad():
        for p in model.parameters():
            p.clamp_(-0.05, 0.05)


def clip_data(model):  # WGAN, as most scripts write it: .data, which no version counter sees
    for p in model.parameters():
        p.data.clamp_(-0.05, 0.05)


def project(model):  # max-norm constraint on the first layer, storage replaced
    w = model[0].weight
    w.data = w.data * (0.3 / w.data.norm(dim=1, keepdim=True)).clamp(max=1.0)


@pytest.mark.parametrize("after_step", [clip, clip_data, project], ids=lambda f: f.__name__)
def test_weights_changed_after_step_are_refused_at_step(tmp_path, after_step):
    path = tmp_path / "run.zarr"
    with pytest.raises(WeightsChangedAfterStepError) as info:
        _train(path, _critic(), 8, after_step)
    message = str(info.value)
    assert "\n" not in message and "optimizer.step() of iteration 1 returned" in message
    assert "--record-at next-step" in message
    with trajstore.open(path) as t:  # the records before it stay, and the store says why
        assert t.n_records >= 1
        assert t.metadata["trajstore_recording_refused"]["error"] == "WeightsChangedAfterStepError"
    assert validate(path).valid


@pytest.mark.parametrize("after_step", [clip, clip_data, project], ids=lambda f: f.__name__)
def test_record_at_next_step_holds_the_weights_training_continues_from(tmp_path, after_step):
    path = tmp_path / "run.zarr"
    weights, buffers = _train(path, _critic(), 8, after_step, record_at="next_step")
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.steps, np.arange(9))
        np.testing.assert_array_equal(np.asarray(t.weights[:]), weights)
        # buffers are taken when the iteration ends, before the next forward pass changes them
        np.testing.assert_array_equal(np.asarray(t.buffers.values[1:]), buffers)
        assert t.attrs["weights_taken"] == "next_step"
    assert np.any(weights[1:] != weights[:-1])
    assert validate(path).valid


def test_record_at_next_step_with_a_schedule(tmp_path):
    path = tmp_path / "run.zarr"
    weights, _ = _train(path, _critic(), 9, clip, every=3, record_at="next_step")
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.steps, [0, 3, 6, 9])
        np.testing.assert_array_equal(np.asarray(t.weights[:]), weights[::3])


def test_a_schedule_does_not_hide_code_that_runs_after_every_step(tmp_path):
    with pytest.raises(WeightsChangedAfterStepError):
        _train(tmp_path / "run.zarr", _critic(), 8, clip, every=4)


def test_weights_loaded_after_the_recorder_took_step_0_are_refused(tmp_path):
    def load_checkpoint(model):
        with torch.no_grad():
            model[0].weight.mul_(0.5)

    with pytest.raises(WeightsChangedAfterStepError) as info:
        _train(tmp_path / "run.zarr", _critic(), 3, lambda m: None, before=load_checkpoint)
    assert "step 0" in str(info.value)


def test_a_refusal_the_script_catches_stops_recording_and_is_kept(tmp_path):
    path = tmp_path / "run.zarr"
    model = _critic()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    refusals = 0
    with Recorder(model, path, progress=False) as rec:
        rec.attach(opt)
        for _ in range(8):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            try:
                opt.step()
            except WeightsChangedAfterStepError:
                refusals += 1
            clip(model)
    assert refusals == 1  # the next steps train on, unrecorded
    with trajstore.open(path) as t:
        assert t.n_records == 2
        assert t.metadata["trajstore_recording_refused"]["error"] == "WeightsChangedAfterStepError"


def test_resume_keeps_the_kind_of_record(tmp_path):
    path = tmp_path / "run.zarr"
    _train(path, _critic(), 3, lambda m: None)
    with pytest.raises(Exception, match="--record-at step"):
        _train_resumed(path, "next_step")


def _train_resumed(path, record_at):
    model = _critic()
    with trajstore.open(path) as t:
        last = torch.from_numpy(np.asarray(t.weights[-1]).copy())
    torch.nn.utils.vector_to_parameters(last, model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(model, path, progress=False, resume=True, record_at=record_at) as rec:
        rec.attach(opt)


def test_plain_training_is_recorded_at_step_as_before(tmp_path):
    path = tmp_path / "run.zarr"
    weights, _ = _train(path, _critic(), 40, lambda m: None)  # checked at iterations 0-3 and 32
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(np.asarray(t.weights[:]), weights)
        assert "weights_taken" not in t.attrs


CLIPPED_SCRIPT = """
torch.manual_seed(0)
critic = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.RMSprop(critic.parameters(), lr=5e-3)
g = torch.Generator().manual_seed(1)
snaps = [flat(critic.parameters())]
for i in range(6):
    loss = -critic(torch.randn(8, 4, generator=g)).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    for p in critic.parameters():
        p.data.clamp_(-0.05, 0.05)
    snaps.append(flat(critic.parameters()))
save(w=np.stack(snaps))
"""


def test_zero_code_recording_refuses_clipping_and_records_it_at_next_step(tmp_path):
    p, out, _ = record_cli(tmp_path, CLIPPED_SCRIPT, name="at_step")
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr and "--record-at next-step" in lines[-1]
    code, out, ref = record(tmp_path, CLIPPED_SCRIPT, name="next", record_at="next_step")
    assert code == 0
    with trajstore.open(out) as t:
        np.testing.assert_array_equal(np.asarray(t.weights[:]), load(ref, "w"))
    from trajstore.info import format_summary, summarize_store

    summary = summarize_store(str(out))  # info says how the records were taken
    assert summary["weights_taken"] == "next_step"
    assert "when the next iteration began" in format_summary(summary)


def test_clipping_that_starts_late_is_caught_at_a_checked_iteration(tmp_path):
    seen = {"i": 0}

    def clip_after_warm_up(model):
        seen["i"] += 1
        if seen["i"] > 10:
            clip(model)

    with pytest.raises(WeightsChangedAfterStepError) as info:
        _train(tmp_path / "run.zarr", _critic(), 400, clip_after_warm_up)
    message = str(info.value)  # checks at random, one iteration in 32 on average
    seen = int(message.split(" of iteration ")[1].split()[0])
    assert 10 < seen < 400
    # the records between the last check that passed and the refusal are named as doubtful
    assert f"records after iteration {seen - 1}" not in message and "records after iteration" in message


def test_a_change_every_few_iterations_cannot_stay_between_the_checks(tmp_path):
    """Checks on fixed multiples would never see a change every 32nd iteration at an odd offset."""
    seen = {"i": 0}

    def every_32nd(model):
        seen["i"] += 1
        if seen["i"] % 32 == 7:
            clip(model)

    with pytest.raises(WeightsChangedAfterStepError):
        _train(tmp_path / "run.zarr", _critic(), 3000, every_32nd)


def test_a_large_model_is_compared_on_every_value_in_turn(monkeypatch):
    """Past MAX_VALUES, each check compares one interleaved subset: a change of one fixed value
    on every iteration is still seen within ``stride`` checks."""
    from trajstore.recorders import post_step_check

    monkeypatch.setattr(post_step_check, "MAX_VALUES", 100)
    flat = [torch.randn(333), torch.randn(50)]
    check = post_step_check.PostStepCheck([333, 50], torch.device("cpu"), every=1, first=0)
    assert check.stride == 4
    with pytest.raises(WeightsChangedAfterStepError):
        for i in range(check.stride):
            check.at_end(i + 1, flat)
            flat[0][333 - 1] += 1.0  # a position only one subset holds
            check.at_start(flat)


def test_catalog_says_a_refused_run_is_not_complete(tmp_path):
    from trajstore.sharing.catalog import row

    _train(tmp_path / "plain.zarr", _critic(), 3, lambda m: None)
    with pytest.raises(WeightsChangedAfterStepError):
        _train(tmp_path / "clipped.zarr", _critic(), 8, clip)
    assert row(str(tmp_path / "plain.zarr"))["recording"] is None
    assert row(str(tmp_path / "clipped.zarr"))["recording"] == (
        "refused at iteration 2 (WeightsChangedAfterStepError)"
    )
