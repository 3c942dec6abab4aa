"""What a new user's fresh-clone trial found on the command line (bad input, damaged stores)."""

from __future__ import annotations

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
