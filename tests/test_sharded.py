"""Sharded models (FSDP2 fully_shard): every rank writes its own columns, the store equals the
unsharded run's (issue 13, item 3). Two real processes on gloo, real FSDP2, real Zarr stores."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import crc32c
import numpy as np
import pytest
import torch
import zarr
from trajstore.recorders.sharded import build_plan

import trajstore
from tests.fsdp_model import CASES, STEPS
from trajstore.crc_combine import combine, combine_all
from trajstore.digest import content_digest
from trajstore.validate import validate

from .conftest import stored_index

pytest.importorskip("torch.distributed.fsdp")
if not hasattr(torch.distributed.fsdp, "fully_shard"):
    pytest.skip("this torch has no FSDP2 (fully_shard)", allow_module_level=True)


def test_crc32c_combine_equals_the_crc_of_the_concatenation():
    rng = random.Random(0)
    for _ in range(50):
        parts = [rng.randbytes(rng.choice([0, 1, 3, 64, 1000, 4099])) for _ in range(rng.randint(1, 5))]
        whole = crc32c.crc32c(b"".join(parts))
        assert combine_all([(crc32c.crc32c(p), len(p)) for p in parts]) == whole
    a, b = b"trajectory", b"store"
    assert combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) == crc32c.crc32c(a + b)
    assert combine(crc32c.crc32c(a), crc32c.crc32c(b), len(b)) != crc32c.crc32c(b + a)


def _local_vector(full, shapes, kinds, rows, rank):
    """What ``rank`` holds of the flat vector ``full``, in the recorder's local order."""
    out, offset = [], 0
    for i, (shape, kind) in enumerate(zip(shapes, kinds, strict=True)):
        numel = int(np.prod(shape))
        if kind == "shard":
            row = numel // shape[0]
            first = sum(rows[r][i] for r in range(rank))
            out.append(full[offset + first * row : offset + (first + rows[rank][i]) * row])
        elif kind == "replicate" or rank == 0:
            out.append(full[offset : offset + numel])
        offset += numel
    return np.concatenate(out) if out else full[:0]


@pytest.mark.parametrize("seed", range(40))
def test_shard_plan_moves_every_value_to_its_column_owner(seed):
    """The plan alone, all ranks simulated in one process: random tensors, uneven Shard(0)
    splits, replicated and plain tensors, any column width; each rank assembles exactly the
    values of the columns it owns, the columns are split among the ranks, messages match."""
    rng = np.random.default_rng(seed)
    world = int(rng.integers(1, 5))
    n_tensors = int(rng.integers(1, 7))
    shapes = [tuple(int(d) for d in rng.integers(1, 9, size=rng.integers(1, 3))) for _ in range(n_tensors)]
    kinds = [str(rng.choice(["shard", "shard", "replicate", "rank0"])) for _ in shapes]
    rows = [[0] * n_tensors for _ in range(world)]
    for i, shape in enumerate(shapes):
        if kinds[i] == "shard":
            cuts = np.sort(rng.integers(0, shape[0] + 1, size=world - 1))
            for r, n in enumerate(np.diff(np.concatenate([[0], cuts, [shape[0]]]))):
                rows[r][i] = int(n)
    columns = int(rng.integers(1, 20))
    names = [f"t{i}" for i in range(n_tensors)]
    plans = [build_plan(r, world, names, shapes, kinds, rows, columns) for r in range(world)]
    n = plans[0].n_params
    full = rng.standard_normal(n).astype(np.float32)
    local = [_local_vector(full, shapes, kinds, rows, r) for r in range(world)]
    assert [p.n_local for p in plans] == [len(v) for v in local]
    messages = {}
    for r, plan in enumerate(plans):
        for q, pieces in plan.sends.items():
            messages[r, q] = np.concatenate([local[r][a : a + k] for a, k in pieces])
    for q, plan in enumerate(plans):
        assert {r: len(m) for (r, qq), m in messages.items() if qq == q} == plan.recv_sizes
        sources = {r: m for (r, qq), m in messages.items() if qq == q}
        sources[q] = local[q]
        owned = np.full(plan.n_owned, np.nan, dtype=np.float32)
        for dst, src, off, k in plan.copies:
            owned[dst : dst + k] = sources[src][off : off + k]
        expected = np.concatenate([full[a:b] for a, b in plan.owned]) if plan.owned else full[:0]
        assert np.array_equal(owned, expected)
        assert all(a % columns == 0 and (b % columns == 0 or b == n) for a, b in plan.owned)
    covered = sorted(i for p in plans for a, b in p.owned for i in range(a, b))
    assert covered == list(range(n))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks_out(tmp_path_factory) -> Path:
    """Run the two FSDP2 ranks once (every case of fsdp_model.CASES, then the refusal)."""
    out = tmp_path_factory.mktemp("fsdp")
    worker = Path(__file__).with_name("fsdp_worker.py")
    port = _port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(r), "2", str(port), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    return out


