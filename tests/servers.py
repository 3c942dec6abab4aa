"""Real servers on 127.0.0.1 for the remote tests, each a subprocess stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server for {url} did not start within {timeout} s")


@contextlib.contextmanager
def serve(argv: list[str], url: str, cwd: str | None = None) -> Iterator[str]:
    """Run ``argv`` (a server process) until the block ends; stop it by its PID."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def http_server(root: str, *, ranges: bool = True, suffix: bool = True, log: str = os.devnull):
    """A static file server for ``root``: full Range support (the counting server, logging to
    ``log``), RangeHTTPServer (ranges but no suffix ranges, ``suffix=False``) or plain
    http.server (no ranges)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if ranges and suffix:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "counting_http_server.py")
        return serve([sys.executable, script, str(port), root, log], url)
    module = "RangeHTTPServer" if ranges else "http.server"
    return serve([sys.executable, "-m", module, str(port), "--bind", "127.0.0.1"], url, cwd=root)


def counting_http_server(root: str, log: str):
    """A full Range server for ``root`` that appends ``PATH BYTES`` per response to ``log``."""
    return http_server(root, log=log)


def bytes_sent(log: str) -> int:
    """Total bytes the counting server sent so far."""
    try:
        with open(log, encoding="utf-8") as f:
            return sum(int(line.rsplit(" ", 1)[1]) for line in f if line.strip())
    except FileNotFoundError:
        return 0


def s3_server():
    """moto's S3 API server (a real HTTP server speaking the S3 protocol)."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return serve(argv, f"http://127.0.0.1:{port}")


def gcs_server():
    """gcp-storage-emulator (a real HTTP server speaking the Google Cloud Storage JSON API)."""
    port = free_port()
    argv = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port)]
    return serve(argv + ["--in-memory"], f"http://127.0.0.1:{port}")


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment under which s3fs (and botocore) talk to the test server; fake credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
