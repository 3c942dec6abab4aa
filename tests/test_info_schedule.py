"""``trajstore info`` says how the records are spaced in optimizer steps (the schedule asked and
the spacing the records have, per segment) and how many values of each observable are NaN or
±inf, in text and in ``--json`` (checked against docs/schemas/info.schema.json).

Before: neither was shown: a store recorded every 10 steps, one whose resume changed the
stride, one with AMP gaps and an every-step one all printed alike, and a loss with NaN values
showed only its last value.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from trajstore.recorders import Recorder

import trajstore

from .conftest import run_cli
from .test_cli_output import schema_validator


def _train(path, steps: int, **options) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with Recorder(model, path, progress=False, **options) as rec:
        rec.attach(opt)
        for _ in range(steps):
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
    return model


def _info(path) -> tuple[str, dict]:
    p = run_cli("info", path)
    assert p.returncode == 0, p.stderr
    q = run_cli("info", path, "--json")
    assert q.returncode == 0, q.stderr
    s = json.loads(q.stdout)
    schema_validator("info").validate(s)
    return p.stdout, s


def test_info_shows_the_schedule_asked_and_the_spacing_recorded(tmp_path):
    every = tmp_path / "every.zarr"
    _train(every, 30, every=10)
    text, s = _info(every)
    assert "schedule     every 10 steps (asked: every:10)" in text
    assert s["schedule"] == {
        "declared": "every:10",
        "declared_on_resume": None,
        "segments": [{"records": [0, 4], "steps": [0, 30], "stride": 10, "text": "every 10 steps"}],
    }

    logged = tmp_path / "log.zarr"
    _train(logged, 120, schedule="log:5")
    text, s = _info(logged)
    with trajstore.open(logged) as t:
        steps = t.steps.tolist()
    assert steps[:6] == [0, 1, 2, 3, 4, 6]  # round(10^(i/5)): 1, 2, 3 (2.5), 4, 6, ...
    assert f"at varying gaps (steps {', '.join(map(str, steps[:8]))}, …" in text and "(asked: log:5)" in text
    assert s["schedule"]["segments"][0]["stride"] is None


def test_info_shows_a_resume_that_changed_the_stride_and_separate_segments(tmp_path):
    path = tmp_path / "resumed.zarr"
    model = _train(path, 10, every=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with Recorder(model, path, progress=False, every=5, resume=True) as rec:  # continuous resume
        rec.attach(opt)
        for _ in range(20):
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
    text, s = _info(path)
    assert (
        "schedule     every step, then every 5 steps from step 10 (asked: every:1, then every:5 on resume)"
        in (text)
    )
    assert s["schedule"]["declared_on_resume"] == "every:5" and len(s["schedule"]["segments"]) == 1

    with torch.no_grad():
        model.weight.add_(1.0)  # the next run does not continue the stored weights: a new segment
    with Recorder(model, path, progress=False, every=5, resume=True, resume_new_segment=True) as rec:
        rec.attach(opt)
        for _ in range(14):
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
    text, s = _info(path)
    with trajstore.open(path) as t:
        steps = t.steps.tolist()
    assert steps[-4:] == [31, 35, 40, 45]  # its initial weights at one step past the last stored
    parts = s["schedule"]["segments"]
    assert [p["records"] for p in parts] == [[0, 15], [15, 19]]
    assert parts[1]["steps"] == [31, 45] and parts[1]["text"] == "every 5 steps but for 1 gap (31 → 35)"
    assert (
        "segment 1 (steps 0..30): every step, then every 5 steps from step 10; segment 2 (steps 31..45)"
        in text
    )


def test_info_names_amp_gaps_of_older_stores_and_counts_nonfinite_observables(tmp_path):
    """A store as recorders before 2026-12-01 wrote it: no record at the skipped step 50."""
    path = tmp_path / "old_amp.zarr"
    w = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    with trajstore.create(path, 4, mode="w") as wr:
        for t in range(0, 100, 10):
            if t != 50:
                wr.append(t, w[t])
        wr.log("skipped", 50, 1.0)
        for t in range(1, 100):
            value = float("nan") if t in (50, 51) else float("inf") if t == 52 else float(-t)
            wr.log("loss", t, value)
        wr.log("grad_norm", 99, float("-inf"))
        wr.log("loss.opt_g", 99, 0.5, evaluated_at="within_step")  # a GAN's (the schema had no within_step)
    text, s = _info(path)
    assert "every 10 steps but for 1 gap (40 → 60: AMP's GradScaler skipped the update of step 50" in text
    assert s["schedule"]["declared"] is None and s["schedule"]["segments"][0]["stride"] is None
    assert "observable   loss: 99 values, post_step, last -99, 2 NaN, 1 inf" in text
    assert "observable   skipped: 1 values, post_step, last 1\n" in text  # nothing to count
    assert (s["observables"]["loss"]["nan"], s["observables"]["loss"]["inf"]) == (2, 1)
    assert (s["observables"]["grad_norm"]["nan"], s["observables"]["grad_norm"]["inf"]) == (0, 1)


@pytest.mark.parametrize(
    ("steps", "text"),
    [
        ([0, 1, 2, *range(12, 80, 10)], "every step, then every 10 steps from step 2"),
        ([0, 1, 2, 3, 4, *range(10, 200, 10)], "every step to step 4, then every 10 steps from step 10"),
    ],
)
def test_info_names_a_change_of_stride_whichever_stride_has_more_records(tmp_path, steps, text):
    """A short first stretch recorded every step, then every 10th (a warm-up, or a resume with
    another stride). Before: 'every 10 steps but for 5 gaps (0 → 1; ...)', records that are
    extra called gaps, or 'at varying gaps (...; a log or ranged schedule)'; analyze said the same."""
    path = tmp_path / "two.zarr"
    with trajstore.create(path, 3, mode="w") as wr:
        for s in steps:
            wr.append(s, np.full(3, s, dtype=np.float32))
    out, s = _info(path)
    assert f"schedule     {text}" in out
    assert s["schedule"]["segments"][0]["stride"] is None
