"""``trajstore info`` shows each optimizer once: one line with its class and settings (a new user
saw the recorder's ``optimizers``, ``optimizer_class`` and ``optimizer`` provenance keys as three
lines repeating each other). The provenance comes from real torch optimizers, as recorded."""

from __future__ import annotations

import numpy as np
import torch
from trajstore.recorders.provenance import optimizers_provenance

import trajstore
from trajstore.info import format_summary, summarize_store


def _info_lines(tmp_path, optimizers, names) -> list[str]:
    path = tmp_path / "s.zarr"
    with trajstore.create(path, 3, provenance=optimizers_provenance(optimizers, names)) as w:
        w.append(0, np.zeros(3, dtype=np.float32))
    return format_summary(summarize_store(str(path))).splitlines()


def _mentions(lines: list[str], word: str) -> list[str]:
    return [ln for ln in lines if word in ln]


def test_one_optimizer_is_one_line(tmp_path):
    p = torch.nn.Parameter(torch.zeros(3))
    lines = _info_lines(tmp_path, [torch.optim.SGD([p], lr=0.05, momentum=0.9)], ["optimizer"])
    shown = _mentions(lines, "SGD")
    assert len(shown) == 1, lines
    assert shown[0].startswith("optimizer    torch.optim.sgd.SGD: lr=0.05, momentum=0.9, "), shown
    assert not _mentions(lines, "provenance   optimizer"), lines


def test_several_optimizers_and_groups_are_one_line_each(tmp_path):
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    gen = torch.optim.Adam([{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 2e-3}])
    disc = torch.optim.SGD([c], lr=0.5)
    lines = _info_lines(tmp_path, [gen, disc], ["gen", "disc"])
    shown = _mentions(lines, "torch.optim.")
    assert len(shown) == 2, lines
    assert shown[0].startswith("optimizer    gen (torch.optim.adam.Adam): group 0: lr=0.001, ")
    assert "; group 1: lr=0.002, " in shown[0]
    assert shown[1].startswith("optimizer    disc (torch.optim.sgd.SGD): lr=0.5, ")
    assert not _mentions(lines, "provenance   optimizer"), lines


def test_other_provenance_is_printed_as_stored(tmp_path):
    """Keys of another shape than the recorder's are not dropped."""
    path = tmp_path / "s.zarr"
    prov = {"optimizer": "my own optimizer", "model_repr": "Net(\n  (fc): Linear()\n)"}
    with trajstore.create(path, 3, provenance=prov) as w:
        w.append(0, np.zeros(3, dtype=np.float32))
    lines = format_summary(summarize_store(str(path))).splitlines()
    assert "provenance   optimizer: my own optimizer" in lines, lines
    assert "provenance   model_repr: Net( ... <3 lines; see --json>" in lines, lines
