"""Fault injection: kill -9 during `record`, a full disk, a file system turned read-only, errors
found when the store is created, readers during a live recording, bad numeric options.

CI runs a handful of each; ``TRAJSTORE_SLOW=1`` runs the larger setting whose figures are in
docs/reliability.md (each test prints its figures: run with ``-s`` to see them).
"""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import trajstore
from trajstore.validate import validate

from .conftest import cli_argv, run_cli, write_store
from .fault_train import train

SLOW = os.environ.get("TRAJSTORE_SLOW") == "1"
TRAIN = Path(__file__).resolve().parent / "fault_train.py"
HANG = 240  # seconds: a run still going after this counts as hung (the runs take about 10)


def reference(width: int, n: int) -> np.ndarray:
    """The first ``n`` weight records of ``fault_train.py --width width``, copied by hand."""
    rows: list[np.ndarray] = []

    def keep(model):
        rows.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy())

    threads = torch.get_num_threads()
    try:
        train(width, max(n - 1, 0), after_step=keep)
    finally:
        torch.set_num_threads(threads)
    return np.stack(rows)[:n]


def record_argv(out, width: int, *extra) -> list[str]:
    return cli_argv(
        "record",
        "--quiet",
        "--flush-seconds",
        "0.2",
        *extra,
        "-o",
        out,
        TRAIN,
        "--",
        "--width",
        width,
        "--steps",
        10**7,
    )


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def committed_prefix_intact(out, width: int) -> int:
    """The store validates and holds exactly the reference run's first records; return their count."""
    report = validate(out)
    assert report.valid, report.problems
    with trajstore.open(out) as t:
        n = t.n_records
        np.testing.assert_array_equal(t.steps, np.arange(n))
        if n:
            np.testing.assert_array_equal(t.weights[:], reference(width, n))
    return n


# -- kill -9 -----------------------------------------------------------------------------------


