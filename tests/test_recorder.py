"""Recording real PyTorch training on the CPU."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Every, LogSpaced, Ranges, Recorder, parse_schedule

import trajstore
from trajstore.validate import validate

from .conftest import cli_argv, run_cli

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "train_digits.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_digits", DIGITS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference_digits_run(epochs: int, seed: int = 0):
    """The example's training loop, copying model.parameters() by hand after each step."""
    ex = load_example()
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    xtr, ytr, _, _ = ex.load(seed)
    model = ex.DigitsCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xtr, ytr),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    snap = [torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()]).numpy()]
    losses = []
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            losses.append(loss.item())
            loss.backward()
            opt.step()
            snap.append(torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()]).numpy())
        model.eval()
        with torch.no_grad():
            model(ex.load(seed)[2])  # the script evaluates too; no RNG involved
        model.train()
    names = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    return np.stack(snap), np.array(losses), names


@pytest.mark.slow
def test_record_digits_matches_hand_copied_reference(tmp_path):
    out = tmp_path / "d.zarr"
    p = run_cli("record", "-o", out, DIGITS, "--", "--epochs", "3", "--quiet")
    assert p.returncode == 0, p.stderr
    ref_w, ref_loss, names = reference_digits_run(3)
    with trajstore.open(out) as t:
        assert t.n_records == len(ref_w) == 1 + 3 * 45
        np.testing.assert_array_equal(t.steps, np.arange(len(ref_w)))
        assert [(s.name, s.shape) for s in t.layout] == names
        np.testing.assert_array_equal(t.weights[:], ref_w)
        steps, loss = t.observable("loss")
        np.testing.assert_array_equal(steps, np.arange(1, len(ref_w)))
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
        assert t.observable_attrs("loss")["evaluated_at"] == "pre_step"
        es, ev = t.observable("epoch")
        assert ev[0] == 0 and ev[-1] == 2 and np.all(np.diff(ev) >= 0)
        assert t.observable("lr")[1][0] == 0.1
        prov = t.provenance
        assert prov["model_class"].endswith("DigitsCNN") and prov["optimizer_class"] == "torch.optim.sgd.SGD"
        assert prov["optimizer"][0]["lr"] == 0.1 and prov["framework"]["torch"] == torch.__version__
        assert prov["script"].endswith("train_digits.py") and "--epochs 3" in prov["command_line"]
    assert validate(out).valid


def test_schedules_select_what_they_promise():
    assert Every(3).steps_up_to(10) == [0, 3, 6, 9]
    assert LogSpaced(4).steps_up_to(100) == [0, 1, 2, 3, 6, 10, 18, 32, 56, 100]
    r = parse_schedule("ranges:0:10:1,10::5")
    assert isinstance(r, Ranges) and r.steps_up_to(30) == list(range(10)) + [10, 15, 20, 25, 30]
    assert parse_schedule("every:7") == Every(7) and parse_schedule("log:3") == LogSpaced(3)
    for bad in ("every:0", "sometimes", "ranges:5:2:1", "log:x"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def _train(model, opt, steps, rec=None, seed=0, scaler=None):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=g)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        if rec is not None:
            rec.log_loss(loss)
        loss.backward()
        opt.step()


def test_recorder_api_schedule_gradients_buffers_frozen(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 1))
    model[2].bias.requires_grad_(False)  # frozen: recorded, marked not trainable
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.1},
            {"params": [model[1].weight, model[1].bias, model[2].weight], "lr": 0.01},
        ]
    )
    path = tmp_path / "r.h5"
    means = {}
    grads, weights = (
        {},
        {0: torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])},
    )
    with Recorder(
        model, path, schedule="ranges:0:5:1,5::3", gradients=True, buffers=True, metadata={"purpose": "test"}
    ) as rec:
        rec.attach(opt)
        g = torch.Generator().manual_seed(1)
        for step in range(1, 13):
            x = torch.randn(8, 4, generator=g)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            rec.log_loss(loss)
            # a frozen parameter's update used no gradient: 0
            grads[step] = torch.cat(
                [
                    p.grad.reshape(-1).clone() if p.requires_grad else torch.zeros(p.numel())
                    for p in model.parameters()
                ]
            )
            opt.step()
            weights[step] = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
            means[step] = model[1].running_mean.clone().numpy()
            rec.log("custom", 2.0 * step)
    expected = [0, 1, 2, 3, 4, 5, 8, 11]
    with trajstore.open(path) as t:
        assert t.steps.tolist() == expected
        assert "2.bias" in t.layout and t.n_params == 25 + 10 + 5 + 1
        mask = t.trainable_mask(-1)
        assert mask.sum() == 40 and not mask[t.layout["2.bias"].offset]
        np.testing.assert_array_equal(t.weights[:], np.stack([weights[s].numpy() for s in expected]))
        assert t.gradients.steps.tolist() == expected[1:]
        np.testing.assert_array_equal(
            t.gradients.values[:], np.stack([grads[s].numpy() for s in expected[1:]])
        )
        assert t.buffers.layout.names == ["1.running_mean", "1.running_var"]
        np.testing.assert_array_equal(t.buffers.tensor("1.running_mean")[-1], means[11])
        assert set(t.observables) >= {"loss", "lr.opt.0", "lr.opt.1", "custom"}
        assert t.observable("custom")[1].tolist() == [2.0 * s for s in range(1, 13)]
        assert t.metadata == {"purpose": "test"}


def test_cpu_snapshot_is_a_copy_not_an_alias(tmp_path):
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(model, tmp_path / "a.zarr") as rec:
        rec.attach(opt)
        _train(model, opt, 3)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(100.0)  # after the last step: must not leak into any record
    with trajstore.open(tmp_path / "a.zarr") as t:
        assert np.abs(t.weights[:]).max() < 50


def test_gradscaler_skipped_steps_are_marked_not_duplicated(tmp_path):
    script = tmp_path / "amp.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Linear(4, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "scaler = torch.amp.GradScaler('cpu', init_scale=4.0)\n"
        "for i in range(6):\n"
        "    x = torch.randn(8, 4)\n"
        "    if i == 2: x[0, 0] = float('inf')\n"
        "    loss = m(x).pow(2).mean() if i != 2 else m(x).sum()\n"
        "    opt.zero_grad(); scaler.scale(loss).backward(); scaler.step(opt); scaler.update()\n"
    )
    out = tmp_path / "amp.zarr"
    p = run_cli("record", "-o", out, script)
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.steps.tolist() == [0, 1, 2, 3, 4, 5, 6]  # step 3 skipped: recorded once, unchanged
        np.testing.assert_array_equal(t.weights[3], t.weights[2])
        assert t.observable("skipped")[0].tolist() == [3]
        steps, loss = t.observable("loss")
        assert 3 in steps.tolist() and np.isfinite(loss[steps != 3]).all()
        assert loss[0] < 100  # unscaled by the GradScaler's scale


