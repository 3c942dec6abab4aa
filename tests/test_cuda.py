"""Recording on a GPU: the asynchronous pinned copies must hold exactly the weights of each step.

Skipped where no CUDA device is present (CI); run on a lent GPU by bench/gpu_check.sh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Recorder

import trajstore
from trajstore.validate import validate

from .conftest import run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROOT = Path(__file__).resolve().parents[1]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    ).cuda()


@pytest.mark.parametrize("pool_size", [1, 4])
def test_cuda_records_equal_hand_copied_weights_and_gradients(tmp_path, pool_size):
    """Each record and gradient equals a synchronous ``.cpu()`` copy taken right after the step,
    even when the ring of pinned buffers is reused every step (pool 1) or runs ahead (pool 4)."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)  # large steps: a stale copy would differ
    weights = [torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()]
    grads = []
    g = torch.Generator(device="cuda").manual_seed(1)
    path = tmp_path / "g.zarr"
    with Recorder(model, path, gradients=True, pool_size=pool_size, progress=False) as rec:
        rec.attach(opt)
        for _ in range(40):
            x = torch.randn(32, 3, 8, 8, device="cuda", generator=g)
            y = torch.randint(0, 10, (32,), device="cuda", generator=g)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)  # grads reallocated each step: exercises stream safety
            loss.backward()
            rec.log_loss(loss)
            grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).cpu().numpy())
            opt.step()
            weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy())
    with trajstore.open(path) as t:
        assert t.steps.tolist() == list(range(41))
        np.testing.assert_array_equal(t.weights[:], np.stack(weights))
        np.testing.assert_array_equal(t.gradients.values[:], np.stack(grads))
        assert t.provenance["device"].startswith("cuda")
    assert validate(path).valid


def test_cuda_half_precision_parameters_are_recorded_as_float32(tmp_path):
    model = _model().half()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "h.h5"
    ref = []
    with Recorder(model, path, progress=False) as rec:
        rec.attach(opt)
        for _ in range(5):
            x = torch.randn(8, 3, 8, 8, device="cuda", dtype=torch.half)
            opt.zero_grad()
            model(x).float().pow(2).mean().backward()
            opt.step()
            ref.append(torch.cat([p.detach().reshape(-1).float() for p in model.parameters()]).cpu().numpy())
    with trajstore.open(path) as t:
        assert t.weights.dtype == np.float32
        np.testing.assert_array_equal(t.weights[1:], np.stack(ref))


def test_cuda_record_cli_on_cifar_example(tmp_path):
    out = tmp_path / "c.zarr"
    p = run_cli(
        "record",
        "--gradients",
        "-o",
        out,
        ROOT / "examples" / "train_cifar.py",
        "--",
        "--synthetic",
        "--model",
        "resnet20",
        "--steps",
        "30",
        "--synthetic-size",
        "512",
        "--device",
        "cuda",
    )
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.n_params == 272_474 and t.steps.tolist() == list(range(31))
        assert np.isfinite(t.weights[:]).all() and np.isfinite(t.gradients.values[:]).all()
        assert np.linalg.norm(t.weights[30] - t.weights[0]) > 0
    assert validate(out).valid


AMP_SCRIPT = """
import threading, warnings, torch

torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).cuda()
opt = torch.optim.SGD(m.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cuda")
x = torch.randn(256, 64, device="cuda")
y = torch.randint(0, 10, (256,), device="cuda")

def step():
    with torch.autocast("cuda", dtype=torch.float16):
        loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()

for _ in range(5):
    step()
torch.cuda.synchronize()
main_thread_syncs = []

def seen(message, category, filename, lineno, file=None, line=None):
    # Called in the thread that synchronised: the writer thread may wait, training may not.
    if "synchroniz" in str(message) and threading.current_thread() is threading.main_thread():
        main_thread_syncs.append(f"{filename}:{lineno}")

with warnings.catch_warnings():
    warnings.simplefilter("always")
    warnings.showwarning = seen
    torch.cuda.set_sync_debug_mode("warn")
    for _ in range(30):
        step()
    torch.cuda.set_sync_debug_mode("default")
print("MAIN_THREAD_SYNCS", len(main_thread_syncs), sorted(set(main_thread_syncs)))
"""


def test_cuda_recording_adds_no_synchronisation_to_the_training_thread(tmp_path, capsys):
    """AMP with the GradScaler, recorded by ``trajstore record``: the training thread makes no
    more synchronising calls than without recording (torch's sync debug mode reports each; the
    GradScaler's own check for infinite gradients is one per step in both)."""
    exec(compile(AMP_SCRIPT, "amp-plain", "exec"), {})
    plain = capsys.readouterr().out
    script = tmp_path / "amp.py"
    script.write_text(AMP_SCRIPT)
    out = tmp_path / "amp.zarr"
    p = run_cli("record", "-o", out, script)
    assert p.returncode == 0, p.stderr
    count = {}
    for name, text in (("plain", plain), ("recorded", p.stdout)):
        line = next(ln for ln in text.splitlines() if ln.startswith("MAIN_THREAD_SYNCS"))
        count[name] = int(line.split()[1])
    assert count["recorded"] <= count["plain"], (plain, p.stdout)
    with trajstore.open(out) as t:
        assert t.n_records == 36  # the initial weights, then every step (1.2: skipped ones too)
        steps, loss = t.observable("loss")
        assert len(loss) == 35 and np.all((loss > 0) & (loss < 10))  # unscaled by the GradScaler


def test_cuda_weight_clipping_after_step_is_refused_and_recorded_at_next_step(tmp_path):
    """On a GPU the post-step check compares on the device and reads the result one iteration
    later: clipping after every step is still refused; at next_step the records hold it."""
    from trajstore.recorders.errors import WeightsChangedAfterStepError

    def run(path, record_at):
        model = _model()
        opt = torch.optim.RMSprop(model.parameters(), lr=5e-3)
        g = torch.Generator(device="cuda").manual_seed(1)
        snaps = []
        with Recorder(model, path, progress=False, record_at=record_at) as rec:
            rec.attach(opt)
            snaps.append(torch.cat([p.detach().flatten() for p in model.parameters()]).cpu().numpy())
            for _ in range(6):
                loss = model(torch.randn(4, 3, 8, 8, device="cuda", generator=g)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                for p in model.parameters():
                    p.data.clamp_(-0.05, 0.05)
                snaps.append(torch.cat([p.detach().flatten() for p in model.parameters()]).cpu().numpy())
        return np.stack(snaps)

    with pytest.raises(WeightsChangedAfterStepError):
        run(tmp_path / "step.zarr", "step")
    ref = run(tmp_path / "next.zarr", "next_step")
    with trajstore.open(tmp_path / "next.zarr") as t:
        np.testing.assert_array_equal(np.asarray(t.weights[:]), ref)
