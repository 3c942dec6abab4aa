"""The Lightning callback against an independent record kept by hand inside the same run.

Real tiny ``Trainer.fit`` runs on the CPU. A second, plain callback copies every parameter
after each optimizer step (``trainer.global_step`` grew) and keeps the batches; the test then
recomputes each loss and gradient from those copies with plain torch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trajstore
from trajstore.validate import validate

from .integration_support import flat, require

pl = require("lightning.pytorch", "lightning")
from trajstore.recorders.errors import UnsupportedPatternError  # noqa: E402
from trajstore.recorders.lightning import TrajstoreCallback  # noqa: E402

from trajstore.errors import RecordingError  # noqa: E402


def data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())


def loader(ds, batch=8):
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False)


class Classifier(pl.LightningModule):
    def __init__(self, optimizer="sgd", lr=0.1):
        super().__init__()
        torch.manual_seed(1)
        self.body = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 3)
        self.body.bias.requires_grad_(False)  # frozen: recorded, marked not trainable
        self.kind, self.lr = optimizer, lr

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))

    def training_step(self, batch, idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if self.kind == "lbfgs":
            return torch.optim.LBFGS(params, lr=self.lr, max_iter=4)
        return torch.optim.SGD(params, lr=self.lr)


class HandRecord(pl.Callback):
    """Independent record: weights after every optimizer step, and every training batch."""

    def __init__(self):
        self.weights, self.batches, self.windows = [], [], []

    def on_train_start(self, trainer, module):
        self.weights.append(flat(module.parameters()))
        self.windows.append([])
        self.seen = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, idx):
        self.windows[-1].append(batch)
        if trainer.global_step > self.seen:  # optimizer steps happened in this batch
            self.seen = trainer.global_step
            self.weights.append(flat(module.parameters()))
            self.windows.append([])


def trainer(callbacks, **kw):
    opts = {
        "max_epochs": 2,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(callbacks=callbacks, **{**opts, **kw})


def loss_at(module, weights, batches):
    """Sum over ``batches`` of (batch loss / their number), at the flat ``weights``, in float64."""
    params, offset = {}, 0
    for name, p in module.named_parameters():
        params[name] = torch.from_numpy(weights[offset : offset + p.numel()]).reshape(p.shape)
        offset += p.numel()
    out = 0.0
    for x, y in batches:
        logits = torch.func.functional_call(module, params, (x,))
        out += float(F.cross_entropy(logits, y)) / len(batches)
    return out


def test_sgd_run_matches_the_hand_record(tmp_path):
    module, hand = Classifier(), HandRecord()
    cb = TrajstoreCallback(tmp_path / "run.zarr", gradients=True)
    trainer([cb, hand]).fit(module, loader(data()), loader(data(16, seed=1)))
    with trajstore.open(tmp_path / "run.zarr") as t:
        w = np.asarray(t.weights[:])
        assert t.steps.tolist() == list(range(13))  # 6 batches x 2 epochs, + the initial weights
        assert np.array_equal(w, np.stack(hand.weights))  # bit-identical
        assert [s.name for s in t.layout] == [n for n, _ in module.named_parameters()]
        mask = t.trainable_mask(-1)
        assert not mask[t.layout["body.bias"].offset] and mask[t.layout["head.weight"].offset]
        steps, loss = t.observable("loss")
        assert steps.tolist() == list(range(1, 13))
        assert t.observable_attrs("loss")["unit"] == "nats"  # a cross-entropy, through Lightning's /1
        for s in range(1, 13):  # paired with the weights before the step, as pre_step says
            assert loss[s - 1] == pytest.approx(loss_at(module, w[s - 1], hand.windows[s - 1]), rel=1e-6)
            assert loss[s - 1] != pytest.approx(loss_at(module, w[s], hand.windows[s - 1]), rel=1e-6)
        assert t.observable("lr")[1].tolist() == [0.1] * 12
        assert t.observable("epoch")[1].tolist() == [0] * 6 + [1] * 6
        assert t.observable("closure_evaluations")[1].tolist() == [1] * 12
        # SGD: the stored gradient is the one the update used, and grad_norm is its norm.
        assert t.gradients.steps.tolist() == list(range(1, 13))
        grads = np.asarray(t.gradients.values[:], dtype=np.float64)
        np.testing.assert_allclose(-grads * 0.1, np.diff(w.astype(np.float64), axis=0), atol=2e-7)
        gsteps, gnorm = t.observable("grad_norm")
        assert gsteps.tolist() == list(range(1, 13))
        np.testing.assert_allclose(gnorm, np.linalg.norm(grads, axis=1), rtol=1e-6)
        assert t.observable_attrs("grad_norm")["evaluated_at"] == "pre_step"
        # Validation after each epoch, at the weights of the epoch's last record.
        vsteps, vloss = t.observable("val_loss")
        assert vsteps.tolist() == [6, 12]
        val = list(loader(data(16, seed=1)))
        for s, v in zip(vsteps, vloss, strict=True):
            assert v == pytest.approx(loss_at(module, w[s], val), rel=1e-6)
        assert t.observable("val_accuracy")[0].tolist() == [6, 12]
        assert t.observable_attrs("val_accuracy")["unit"] == "1"
        assert t.observable_attrs("val_loss").get("unit", "") == ""  # the user's loss: unit unknown
        prov = t.provenance
        assert prov["framework"]["lightning"] == pl.__version__
        assert [o["name"] for o in prov["optimizers"]] == ["opt0"]
        assert prov["model_class"].endswith("Classifier")
    report = validate(tmp_path / "run.zarr")
    assert report.valid, report.problems


def test_accumulation_and_clipping(tmp_path):
    """accumulate_grad_batches=2: one record per two batches; loss = mean micro-batch loss at
    the weights before; grad_norm = the accumulated gradient's norm before clipping."""
    module, hand = Classifier(lr=0.5), HandRecord()
    cb = TrajstoreCallback(tmp_path / "acc.zarr")
    trainer([cb, hand], accumulate_grad_batches=2, gradient_clip_val=0.05).fit(module, loader(data()))
    with trajstore.open(tmp_path / "acc.zarr") as t:
        w = np.asarray(t.weights[:])
        assert t.steps.tolist() == list(range(7))
        assert np.array_equal(w, np.stack(hand.weights))
        loss, gnorm = t.observable("loss")[1], t.observable("grad_norm")[1]
    for s in range(1, 7):
        window = hand.windows[s - 1]
        assert len(window) == 2
        assert loss[s - 1] == pytest.approx(loss_at(module, w[s - 1], window), rel=1e-6)
        params = [torch.tensor(v, requires_grad=True) for v in np.split(w[s - 1], _offsets(module))]
        value = _functional_loss(module, params, window)
        trained = [p for p, q in zip(params, module.parameters(), strict=True) if q.requires_grad]
        grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, trained)])
        assert gnorm[s - 1] == pytest.approx(float(grad.norm()), rel=1e-5)
        step = np.linalg.norm(w[s].astype(np.float64) - w[s - 1])
        assert step == pytest.approx(0.5 * min(gnorm[s - 1], 0.05), rel=1e-4)  # clipped update


