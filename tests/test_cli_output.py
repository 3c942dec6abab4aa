"""What the commands print and write: strict JSON checked against docs/schemas, default output
paths, --quiet, help texts, one-line refusals; HDF5 stores opened next to plain h5py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from trajstore.cli.paths import default_report_dir

import trajstore
from trajstore import jsonsafe

from .conftest import run_cli, write_store

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def strict(text: str):
    """Parse JSON as strict parsers do: bare NaN / Infinity are errors."""
    return jsonsafe.loads_strict(text)


def schema_validator(name: str):
    """A draft 2020-12 validator for docs/schemas/NAME.schema.json (references between the
    schemas resolved by their $id)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    schema = schemas[f"{name}.schema.json"]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def assert_matches(name: str, doc) -> None:
    errors = sorted(schema_validator(name).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def nan_store(path, n_records: int = 60) -> None:
    """A store whose analysis meets NaN: non-finite weights in its second window, and metadata
    holding NaN, infinities and numpy scalars and arrays."""
    rng = np.random.default_rng(1)
    w = np.cumsum(rng.normal(size=(n_records, 6)), axis=0).astype(np.float32)
    w[40, 2] = np.nan
    meta = {"lr": np.float32(0.1), "clip": float("inf"), "best": float("nan"), "sizes": np.arange(3)}
    with trajstore.create(path, {"a": (2, 2), "b": (2,)}, metadata=meta, mode="w") as writer:
        writer.set_provenance(max_norm=float("-inf"), seed=np.int64(3))
        for i in range(n_records):
            writer.append(i, w[i])
            if i:
                writer.log("loss", i, float(np.exp(-i / 20)) if i != 7 else float("nan"))


# --- JSON: valid everywhere --------------------------------------------------------------------


def test_to_json_converts_numpy_and_non_finite():
    doc = {
        1: np.float64(np.nan),
        "a": [np.float32(1.5), float("inf"), (np.int64(2), np.bool_(True))],
        "b": np.array([[1.0, np.nan], [-np.inf, 2.0]]),
        "p": Path("x/y"),
    }
    assert jsonsafe.to_json(doc) == {
        "1": None,
        "a": [1.5, None, [2, True]],
        "b": [[1.0, None], [None, 2.0]],
        "p": os.path.join("x", "y"),
    }
    assert strict(jsonsafe.dumps(doc))["b"][1] == [None, 2.0]
    with pytest.raises(ValueError, match="bare NaN"):
        strict('{"x": NaN}')
    with pytest.raises(TypeError, match="object"):
        jsonsafe.dumps({"x": object()})
    assert strict(jsonsafe.dumps({"x": {1, 2}, "y": 1j}, default=str)) == {"x": [1, 2], "y": "1j"}


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_metadata_with_nan_is_stored_as_strict_json(tmp_path, suffix):
    path = tmp_path / f"nan{suffix}"
    nan_store(path)
    if suffix == ".zarr":
        raw = strict((path / "zarr.json").read_text())["attributes"]
    else:
        import h5py

        with h5py.File(path, "r") as f:
            raw = {k: strict(f.attrs[k]) for k in ("metadata", "provenance")}
    assert raw["metadata"] == {"lr": pytest.approx(0.1), "clip": None, "best": None, "sizes": [0, 1, 2]}
    assert raw["provenance"]["max_norm"] is None and raw["provenance"]["seed"] == 3
    with trajstore.open(path) as t:
        assert t.metadata["best"] is None
    p = run_cli("info", path, "--json")
    assert p.returncode == 0, p.stderr
    info = strict(p.stdout)
    assert info["metadata"]["clip"] is None and info["nonfinite_weights"] == 1
    assert info["observables"]["loss"]["last"] == pytest.approx(np.exp(-59 / 20), rel=1e-6)
    assert_matches("info", info)


def test_old_store_with_bare_nan_metadata_prints_strict_json(tmp_path):
    """A store written before strict JSON (zarr.json holding a bare NaN) still reads, and info
    --json turns the NaN into null."""
    path = tmp_path / "old.zarr"
    write_store(path)
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["metadata"]["x"] = float("nan")
    meta.write_text(json.dumps(doc))  # Python's json writes the bare NaN
    assert "NaN" in meta.read_text()
    p = run_cli("info", path, "--json")
    assert p.returncode == 0, p.stderr
    assert strict(p.stdout)["metadata"]["x"] is None


def test_analyze_json_and_summary_are_strict_and_match_schema(tmp_path):
    path = tmp_path / "nan.zarr"
    nan_store(path)
    out = tmp_path / "rep"
    p = run_cli("analyze", path, "--window", "30", "-o", out, "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # --quiet: no progress, notes or report line
    printed = strict(p.stdout)
    written = strict((out / "summary.json").read_text())
    assert printed == written
    second = written["windows"][1]
    assert second["finite"] is False and second["msd_1"] is None  # NaN became null
    assert any("non-finite" in n for n in written["notes"])
    assert_matches("analyze", written)


def test_compare_and_toy_json_match_schemas(tmp_path):
    toy = tmp_path / "toy.zarr"
    p = run_cli("toy", "--size", "33", "--steps", "40", "--repeats", "2", "-o", toy, "--json", "-q")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    t = strict(p.stdout)
    assert t["store"] == str(toy) and t["toy"]["landscape"] == "diamond-square"
    assert_matches("toy", t)
    nan = tmp_path / "nan.zarr"
    nan_store(nan)
    out = tmp_path / "cmp"
    p = run_cli("compare", nan, toy, "-o", out, "--window", "30", "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    doc = strict(p.stdout)
    assert doc == strict((out / "summary.json").read_text())
    assert [r["label"] for r in doc["runs"]] == ["nan.zarr", "toy.zarr"]
    assert_matches("compare", doc)


def test_validate_json_valid_and_invalid(tmp_path):
    good = tmp_path / "g.zarr"
    nan_store(good)
    p = run_cli("validate", good, "--json")
    doc = strict(p.stdout)
    assert p.returncode == 0 and doc["valid"] is True and doc["problems"] == []
    assert doc["nonfinite"] and any("non-finite" in w for w in doc["warnings"])
    assert_matches("validate", doc)
    bad = tmp_path / "b.zarr"
    write_store(bad)
    zarr.open_group(bad, mode="r+")["observables/loss"].attrs["evaluated_at"] = "never"
    p = run_cli("validate", bad, "--json", "--no-checksums")
    doc = strict(p.stdout)
    assert p.returncode == 1 and doc["valid"] is False and doc["checksums"] is False
    assert len(doc["problems"]) == 1 and "evaluated_at" in doc["problems"][0]
    assert_matches("validate", doc)


def test_schemas_reject_wrong_documents():
    """The schemas constrain something: a broken document fails each of them."""
    from jsonschema import ValidationError

    with pytest.raises(ValidationError):
        doc = {"store": "x", "valid": True, "checksums": True, "problems": ["p"], "warnings": []}
        schema_validator("validate").validate({**doc, "nonfinite": {}})
    with pytest.raises(ValidationError):
        schema_validator("info").validate({"path": "x"})
    with pytest.raises(ValidationError):
        toy = {"landscape": "moon", "size": 3, "phases": {}}
        schema_validator("toy").validate({"store": "x", "toy": toy})
    for name in ("analyze", "compare"):
        with pytest.raises(ValidationError):
            schema_validator(name).validate({"windows": "none"})


# --- default output paths ----------------------------------------------------------------------

REPORT_DIRS = [
    ("run.zarr", "run-report"),
    ("run.zarr/", "run-report"),
    ("run.zarr//", "run-report"),
    ("data/exp.v2/run", "data/exp.v2/run-report"),
    ("data/exp.v2/run/", "data/exp.v2/run-report"),
    ("data/run.v2", "data/run.v2-report"),
    ("data/exp.v2/run.zarr", "data/exp.v2/run-report"),
    ("runs/b.h5", "runs/b-report"),
    ("runs/b.HDF5", "runs/b-report"),
    ("runs/b.hdf", "runs/b-report"),
    ("runs/b.zarr.zip", "runs/b-report"),
    ("runs/b.zip", "runs/b-report"),
    ("/abs/path/c.zarr", "/abs/path/c-report"),
    ("../up/d.zarr", "../up/d-report"),
    (".zarr", ".zarr-report"),
    ("http://host/run.zarr", "run-report"),
    ("https://host:8080/a/b/run.zarr/", "run-report"),
    ("s3://bucket/exp.v2/run", "run-report"),
    ("s3://bucket/", "bucket-report"),
    ("gs://bucket/x/run%20one.zarr", "run one-report"),
    ("https://host/data/run.zarr?token=x", "run-report"),
    ("file:///tmp/x/run.zarr", "/tmp/x/run-report"),
]


@pytest.mark.parametrize(("store", "expected"), REPORT_DIRS)
def test_default_report_dir_table(store, expected):
    got = default_report_dir(store)
    assert got == expected.replace("/", os.sep)
    assert "://" not in got and not got.startswith("http:")


def test_default_report_dir_of_current_folder(tmp_path, monkeypatch):
    folder = tmp_path / "run.zarr"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert default_report_dir(".") == str(tmp_path / "run-report")


def test_analyze_without_out_writes_beside_a_dotted_store(tmp_path):
    """`analyze data/exp.v2/run` writes data/exp.v2/run-report (not data/exp-report)."""
    store = tmp_path / "data" / "exp.v2" / "run"
    store.parent.mkdir(parents=True)
    write_store(store.with_suffix(".zarr"), n_records=30)
    (store.with_suffix(".zarr")).rename(store)  # a Zarr store folder without the .zarr suffix
    p = run_cli("analyze", "data/exp.v2/run", "--window", "10", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "data" / "exp.v2" / "run-report" / "summary.json").is_file()
    assert sorted(os.listdir(tmp_path / "data")) == ["exp.v2"]


# --- help texts and refusals -------------------------------------------------------------------


def test_every_option_of_every_command_has_help():
    import click
    from trajstore.cli.main import cli

    missing = [
        f"{name} {param.opts[0]}"
        for name, cmd in cli.commands.items()
        for param in cmd.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert not missing, missing
    p = run_cli("toy", "--help")
    assert "Learning rate" in p.stdout and "Independent walkers" in p.stdout


def test_analyze_zero_parameter_store_is_a_one_line_error(tmp_path):
    path = tmp_path / "zero.zarr"
    write_store(path, n_records=5, params={"w": (2,)}, loss=False)
    g = zarr.open_group(path, mode="r+")
    value = g["weights/value"]
    value.resize((value.shape[0], 0))
    layout = g["weights"].attrs["layout"]
    layout[0].update(shape=[0], size=0)
    g["weights"].attrs["layout"] = layout
    with trajstore.open(path) as t:
        assert t.n_params == 0 and t.n_records == 5
    p = run_cli("analyze", path, "-o", tmp_path / "r")
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        f"error: {path} holds 0 parameters per record: there is no trajectory to analyse; "
        "check the store's layout (trajstore info)"
    ]
    assert not (tmp_path / "r").exists()


# --- HDF5 next to plain h5py -------------------------------------------------------------------


def test_hdf5_store_opens_alongside_plain_h5py(tmp_path):
    """trajstore.open then h5py.File on the same file in one process (and the other order)."""
    import h5py

    path = tmp_path / "run.h5"
    w, _ = write_store(path, n_records=12)
    with trajstore.open(path) as t, h5py.File(path, "r") as f:
        assert np.array_equal(f["weights/value"][:], t.weights[:]) and np.array_equal(t.weights[:], w)
    with h5py.File(path, "r") as f, trajstore.open(path) as t:
        assert t.n_records == f["weights/value"].shape[0] == 12
    with h5py.File(path, "r", locking=False) as f, trajstore.open(path) as t:  # the other flags too
        assert t.n_records == f["weights/value"].shape[0]


def test_info_rounds_the_last_observable_value(tmp_path):
    """info printed 'last 2.24497127532959' beside rounded figures; six significant digits now."""
    path = tmp_path / "r.zarr"
    with trajstore.create(path, 3) as w:
        for i in range(3):
            w.append(i, [0.0, 1.0, 2.0])
            w.log("loss", i, 2.0 / 3.0 + i, evaluated_at="post_step")
    p = run_cli("info", path)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("observable   loss"))
    assert line.endswith("last 2.66667"), line
