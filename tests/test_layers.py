"""Per-layer results (issue 14, item 3): the window pass's per-tensor block MSDs, per-tensor and
per-layer-type exponents with intervals that cover the truth on exact fBm with a different α per
tensor, the layer classification (recorded module or name and shape), summary.json, report and
compare."""

from __future__ import annotations

import numpy as np
import pytest
from trajstore.analysis.fbm import fbm
from trajstore.analysis.layers import classify, stratified_curves, window_layers
from trajstore.analysis.msd import tamsd_groups, windowed_msd
from trajstore.analysis.windows import tensor_group_offsets

import trajstore

# Tensors of a synthetic store: name → (shape, α). α differs per tensor; sizes span the cases
# (a 64-coordinate norm weight: 32 blocks of 2; a 96-coordinate conv: 32 blocks of 3; 200 linear;
# a 10-coordinate bias, too small for an interval of its own).
TRUTH = {
    "conv.weight": ((4, 3, 2, 4), 0.5),
    "bn.weight": ((64,), 1.5),
    "fc.weight": ((10, 20), 1.0),
    "fc.bias": ((10,), 1.0),
}


def synthetic_paths(n_records: int, rng: np.random.Generator) -> np.ndarray:
    """Exact fBm coordinates, each tensor with its own α (Hurst α/2): (n_records, n_params)."""
    cols = [fbm(n_records, a / 2, size=int(np.prod(s)), rng=rng) for s, a in TRUTH.values()]
    return np.concatenate(cols, axis=1)


def write(path, w: np.ndarray) -> None:
    with trajstore.create(path, {n: s for n, (s, _) in TRUTH.items()}, chunk_params=32, mode="w") as wr:
        for i, row in enumerate(w):
            wr.append(i, row)


def in_memory_blocks(w: np.ndarray) -> dict[str, np.ndarray]:
    """Per-tensor block MSDs computed in memory (independent of the store pass)."""
    out, off = {}, 0
    for name, (shape, _) in TRUTH.items():
        size = int(np.prod(shape))
        out[name] = tamsd_groups(w[:, off : off + size], n_groups=min(32, size))
        off += size
    return out


def test_tensor_blocks_of_the_store_pass_equal_in_memory_ones(tmp_path):
    """The out-of-core pass keeps each tensor's block MSDs (blocks never cross a tensor); they
    sum to the tensor's MSD and equal an in-memory computation, with tiny read blocks too."""
    w = synthetic_paths(200, np.random.default_rng(3)).astype(np.float32)
    write(tmp_path / "s.zarr", w)
    ref = in_memory_blocks(w.astype(np.float64))
    with trajstore.open(tmp_path / "s.zarr") as t:
        # 370 columns in compute sub-blocks of 256: a boundary inside fc.weight
        r = windowed_msd(t, window=200)[0]
        for name in TRUTH:
            g = r.msd_tensor_groups[name]
            assert g.shape == ref[name].shape
            np.testing.assert_allclose(g[:, 1:], ref[name][:, 1:], rtol=1e-9)
            np.testing.assert_allclose(g.sum(axis=0), r.msd_tensor[name], rtol=1e-10)
        # a memory limit too small for the blocks: none kept, and the layers say so
        tight = windowed_msd(t, window=200, memory_limit=2 << 20)[0]
        assert tight.msd_tensor_groups is None
        np.testing.assert_allclose(tight.msd_tensor["fc.weight"], r.msd_tensor["fc.weight"], rtol=1e-10)
        e = window_layers(tight, {})["layers"]["fc.weight"]
        assert e["alpha"] is not None and e["alpha_ci"] is None
        assert "memory limit" in e["undetermined"]["alpha_ci"]
    offs = tensor_group_offsets(np.array([0, 96, 112, 312, 322]))
    assert len(offs) == 32 + 16 + 32 + 10 + 1 and offs[-1] == 322
    assert {96, 112, 312} <= set(offs.tolist())  # no block crosses a tensor boundary
    assert len(tensor_group_offsets(np.array([0, 96, 112]), per_tensor=0)) == 1  # no blocks


def _covers(entry, truth) -> bool:
    ci = entry["alpha_ci"]
    return ci is not None and ci[0] <= truth <= ci[1]


def test_per_tensor_and_per_type_intervals_cover_the_truth():
    """Exact fBm, α = 0.5 / 1.5 / 1.0 per tensor (96, 64, 200 coordinates), 300 records, 100
    replicates: the nominal 95 % intervals cover the truth 90–98 % of the time pooled and at
    least 85 % each (the acceptance of issue 11's whole-vector test), for each tensor (a
    bootstrap over its own blocks), the linear type (fc.weight + fc.bias, both α = 1; stratified,
    the bias's 10 blocks resampled among themselves) and a type mixing α = 0.5 and 1.5 (conv +
    norm; truth: the single power-law fit of its exact expected MSD). A tensor of fewer than 64
    coordinates (the 10-coordinate bias, a 16-coordinate norm weight) never gets an interval, nor
    does a type that such tensors dominate (bench/layer_coverage.py: figures in docs/analysis.md)."""
    from trajstore.analysis.layer_calibration import layer_coverage

    tensors = {n: (int(np.prod(s)), a) for n, (s, a) in TRUTH.items()} | {"bn16.weight": (16, 1.5)}
    types = {
        "linear": ["fc.weight", "fc.bias"],
        "conv+norm": ["conv.weight", "bn.weight"],
        "conv+norm16": ["conv.weight", "bn16.weight"],
    }
    cov = layer_coverage(tensors, types, n_records=300, replicates=100, seed=11)
    checked = ("conv.weight", "bn.weight", "fc.weight", "linear", "conv+norm")
    assert 0.90 <= np.mean([cov.coverage[n] for n in checked]) <= 0.98, cov  # as issue 11's test
    for name in checked:
        assert 0.85 <= cov.coverage[name] <= 0.99, (name, cov)
        assert cov.with_interval[name] == 1.0
    for name in ("fc.bias", "bn16.weight", "conv+norm16"):
        assert cov.with_interval[name] == 0.0, (name, cov)
    assert max(cov.width[n] for n in ("conv.weight", "fc.weight", "linear")) < 0.3  # informative


def test_stratified_resampling_holds_only_negligible_small_tensors_fixed():
    rng = np.random.default_rng(0)
    big = rng.uniform(1, 2, size=(32, 50))
    small = rng.uniform(1, 2, size=(4, 50))
    curves, method, g = stratified_curves([big, small * 1e-4], n_boot=50)
    assert curves is not None and g == 32 and "held fixed" in method
    # each resample keeps the small tensor's exact sum, and varies the big one's
    assert np.std(curves[:, 0]) > 0
    curves, method, g = stratified_curves([big, small], n_boot=50)  # 11 %: resampled, g = 4
    assert curves is not None and g == 4 and "held fixed" not in method
    curves, method, _ = stratified_curves([big, 10 * small], n_boot=50)  # 55 %: no interval
    assert curves is None and "carry 55%" in method
    curves, method, _ = stratified_curves([big, 10 * small[:1]], n_boot=50)
    assert curves is None and "one block" in method


def test_classify_by_name_and_shape_and_by_recorded_module():
    names = [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "layer1.0.conv1.weight",
        "layer1.0.bn1.weight",
        "fc.weight",
        "fc.bias",
        "tok_embeddings.weight",
        "blocks.0.ln_1.weight",
        "blocks.0.attn.c_attn.bias",
        "blocks.0.attn.c_attn.weight",
        "flat",
    ]
    shapes = [
        (16, 3, 3, 3),
        (16,),
        (16,),
        (16, 16, 3, 3),
        (16,),
        (10, 64),
        (10,),
        (100, 32),
        (32,),
        (96,),
        (32, 96),
        (5,),
    ]
    k = classify(names, shapes)
    got = {n: (k[n].kind, k[n].role) for n in names}
    assert got == {
        "conv1.weight": ("conv", "weight"),
        "bn1.weight": ("norm", "weight"),
        "bn1.bias": ("norm", "bias"),
        "layer1.0.conv1.weight": ("conv", "weight"),
        "layer1.0.bn1.weight": ("norm", "weight"),
        "fc.weight": ("linear", "weight"),
        "fc.bias": ("linear", "bias"),
        "tok_embeddings.weight": ("embedding", "weight"),
        "blocks.0.ln_1.weight": ("norm", "weight"),
        "blocks.0.attn.c_attn.bias": ("linear", "bias"),
        "blocks.0.attn.c_attn.weight": ("linear", "weight"),
        "flat": ("other", "flat"),
    }
    assert {x.source for x in k.values()} == {"name and shape"}
    # a recorded module class wins over the name: "embed" by name, a Linear by its module;
    # GPT-2's Conv1D (transformers) is a linear layer
    rec = classify(
        ["embed.weight", "c_fc.weight", "c_fc.bias"],
        [(32, 96), (32, 96), (96,)],
        ["Linear", "Conv1D", "Conv1D"],
    )
    assert rec["embed.weight"].kind == "linear" and rec["embed.weight"].source == "recorded module"
    assert rec["c_fc.weight"].kind == "linear" and rec["c_fc.bias"].role == "bias"
    assert classify(["c"], [(4, 2, 3)], ["Conv1d"])["c"].kind == "conv"
    assert classify(["w"], [(3, 3)], [None])["w"].source == "name and shape"


def test_window_layers_of_a_store(tmp_path):
    """Through the store: every tensor and type gets an entry; covered truths on one replicate;
    the 10-coordinate bias has α without an interval; a frozen tensor is undetermined."""
    w = synthetic_paths(300, np.random.default_rng(5))
    off = sum(int(np.prod(s)) for s, _ in list(TRUTH.values())[:3])
    w[:, off:] = w[0, off:]  # fc.bias frozen
    write(tmp_path / "s.zarr", w.astype(np.float32))
    with trajstore.open(tmp_path / "s.zarr") as t:
        from trajstore.analysis.layers import store_kinds

        wm = windowed_msd(t, window=300)[0]
        res = window_layers(wm, store_kinds(t))
    layers, types = res["layers"], res["layer_types"]
    assert set(layers) == set(TRUTH)
    assert layers["conv.weight"]["kind"] == "conv" and layers["conv.weight"]["n_blocks"] == 32
    for name in ("conv.weight", "bn.weight", "fc.weight"):
        lo, hi = layers[name]["alpha_ci"]
        assert lo - 0.15 <= TRUTH[name][1] <= hi + 0.15, (name, layers[name])
    assert layers["fc.bias"]["alpha"] is None and "did not move" in layers["fc.bias"]["undetermined"]["alpha"]
    assert set(types) == {"conv", "norm", "linear", "weight", "bias"}
    assert types["linear"]["tensors"] == ["fc.weight", "fc.bias"]
    assert types["linear"]["alpha_ci"] is not None  # the frozen bias carries 0 % of the MSD
    assert "held fixed" in types["linear"]["ci_method"]
    assert types["norm"]["alpha"] == pytest.approx(layers["bn.weight"]["alpha"])


def test_recorder_writes_module_classes_readable_by_plain_h5py(tmp_path):
    """A real recording: the (1.2) tensor_modules attribute names each tensor's module class,
    the store validates, plain h5py reads it, and the analysis uses it (source: recorded)."""
    import json

    import h5py
    import torch
    from torch import nn
    from trajstore.analysis.layers import store_kinds
    from trajstore.recorders import Recorder

    from trajstore.validate import validate

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    path = tmp_path / "r.h5"
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))
    with Recorder(model, path, progress=False) as rec:
        rec.attach(opt)
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    assert validate(path).valid
    with h5py.File(path, "r") as f:
        assert f.attrs["spec_version"] == "1.2"
        modules = json.loads(f.attrs["tensor_modules"])
    assert modules == ["Conv2d", "Conv2d", "BatchNorm2d", "BatchNorm2d", "Linear", "Linear"]
    with trajstore.open(path) as t:
        kinds = store_kinds(t)
    assert [kinds[n].kind for n in ("0.weight", "1.bias", "3.weight")] == ["conv", "norm", "linear"]
    assert {k.source for k in kinds.values()} == {"recorded module"}
    # a selection of tensors, and a store extracted from it, keep each tensor's module class
    from trajstore.extract import extract
    from trajstore.selection import select

    with trajstore.open(path) as t:
        part = store_kinds(select(t, tensors=["1.*", "3.bias"]))
    assert {n: k.module for n, k in part.items()} == {
        "1.weight": "BatchNorm2d",
        "1.bias": "BatchNorm2d",
        "3.bias": "Linear",
    }
    extract(path, tmp_path / "x.zarr", tensors=["1.*", "3.bias"])
    assert validate(tmp_path / "x.zarr").valid
    with trajstore.open(tmp_path / "x.zarr") as t:
        assert t.attrs["tensor_modules"] == ["BatchNorm2d", "BatchNorm2d", "Linear"]


