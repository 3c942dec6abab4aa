"""Shared fixtures: small real stores on disk, written by trajstore."""

from __future__ import annotations

import numpy as np
import pytest

import trajstore

BACKENDS = ["zarr", "h5"]


def cli_argv(*args) -> list[str]:
    """The command line of the real console entry point with ``args``."""
    import sys

    return [sys.executable, "-m", "trajstore.cli.main", *map(str, args)]


def run_cli(*args, **kwargs):
    """Run the real console entry point in a subprocess (exit codes and stderr as a user sees)."""
    import subprocess

    return subprocess.run(cli_argv(*args), capture_output=True, text=True, **kwargs)


def write_store(path, n_records=50, params=None, seed=0, chunk_records=8, loss=True, **kwargs):
    """Write a random-walk trajectory; return (weights (n_records, N), steps)."""
    params = params or {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (3, 16), "fc.bias": (3,)}
    layout = trajstore.Layout.from_params(params)
    rng = np.random.default_rng(seed)
    w = np.cumsum(rng.normal(size=(n_records, layout.n_params)).astype(np.float32), axis=0)
    steps = np.arange(n_records, dtype=np.int64) * 2
    with trajstore.create(
        path,
        params,
        mode="w",
        chunk_records=chunk_records,
        metadata={"lab": "test"},
        provenance={"seed": seed},
        **kwargs,
    ) as writer:
        for i in range(n_records):
            writer.append(int(steps[i]), w[i], time=float(i))
            if loss and i:
                writer.log("loss", int(steps[i]), float(1.0 / (i + 1)), unit="nats", evaluated_at="pre_step")
    return w, steps



def stored_index(path):
    """The integrity index of ``weights`` as trajstore reads it (rows and listed blocks)."""
    from trajstore import spec
    from trajstore.backends import open_backend
    from trajstore.integrity import read_index

    b = open_backend(str(path), "r")
    try:
        return read_index(b, spec.WEIGHTS, (1, 2))
    finally:
        b.close()


def edit_transpose_order(path) -> None:
    """Set the transpose order of the Zarr store's ``weights/value`` to [0, 1], as a new user
    did: every chunk still decodes and passes its CRC, to other values."""
    import json

    meta_path = path / "weights" / "value" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    inner = meta["codecs"][0]["configuration"]["codecs"]
    assert inner[0]["name"] == "transpose"
    inner[0]["configuration"]["order"] = [0, 1]
    meta_path.write_text(json.dumps(meta))


def flip_hdf5_chunk(path) -> None:
    """Corrupt chunk 1 of ``weights/value`` in the HDF5 store at ``path``: one byte inverted."""
    import h5py

    with h5py.File(path, "r") as f:
        offset = f["weights/value"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        b = fh.read(1)
        fh.seek(offset + 10)
        fh.write(bytes([b[0] ^ 0xFF]))

@pytest.fixture(params=BACKENDS)
def suffix(request):
    return "." + request.param


@pytest.fixture
def store(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    w, steps = write_store(path)
    return path, w, steps


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A real recorded digits training run (2,700 steps, every step), recorded once per session."""
    from pathlib import Path

    out = tmp_path_factory.mktemp("digits") / "digits.zarr"
    script = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"
    p = run_cli("record", "-o", out, script, "--", "--epochs", "60", "--quiet")
    assert p.returncode == 0, p.stderr
    return out
