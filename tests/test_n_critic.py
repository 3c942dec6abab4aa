"""WGAN-style ``n_critic`` training (the critic k times, then the generator, every iteration) is
recorded as one record per iteration (docs/format.md 3.3, 1.2): a real tiny WGAN with weight
clipping, its weights copied by hand where each iteration ends, compared with the store.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Recorder
from trajstore.recorders import recorder as recorder_module
from trajstore.recorders.errors import IterationOrderError, WeightsChangedAfterStepError

import trajstore
from trajstore.validate import validate

from .test_record_patterns import load, record_cli

N_CRITIC = 3
CLIP = 0.05


def _flat(module: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().float().flatten() for p in module.parameters()]).numpy().copy()


def _clamp(critic: nn.Module) -> None:
    for p in critic.parameters():
        p.data.clamp_(-CLIP, CLIP)


def _wgan(path, iterations, *, record_at="step", clip_at="after"):
    """Train a WGAN (RMSprop, clipping after or before every critic step) under the Recorder API.
    Returns the weights training continues from at each record (by hand), the critic's k losses
    per iteration and the generator's loss per iteration."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    generator = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    gan = nn.ModuleDict({"critic": critic, "generator": generator})
    opt_d = torch.optim.RMSprop(critic.parameters(), lr=5e-3)
    opt_g = torch.optim.RMSprop(generator.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(1)
    ends, starts, d_losses, g_losses, grads = [], [], [], [], []
    with Recorder(gan, path, progress=False, record_at=record_at, gradients=True) as rec:
        rec.attach(opt_d, name="critic")
        rec.attach(opt_g, name="generator")
        ends.append(_flat(gan))
        for _ in range(iterations):
            losses = []
            for j in range(N_CRITIC):
                if clip_at == "before":  # the original WGAN code clamps as each critic step begins
                    _clamp(critic)
                if j == 0:
                    starts.append(_flat(gan))  # the weights the iteration's first step begins at
                real = torch.randn(16, 2, generator=g) + 2.0
                fake = generator(torch.randn(16, 3, generator=g)).detach()
                loss_d = -(critic(real).mean() - critic(fake).mean())
                opt_d.zero_grad()
                loss_d.backward()
                rec.log_loss(loss_d)
                grad_d = torch.cat([p.grad.flatten() for p in critic.parameters()]).numpy().copy()
                opt_d.step()
                losses.append(loss_d.item())
                if clip_at == "after":
                    _clamp(critic)
            loss_g = -critic(generator(torch.randn(16, 3, generator=g))).mean()
            opt_g.zero_grad()
            loss_g.backward()
            rec.log_loss(loss_g)
            grad_g = torch.cat([p.grad.flatten() for p in generator.parameters()]).numpy().copy()
            opt_g.step()
            grads.append(np.concatenate([grad_d, grad_g]))  # the critic's: its last step's
            ends.append(_flat(gan))
            d_losses.append(losses)
            g_losses.append(loss_g.item())
    if record_at == "next_step":  # each record: where the next iteration began (the last at close)
        expected = np.stack([*starts, ends[-1]])
    else:
        expected = np.stack(ends)
    return expected, np.array(d_losses), np.array(g_losses), np.stack(grads)


@pytest.mark.parametrize(
    "record_at,clip_at",
    [("step", "after"), ("next_step", "after"), ("next_step", "before")],
)
def test_wgan_n_critic_is_one_record_per_iteration(tmp_path, record_at, clip_at):
    path = tmp_path / "wgan.zarr"
    expected, d_losses, g_losses, grads = _wgan(path, 6, record_at=record_at, clip_at=clip_at)
    with trajstore.open(path) as t:
        assert t.steps.tolist() == list(range(7))  # 6 iterations, not 24 optimizer steps
        np.testing.assert_array_equal(t.weights[:], expected)
        np.testing.assert_array_equal(t.gradients.values[:], grads)
        steps, loss_d = t.observable("loss.critic")
        assert steps.tolist() == list(range(1, 7))
        np.testing.assert_allclose(loss_d, d_losses.mean(axis=1), rtol=1e-6)  # mean of its 3 losses
        assert t.observable_attrs("loss.critic")["evaluated_at"] == "within_step"
        assert "mean over its 3 steps" in t.observable_attrs("loss.critic")["description"]
        np.testing.assert_allclose(t.observable("loss.generator")[1], g_losses, rtol=1e-6)
        assert t.observable("lr.critic.0")[0].tolist() == list(range(1, 7))
        assert [o["name"] for o in t.provenance["optimizers"]] == ["critic", "generator"]
        assert "trajstore_recording_refused" not in t.metadata
    assert validate(path).valid


def test_wgan_clipping_between_iterations_is_still_refused_at_step(tmp_path):
    # clamping as the next iteration's critic step begins changes the weights after the record
    with pytest.raises(WeightsChangedAfterStepError):
        _wgan(tmp_path / "wgan.zarr", 4, clip_at="before")


def test_a_changed_pattern_after_the_learned_cycle_is_refused(tmp_path):
    torch.manual_seed(0)
    d, gen = nn.Linear(2, 1), nn.Linear(2, 2)
    opt_d = torch.optim.SGD(d.parameters(), lr=0.1)
    opt_g = torch.optim.SGD(gen.parameters(), lr=0.1)
    path = tmp_path / "run.zarr"
    with pytest.raises(IterationOrderError, match=r"critic x3, generator"):
        with Recorder(nn.ModuleDict({"d": d, "g": gen}), path, progress=False) as rec:
            rec.attach(opt_d, name="critic")
            rec.attach(opt_g, name="generator")
            for n_critic in (3, 3, 2):  # the third iteration's generator steps early
                for _ in range(n_critic):
                    d(torch.randn(4, 2)).sum().backward()
                    opt_d.step()
                gen(torch.randn(4, 2)).sum().backward()
                opt_g.step()
    with trajstore.open(path) as t:
        assert t.steps.tolist() == [0, 1, 2]
        assert t.metadata["trajstore_recording_refused"]["error"] == "IterationOrderError"


def test_an_attached_optimizer_that_never_steps_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder_module, "FIRST_ITERATION_MAX_STEPS", 20)
    model = nn.Linear(2, 1)
    opt, idle = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(IterationOrderError, match="idle.*did not step in the first 20"):
        with Recorder(model, tmp_path / "run.zarr", progress=False) as rec:
            rec.attach(opt, name="sgd")
            rec.attach(idle, name="idle")
            for _ in range(30):
                model(torch.randn(4, 2)).sum().backward()
                opt.step()