def test_kill_9_at_random_points_keeps_a_bit_identical_prefix_and_resumes(tmp_path):
    rng = random.Random(int(os.environ.get("TRAJSTORE_FAULT_SEED", "0")))
    kills = int(os.environ.get("TRAJSTORE_KILLS", 40 if SLOW else 3))
    counts = []
    for i in range(kills):
        out = tmp_path / f"k{i}{('.zarr', '.h5')[i % 2]}"
        proc = subprocess.Popen(record_argv(out, 64), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + HANG
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert out.exists(), "the recording never created its store"
        time.sleep(rng.uniform(0.0, 2.0))  # anywhere from creation to thousands of steps in
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        counts.append(committed_prefix_intact(out, 64))
    print(f"\nkill -9: {kills} kills, all valid and bit-identical; records kept {counts}")
    out = tmp_path / f"k{kills - 1}{('.zarr', '.h5')[(kills - 1) % 2]}"
    n = counts[-1]
    # a killed writer may leave zarr's half-written temporaries; resume removes them
    if out.suffix == ".zarr":
        (out / "weights" / "value" / ("c." + "0" * 32 + ".partial")).write_bytes(b"half")
    # The script restarts from fresh weights (no checkpoint): a new segment, said so (format 3.5).
    argv = ("record", "--resume", "--resume-new-segment", "-o", out, TRAIN)
    p = run_cli(*argv, "--", "--width", 64, "--steps", 20, timeout=HANG)
    assert p.returncode == 0, p.stderr
    assert validate(out).valid
    with trajstore.open(out) as t:
        assert t.n_records == n + 1 + 20 and np.all(np.diff(t.steps) > 0)
        assert "resumed" in t.provenance
        if n:  # an empty store (killed before its first commit) just starts; no gap to record
            assert t.segments[-1] == slice(n, n + 21)
        np.testing.assert_array_equal(t.weights[:n], reference(64, n))
    assert not list(Path(out).rglob("*.partial"))


# -- a full disk, a read-only file system ------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs mounted for the test (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


DISK_FULL_CASES = (
    [
        (w, s)
        for w, s in zip(
            [60, 120, 200, 300, 500, 800, 1000, 1500, 2000, 3000, 4000, 6000, 9000],
            [".zarr", ".h5"] * 7,
            strict=False,
        )
    ]
    if SLOW
    else [(300, ".zarr"), (2000, ".h5")]
)


@pytest.mark.parametrize(("width", "suffix"), DISK_FULL_CASES)
def test_disk_full_stops_recording_in_one_line_and_keeps_the_store(small_disk, width, suffix):
    out = small_disk / f"r{suffix}"
    start = time.monotonic()
    p = subprocess.run(record_argv(out, width), capture_output=True, text=True, timeout=HANG)
    wall = time.monotonic() - start
    assert p.returncode != 0
    line = one_error_line(p.stderr)
    assert "No space left on device" in line and "--resume" in line, line
    safe = int(re.search(r"; (\d+) records", line).group(1))
    n = committed_prefix_intact(out, width)
    assert n == safe
    print(f"\ndisk full: width {width} {suffix}: exit {p.returncode} after {wall:.1f} s, {n} records safe")
    if width == DISK_FULL_CASES[0][0]:  # more room: the run continues where it stopped
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        # The script does not load a checkpoint, so it continues as a new segment (format 3.5).
        argv = ("record", "--resume", "--resume-new-segment", "-o", out, TRAIN)
        p = run_cli(*argv, "--", "--width", width, "--steps", 10, timeout=HANG)
        assert p.returncode == 0, p.stderr
        with trajstore.open(out) as t:
            assert t.n_records == n + 1 + 10 and np.all(np.diff(t.steps) > 0)


def test_read_only_file_system_mid_run_stops_in_one_line(small_disk):
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    out = small_disk / "ro.zarr"
    proc = subprocess.Popen(
        record_argv(out, 300), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + HANG
    n = 0
    while n < 50 and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            with trajstore.open(out) as t:
                n = t.n_records
        except trajstore.TrajstoreError:
            pass
    # Linux refuses to remount read-only while a file is open for writing ("mount point is
    # busy"): the recorder writes a shard or metadata file for a moment every few records.
    for _ in range(100):
        argv = ["mount", "-o", "remount,ro", str(small_disk)]
        remount = subprocess.run(argv, capture_output=True, text=True)
        if remount.returncode == 0 or "busy" not in remount.stderr:
            break
        time.sleep(0.02)
    assert remount.returncode == 0, remount.stderr
    try:
        _, err = proc.communicate(timeout=HANG)
    finally:
        proc.kill()
    assert proc.returncode != 0
    line = one_error_line(err)
    assert "Read-only file system" in line, line
    assert committed_prefix_intact(out, 300) >= n


def test_convert_and_analyze_into_a_full_disk_lose_nothing(small_disk, tmp_path):
    from .test_write_safety import cli

    src = tmp_path / "big.zarr"
    rng = np.random.default_rng(0)
    with trajstore.create(src, 6000, chunk_records=50) as w:  # 12 MB of incompressible values
        for i in range(500):
            w.append(i, rng.random(6000, dtype=np.float32))
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    old = small_disk / "old.h5"
    w_old, _ = write_store(old, n_records=5, seed=4)
    line = one_error_line(cli("convert", src, small_disk / "big.h5").stderr)
    assert "No space left on device" in line and "unchanged" in line
    line = one_error_line(cli("convert", src, old, "--overwrite").stderr)
    assert "No space left on device" in line
    assert sorted(os.listdir(small_disk)) == ["old.h5"]  # no temporary left behind
    with trajstore.open(old) as t:
        np.testing.assert_array_equal(t.weights[:], w_old)
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    # analyze: the report cannot be written
    small = tmp_path / "small.zarr"
    write_store(small, n_records=60)
    free = os.statvfs(small_disk)
    with open(small_disk / "filler", "wb") as f:
        os.posix_fallocate(f.fileno(), 0, free.f_bavail * free.f_frsize)
    p = cli("analyze", small, "-o", small_disk / "report", "--window", 20, "--quiet")
    assert p.returncode == 1
    assert "No space left on device" in one_error_line(p.stderr)
    assert validate(small).valid


# -- errors met when the store is created --------------------------------------------------------


@pytest.mark.parametrize("case", ["file_as_folder", "resume_other_model"])
def test_store_creation_errors_are_one_line_with_the_true_cause(tmp_path, case):
    if case == "file_as_folder":  # refused before the script runs, like every output's folder
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "x.zarr"
        args = ["-o", out]
        cause = "afile is a file, not a folder"
    else:
        out = tmp_path / "other.zarr"
        write_store(out, n_records=3)
        args = ["--resume", "-o", out]
        cause = "different parameter layout"
    p = run_cli("record", *args, TRAIN, "--", "--width", 8, "--steps", 5, timeout=HANG)
    assert p.returncode != 0
    line = one_error_line(p.stderr)
    assert cause in line and "optimizer.step()" not in line, line
    if case == "resume_other_model":
        assert "cannot record into" in line
        assert validate(out).valid and trajstore.open(out).n_records == 3


def test_unknown_output_suffix_is_refused_before_training(tmp_path):
    from .test_write_safety import cli

    line = one_error_line(cli("record", "-o", tmp_path / "run.txt", TRAIN).stderr)
    assert "cannot tell the back end" in line


# -- numeric options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["record", "--flush-seconds", "nan", "s.py"],
        ["record", "--flush-seconds", "0", "s.py"],
        ["record", "--flush-seconds", "-1", "s.py"],
        ["record", "--flush-seconds", "inf", "s.py"],
        ["analyze", "s.zarr", "--memory-limit", "0"],
        ["analyze", "s.zarr", "--memory-limit", "-5G"],
        ["analyze", "s.zarr", "--memory-limit", "nan"],
        ["analyze", "s.zarr", "--memory-limit", "infG"],
        ["compare", "a.zarr", "-o", "r", "--memory-limit", "0"],
        ["toy", "--lr", "nan", "-o", "t.zarr"],
        ["toy", "--noise", "-0.1", "-o", "t.zarr"],
        ["toy", "--hurst", "1.5", "-o", "t.zarr"],
        ["toy", "--steps", "0", "-o", "t.zarr"],
    ],
)
def test_numeric_options_refuse_nan_zero_and_negatives(args):
    from click.testing import CliRunner
    from trajstore.cli.main import cli

    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    option = next(a for a in args if a.startswith("--"))
    assert len(errors) == 1 and f"Invalid value for '{option}'" in errors[0], r.stderr