def _offsets(module):
    return np.cumsum([p.numel() for p in module.parameters()])[:-1]


def _functional_loss(module, params, batches):
    named = {
        n: p.reshape(q.shape) for (n, q), p in zip(module.named_parameters(), params, strict=True)
    }
    return sum(F.cross_entropy(torch.func.functional_call(module, named, (x,)), y) for x, y in batches) / len(
        batches
    )


def test_lbfgs_closure_is_one_record_with_the_first_evaluation_as_loss(tmp_path):
    module, hand = Classifier("lbfgs", lr=0.5), HandRecord()
    cb = TrajstoreCallback(tmp_path / "lbfgs.zarr", gradients=True)
    trainer([cb, hand], max_epochs=1).fit(module, loader(data(24)))
    with trajstore.open(tmp_path / "lbfgs.zarr") as t:
        w = np.asarray(t.weights[:])
        assert t.steps.tolist() == [0, 1, 2, 3]
        assert np.array_equal(w, np.stack(hand.weights))
        loss = t.observable("loss")[1]
        evals = t.observable("closure_evaluations")[1]
        assert (evals > 1).all()
        assert t.gradient_source == "first_closure_evaluation"
        assert len(t.observable("grad_norm")[1]) == 3  # once per step, not per evaluation
    for s in range(1, 4):
        assert loss[s - 1] == pytest.approx(loss_at(module, w[s - 1], hand.windows[s - 1]), rel=1e-6)


