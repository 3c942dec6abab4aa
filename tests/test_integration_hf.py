"""The transformers callback against an independent record kept by hand inside the same run.

A tiny ``PreTrainedModel`` built from its config, trained by a real ``Trainer`` on the CPU
(SGD, gradient accumulation, clipping, a linear schedule, a frozen tensor, evaluation each
epoch). A plain callback copies the weights after every optimizer step and keeps the
Trainer's logs; the dataset notes which samples it served, so the test recomputes each step's
loss and gradient with plain torch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trajstore
from trajstore.validate import validate

from .integration_support import flat, require

transformers = require("transformers", "hf")
require("accelerate", "hf")
from trajstore.recorders.hf import TrajstoreCallback  # noqa: E402
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments  # noqa: E402
from transformers.modeling_outputs import SequenceClassifierOutput  # noqa: E402


class TinyConfig(PretrainedConfig):
    model_type = "trajstore-tiny"

    def __init__(self, n_in=4, n_hidden=8, n_classes=3, fail_at=None, **kw):
        super().__init__(**kw)
        self.n_in, self.n_hidden, self.n_classes, self.fail_at = n_in, n_hidden, n_classes, fail_at


class TinyClassifier(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        torch.manual_seed(3)
        self.body = torch.nn.Linear(config.n_in, config.n_hidden)
        self.head = torch.nn.Linear(config.n_hidden, config.n_classes)
        self.calls = 0

    def forward(self, x=None, labels=None):
        self.calls += 1
        if self.config.fail_at is not None and self.calls == self.config.fail_at:
            raise RuntimeError("simulated failure in the forward pass")
        logits = self.head(torch.tanh(self.body(x)))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class Samples(torch.utils.data.Dataset):
    """Labelled points; ``served`` lists the indices in the order the Trainer asked for them."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0).long()
        self.served: list[int] = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.served.append(int(i))
        return {"x": self.x[i], "labels": self.y[i]}


class HandRecord(TrainerCallback):
    def __init__(self):
        self.weights, self.logs, self.evals = [], [], []

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.weights.append(flat(model.parameters()))

    def on_step_end(self, args, state, control, model=None, **kw):
        self.weights.append(flat(model.parameters()))

    def on_log(self, args, state, control, logs=None, **kw):
        if "grad_norm" in logs:
            self.logs.append(dict(logs))

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        self.evals.append((state.global_step, dict(metrics)))


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def arguments(tmp_path, **kw):
    opts = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "num_train_epochs": 2,
        "gradient_accumulation_steps": 2,
        "learning_rate": 0.5,
        "optim": "sgd",
        "weight_decay": 0.0,
        "lr_scheduler_type": "linear",
        "max_grad_norm": 0.3,
        "logging_steps": 1,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }
    return TrainingArguments(**{**opts, **kw})


def window_loss(model, weights, xs, ys):
    """(mean of the micro-batch losses, as the Trainer backpropagates them; its trainable
    gradient) at flat ``weights``; float32 like training, accumulated in float64."""
    sizes = np.cumsum([p.numel() for p in model.parameters()])[:-1]
    params = [torch.tensor(v, requires_grad=True) for v in np.split(weights, sizes)]
    named = {n: p.reshape(q.shape) for (n, q), p in zip(model.named_parameters(), params, strict=True)}
    loss = sum(
        F.cross_entropy(torch.func.functional_call(model, named, (x,)).logits, y) / len(xs)
        for x, y in zip(xs, ys, strict=True)
    )
    trained = [p for p, q in zip(params, model.parameters(), strict=True) if q.requires_grad]
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, trained)])
    return float(loss.detach()), grad.double().numpy()


