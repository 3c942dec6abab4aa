"""Sketch recording (format 1.2): the hash, the device sketch, the sample, the analyses from a
sketch against the full-weights analyses of the same real training run, plain-zarr reading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from trajstore.analysis.pipeline import analyze
from trajstore.analysis.sketch import analyze_sketch
from trajstore.recorders import Recorder
from trajstore.recorders.sketch import DeviceSketcher, SketchOptions

import trajstore
from trajstore.sketch import (
    SketchRecording,
    countsketch_hash,
    sample_of,
    sketch_blocks,
    sketch_vector,
    sketch_view,
    splitmix64,
)
from trajstore.validate import validate

from .conftest import run_cli

K = 4096
M = 400
STEPS = 300
WINDOW = 150


def test_splitmix64_matches_the_published_generator():
    # SplitMix64 seeded with 0: its first outputs are mix(γ), mix(2γ) (Vigna's reference code).
    assert int(splitmix64(0)) == 0xE220A8397B1DCDAF
    assert int(splitmix64(0x9E3779B97F4A7C15)) == 0x6E789E6AA1B965F4


def test_hash_keeps_each_parameter_block_in_its_bucket_block():
    n, k = 10_000, 640
    bucket, sign = countsketch_hash(0, n, 7, k)
    g = sketch_blocks(n, k)
    p_off = (np.arange(g + 1) * n) // g
    b_off = (np.arange(g + 1) * k) // g
    for b in range(g):
        sel = bucket[p_off[b] : p_off[b + 1]]
        assert sel.min() >= b_off[b] and sel.max() < b_off[b + 1]
    assert set(np.unique(sign)) == {-1, 1} and abs(sign.mean()) < 0.05
    # chunked hashing (as the recorder does per tensor) gives the same table
    b2, s2 = countsketch_hash(1234, 5678, 7, k, n)
    assert np.array_equal(b2, bucket[1234:5678]) and np.array_equal(s2, sign[1234:5678])


def test_sketch_preserves_squared_norms_in_expectation():
    """Over independent seeds, ‖S d‖² averages to ‖d‖² with the variance the format states."""
    rng = np.random.default_rng(1)
    n, k = 3000, 256
    d = rng.standard_t(3, size=n) * np.repeat(rng.uniform(0.1, 3, 64), -(-n // 64))[:n]
    g = sketch_blocks(n, k)
    p_off = (np.arange(g + 1) * n) // g
    k_g = np.diff((np.arange(g + 1) * k) // g)
    var = sum(
        (2 / k_g[b])
        * (np.sum(d[p_off[b] : p_off[b + 1]] ** 2) ** 2 - np.sum(d[p_off[b] : p_off[b + 1]] ** 4))
        for b in range(g)
    )
    est = np.array([np.sum(sketch_vector(d, seed, k) ** 2) for seed in range(300)])
    truth = np.sum(d**2)
    assert abs(est.mean() - truth) < 4 * np.sqrt(var / len(est))
    assert 0.75 < est.var() / var < 1.3
    # linear: the sketch of a difference is the difference of sketches
    e = rng.normal(size=n)
    assert np.allclose(sketch_vector(d - e, 3, k), sketch_vector(d, 3, k) - sketch_vector(e, 3, k))


def test_device_sketcher_equals_the_numpy_definition():
    torch.manual_seed(0)
    tensors = [torch.randn(300, 7), torch.randn(5), torch.randn(2, 3, 4)]
    flat = [t.view(-1) for t in tensors]
    sk = DeviceSketcher([f.numel() for f in flat], torch.device("cpu"), dim=64, seed=5, sample_size=50)
    y, s = sk.compute(flat)
    w = torch.cat(flat).numpy()
    assert np.allclose(y.numpy(), sketch_vector(w, 5, 64), rtol=1e-13, atol=1e-13)
    assert np.array_equal(s.numpy(), w[sk.indices])


def _train(path, sketch: SketchOptions):
    """A tiny real MLP regression (~21k parameters) trained with SGD, recorded every step."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 4),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(1024, 32)
    y = torch.sin(x[:, :4] * 2) + 0.1 * x[:, 4:8]
    with Recorder(model, path, sketch=sketch, progress=False) as rec:
        rec.attach(opt)
        for _ in range(STEPS):
            i = torch.randint(0, 1024, (32,))
            loss = ((model(x[i]) - y[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            rec.log_loss(loss)
            opt.step()


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One run recorded in full and as a K = 4096 sketch with a sample of 400 parameters."""
    path = tmp_path_factory.mktemp("sketch") / "run.zarr"
    _train(path, SketchOptions(dim=K, sample=M, seed=3, full=True))
    return path


def _msd_and_sketch_std(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force from the full weights x (T, N): the TAMSD (T,) and the standard deviation (T,)
    of its block-CountSketch estimate, √(Σ_g (2/K_g) ‖D_g(τ)‖²_F) (the diagonal term left out:
    an upper bound), from each block's Gram matrix of all T² pairs."""
    t, n = x.shape
    g = sketch_blocks(n, k)
    p_off = (np.arange(g + 1) * n) // g
    k_g = np.diff((np.arange(g + 1) * k) // g).astype(np.float64)
    gram = np.empty((g, t, t))
    for b in range(g):
        xb = x[:, p_off[b] : p_off[b + 1]].astype(np.float64)
        xb -= xb.mean(axis=0)
        gram[b] = xb @ xb.T
    msd, var = np.zeros(t), np.zeros(t)
    for tau in range(1, t):
        a = gram[:, tau:, tau:] - gram[:, tau:, :-tau] - gram[:, :-tau, tau:] + gram[:, :-tau, :-tau]
        msd[tau] = np.trace(a, axis1=1, axis2=2).sum() / (t - tau)
        var[tau] = np.sum((2 / k_g) * np.einsum("gij,gij->g", a, a)) / (t - tau) ** 2
    return msd, np.sqrt(var)


def test_device_sketch_and_sample_match_the_full_records(both):
    with trajstore.open(both) as t:
        assert t.spec_version == "1.2" and t.attrs["full_weights"] is True
        view, sample = sketch_view(t), sample_of(t)
        w = t.weights[:]
        assert np.array_equal(view.steps, t.steps) and np.array_equal(sample.steps, t.steps)
        ref = np.stack([sketch_vector(w[r], 3, K) for r in (0, 1, STEPS // 2, STEPS)])
        got = view.weights[[0, 1, STEPS // 2, STEPS]]
        assert np.allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
        assert len(sample.indices) == M and np.all(np.diff(sample.indices) > 0)
        vals = sample.values[:]
        assert vals.dtype == w.dtype and np.array_equal(vals, w[:, sample.indices])  # bit-exact
    assert validate(both).valid


def test_msd_and_exponents_from_the_sketch_match_the_full_run(both):
    with trajstore.open(both) as t:
        full = analyze(t, WINDOW, progress=False)
        sk = analyze_sketch(t, WINDOW, progress=False)
        w = t.weights[:]
    assert t.n_params > 5 * K  # the sketch compresses
    assert len(sk.windows) == len(full.windows) == 2
    for k, (a, b) in enumerate(zip(full.windows, sk.windows, strict=True)):
        x = w[k * WINDOW : (k + 1) * WINDOW]
        msd, sd = _msd_and_sketch_std(x, K)
        assert np.allclose(a.msd.msd[1:], msd[1:], rtol=1e-9)  # the brute force is right
        err = np.abs(b.msd.msd[1:] - msd[1:])
        # Chebyshev at 4 standard deviations, at every lag
        assert np.all(err <= 4 * sd[1:]), (err / sd[1:]).max()
        ea, eb = a.exponents(), b.exponents()
        assert abs(ea["alpha"] - eb["alpha"]) < 0.02
        assert ea["regimes"] == eb["regimes"]
        for key in ("alpha_short", "alpha_long"):
            if ea.get(key) is not None:
                assert abs(ea[key] - eb[key]) < 0.02
    info = sk.summary()["sketch"]
    assert info["dim"] == K and info["sources"]["msd"] == "sketch"
    assert info["sources"]["step_length"].startswith("sample")
    assert "CountSketch" in sk.notes[0]
    # the reported per-window bound covers the brute-force standard deviation (it is an upper bound)
    assert all(b is not None and b > 0 for b in info["msd_relative_std_bound_per_window"])


def test_plain_zarr_reads_sketch_and_sample(both):
    root = zarr.open_group(both, mode="r")
    s = root["sketch"]
    n = s.attrs["n_committed"]
    attrs = s.attrs["sketch"]
    assert attrs["method"] == "countsketch" and attrs["hash"] == "splitmix64" and attrs["dim"] == K
    y = s["value"][:n]
    w = root["weights/value"][:n]
    assert y.shape == (STEPS + 1, K) and y.dtype == np.float64
    assert np.allclose(y[-1], sketch_vector(w[-1], attrs["seed"], K), rtol=1e-12, atol=1e-9)
    idx = root["sample/index"][:]
    assert np.array_equal(root["sample/value"][:n], w[:, idx])


def test_cli_sketch_only_record_and_analyze(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import torch\ntorch.manual_seed(0)\n"
        "m = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.05)\nx = torch.randn(256, 8); y = x[:, :1].sin()\n"
        "for i in range(120):\n"
        "    j = torch.randint(0, 256, (16,)); loss = ((m(x[j]) - y[j]) ** 2).mean()\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n"
    )
    out = tmp_path / "run.h5"
    p = run_cli("record", "--sketch", 128, "--sample", 64, "-o", out, script)
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.n_records == 0 and t.attrs["full_weights"] is False
        assert sketch_view(t).n_records == 121 and sample_of(t).values.shape == (121, 64)
    assert validate(out).valid, validate(out).problems
    from trajstore.info import format_summary, summarize

    with trajstore.open(out) as t:
        assert "CountSketch K = 128 (seed 0): 121 records" in format_summary(summarize(t))
        assert "no full weights" in format_summary(summarize(t))
    p = run_cli("analyze", out, "-o", tmp_path / "rep", "--window", 60, "--quiet")
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["n_params"] == 641 and summary["sketch"]["full_weights_in_store"] is False
    assert summary["sketch"]["sources"]["update_components"] == "sample"
    assert "CountSketch" in summary["notes"][0]
    from trajstore.convert import convert

    conv = tmp_path / "conv.zarr"
    convert(out, conv)  # HDF5 → Zarr keeps the sketch, the sample and what they mean
    assert validate(conv).valid, validate(conv).problems
    with trajstore.open(out) as a, trajstore.open(conv) as c:
        assert c.attrs["full_weights"] is False and c.spec_version == "1.2"
        assert np.array_equal(sketch_view(a).weights[:], sketch_view(c).weights[:])
        assert np.array_equal(sample_of(a).values[:], sample_of(c).values[:])
        assert np.array_equal(sample_of(a).indices, sample_of(c).indices)
    p = run_cli("analyze", out, "--steps", "0:50", "-o", tmp_path / "rep2")
    assert p.returncode != 0 and "sketch" in p.stderr and "Traceback" not in p.stderr


def test_refusals_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="--full"):
        Recorder(torch.nn.Linear(2, 1), tmp_path / "a.zarr", gradients=True, sketch=SketchOptions(dim=8))
    with pytest.raises(ValueError, match="not supported"):
        Recorder(torch.nn.Linear(2, 1), tmp_path / "a.zarr", resume=True, sketch=SketchOptions(dim=8))
    p = run_cli("record", "--full", "-o", tmp_path / "b.zarr", tmp_path / "none.py")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    with trajstore.create(tmp_path / "c.zarr", {"a": (10,)}) as wr:
        rec = SketchRecording(wr, sketch_dim=4)
        with pytest.raises(ValueError, match="shape"):
            rec.append(0, sketch=np.zeros(5))
    with trajstore.create(tmp_path / "d.zarr", {"a": (10,)}) as wr:
        with pytest.raises(ValueError, match="sample size"):
            SketchRecording(wr, sample_size=11)


def test_format_doc_sketch_example_runs(both, tmp_path, monkeypatch):
    """The plain-zarr example of docs/format.md 3.7 runs and gives the stored values."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "format.md").read_text()
    (src,) = re.findall(r"```py\n(.*?)```", doc, flags=re.S)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.zarr").symlink_to(both)
    ns: dict = {}
    exec(src, ns)
    with trajstore.open(both) as t:
        w = t.weights[:].astype(np.float64)
        full_msd_1 = np.mean(np.sum(np.diff(w, axis=0) ** 2, axis=1))
        assert np.array_equal(ns["idx"], sample_of(t).indices)
    assert abs(ns["msd_1"] / full_msd_1 - 1) < 0.1  # a sketch estimate of the same quantity


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_sketcher_on_cuda_equals_the_numpy_definition():
    torch.manual_seed(0)
    tensors = [torch.randn(3000, 70, device="cuda"), torch.randn(5, device="cuda")]
    flat = [t.view(-1) for t in tensors]
    sk = DeviceSketcher([f.numel() for f in flat], torch.device("cuda"), dim=1024, seed=2, sample_size=500)
    snap = sk.snapshot(flat)
    y, s = snap.ready()
    w = torch.cat(flat).cpu().numpy()
    assert np.allclose(y, sketch_vector(w, 2, 1024), rtol=1e-12, atol=1e-12)
    assert np.array_equal(s, w[sk.indices])
    snap.release()
