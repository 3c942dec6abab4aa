"""Progress on stderr: plain periodic lines off a terminal, a tqdm bar on one that never shares
a line with the training script's output; --quiet."""

from __future__ import annotations

import io
import re
import sys

import pytest

from trajstore.progress import CONSOLE, Progress, ScriptStream

from .conftest import run_cli, write_store

# A tiny real training run of about 3 s that prints a line per 50 steps, once without newline.
TRAIN = """
import time, torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 4), torch.randn(64, 1)
for step in range(300):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
    time.sleep(0.01)
    if step % 50 == 49:
        print(f"step {step + 1} train mse", end=" ")
        time.sleep(0.05)
        print(f"{loss.item():.4f}")
"""

PROGRESS_LINE = re.compile(r"^trajstore: (\d+) records \[[0-9:]+, +[0-9.]+ records/s, [0-9.]+[kMG]?B raw")


def test_record_off_a_terminal_prints_plain_lines_and_leaves_stdout_clean(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env = {**__import__("os").environ, "TRAJSTORE_PROGRESS_SECONDS": "0.2"}
    p = run_cli("record", "-o", tmp_path / "r.zarr", script, env=env)
    assert p.returncode == 0, p.stderr
    # stdout is exactly the script's own lines
    out = p.stdout.splitlines()
    assert len(out) == 6 and all(re.fullmatch(r"step \d+ train mse \d+\.\d{4}", ln) for ln in out), out
    err = p.stderr.splitlines()
    counts = [int(m.group(1)) for m in map(PROGRESS_LINE.match, err) if m]
    assert len(counts) >= 2, p.stderr  # periodic, not only at the end
    assert counts == sorted(counts) and counts[-1] == 301  # the last line: every record
    assert "\r" not in p.stderr
    assert err[-1] == f"trajstore: recorded {tmp_path / 'r.zarr'}"
    q = run_cli("record", "--quiet", "--overwrite", "-o", tmp_path / "r.zarr", script, env=env)
    assert q.returncode == 0 and q.stderr == "" and q.stdout.splitlines()[0].startswith("step 50")


def terminal_view(text: str) -> list[str]:
    """What a terminal shows for ``text``: '\\r' returns to the line start and later characters
    overwrite earlier ones; ANSI cursor-up moves (tqdm's) are not used with one bar."""
    lines, cur, col = [], [], 0
    for ch in text:
        if ch == "\n":
            lines.append("".join(cur).rstrip())
            cur, col = [], 0
        elif ch == "\r":
            col = 0
        else:
            if col < len(cur):
                cur[col] = ch
            else:
                cur.append(ch)
            col += 1
    if cur:
        lines.append("".join(cur).rstrip())
    return lines


def run_on_a_terminal(argv: list[str], env: dict) -> str:
    """Run ``argv`` with stdout and stderr on one pseudo-terminal of 24x100; return what it got."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait() == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.skipif(sys.platform != "linux", reason="pseudo-terminal test written for Linux")
def test_record_on_a_terminal_keeps_bar_and_script_lines_apart(tmp_path):
    from .conftest import cli_argv

    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    raw = run_on_a_terminal(cli_argv("record", "-o", tmp_path / "r.zarr", script), env=None)
    assert raw.count("\rtrajstore: ") >= 3  # a live bar, redrawn while the script ran
    shown = terminal_view(raw)
    assert len(shown) == 8, shown
    assert all(re.fullmatch(r"step \d+ train mse \d+\.\d{4}", ln) for ln in shown[:6]), shown
    assert PROGRESS_LINE.match(shown[6]) and shown[6].startswith("trajstore: 301 records"), shown
    assert shown[7] == f"trajstore: recorded {tmp_path / 'r.zarr'}"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_never_shares_a_line_with_script_output():
    """Bar and script on one terminal: every line the script writes shows intact."""
    term = Tty()
    script_out = ScriptStream(term)
    bar = Progress("trajstore", unit=" records", stream=term)
    assert bar.terminal and bar._bar is not None
    try:
        for k in range(1, 6):
            bar.update_to(k * 10, f"{k}.0 MB raw")
            script_out.write(f"epoch {k} train mse")  # a line written in two parts,
            bar.update_to(k * 10 + 5)  # progress arriving in between (writer thread)
            script_out.write(f" 0.{k}\n")
    finally:
        bar.close()
    view = terminal_view(term.getvalue())
    script_lines = [ln for ln in view if ln.startswith("epoch")]
    assert script_lines == [f"epoch {k} train mse 0.{k}" for k in range(1, 6)], view
    assert all("trajstore" not in ln for ln in script_lines)
    assert view[-1].startswith("trajstore: 55 records") and not CONSOLE.displays


def test_plain_lines_wait_for_the_scripts_newline():
    err = io.StringIO()
    script_err = ScriptStream(err)
    bar = Progress("trajstore", unit=" records", stream=err, interval=0.0)
    assert not bar.terminal
    script_err.write("half a line")
    bar.update_to(3)  # held back: the script's line is open
    script_err.write(" and the rest\n")
    bar.update_to(4)
    bar.close()
    lines = err.getvalue().splitlines()
    assert lines[0] == "half a line and the rest"
    assert [ln.split(" [")[0] for ln in lines[1:]] == ["trajstore: 4 records"]  # not repeated at close
    err = io.StringIO()
    bar = Progress("trajstore", unit=" records", stream=err, interval=1e9)
    bar.update_to(3)
    assert err.getvalue() == ""  # not yet time for a line
    bar.close()
    assert err.getvalue().startswith("trajstore: 3 records [")  # the final state, at close


def test_analyze_progress_with_eta_off_a_terminal_and_quiet(tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    write_store(path, n_records=60)
    env = {**__import__("os").environ, "TRAJSTORE_PROGRESS_SECONDS": "0.000001"}
    p = run_cli("analyze", path, "--window", "20", "-o", tmp_path / "rep", env=env)
    assert p.returncode == 0, p.stderr
    bars = [ln for ln in p.stderr.splitlines() if ln.startswith("trajstore analyze")]
    # 3 windows + the whole run + landscape = 5 passes, each line with count/total and an ETA
    assert any(re.search(r"100% 5/5 \[[0-9:]+<00:00.*landscape and fluctuations", ln) for ln in bars), bars
    # (the rate reads "2.0 passes/s", or "1.5s/ passes" when slower than one a second)
    assert any(re.search(r" 1/5 \[[0-9:]+<[0-9:]+, [^]]+, window 1/3\]", ln) for ln in bars), bars
    q = run_cli("analyze", path, "--window", "20", "-o", tmp_path / "rep", "--quiet", env=env)
    assert q.returncode == 0
    assert not [ln for ln in q.stderr.splitlines() if ln.startswith(("trajstore", "note:", "report:"))]


def test_compare_one_bar_over_every_store(tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.h5"
    write_store(a, n_records=40)
    write_store(b, n_records=30, seed=1)
    env = {**__import__("os").environ, "TRAJSTORE_PROGRESS_SECONDS": "0.000001"}
    p = run_cli("compare", a, b, "--window", "20", "-o", tmp_path / "c", env=env)
    assert p.returncode == 0, p.stderr
    # a: 2 windows + whole run + landscape; b (30 records): a window, the trailing partial
    # window of 10 records (analysed too, no whole-run pass with one full window) + landscape
    assert re.search(r"trajstore compare: a\.zarr:  14% 1/7 .*window 1/2", p.stderr), p.stderr
    assert re.search(r"trajstore compare: b\.h5: 100% 7/7 .*landscape", p.stderr), p.stderr


@pytest.mark.parametrize("value", ["", "x", "-1", "0", "nan"])
def test_progress_interval_env_falls_back_to_default(monkeypatch, value):
    from trajstore.progress import DEFAULT_PLAIN_SECONDS, INTERVAL_ENV, plain_interval

    monkeypatch.setenv(INTERVAL_ENV, value)
    assert plain_interval() == DEFAULT_PLAIN_SECONDS
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert plain_interval() == 2.5
    assert sys.stderr is not None
