"""Path geometry, the analyze pipeline on a real run, bad input, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from trajstore.analysis.geometry import geometry
from trajstore.analysis.pipeline import analyze
from trajstore.analysis.windows import iter_windows

import trajstore

from .conftest import run_cli


def write(path, w, **kw):
    with trajstore.create(path, w.shape[1], **kw) as wr:
        for i, row in enumerate(w):
            wr.append(i, row)
    return trajstore.open(path)


def test_geometry_straight_line_and_random_walk(tmp_path):
    t = np.arange(300, dtype=float)[:, None]
    line = write(tmp_path / "line.zarr", (t * np.array([[1.0, 2.0, -0.5]])).astype(np.float32))
    g = geometry(next(iter_windows(line)))
    assert g.contour_exponent == pytest.approx(2.0, abs=1e-6)
    assert g.direction_autocorr[1] == pytest.approx(1.0) and g.direction_autocorr[32] == pytest.approx(1.0)
    np.testing.assert_allclose(g.mean_contour[1:5], np.sqrt(5.25) * np.arange(1, 5), rtol=1e-6)
    assert np.allclose(g.excursions[1], 0, atol=1e-6)  # no transverse excursion on a line
    rw = write(tmp_path / "rw.zarr", np.cumsum(np.random.default_rng(0).normal(size=(1000, 200)), axis=0))
    g2 = geometry(next(iter_windows(rw)))
    assert g2.contour_exponent == pytest.approx(1.0, abs=0.15)
    assert abs(g2.direction_autocorr[1]) < 0.05
    assert g2.excursions[1].mean() > 0


def test_excursion_matches_direct_computation(tmp_path):
    rng = np.random.default_rng(1)
    w = np.cumsum(rng.normal(size=(400, 5)), axis=0).astype(np.float32)
    t = write(tmp_path / "e.zarr", w)
    s = next(iter_windows(t, memory_limit=600_000))  # blocks of 15 columns
    x = t.weights[:].astype(np.float64)
    for a, perp in zip(s.fragment_starts[:5], s.fragment_perp_max[:5], strict=True):
        p = x[a : a + 101] - x[a]
        c = p[-1]
        d2 = np.sum(p * p, axis=1) - (p @ c) ** 2 / (c @ c)
        assert perp == pytest.approx(d2.max(), rel=1e-8)


def test_real_digits_run_super_then_smaller(digits_run):
    with trajstore.open(digits_run) as t:
        a = analyze(t, window=1000, progress=False)
    s = a.summary()
    first, last = s["windows"][0], s["windows"][-1]
    assert first["alpha"] > 1.0  # superdiffusive early, as in the paper
    assert last["alpha"] < first["alpha"]
    assert s["tails"]["step_length"]["alpha"] > 1 and s["whole_run"] is not None
    assert "loss_increments" in s["stable"]
    json.dumps(s, default=float)


def test_bad_input_messages(tmp_path):
    one = write(tmp_path / "one.zarr", np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        analyze(one, progress=False)
    w = np.cumsum(np.random.default_rng(2).normal(size=(300, 4)), axis=0).astype(np.float32)
    short = write(tmp_path / "short.zarr", w)
    a = analyze(short, window=1000, progress=False)
    assert any("fewer than the window" in n for n in a.notes)
    assert any("no 'loss'" in n for n in a.notes)
    assert a.windows[0].two_regime is not None
    w2 = np.cumsum(np.random.default_rng(3).normal(size=(400, 4)), axis=0).astype(np.float32)
    w2[250, 1] = np.nan
    nan = write(tmp_path / "nan.zarr", w2)
    a = analyze(nan, window=200, progress=False)
    assert a.windows[0].two_regime is not None and a.windows[1].two_regime is None
    assert any("non-finite weights at records [250]" in n for n in a.notes)


def test_cli_analyze_writes_report(digits_run, tmp_path):
    out = tmp_path / "report"
    p = run_cli("analyze", str(digits_run), "-o", str(out), "--json", "--memory-limit", "64M")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s == json.loads((out / "summary.json").read_text())
    for name in ("index.html", "msd.png", "exponents.png", "displacements.png", "tail.png", "geometry.png"):
        assert (out / name).stat().st_size > 1000
    html = (out / "index.html").read_text()
    assert "alpha_short" in html and "msd.png" in html
    w0 = s["windows"][0]
    assert w0["alpha_ci"][0] <= w0["alpha"] <= w0["alpha_ci"][1]
    assert w0["regimes"] in ("one", "two") and w0["verdict"]
    assert w0["paper"]["alpha_short"]["paper_range"] == [1.01, 1.42]
    assert w0["step_length_tail"]["verdict"].split(":")[0] in (
        "power law",
        "lognormal",
        "exponential",
        "inconclusive",
    )
    assert "update_components" in w0["stable"] and 0 < w0["stable"]["update_components"]["alpha"] <= 2
    assert s["headline"] and "paper reports" in s["headline"][1]
    raw = (out / "summary.json").read_text()
    assert "np.float64" not in raw
    for name in ("training.svg", "msd.svg", "layers.png", "layers.svg"):
        assert (out / name).stat().st_size > 1000
    html = (out / "index.html").read_text()
    assert html.rstrip().endswith("</html>") and "This run beside the paper" in html and "Findings" in html


def test_cli_analyze_one_record_is_one_line_error(tmp_path):
    write(tmp_path / "one.zarr", np.ones((1, 3), dtype=np.float32))
    p = run_cli("analyze", str(tmp_path / "one.zarr"))
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0 and "at least 2" in p.stderr


def test_real_digits_run_landscape_and_fluctuations(digits_run):
    with trajstore.open(digits_run) as t:
        a = analyze(t, window=1000, progress=False)
    s = a.summary()
    for m in s["landscape"]:  # a number only when it is in range, else null with the reason
        assert (m["hurst"] is None) == bool(m["undetermined"])
        if m["hurst"] is not None:
            assert 0 < m["hurst"] < 1 and 1 <= m["dimension_profile"] <= 2
            assert m["hurst_ci"][0] < m["hurst"] < m["hurst_ci"][1]
        assert m["noise_floor"] is None or (m["noise_floor"] > 0 and m["floor_ratio"] >= 3)
        assert m["noise_floor_upper"] > 0
    assert s["loss_fluctuations"]["avalanches"] > 10
    assert np.isfinite(s["loss_fluctuations"]["spectrum_slope"])
    assert any("noise floor" in n for n in s["notes"])


def test_cli_analyze_with_toy(digits_run, tmp_path):
    out = tmp_path / "r"
    p = run_cli("analyze", str(digits_run), "-o", str(out), "--with-toy")
    assert p.returncode == 0, p.stderr
    s = json.loads((out / "compare" / "summary.json").read_text())
    assert [r["label"] for r in s["runs"]][1:] == [
        "toy-diamond-square.zarr",
        "toy-bowl.zarr",
        "toy-cone.zarr",
        "toy-shuffled.zarr",
    ]
    page = (out / "index.html").read_text()
    assert "compare/index.html" in page and page.rstrip().endswith("</html>")  # the link inside, not after
    assert page.index("compare/index.html") < page.index("</body>")
    cmp = (out / "compare" / "index.html").read_text()
    assert "paper ranges" in cmp and "tail verdict" in cmp
    assert (out / "msl.png").exists() and (out / "fluctuations.png").exists()


def test_empty_store_is_refused_with_a_message(tmp_path):
    with trajstore.create(tmp_path / "empty.zarr", 3):
        pass
    with trajstore.open(tmp_path / "empty.zarr") as t:
        assert t.n_records == 0
        with pytest.raises(ValueError, match="0 record"):
            analyze(t, progress=False)