def _unsharded_run(path: Path, options: dict) -> None:
    from trajstore.recorders import Recorder

    from tests.fsdp_model import make_model, train

    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with Recorder(model, path, store_options=options) as rec:
        rec.attach(opt)
        train(model, opt, rec)


@pytest.mark.parametrize("case", list(CASES))
def test_fsdp2_ranks_write_disjoint_columns_of_the_unsharded_store(ranks_out, tmp_path, case):
    sharded, reference = ranks_out / f"{case}.zarr", tmp_path / "reference.zarr"
    _unsharded_run(reference, CASES[case])
    report = validate(sharded)
    assert report.valid, report.errors
    with trajstore.open(sharded) as s, trajstore.open(reference) as r:
        n = r.n_params
        assert s.layout == r.layout and s.steps.tolist() == r.steps.tolist() == list(range(STEPS + 1))
        assert np.array_equal(s.weights[:], r.weights[:])  # bit for bit
        assert set(s.observables) == set(r.observables) and "loss" in s.observables
        assert content_digest(s) == content_digest(r)
        assert s.metadata["trajstore_sharded_recording"]["world_size"] == 2
        chunks = s.weights.chunks
    # The index as an unsharded writer stores it: full blocks as rows of weights/integrity (1.2).
    def blocks(path) -> list:  # times differ between the runs; values and steps do not
        return [(b.start, b.stop, b.digests["value"], b.digests["step"]) for b in stored_index(path).blocks]

    assert blocks(sharded) == blocks(reference)
    full = sum(b[1] - b[0] == chunks[0] for b in blocks(sharded))
    assert zarr.open_group(sharded, mode="r")["weights"].attrs["integrity"].get("n_blocks", 0) == full
    ranks = [json.loads((ranks_out / f"{case}.rank{i}.json").read_text()) for i in range(2)]
    owned = sorted(tuple(rng) for rk in ranks for rng in rk["owned"])
    covered = [i for a, b in owned for i in range(a, b)]
    assert covered == list(range(n))  # every column written by exactly one rank
    assert all(rk["n_local"] < n for rk in ranks)  # no rank held the full vector
    if case == "small_chunks":
        assert all(rk["owned"] for rk in ranks)  # both ranks wrote
        assert chunks == (4, 16)


def test_unsupported_dtensor_placement_is_refused_in_one_line(ranks_out):
    for rank in range(2):
        message = (ranks_out / f"refused.rank{rank}.txt").read_text()
        assert message.startswith("UnsupportedModelError: parameter weight is a DTensor placed S(1)")
        assert "\n" not in message
    assert not (ranks_out / "refused.zarr").exists()


def test_trajstore_record_under_torchrun_env_writes_the_unsharded_store(tmp_path):
    """Zero-code: `trajstore record` on 2 ranks with torchrun's environment, against the same
    script run unsharded; the script's own destroy_process_group comes before the store closes."""
    script = Path(__file__).with_name("fsdp_script.py")
    cli = [sys.executable, "-m", "trajstore.cli.main", "record", "--quiet"]
    port = str(_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([*cli, "-o", str(tmp_path / "sharded.zarr"), str(script)], env=env))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    procs.append(subprocess.Popen([*cli, "-o", str(tmp_path / "plain.zarr"), str(script)], env=env))
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert validate(tmp_path / "sharded.zarr").valid
    with trajstore.open(tmp_path / "sharded.zarr") as s, trajstore.open(tmp_path / "plain.zarr") as r:
        assert s.n_records == r.n_records == STEPS + 1 and "loss" in s.observables
        assert content_digest(s) == content_digest(r)
