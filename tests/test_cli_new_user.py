"""What a new user's fresh-clone trial found on the command line (bad input, damaged stores)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import trajstore

from .conftest import run_cli, write_store


def test_analyze_and_compare_refuse_a_report_path_that_is_a_file_before_analysing(tmp_path):
    store = tmp_path / "run.zarr"
    write_store(store, n_records=40)
    script = tmp_path / "train.py"
    script.write_text("print('mine')\n")
    for args in (["analyze", store, "-o", script], ["compare", store, "-o", script / "sub"]):
        result = run_cli(*args, "--quiet")
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "is a file, not a folder" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    assert script.read_text() == "print('mine')\n"  # left as it was


def test_a_damaged_zarr_json_is_named_by_every_command(tmp_path):
    store = tmp_path / "run.zarr"
    write_store(store, n_records=20)
    meta = store / "weights" / "zarr.json"
    meta.write_bytes(meta.read_bytes()[:300])  # a copy cut short
    for command in ("info", "validate", "verify", "analyze"):
        extra = ["-o", tmp_path / "rep", "--quiet"] if command == "analyze" else []
        result = run_cli(command, store, *extra)
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stdout.splitlines() + result.stderr.splitlines()
        problems = [line for line in lines if "zarr.json" in line]
        assert problems and "weights/zarr.json is not valid JSON" in problems[0], (command, lines)


def test_an_edited_shard_layout_is_blamed_on_zarr_json_not_on_the_last_shard(tmp_path):
    import json

    store = tmp_path / "run.zarr"
    write_store(store, n_records=20, chunk_records=8)  # two full shards, a partial one
    meta_path = store / "weights" / "value" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    sharding = meta["codecs"][0]["configuration"]
    records, n_params = sharding["chunk_shape"]
    sharding["chunk_shape"] = [records // 2, n_params]  # as a careless edit
    meta_path.write_text(json.dumps(meta))
    for command in ("info", "analyze"):
        extra = ["-o", tmp_path / "rep", "--quiet"] if command == "analyze" else []
        result = run_cli(command, store, *extra)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert "weights/value/zarr.json" in line and "edited" in line, line
        assert "truncated" not in line, line


def test_analyze_refuses_hdf5_values_rewritten_in_place_with_h5py(tmp_path):
    import h5py

    store = tmp_path / "run.h5"
    # 9.8 MB in blocks of 128 records: more than the memory limit, so the passes read parts of blocks
    write_store(store, n_records=600, chunk_records=128, params={"w": (64, 64)})
    with h5py.File(store, "r+") as f:  # a careless edit: every chunk still passes its checksum
        f["weights/value"][150, :] = 0.0
    limits = ["--window", "100", "--memory-limit", "6M"]
    result = run_cli("analyze", store, "-o", tmp_path / "rep", "--quiet", *limits)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "records 128..255" in line and "[V44]" in line, line
    assert not (tmp_path / "rep" / "summary.json").exists()


def test_scale_md_says_which_deflate_level_hdf5_stores_of_each_preset_get(tmp_path):
    import re
    from pathlib import Path

    import h5py

    levels = {}
    for preset in ("fast", "balanced", "small"):
        path = tmp_path / f"{preset}.h5"
        write_store(path, n_records=4, compression=preset)
        with h5py.File(path, "r") as f:
            value = f["weights/value"]
            assert value.compression == "gzip" and value.shuffle
            levels[preset] = value.compression_opts
    text = " ".join((Path(__file__).parents[1] / "docs" / "scale.md").read_text().split())
    said = re.search(r"HDF5 stores keep shuffle \+ deflate: level (\d+), or (\d+) for `small`", text)
    assert said, "docs/scale.md no longer says what HDF5 stores of the presets hold"
    assert levels["fast"] == levels["balanced"] == int(said.group(1))
    assert levels["small"] == int(said.group(2))


def test_every_output_writing_command_refuses_a_missing_folder_and_creates_none(tmp_path):
    """`record -o runs/tpyo/run.zarr` made runs/tpyo silently while `convert` refused it: now
    every command creates only its output, never the folders above it."""
    from trajstore.sharing.pack import pack

    from .test_write_safety import cli

    store = tmp_path / "run.zarr"
    write_store(store, n_records=12)
    (tmp_path / "runs").mkdir()
    script = tmp_path / "train.py"
    script.write_text("raise SystemExit('the script must not run')\n")
    package = tmp_path / "run.zip"
    pack(str(store), str(package))
    typo = tmp_path / "runs" / "tpyo"
    commands = [
        ["record", "-q", "-o", typo / "run.zarr", script],
        ["record", "-q", "-o", typo / "run.h5", script],
        ["convert", store, typo / "run.h5"],
        ["extract", store, "-o", typo / "part.zarr", "--steps", "0:10"],
        ["toy", "--size", "33", "--steps", "20", "--repeats", "2", "-q", "-o", typo / "toy.zarr"],
        ["analyze", store, "-q", "--window", "5", "-o", typo / "report"],
        ["compare", store, "-q", "--window", "5", "-o", typo / "report"],
        ["card", store, "-o", typo / "card"],
        ["pack", store, "-o", typo / "run.zip"],
        ["unpack", package, "-o", typo / "run.zarr"],
        ["pull", store.as_uri(), typo / "run.zarr"],
        ["push", store, (typo / "run.zarr").as_uri()],
        ["catalog", store, "-o", typo / "catalog.csv"],
    ]
    for args in commands:
        p = cli(*args)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1, (args[0], p.stderr)
        assert f"the folder {typo} does not exist; create it first (mkdir -p {typo})" in lines[0], lines
        assert not typo.exists(), f"{args[0]} created {typo}"
    assert sorted(os.listdir(tmp_path / "runs")) == []


def test_record_refuses_a_missing_folder_before_the_script_runs(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('the script ran')\n")
    p = run_cli("record", "-o", "runs/tpyo/run.zarr", script, cwd=tmp_path)
    assert p.returncode == 1 and "the script ran" not in p.stdout, p.stdout
    assert p.stderr.strip() == (
        "error: runs/tpyo/run.zarr: the folder runs/tpyo does not exist; "
        "create it first (mkdir -p runs/tpyo) or correct the path"
    )
    assert os.listdir(tmp_path) == ["train.py"]


def test_outputs_inside_an_existing_folder_are_still_created(tmp_path, monkeypatch):
    from .test_write_safety import cli

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "run.zarr"
    write_store(store, n_records=12)
    assert cli("card", store, "-o", tmp_path / "card").returncode == 0
    assert (tmp_path / "card" / "README.md").is_file()
    assert cli("extract", store, "-o", "part.zarr", "--steps", "0:6").returncode == 0  # current folder
    assert os.path.isdir("part.zarr")


# -- an HDF5 file cut short ------------------------------------------------------------------------


def test_a_truncated_hdf5_file_says_what_to_do_through_cli_and_api(tmp_path):
    import pytest

    import trajstore

    path = tmp_path / "run.h5"
    write_store(path, n_records=30)
    whole = path.stat().st_size
    kept = whole // 3
    with open(path, "r+b") as f:  # a copy interrupted a third of the way
        f.truncate(kept)
    said = (
        f"{path} is truncated: it has {kept} of the {whole} bytes its HDF5 header says were written "
        "(a copy or download cut short?); copy the whole file again from its source"
    )
    for args in (["info", path], ["analyze", path, "-q", "-o", tmp_path / "rep"], ["validate", path]):
        p = run_cli(*args)
        out = (p.stdout + p.stderr).strip().splitlines()
        assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr, p.stderr
        assert len(out) == 1 and said in out[0], (args[0], out)
    assert not (tmp_path / "rep").exists()
    with pytest.raises(trajstore.errors.NotAStoreError) as caught:
        trajstore.open(path)
    assert str(caught.value) == said


def test_an_hdf5_file_cut_inside_its_header_or_emptied_is_named_so(tmp_path):
    import pytest

    import trajstore

    path = tmp_path / "run.h5"
    write_store(path, n_records=5)
    data = path.read_bytes()
    cases = ((5, "is truncated: it has 5 bytes, fewer than an HDF5 header"), (0, "is empty (0 bytes)"))
    for kept, words in cases:
        path.write_bytes(data[:kept])
        with pytest.raises(trajstore.errors.NotAStoreError, match="copy the whole file again") as caught:
            trajstore.open(path)
        assert words in str(caught.value) and "\n" not in str(caught.value)


# -- a folder that is not a store --------------------------------------------------------------------

STORE_OPENING_COMMANDS = (
    ["info"],
    ["validate"],
    ["verify"],
    ["analyze", "-q"],
    ["compare", "-q", "-o", "{out}-compared"],
    ["convert", "{out}.h5"],
    ["extract", "-o", "{out}.zarr"],
    ["card"],
    ["manifest"],
    ["annotate", "--title", "t"],
    ["pack", "-o", "{out}.zip"],
    ["push", "{out_url}"],
)


def _not_a_store_folders(tmp_path) -> dict:
    import zarr

    empty = tmp_path / "empty"
    empty.mkdir()
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("lab notes\n")
    (unrelated / "data").mkdir()
    plain_group = tmp_path / "plain.zarr"
    zarr.open_group(plain_group, mode="w")
    lost_root = tmp_path / "lost.zarr"
    write_store(lost_root, n_records=6)
    (lost_root / "zarr.json").unlink()
    return {
        empty: f"{empty} is an empty folder, not a trajstore store; check the path (a store is",
        unrelated: f"{unrelated} is a folder but not a trajstore store (it has no zarr.json); check the path",
        plain_group: f"{plain_group} is not a trajstore store (root attribute 'spec_name' is None)",
        lost_root: f"{lost_root} has lost its root zarr.json (it still holds weights/zarr.json): the "
        "store is damaged; restore zarr.json from a copy of the store",
    }


def test_every_command_says_in_its_own_words_that_a_folder_is_not_a_store(tmp_path):
    from .test_write_safety import cli

    folders = _not_a_store_folders(tmp_path)
    out = tmp_path / "out"
    for folder, said in folders.items():
        for command in STORE_OPENING_COMMANDS:
            args = [a.format(out=out, out_url=out.as_uri()) for a in command]
            p = cli(args[0], folder, *args[1:])
            text = p.stdout + p.stderr
            named = [line for line in text.splitlines() if str(folder) in line]
            assert p.returncode == 1 and "No group found" not in text, (command, text)
            expected = said
            if folder.name == "plain.zarr" and command[0] in ("validate", "verify"):
                expected = f"{folder}: root attribute 'spec_name' is None, not 'trajstore' [V01]"
            assert len(named) == 1 and expected in named[0], (command, text)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "lost.zarr", "notes", "plain.zarr"]


def test_a_folder_that_is_not_a_store_is_one_line_from_the_console_and_the_api(tmp_path):
    import pytest

    import trajstore

    folders = _not_a_store_folders(tmp_path)
    for folder, said in folders.items():
        with pytest.raises(trajstore.errors.NotAStoreError) as caught:
            trajstore.open(folder)
        assert said in str(caught.value) and "\n" not in str(caught.value)
    empty = tmp_path / "empty"
    p = run_cli("info", empty)
    assert p.returncode == 1 and p.stdout == "" and "Traceback" not in p.stderr
    what_a_store_is = "a .zarr folder holding zarr.json, or a .h5 file, as trajstore writes them)"
    assert p.stderr.strip() == f"error: {folders[empty]} {what_a_store_is}"


def test_a_folder_of_stores_names_some_of_them(tmp_path):
    import pytest

    import trajstore

    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("a.zarr", "b.h5", "c.zarr", "d.zarr"):
        write_store(runs / name, n_records=3)
    (runs / "e.zarr").mkdir()  # not a store: never named
    with pytest.raises(trajstore.errors.NotAStoreError) as caught:
        trajstore.open(runs)
    assert str(caught.value) == (
        f"{runs} is a folder of stores, not a store; give one of them: "
        f"{runs / 'a.zarr'}, {runs / 'b.h5'}, {runs / 'c.zarr'} and 1 more"
    )


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_the_python_api_makes_the_store_never_the_folders_above_it(tmp_path, suffix):
    """trajstore.create and Recorder follow the CLI's rule, on both back ends: before, Zarr made
    the missing folder silently and HDF5 failed naming a temporary file."""
    import torch
    from trajstore.recorders import Recorder

    from trajstore import live
    from trajstore.errors import RecordingError, UnsafePathError

    path = tmp_path / "tpyo" / f"run{suffix}"
    with pytest.raises(
        UnsafePathError, match=r"the folder .*tpyo does not exist; create it first \(mkdir -p "
    ):
        trajstore.create(path, 10)
    listening = len(live._sinks)
    rec = Recorder(torch.nn.Linear(2, 1), path, progress=False)
    with pytest.raises(RecordingError, match=r"tpyo does not exist; create it first") as err:
        rec.bind()
    assert "\n" not in str(err.value)
    # A recorder that could not start records nothing: it must not stay registered, or a later
    # Lightning or transformers callback in this process is refused as "another recorder".
    assert len(live._sinks) == listening
    assert not (tmp_path / "tpyo").exists()
    (tmp_path / "tpyo").mkdir()
    with trajstore.create(path, 10) as w:  # inside an existing folder: made as before
        w.append(0, np.zeros(10, np.float32))
    with trajstore.open(path) as t:
        assert t.n_records == 1