def test_analyze_and_compare_report_layers(tmp_path):
    """summary.json (of analyze and of compare) holds the per-layer sections and matches
    the schemas; the report has the per-layer figure and tables with readable column names; the
    comparison has one row per layer, window and run."""
    import json

    from trajstore.analysis.compare import compare
    from trajstore.analysis.pipeline import analyze
    from trajstore.analysis.report import write_report

    from trajstore import jsonsafe

    from .test_cli_output import assert_matches

    rng = np.random.default_rng(2)
    for name in ("a.zarr", "b.zarr"):
        write(tmp_path / name, synthetic_paths(240, rng).astype(np.float32))
    out = tmp_path / "rep"
    with trajstore.open(tmp_path / "a.zarr") as t:
        write_report(analyze(t, 120, progress=False), out)
    s = json.loads((out / "summary.json").read_text())
    assert_matches("analyze", s)
    assert s["layer_kinds"]["source"] == "name and shape"
    assert s["layer_kinds"]["tensors"]["bn.weight"]["kind"] == "norm"
    w0 = s["windows"][0]
    assert set(w0["layers"]) == set(TRUTH) and {"conv", "norm", "linear", "weight", "bias"} <= set(
        w0["layer_types"]
    )
    conv = w0["layers"]["conv.weight"]
    assert conv["n_params"] == 96 and conv["n_blocks"] == 32 and conv["alpha_ci"] is not None
    bias = w0["layers"]["fc.bias"]
    assert bias["alpha_ci"] is None and bias["undetermined"]["alpha_ci"]
    assert "without an interval" in bias["verdict"] and "diffusive" not in bias["verdict"]  # no claim
    assert (out / "layers.png").stat().st_size > 1000 and (out / "layers.svg").exists()
    html = (out / "index.html").read_text()
    assert "Diffusion exponent per layer" in html and "α at t_w = 0" in html and "layer type" in html
    assert f"{conv['alpha']:.2f} [{conv['alpha_ci'][0]:.2f}, {conv['alpha_ci'][1]:.2f}]" in html
    cmp = tmp_path / "cmp"
    compare([str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")], cmp, window=120, progress=False)
    doc = jsonsafe.loads_strict((cmp / "summary.json").read_text())
    assert_matches("compare", doc)
    rows = doc["layer_table"]
    # 2 runs × 2 windows × (4 tensors + 5 types)
    assert len(rows) == 2 * 2 * 9
    row = next(r for r in rows if r["run"] == "b.zarr" and r["layer"] == "norm" and r["t_w"] == 120)
    b_norm = doc["runs"][1]["summary"]["windows"][1]["layer_types"]["norm"]
    assert row["alpha"] == b_norm["alpha"] and row["by"] == "kind"
    page = (cmp / "index.html").read_text()
    assert "Diffusion exponent per layer, run by run" in page and "α: a.zarr" in page


def test_table_cells_of_undetermined_and_two_regime_entries():
    """A cell says what is missing and never formats a null (two regimes with α_long undetermined)."""
    from trajstore.analysis.layers_report import cell

    two = {"alpha": 1.1, "alpha_ci": [1.0, 1.2], "regimes": "two", "alpha_short": 1.4, "alpha_long": None}
    two["undetermined"] = {"alpha_long": "α_long = 2.3 lies outside its physical range [0, 2]"}
    two["verdict"] = "two regimes"
    assert cell(two)["text"] == "1.10 [1.00, 1.20]; two regimes 1.40 → undetermined"
    und = {
        "alpha": None,
        "alpha_ci": None,
        "undetermined": {"alpha": "the tensor did not move"},
        "verdict": "x",
    }
    assert cell(und) == {"text": "undetermined", "why": "x; the tensor did not move"}
    assert cell(None)["text"] == "–"
