"""What a recorder writes into the store's metadata when it closes.

Before: with ``policy="drop"`` a run that dropped records crashed in ``close()`` with a
TypeError (the count was handed to the writer thread as a keyword it does not take), so the
store was never closed and said nothing of the dropped records.
"""

from __future__ import annotations

import torch
from trajstore.recorders import Recorder
from trajstore.recorders.worker import WriterThread

import trajstore
from trajstore.validate import validate


def test_dropped_records_are_counted_in_the_metadata(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monkeypatch.setattr(WriterThread, "slowdown_for_tests", 0.05)  # a writer slower than training
    path = tmp_path / "drop.zarr"
    with Recorder(model, path, policy="drop", pool_size=2, progress=False) as rec:
        rec.attach(opt)
        for _ in range(40):
            opt.zero_grad()
            model(torch.randn(8, 4)).pow(2).mean().backward()
            opt.step()
    assert rec.dropped > 0
    with trajstore.open(path) as t:
        assert t.metadata["trajstore_dropped_records"] == rec.dropped
        assert t.n_records == 41 - rec.dropped  # step 0 and every step not dropped
    assert validate(path).valid


def test_a_refusal_under_record_is_kept_in_the_store_and_counted_in_its_line(tmp_path):
    from .conftest import run_cli

    script = tmp_path / "assign.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Linear(4, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "for i in range(6):\n"
        "    opt.zero_grad(); m(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()\n"
        "    if i == 2: m.load_state_dict({k: v.clone() for k, v in m.state_dict().items()}, assign=True)\n"
    )
    out = tmp_path / "assign.zarr"
    p = run_cli("record", "-o", out, script)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]  # besides the progress line
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    with trajstore.open(out) as t:
        refused = t.metadata["trajstore_recording_refused"]
        assert refused["error"] == "ReplacedParameterError"
        assert refused["iteration"] == 4  # the iteration whose record it refused
        assert lines[0].endswith(f"{t.n_records} records (steps 0-{int(t.steps[-1])}) are kept in {out}")
    assert validate(out).valid
    info = run_cli("info", out)
    assert "trajstore_recording_refused" in info.stdout