class TwoOptimizers(pl.LightningModule):
    """Manual optimization, a GAN-like pattern: two optimizers, each steps once per batch."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.gen, self.disc = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
        self.automatic_optimization = False

    def training_step(self, batch, idx):
        x, _ = batch
        opt_d, opt_g = self.optimizers()
        loss_d = self.disc(self.gen(x).detach()).pow(2).mean() + (self.disc(x) - 1).pow(2).mean()
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        loss_g = (self.disc(self.gen(x)) - 1).pow(2).mean()
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()

    def configure_optimizers(self):
        disc = torch.optim.SGD(self.disc.parameters(), lr=0.05)
        return [disc, torch.optim.SGD(self.gen.parameters(), lr=0.02)]


def test_two_optimizers_one_record_per_iteration(tmp_path):
    module, hand = TwoOptimizers(), HandRecord()
    cb = TrajstoreCallback(tmp_path / "gan.zarr", optimizer_names=["disc", "gen"])
    trainer([cb, hand], max_epochs=1).fit(module, loader(data(32)))
    with trajstore.open(tmp_path / "gan.zarr") as t:
        # Lightning counts both optimizers' steps in global_step: 2 per batch.
        assert t.steps.tolist() == list(range(5))
        assert np.array_equal(np.asarray(t.weights[:]), np.stack(hand.weights))
        names = set(t.observables)
        assert {"loss.disc", "loss.gen", "lr.disc.0", "lr.gen.0", "grad_norm.disc", "grad_norm.gen"} <= names
        assert "loss" not in names and "lr" not in names
        assert t.observable_attrs("loss.gen")["evaluated_at"] == "within_step"
        assert t.observable_attrs("grad_norm.gen")["evaluated_at"] == "within_step"
        assert t.observable_attrs("grad_norm.disc")["evaluated_at"] == "pre_step"
        assert t.observable_attrs("loss.disc").get("unit", "") == ""  # an MSE: no unit
        assert t.observable("lr.gen.0")[1].tolist() == [0.02] * 4
        assert [o["name"] for o in t.provenance["optimizers"]] == ["disc", "gen"]


def test_refusals_are_one_line(tmp_path):
    from trajstore.recorders import Recorder

    module = Classifier()
    with Recorder(torch.nn.Linear(2, 2), tmp_path / "other.zarr", progress=False):
        with pytest.raises(UnsupportedPatternError, match="already recording") as err:
            trainer([TrajstoreCallback(tmp_path / "x.zarr")], max_epochs=1).fit(module, loader(data(16)))
    assert "\n" not in str(err.value)
    (tmp_path / "taken.zarr").mkdir()
    with pytest.raises(RecordingError, match="cannot record into") as err:
        trainer([TrajstoreCallback(tmp_path / "taken.zarr")], max_epochs=1).fit(module, loader(data(16)))
    assert "\n" not in str(err.value)
    # Nothing of the refused recorder stays behind: the next callback records.
    again = TrajstoreCallback(tmp_path / "taken.zarr", overwrite=True)
    trainer([again], max_epochs=1).fit(module, loader(data(16)))
    with trajstore.open(tmp_path / "taken.zarr") as t:
        assert t.steps.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="optimizer_names must give 1"):
        trainer([TrajstoreCallback(tmp_path / "y.zarr", optimizer_names=["a", "b"])], max_epochs=1).fit(
            module, loader(data(16))
        )


class Overflowing(Classifier):
    """Batch 2's loss is infinite: the GradScaler skips that step."""

    def training_step(self, batch, idx):
        loss = super().training_step(batch, idx)
        return loss * float("inf") if idx == 2 else loss


def test_amp_loss_unscaled_and_skipped_step_recorded_unchanged(tmp_path):
    """16-mixed with a real GradScaler (on the CPU): the loss is stored unscaled; the skipped
    step counts (``skipped`` = 1) and its record holds the unchanged weights (format.md 3.3,
    1.2), as under trajstore record."""
    from lightning.pytorch.plugins import MixedPrecision

    module, hand = Overflowing(), HandRecord()
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    cb = TrajstoreCallback(tmp_path / "amp.zarr")
    trainer([cb, hand], max_epochs=1, plugins=[plugin]).fit(module, loader(data(40)))
    assert np.array_equal(hand.weights[3], hand.weights[2])  # Lightning counted the skipped step
    with trajstore.open(tmp_path / "amp.zarr") as t:
        assert t.steps.tolist() == [0, 1, 2, 3, 4, 5]
        assert np.array_equal(np.asarray(t.weights[:]), np.stack(hand.weights))
        assert t.observable("skipped")[0].tolist() == [3]
        steps, loss = t.observable("loss")
        assert t.observable_attrs("loss")["unit"] == "nats"  # seen through the scaler's product
        w = np.asarray(t.weights[:])
    assert steps.tolist() == [1, 2, 3, 4, 5] and np.isinf(loss[2])
    with torch.autocast("cpu", dtype=torch.float16):  # the forward pass ran under autocast
        for s, record in ((1, 0), (2, 1), (5, 4)):
            assert loss[s - 1] == pytest.approx(loss_at(module, w[record], hand.windows[s - 1]), rel=1e-3)