def test_memory_limit_sizes_parse():
    from trajstore.cli.params import parse_bytes

    assert parse_bytes("512M") == 512 << 20 and parse_bytes("1GiB") == 1 << 30 and parse_bytes("4096") == 4096
    for bad in ("0", "-5G", "nan", "inf", "0.1", "lots"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


# -- readers during a live recording ---------------------------------------------------------------

LIVE_WRITER = textwrap.dedent("""
    import sys, numpy as np, trajstore
    path, n = sys.argv[1], int(sys.argv[2])
    wr = trajstore.create(path, n, mode="w", chunk_records=16)
    s = 0
    while True:  # flushes every 5 records: far more often than a recording does
        wr.append(s, np.arange(n, dtype=np.float32) + s)
        wr.log("loss", s, float(s))
        if s % 5 == 4:
            wr.flush()
        if s == 20:
            print("started", flush=True)
        s += 1
""")


def test_readers_during_a_live_recording_see_a_consistent_prefix_or_retry(tmp_path, suffix):
    path, n_params = tmp_path / f"live{suffix}", 3000
    proc = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(path), str(n_params)], stdout=subprocess.PIPE, text=True
    )
    outcomes: collections.Counter = collections.Counter()
    try:
        assert proc.stdout.readline().strip() == "started"
        seconds, max_reads = (60.0, 5000) if SLOW else (4.0, 400)
        end = time.monotonic() + seconds
        while time.monotonic() < end and sum(outcomes.values()) < max_reads:
            try:
                with trajstore.open(path) as t:
                    n = t.n_records
                    steps, w = t.steps, t.weights[:]
                    lsteps, loss = t.observable("loss")
            except trajstore.errors.StoreBusyError as exc:
                assert "being written" in str(exc) and "retry" in str(exc)
                outcomes["busy"] += 1
                continue
            np.testing.assert_array_equal(steps, np.arange(n))
            np.testing.assert_array_equal(w, np.arange(n_params, dtype=np.float32) + steps[:, None])
            np.testing.assert_array_equal(loss, lsteps.astype(float))
            outcomes["consistent"] += 1
            if outcomes["consistent"] % 10 == 1:  # validate is a reader too
                report = validate(path, checksums=True)
                assert report.valid or "being written" in report.problems[0], report.problems
                outcomes["validate: " + ("valid" if report.valid else "being written")] += 1
    finally:
        proc.kill()
        proc.wait()
    print(f"\nlive readers {suffix}: {dict(outcomes)}")
    assert outcomes["consistent"] >= 5
    assert validate(path).valid


