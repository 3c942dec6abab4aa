"""The framework callbacks stay behind their extras: importing trajstore never imports them."""

from __future__ import annotations

import subprocess
import sys

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


def test_a_missing_framework_is_a_one_line_install_hint():
    p = run(
        "import sys\n"
        "for name in ('lightning', 'pytorch_lightning', 'transformers'):\n"
        "    sys.modules[name] = None  # its import fails, as when it is not installed\n"
        "for module in ('lightning', 'hf'):\n"
        "    try:\n"
        "        __import__('trajstore.recorders.' + module)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "trajstore.recorders.lightning needs PyTorch Lightning: pip install 'trajstore[lightning]'",
        "trajstore.recorders.hf needs transformers: pip install 'trajstore[hf]'",
    ]
