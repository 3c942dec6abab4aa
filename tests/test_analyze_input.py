"""analyze on input it cannot use: windows too short for any fit are refused in one line; the
"no losses" note appears only for stores without losses; figures of panels without data do not
leak matplotlib warnings. A new user's ``--window 2`` gave no fits, ~40 lines of notes, a false
"the store has no losses" and a matplotlib warning, with exit 0."""

from __future__ import annotations

import numpy as np
import pytest
from trajstore.analysis.exponents import check_window, fit_power_law, min_window, usable_lags
from trajstore.analysis.pipeline import analyze

import trajstore

from .conftest import run_cli


def _store(path, n_records=40, loss=True, nan_every=None):
    """A random walk of 60 parameters; losses pre_step at every step (so they pair with records)."""
    rng = np.random.default_rng(0)
    with trajstore.create(path, {"w": (60,)}, mode="w", chunk_records=8) as wr:
        w = rng.normal(size=60).astype(np.float32)
        for i in range(n_records):
            w += rng.normal(scale=0.01, size=60).astype(np.float32)
            v = w.copy()
            if nan_every and i % nan_every == nan_every // 2:
                v[3] = np.nan  # every window non-finite: no MSD to draw
            wr.append(i, v)
            if loss:
                wr.log("loss", i + 1, float(np.sum(w.astype(np.float64) ** 2)), evaluated_at="pre_step")
    return path


def test_the_minimum_window_is_the_first_that_can_be_fitted():
    """Independent of check_window: the fit itself fails one record below the minimum."""
    least = min_window()
    assert least == 4  # lags 1, 2, 3 (T - tau >= T/4) fall into 3 bins of 0.1 decade
    for window in range(2, least + 3):
        lags = usable_lags(window).astype(float)
        try:
            fit_power_law(lags, lags**0.7)
            fitted = True
        except ValueError:
            fitted = False
        assert fitted == (window >= least), window
    check_window(least)
    with pytest.raises(ValueError, match=f"at least {least} records"):
        check_window(least - 1)


@pytest.mark.parametrize("window", ["1", "2", "3"])
def test_a_window_too_short_to_fit_is_refused_in_one_line(tmp_path, window):
    store = _store(tmp_path / "s.zarr")
    p = run_cli("analyze", store, "-o", tmp_path / "rep", "--window", window)
    assert p.returncode != 0, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert f"window of {window} records is too short" in p.stderr and "at least 4 records" in p.stderr
    assert not (tmp_path / "rep").exists() and p.stdout == ""
    with trajstore.open(store) as traj, pytest.raises(ValueError, match="too short"):
        analyze(traj, int(window), progress=False)


def test_no_losses_note_only_when_the_store_has_no_losses(tmp_path):
    """With losses but windows too short for an MSL the report must not claim there are none."""
    with trajstore.open(_store(tmp_path / "with.zarr")) as traj:
        with_losses = analyze(traj, 4, progress=False)
    assert with_losses.windows[0].power_law is not None  # the minimum window fits
    assert not [n for n in with_losses.notes if "no losses" in n], with_losses.notes
    with trajstore.open(_store(tmp_path / "without.zarr", loss=False)) as traj:
        without = analyze(traj, 4, progress=False)
    assert any("the store has no losses" in n for n in without.notes), without.notes
    p = run_cli("analyze", tmp_path / "with.zarr", "-o", tmp_path / "rep", "--window", "4")
    assert p.returncode == 0, p.stderr
    assert "no losses" not in p.stderr and "figure msl.png skipped: no MSL" in p.stderr


def test_panels_without_data_do_not_warn(tmp_path):
    """Every window holds a NaN: no MSD curve, no step-length tail. The figures are drawn
    without matplotlib's 'No artists with labels' (or any other) warning on stderr."""
    store = _store(tmp_path / "nan.zarr", nan_every=10)
    p = run_cli("analyze", store, "-o", tmp_path / "rep", "--window", "10")
    assert p.returncode == 0, p.stderr
    assert "has non-finite weights" in p.stderr  # the notes say why panels are empty
    assert "Warning" not in p.stderr and "warn(" not in p.stderr, p.stderr
    assert (tmp_path / "rep" / "msd.png").exists()


def test_the_window_option_states_one_least_value(tmp_path):
    """--help said x>=2 while the least window is 4: the option now names only the fits' own."""
    p = run_cli("analyze", "--help")
    assert p.returncode == 0 and "x>=" not in p.stdout and "at least 4" in p.stdout


def test_notes_that_windows_share_are_one_line(tmp_path):
    """A new user's --window 4 printed 22 identical 'window N: no two-regime fit' lines and 22
    identical landscape lines; each is now one line naming the windows. summary.json keeps all."""
    import json

    from trajstore.cli.analyze_commands import group_window_notes

    store = _store(tmp_path / "s.zarr", n_records=40)
    p = run_cli("analyze", store, "-o", tmp_path / "rep", "--window", "4")
    assert p.returncode == 0, p.stderr
    notes = [line for line in p.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == len(set(notes)), notes
    fit = [n for n in notes if "no two-regime fit" in n]
    assert len(fit) == 1 and fit[0].startswith("note: windows 0–9 (10): no two-regime fit"), notes
    kept = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert len([n for n in kept["notes"] if "no two-regime fit" in n]) == 10
    shared = ["window 2: x", "a", "window 5: x", "window 6: x", "landscape window 1 (t_w = 8) skipped: y"]
    assert group_window_notes(shared) == [
        "windows 2, 5–6 (3): x",
        "a",
        "landscape window 1 (t_w = 8) skipped: y",
    ]
