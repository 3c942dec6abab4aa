"""The framework callbacks stay behind their extras: importing trajstore never imports them."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "accelerate")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_trajstore_and_its_recorders_import_no_framework():
    p = run(
        "import sys, trajstore, trajstore.recorders, trajstore.recorders.integrations\n"
        "import trajstore.recorders.loss_capture, trajstore.cli.main\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


@pytest.mark.parametrize(("module", "blocked", "extra"), [
    ("lightning", ("lightning", "pytorch_lightning"), "lightning"),
    ("hf", ("transformers",), "hf"),
])
def test_a_missing_framework_is_a_one_line_install_hint(module, blocked, extra):
    block = "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)  # import of it fails
    p = run(
        f"import sys\n{block}"
        "try:\n"
        f"    import trajstore.recorders.{module}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"trajstore.recorders.{module} needs " + (
        "PyTorch Lightning" if extra == "lightning" else "transformers"
    ) + f": pip install 'trajstore[{extra}]'"
