"""trajstore info / validate / convert from the command line, bad input included."""

from __future__ import annotations

import json

import pytest
import zarr

from .conftest import run_cli, write_store


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_info_text_and_json(store):
    path, w, steps = store
    p = run_cli("info", path)
    assert p.returncode == 0, p.stderr
    assert f"records      {len(w)}" in p.stdout and "observable   loss [nats]" in p.stdout
    s = json.loads(run_cli("info", path, "--json").stdout)
    assert s["n_records"] == len(w) and s["n_params"] == w.shape[1]
    assert s["step_range"] == [0, int(steps[-1])] and s["compression_ratio"] > 0
    assert s["nonfinite_weights"] == 0 and s["observables"]["loss"]["evaluated_at"] == "pre_step"


def test_validate_and_convert(tmp_path, store):
    path, _, _ = store
    assert run_cli("validate", path).returncode == 0
    dst = tmp_path / ("out.h5" if path.suffix == ".zarr" else "out.zarr")
    assert run_cli("convert", path, dst).returncode == 0
    assert run_cli("validate", dst).returncode == 0
    assert_one_line_error(run_cli("convert", path, dst), "exists")


def test_validate_invalid_exit_1_one_line_per_problem(tmp_path):
    path = tmp_path / "v.zarr"
    write_store(path)
    g = zarr.open_group(path, mode="r+")
    g["weights"].attrs["n_committed"] = 10**6
    g["observables/loss"].attrs["evaluated_at"] = "never"
    p = run_cli("validate", path)
    assert p.returncode == 1
    assert len(p.stdout.strip().splitlines()) == 2


@pytest.mark.parametrize("case", ["missing", "not_a_store", "newer", "plain_file", "truncated"])
def test_bad_input_one_line(tmp_path, case):
    if case == "missing":
        assert_one_line_error(run_cli("info", tmp_path / "nope.zarr"), "no such file")
    elif case == "not_a_store":
        (tmp_path / "dir").mkdir()
        assert_one_line_error(run_cli("info", tmp_path / "dir"), "is an empty folder, not a trajstore store")
        zarr.open_group(tmp_path / "plain.zarr", mode="w")
        assert_one_line_error(run_cli("info", tmp_path / "plain.zarr"), "not a trajstore store")
    elif case == "newer":
        path = tmp_path / "n.zarr"
        write_store(path)
        zarr.open_group(path, mode="r+").attrs["spec_version"] = "2.0"
        assert_one_line_error(run_cli("info", path), "format 2.0", "upgrade")
    elif case == "plain_file":
        (tmp_path / "x.txt").write_text("hello")
        assert_one_line_error(run_cli("info", tmp_path / "x.txt"), "not an HDF5 file")
    else:
        path = tmp_path / "t.h5"
        write_store(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        assert_one_line_error(run_cli("info", path))
        p = run_cli("validate", path)
        assert p.returncode == 1 and "Traceback" not in p.stderr + p.stdout


def test_corrupted_chunk_info_is_one_line(tmp_path):
    path = tmp_path / "c.zarr"
    write_store(path, n_records=40, chunk_records=8)
    shard = path / "weights" / "value" / "c" / "1" / "0"
    data = bytearray(shard.read_bytes())
    data[30] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert_one_line_error(run_cli("info", path), "weights/value records 8..15", "weights/value/c/1/0")
    p = run_cli("validate", path)
    assert p.returncode == 1 and "chunk (1, 0) is corrupted" in p.stdout


def test_info_reports_nonfinite_weights(tmp_path):
    import numpy as np

    import trajstore

    path = tmp_path / "nan.zarr"
    with trajstore.create(path, 3) as w:
        w.append(0, [1.0, np.nan, np.inf])
        w.append(1, [1.0, 2.0, 3.0])
    p = run_cli("info", path)
    assert p.returncode == 0 and "WARNING      2 non-finite weight values" in p.stdout
    assert json.loads(run_cli("info", path, "--json", "--no-scan").stdout)["nonfinite_weights"] is None
    p = run_cli("validate", path)
    assert p.returncode == 0 and "2 non-finite values" in p.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "x.zarr", "--memory-limit", "0"],
        ["extract", "x.zarr", "-o", "y.zarr", "--keepbits", "99"],
        ["info"],
        ["nosuch-command"],
    ],
)
def test_usage_errors_are_one_line_from_the_console_entry(args):
    p = run_cli(*args)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help" in lines[0], p.stderr