# -- any writer error, without root ----------------------------------------------------------------


def test_writer_error_stops_training_at_once_and_keeps_the_store(tmp_path):
    """A write that fails (here: a chunk folder replaced by a file) ends training at the next
    steps with RecordingError, even with a tiny pool that the failed writer would have kept."""
    from torch import nn
    from trajstore.recorders import Recorder

    from trajstore.errors import RecordingError

    out = tmp_path / "w.zarr"
    model = nn.Linear(20, 20)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rec = Recorder(model, out, flush_seconds=0.2, pool_size=2, progress=False)
    rec.attach(opt)
    chunks = out / "weights" / "value" / "c"
    steps_after = None
    with pytest.raises(RecordingError, match="the store writer failed"):
        for i in range(10**6):
            opt.zero_grad()
            model(torch.ones(4, 20)).square().sum().backward()
            opt.step()
            if steps_after is not None:
                steps_after += 1
            elif chunks.is_dir() and i > 50:
                chunks.rename(tmp_path / "saved")
                chunks.write_text("in the way")  # every later chunk write fails
                steps_after, broken_at = 0, time.monotonic()
    seconds = time.monotonic() - broken_at
    print(f"\nwriter error: training stopped {steps_after} steps and {seconds:.2f} s after the sabotage")
    assert steps_after < 10**5  # it stopped (a hang would never get here)
    with pytest.raises(RecordingError) as info:
        rec.close()
    message = str(info.value)
    assert "\n" not in message and "recording stopped" in message and "records" in message
    chunks.unlink()
    (tmp_path / "saved").rename(chunks)
    report = validate(out)
    assert report.valid, report.problems
    safe = int(re.search(r"; (\d+) records", message).group(1))
    with trajstore.open(out) as t:
        assert t.n_records == safe > 0 and np.array_equal(t.steps, np.arange(safe))


def test_a_series_whose_creation_was_interrupted_is_invisible_and_removed_on_resume(tmp_path, suffix):
    """Series created during a run (observables, gradients) are built under a hidden group and
    moved into place; a kill in between leaves only that hidden group (found by 40 kills: before,
    an observable group without its arrays made the killed store invalid)."""
    import h5py
    import zarr

    path = tmp_path / f"c{suffix}"
    w, _ = write_store(path, n_records=10)
    assert not (path.exists() and suffix == ".zarr" and (path / ".creating").exists())
    if suffix == ".zarr":  # what a kill half-way through creating observables/acc leaves
        zarr.open_group(str(path), mode="r+").create_group(".creating/observables_acc")
    else:
        with h5py.File(path, "a") as f:
            f.create_group(".creating/observables_acc")
    assert validate(path).valid
    with trajstore.open(path) as t:
        assert t.observables == ["loss"]
        np.testing.assert_array_equal(t.weights[:], w)
    with trajstore.create(path, trajstore.open(path).layout, mode="a") as wr:
        wr.log("acc", 100, 0.5)
    with trajstore.open(path) as t:
        assert t.observables == ["acc", "loss"] and t.observable("acc")[1].tolist() == [0.5]
        assert not t._backend.exists(".creating")


def test_a_second_hdf5_writer_is_refused_while_the_first_is_open(tmp_path):
    from trajstore.backends.hdf5_backend import is_being_written
    from trajstore.errors import StoreBusyError

    path = tmp_path / "two.h5"
    first = trajstore.create(path, 4)
    first.append(0, np.ones(4))
    assert is_being_written(str(path))
    with pytest.raises(StoreBusyError, match="being written"):
        trajstore.create(path, 4, mode="a")
    first.close()
    assert not is_being_written(str(path))
    with trajstore.create(path, 4, mode="a") as second:
        second.append(1, np.zeros(4))
    assert trajstore.open(path).n_records == 2