def test_script_that_raises_keeps_store_and_exit_status(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text(
        "import torch\nm = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "for i in range(5):\n    opt.zero_grad(); m(torch.ones(1, 2)).sum().backward(); opt.step()\n"
        "raise RuntimeError('boom')\n"
    )
    out = tmp_path / "b.zarr"
    p = run_cli("record", "-o", out, script)
    assert p.returncode == 1 and "RuntimeError: boom" in p.stderr
    assert validate(out).valid and trajstore.open(out).n_records == 6
    script.write_text(script.read_text().replace("raise RuntimeError('boom')", "raise SystemExit(3)"))
    assert run_cli("record", "--overwrite", "-o", out, script).returncode == 3


@pytest.mark.parametrize("case", ["missing", "exists", "no_step", "bad_schedule"])
def test_record_bad_input(tmp_path, case):
    out = tmp_path / "o.zarr"
    if case == "missing":
        p = run_cli("record", "-o", out, tmp_path / "nope.py")
        msg = "no such script"
    elif case == "exists":
        out.mkdir()
        p = run_cli("record", "-o", out, DIGITS)
        msg = "--overwrite"
    elif case == "no_step":
        (tmp_path / "idle.py").write_text("import torch\nprint('hello')\n")
        p = run_cli("record", "-o", out, tmp_path / "idle.py")
        msg = "without calling optimizer.step()"
        assert not out.exists()
    else:
        p = run_cli("record", "--schedule", "often", "-o", out, DIGITS)
        msg = "cannot read schedule"
    assert p.returncode != 0
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and msg in err[0] and "Traceback" not in p.stderr


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path):
    out = tmp_path / "k.zarr"
    proc = subprocess.Popen(
        cli_argv("record", "--flush-seconds", "0.2", "-o", out, DIGITS, "--", "--epochs", "1000", "--quiet"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180  # a loaded machine is slow to reach 300 records
    n = 0
    while time.time() < deadline and n < 300:
        time.sleep(0.3)
        try:
            with trajstore.open(out) as t:
                n = t.n_records
        except trajstore.TrajstoreError:
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert n >= 300
    report = validate(out)
    assert report.valid, report.problems
    with trajstore.open(out) as t:
        n_before = t.n_records
        last = int(t.steps[-1])
        assert np.array_equal(t.steps, np.arange(n_before))
    # The script loads no checkpoint: its fresh weights must not pass for a continuation.
    p = run_cli("record", "--resume", "-o", out, DIGITS, "--", "--epochs", "1", "--quiet")
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode != 0 and len(err) == 1 and "--resume-new-segment" in err[0], p.stderr
    with trajstore.open(out) as t:
        assert t.n_records == n_before
    p = run_cli(
        "record", "--resume", "--resume-new-segment", "-o", out, DIGITS, "--", "--epochs", "1", "--quiet"
    )
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.n_records == n_before + 1 + 45  # the new segment's initial weights, then its steps
        # after every step any series stored (the loss may have been committed a few steps ahead)
        assert last < t.steps[n_before] and np.all(np.diff(t.steps[n_before:]) == 1)
        loss_steps = t.observable("loss")[0]
        assert np.all(np.diff(loss_steps) > 0)
        assert "resumed" in t.provenance
        assert t.segments == [slice(0, n_before), slice(n_before, n_before + 46)]
        assert t.attrs["segments"][0]["max_abs_gap"] > 0.1  # fresh initial weights: a jump


@pytest.mark.slow
def test_sigterm_closes_store_validly(tmp_path):
    out = tmp_path / "t.h5"
    proc = subprocess.Popen(
        cli_argv("record", "-o", out, DIGITS, "--", "--epochs", "1000", "--quiet"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until training is being recorded (the handler is installed before the script runs):
    # a fixed sleep raced torch's import on a loaded machine and killed the process by default.
    deadline = time.monotonic() + 120
    n = 0
    while n <= 45 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            with trajstore.open(out) as t:
                n = t.n_records
        except trajstore.TrajstoreError:
            pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert validate(out).valid
    with trajstore.open(out) as t:
        assert t.n_records > 45 and t.n_records == t.observable("loss")[0][-1] + 1


@pytest.mark.slow
def test_record_cifar_example_synthetic(tmp_path):
    out = tmp_path / "c.h5"
    p = run_cli(
        "record",
        "--gradients",
        "--buffers",
        "--schedule",
        "every:2",
        "-o",
        out,
        ROOT / "examples" / "train_cifar.py",
        "--",
        "--synthetic",
        "--model",
        "resnet14",
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--synthetic-size",
        "64",
        "--device",
        "cpu",
    )
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.n_params == 175_258  # the paper's ResNet-14 count
        assert t.steps.tolist() == [0, 2, 4] and t.layout.names[0] == "conv1.weight"
        assert t.provenance["model_class"].endswith("CifarResNet")
        assert t.gradients.steps.tolist() == [2, 4] and np.isfinite(t.gradients.values[:]).all()
        assert "bn1.running_mean" in t.buffers.layout and "bn1.num_batches_tracked" not in t.buffers.layout
        assert t.buffers.steps.tolist() == [0, 2, 4]


def test_distributed_only_rank0_writes(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = Path(__file__).with_name("dist_worker.py")
    procs = [
        subprocess.Popen([sys.executable, str(worker), str(r), "2", str(port), str(tmp_path)])
        for r in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert (tmp_path / "rank0.zarr").exists() and not (tmp_path / "rank1.zarr").exists()
    assert trajstore.open(tmp_path / "rank0.zarr").n_records == 5


def test_snapshot_pool_is_bounded_and_drop_policy_drops():
    from trajstore.recorders.snapshot import SnapshotPool

    params = [torch.ones(3), torch.full((2, 2), 2.0)]
    flat = SnapshotPool.flat_views(params)
    pool = SnapshotPool(7, torch.device("cpu"), size=2, policy="drop")
    a, b = pool.snapshot(flat), pool.snapshot(flat)
    assert a is not None and b is not None
    assert pool.snapshot(flat) is None  # both buffers in flight: dropped, memory stays bounded
    assert a.ready().tolist() == [1, 1, 1, 2, 2, 2, 2]
    params[0].add_(1)  # in-place update after the snapshot does not reach it
    assert a.ready()[0] == 1 and flat[0][0] == 2
    a.release()
    assert pool.snapshot(flat).ready()[0] == 2
    with pytest.raises(ValueError, match="policy"):
        SnapshotPool(3, torch.device("cpu"), policy="sometimes")


def test_records_travel_in_batches_sized_by_the_pool(tmp_path):
    """Small models get a deep pool and hand records to the writer thread in batches (fewer
    wake-ups of that thread); a record still reaches it within a second when training is slow."""
    from trajstore.recorders import recorder as recorder_module

    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(model, tmp_path / "b.zarr", progress=False) as rec:
        rec.attach(opt)
        _train(model, opt, 3)
        assert rec.pool_size == recorder_module._MAX_POOL and rec._record_batch == rec.pool_size // 2
        assert len(rec._records) == 4 and rec._thread.records == 0  # waiting for a batch
        time.sleep(recorder_module._RECORD_SECONDS + 0.1)
        _train(model, opt, 1)  # the next step sends what waited too long
        deadline = time.monotonic() + 5
        while rec._thread.records < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rec._thread.records == 5 and not rec._records
        _train(model, opt, 2)
    with trajstore.open(tmp_path / "b.zarr") as t:  # close() sends the rest
        assert t.steps.tolist() == list(range(7))
    big = nn.Linear(2048, 2048)  # 16 MiB of float32 weights: 64 MiB hold 4 of them, the minimum
    with Recorder(big, tmp_path / "c.zarr", progress=False) as rec:
        rec.attach(torch.optim.SGD(big.parameters(), lr=0.0))
        assert rec.pool_size == 4 and rec._record_batch == 2


def _nice_of_threads(prefix: str) -> list[int]:
    import threading

    ids = [t.native_id for t in threading.enumerate() if t.name.startswith(prefix) and t.native_id]
    return [os.getpriority(os.PRIO_PROCESS, i) for i in ids]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_writer_threads_run_below_training(tmp_path):
    """The writer thread and its encoders run WRITER_NICE steps below the training thread, so
    that training keeps its core when they compete (docs/scale.md); store_options can undo it."""
    from trajstore.recorders.recorder import WRITER_NICE

    base = os.getpriority(os.PRIO_PROCESS, 0)
    for options, expected in (({}, min(19, base + WRITER_NICE)), ({"nice": 0}, base)):
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        path = tmp_path / f"n{len(options)}.zarr"
        with Recorder(model, path, store_options={"chunk_records": 4, **options}) as rec:
            rec.attach(opt)
            _train(model, opt, 9)  # two full blocks: the encoder has run
            writer, encoders = _nice_of_threads("trajstore-writer"), _nice_of_threads("trajstore-encode")
            assert writer == [expected] and encoders and set(encoders) == {expected}, (writer, encoders)
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the training thread is untouched
        with trajstore.open(path) as t:
            assert t.n_records == 10


def test_create_refuses_a_nice_value_out_of_range(tmp_path):
    with pytest.raises(ValueError, match="nice must be 0 to 19"):
        trajstore.create(tmp_path / "x.zarr", 3, nice=20)