def test_trainer_run_matches_the_hand_record(tmp_path):
    model = TinyClassifier(TinyConfig())
    model.body.bias.requires_grad_(False)  # frozen: recorded, marked not trainable
    train, val, hand = Samples(48, 0), Samples(16, 1), HandRecord()
    cb = TrajstoreCallback(tmp_path / "run.zarr")
    Trainer(
        model=model,
        args=arguments(tmp_path),
        train_dataset=train,
        eval_dataset=val,
        compute_metrics=accuracy,
        callbacks=[cb, hand],
    ).train()
    with trajstore.open(tmp_path / "run.zarr") as t:
        w = np.asarray(t.weights[:])
        # 48 samples / 8 per batch = 6 batches an epoch, 2 per step: 3 steps an epoch, 2 epochs.
        assert t.steps.tolist() == list(range(7))
        assert np.array_equal(w, np.stack(hand.weights))  # bit-identical
        assert [s.name for s in t.layout] == [n for n, _ in model.named_parameters()]
        mask = t.trainable_mask(-1)
        assert not mask[t.layout["body.bias"].offset] and mask[t.layout["head.bias"].offset]
        loss = t.observable("loss")[1]
        assert t.observable_attrs("loss")["unit"] == "nats"  # cross-entropy, through the Trainer's / 2
        assert t.observable("epoch")[1].tolist() == [0, 0, 0, 1, 1, 1]
        lr_names = sorted(n for n in t.observables if n.startswith("lr"))
        lrs = {n: t.observable(n)[1] for n in lr_names}
        gsteps, gnorm = t.observable("grad_norm")
        vsteps, vloss = t.observable("val_loss")
        vacc = t.observable("val_accuracy")[1]
        assert t.observable_attrs("val_accuracy")["unit"] == "1"
        assert t.provenance["framework"]["transformers"] == transformers.__version__
        assert t.provenance["gradient_accumulation_steps"] == 2
    # The samples of each step's window, in the order the Trainer drew them.
    order = np.array(train.served[:96]).reshape(6, 2, 8)
    trained = np.concatenate([np.full(p.numel(), p.requires_grad) for p in model.parameters()])
    for s in range(1, 7):
        xs = [train.x[b] for b in order[s - 1]]
        ys = [train.y[b] for b in order[s - 1]]
        value, grad = window_loss(model, w[s - 1], xs, ys)
        assert loss[s - 1] == pytest.approx(value, rel=1e-6)  # the objective at the weights before
        assert gnorm[s - 1] == pytest.approx(np.linalg.norm(grad), rel=1e-5)  # before clipping
        lr = hand.logs[s - 1]["learning_rate"]
        step = w[s].astype(np.float64) - w[s - 1]
        clipped = grad * min(1.0, 0.3 / np.linalg.norm(grad))
        np.testing.assert_allclose(step[trained], -lr * clipped, atol=1e-6)
        assert not step[~trained].any()
    assert gsteps.tolist() == list(range(1, 7))
    np.testing.assert_allclose(gnorm, [h["grad_norm"] for h in hand.logs], rtol=1e-6)
    assert lr_names and all(v.tolist() == [h["learning_rate"] for h in hand.logs] for v in lrs.values())
    assert vsteps.tolist() == [3, 6] == [s for s, _ in hand.evals]
    np.testing.assert_allclose(vloss, [m["eval_loss"] for _, m in hand.evals], rtol=1e-6)
    np.testing.assert_allclose(vacc, [m["eval_accuracy"] for _, m in hand.evals])
    for s, v in zip(vsteps, vloss, strict=True):
        assert v == pytest.approx(window_loss(model, w[s], [val.x], [val.y])[0], rel=1e-5)
    report = validate(tmp_path / "run.zarr")
    assert report.valid, report.problems


def test_a_failed_train_keeps_every_record(tmp_path):
    """The Trainer has no failure callback: as a context manager the callback still closes the
    store, with the records of the steps before the failure."""
    model = TinyClassifier(TinyConfig(fail_at=7))  # the 7th forward pass: in step 4 (2 per step)
    hand = HandRecord()
    with pytest.raises(RuntimeError, match="simulated failure"):
        with TrajstoreCallback(tmp_path / "failed.zarr") as cb:
            Trainer(model=model, args=arguments(tmp_path, eval_strategy="no"), train_dataset=Samples(48, 0),
                    callbacks=[cb, hand]).train()
    with trajstore.open(tmp_path / "failed.zarr") as t:
        assert t.steps.tolist() == [0, 1, 2, 3]
        assert np.array_equal(np.asarray(t.weights[:]), np.stack(hand.weights))
    assert torch.Tensor.backward.__module__ == "torch._tensor"  # trajstore's loss capture is undone
    report = validate(tmp_path / "failed.zarr")
    assert report.valid, report.problems