WGAN_SCRIPT = """
torch.manual_seed(0)
critic = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
gen = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
opt_d = torch.optim.RMSprop(critic.parameters(), lr=5e-3)
opt_g = torch.optim.RMSprop(gen.parameters(), lr=5e-3)
g = torch.Generator().manual_seed(1)
wd, wg = [flat(critic.parameters())], [flat(gen.parameters())]
for i in range(4):
    for _ in range(3):
        real = torch.randn(16, 2, generator=g) + 2.0
        loss = -(critic(real).mean() - critic(gen(torch.randn(16, 3, generator=g)).detach()).mean())
        opt_d.zero_grad(); loss.backward(); opt_d.step()
        for p in critic.parameters():
            p.data.clamp_(-0.05, 0.05)
    loss = -critic(gen(torch.randn(16, 3, generator=g))).mean()
    opt_g.zero_grad(); loss.backward(); opt_g.step()
    wd.append(flat(critic.parameters())); wg.append(flat(gen.parameters()))
save(wd=np.stack(wd), wg=np.stack(wg))
"""


def test_trajstore_record_refuses_n_critic_naming_the_flag_and_records_it_with_the_flag(tmp_path):
    p, out, _ = record_cli(tmp_path, WGAN_SCRIPT, "--record-at", "next-step", name="plain")
    assert p.returncode != 0
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "--all-optimizers-per-iteration" in err[0], p.stderr
    p, out, ref = record_cli(tmp_path, WGAN_SCRIPT, "--all-optimizers-per-iteration", name="flag")
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.steps.tolist() == list(range(5))
        d = [s for s in t.layout if s.name.startswith("Sequential0.")]  # the critic: made first
        g = [s for s in t.layout if s.name.startswith("Sequential1.")]
        w = t.weights[:]
        cols = lambda specs: np.concatenate([np.arange(s.offset, s.stop) for s in specs])  # noqa: E731
        np.testing.assert_array_equal(w[:, cols(d)], load(ref, "wd"))
        np.testing.assert_array_equal(w[:, cols(g)], load(ref, "wg"))
    assert validate(out).valid
