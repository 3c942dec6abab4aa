"""``trajstore info`` on a damaged store prints what its metadata says, then one line per
damaged part found, and exits 1 (a new user saw only the error line); metadata that cannot be
read stays a one-line error. Both back ends, through the real console entry point."""

from __future__ import annotations

import json

import h5py
import pytest

from .conftest import flip_hdf5_chunk, run_cli, write_store
from .test_cli_output import schema_validator

N_RECORDS = 40  # 5 blocks of 8 records


def _flip_file(file, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0xFF
    file.write_bytes(bytes(data))


def _flip_hdf5_dataset(path, name: str) -> None:
    """One byte inverted in chunk 0 of dataset ``name`` of the HDF5 file at ``path``."""
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        b = fh.read(1)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes([b[0] ^ 0xFF]))


def _damage(path, suffix: str, kind: str) -> str:
    """Damage the store; return a word its damage line must hold."""
    if kind == "values" and suffix == ".zarr":
        shard = path / "weights" / "value" / "c" / "2" / "0"
        _flip_file(shard, shard.stat().st_size - 30)  # in its tail: caught before decoding
        return "weights/value records 16..23"
    if kind == "values":
        flip_hdf5_chunk(path)
        return "weights/value chunk (1, 0)"
    if kind == "truncated" and suffix == ".zarr":
        shard = path / "weights" / "value" / "c" / "1" / "0"
        shard.write_bytes(shard.read_bytes()[:-9])
        return "truncated"
    if suffix == ".zarr":  # kind == "index": a chunk of the integrity rows
        _flip_file(path / "weights" / "integrity" / "c" / "0" / "0", 10)
    else:
        _flip_hdf5_dataset(path, "weights/integrity")
    return "integrity index"


CASES = [("zarr", "values"), ("zarr", "truncated"), ("zarr", "index"), ("h5", "values"), ("h5", "index")]


@pytest.mark.parametrize(("backend", "kind"), CASES)
def test_info_shows_the_metadata_then_the_damage(tmp_path, backend, kind):
    suffix = "." + backend
    path = tmp_path / f"run{suffix}"
    write_store(path, n_records=N_RECORDS, chunk_records=8)
    intact = run_cli("info", "--no-scan", path)
    assert intact.returncode == 0, intact.stderr
    word = _damage(path, suffix, kind)

    p = run_cli("info", path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    errors = p.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), p.stderr
    assert word in errors[0] and "trajstore validate" in errors[0], errors[0]
    assert "b'" not in errors[0] and "Stored:" not in errors[0], errors[0]  # no raw checksum bytes
    # every metadata line of the intact store's --no-scan summary, bar what reads values
    for line in intact.stdout.splitlines():
        if line.startswith(("records", "schedule", "observable", "size")):  # these read values
            continue
        assert line in p.stdout.splitlines(), (line, p.stdout)
    assert f"records      {N_RECORDS}" in p.stdout and "metadata     lab: test" in p.stdout

    j = run_cli("info", "--json", path)
    assert j.returncode == 1
    s = json.loads(j.stdout)
    schema_validator("info").validate(s)
    assert s["n_records"] == N_RECORDS and s["n_params"] == 91 and s["metadata"] == {"lab": "test"}
    assert len(s["damage"]) == 1 and word in s["damage"][0]
    assert s["nonfinite_weights"] is None  # not counted over damaged weights


def test_info_of_an_intact_store_has_no_damage(tmp_path):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=N_RECORDS, chunk_records=8)
    p = run_cli("info", "--json", path)
    assert p.returncode == 0 and "damage" not in json.loads(p.stdout)


@pytest.mark.parametrize("where", ["zarr.json", "weights/zarr.json"])
def test_unreadable_metadata_stays_one_line(tmp_path, where):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=N_RECORDS, chunk_records=8)
    meta = path / where
    meta.write_text(meta.read_text()[:-30])  # cut short: not JSON
    p = run_cli("info", path)
    assert p.returncode == 1 and p.stdout == "", p.stdout
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr
