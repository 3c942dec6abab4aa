"""Run every analysis a store's content allows; collect results and notes for the report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trajstore import __version__
from trajstore.progress import Progress
from trajstore.reader import DEFAULT_MEMORY_LIMIT, Trajectory
from trajstore.selection import SelectedTrajectory, selection_summary

from . import verdicts
from .exponents import (
    PowerLawFit,
    TwoRegimeFit,
    check_window,
    fit_exponents,
    fit_power_law,
    local_slope,
    smoothed_local_slope,
)
from .geometry import Geometry, geometry
from .layers import LAYER_DEFINITIONS, kinds_summary, store_kinds, window_layers
from .msd import WindowMSD, pooled_msd, window_msd
from .pairs import (
    IRREGULAR_UNDETERMINED,
    fluctuation_losses,
    is_regular,
    lag_summary,
    segment_summary,
    split_by_segments,
)
from .spacing import describe_uneven_spacing
from .steps import Displacements, displacements
from .tails import fit_power_law_tail, fit_stable, mohammadi_alpha
from .windows import iter_windows, record_windows

WHOLE_RUN_MAX_RECORDS = 50_000

DEFINITIONS = {
    "t_w": "optimizer step of the first record of the window",
    "msd": "Δr²(τ) = 1/(T−τ) Σ_i ‖w(i+τ) − w(i)‖², summed over all parameters, record lag τ",
    "alpha_short": "exponent of Δr² ∝ τ^α below the crossover τ0 (two-regime fit on log-binned lags); "
    "null unless two regimes are supported against one power law (see regimes)",
    "alpha_long": "exponent of Δr² ∝ τ^α above the crossover τ0 (null unless two regimes are supported)",
    "tau0": "crossover lag of the two-regime fit, in records (in steps where lag_pairs.lag_unit is "
    "'steps'); tau0_steps, tau0_ci_steps and two_regime_lag_range_steps the same in optimizer steps",
    "*_ci": "95 % interval from a bootstrap over 64 blocks of parameters (each resample refits the "
    "curve; coverage checked on exact fBm and a synthetic crossover, docs/analysis.md)",
    "alpha": "single power-law exponent over all usable lags (T − τ ≥ T/4); alpha_lag_range the fitted lags "
    "(the unit of lag_pairs.lag_unit), alpha_lag_range_steps the same in optimizer steps",
    "regimes": "'one' or 'two': whether a change of slope is supported (its 95 % interval excludes 0 "
    "and it is at least 0.1); 'untested' without a bootstrap",
    "verdict": "the diffusion regime of the window in words",
    "residual_rms": "root-mean-square residual of ln Δr² about the fitted line(s) (log-binned points)",
    "noise_ratio": "residuals in units of the bootstrap standard deviation of each binned point "
    "(≫ 1: the curve is not one power law)",
    "two_regime_fit": "the two-regime fit as fitted, also when it is not supported (for reference)",
    "tensor_alpha": "single power-law exponent of each tensor's own MSD (no interval)",
    **LAYER_DEFINITIONS,
    "undetermined": "quantities reported as null, each with the reason it cannot be measured",
    "paper": "the paper's range (Chen, Qu & Gong 2022, ResNets on CIFAR-10) and whether this run is inside",
    "step_length": "‖w(t+1) − w(t)‖ of every window (the trailing partial window included; the one step "
    "between consecutive windows is not); tail fit by Clauset–Shalizi–Newman with a verdict "
    "from the likelihood-ratio tests, per window and pooled; stride_steps: the optimizer steps one "
    "step length spans (no pooled fit over windows of different strides)",
    "zero_steps": "steps of length exactly 0 in windows that moved (left_out; at_skipped_iterations: "
    "of them at AMP-skipped iterations): no update, so left out of step-length tails, update-component "
    "fits and the step and direction autocorrelations, kept in the MSD and contour length",
    "contour_exponent": "slope of ln Δr² against ln contour length (2 ballistic, 1 random walk)",
    "direction_autocorr": "mean cosine between updates k records (k × stride steps) apart",
    "stable": "α-stable fit (McCulloch quantiles) and Mohammadi block estimate, per window, of the "
    "update components w_k(t+s) − w_k(t) over the window's stride s (100 random coordinates, each "
    "divided by its median |update| "
    "before pooling, so that different scales do not mix) and of the loss increments ΔL; "
    "'pooled' values mix windows of different scale (non-stationary) and are for reference only",
    "landscape.hurst": "H from MSL(Δr) = ⟨(L_j − L_i)²⟩ = F + A·Δr^{2H} over pairs of a window "
    "(losses paired with the weights they were computed at): F (noise_floor) is the MSL plateau at "
    "the smallest distances (null: no plateau, F < noise_floor_upper), the fit of ln(MSL − F) runs "
    "from MSL ≥ 3F to the distance below which a quarter of the pairs lie; dimension_profile = 2 − H; "
    "hurst and dimension_profile are null with the reason in undetermined when H ∉ (0, 1), its "
    "interval is wider than (0, 1), or the fitted MSL − F changes less than 2.5× over the fit range",
    "loss_fluctuations": "ΔL series: α-stable fit, avalanches (runs of |ΔL| > std|ΔL|) with a discrete "
    "power-law fit of durations, Welch spectrum slope of L; increment_steps: the optimizer steps one "
    "ΔL spans (the loss's logging stride); no ΔL spans a non-finite loss",
    "gradient_noise": "‖g_t − ḡ_epoch‖ per record; α-stable α of gradient components per window",
    "lag_pairs": "per window (and whole_run): lag_unit 'records' (records equally spaced in steps: "
    "T − τ pairs at record lag τ) or 'steps' (not equally spaced: the MSD at each step lag Δ averages "
    "the pairs of records exactly Δ steps apart, lag_steps and n_pairs list every lag); rule and "
    "min_pairs (= T/4): which lags are fitted (equally spaced: T/4 pairs at the lag; otherwise T/4 "
    "pairs in the lag's log bin and lag ≤ 3/4 of the span); usable_lag_steps (first, last fitted lag, "
    "steps) and usable_pairs (fewest, most pairs at a fitted lag)",
    "segments": "record and step ranges of the store's segments (a resume that did not continue the "
    "trajectory); windows, lags, step lengths and increments never span a boundary",
    "selection": "what part of the store was analysed: steps, tensor globs, trainable_only (tensors "
    "frozen at any analysed record left out) or not (--all), frozen_tensors (frozen at some record)",
    "toy_phases": "toy stores: per phase (descent until U ≤ U_f + 0.1 (U(0) − U_f), then near_minimum) "
    "the median over walkers of the TAMSD exponent over lags 1 … n/4; mean cosine of successive steps",
}


@dataclass
class WindowAnalysis:
    msd: WindowMSD
    two_regime: TwoRegimeFit | None
    power_law: PowerLawFit | None
    slope: tuple[np.ndarray, np.ndarray]
    smooth_slope: tuple[np.ndarray, np.ndarray]
    displacements: Displacements
    geometry: Geometry
    stride: int | None
    partial: bool = False
    tensor_alpha: dict[str, float | None] = field(default_factory=dict)
    step_tail: Any = None  # TailFit | None of this window's step lengths
    stable: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)  # layers.window_layers: layers, layer_types
    undetermined: dict[str, str] = field(default_factory=dict)  # further quantities left out, why
    zero_step_steps: np.ndarray | None = None  # optimizer steps of the records ending a 0-length step

    def exponents(self) -> dict:
        """The MSD fits as reported (``verdicts.exponent_summary``)."""
        lags = self.msd.lags
        return _still(
            self.msd,
            verdicts.exponent_summary(
                self.power_law,
                self.two_regime,
                (lags, np.nan_to_num(self.msd.lag_steps, nan=0.0)),
                unit=self.msd.lag_unit,
            ),
        )

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "index": self.msd.index,
            "t_w": self.msd.t_w,
            "n_records": self.msd.n_records or len(self.msd.msd),
            "stride": self.stride,
            "finite": self.msd.finite,
            "partial": self.partial,
        }
        d.update(self.exponents())
        d["lag_pairs"] = lag_summary(self.msd)  # pairs per lag (analysis/pairs.py)
        if self.msd.step_lags is not None:  # not equally spaced: what assumes one stride is not computed
            d["undetermined"].update(IRREGULAR_UNDETERMINED)
        d["undetermined"].update(self.undetermined)
        usable = self.msd.usable()
        d["msd_1"] = float(self.msd.msd[1]) if len(self.msd.msd) > 1 else None
        d["msd_last_usable"] = float(self.msd.msd[usable[-1]]) if len(usable) else None
        d["tensor_alpha"] = self.tensor_alpha
        d["contour_exponent"] = self.geometry.contour_exponent
        d["direction_autocorr"] = {str(k): v for k, v in self.geometry.direction_autocorr.items()}
        d["step_autocorr"] = {str(k): v for k, v in self.geometry.step_autocorr.items()}
        d["zero_steps_left_out"] = self.geometry.zero_steps  # no update: out of sizes and directions
        d["step_length_tail"] = tail_summary(self.step_tail) if self.step_tail is not None else None
        d["stable"] = self.stable
        d.update(self.layers)
        return d


STILL = "the weights did not move in this window (every record equal: frozen, or a zero learning rate)"


def _still(wm: WindowMSD, d: dict) -> dict:
    """An exponent summary of a window whose weights never moved says so (not 'too few lags')."""
    if wm.finite and len(wm.msd) > 1 and not np.any(wm.msd[1:] > 0):
        d["undetermined"]["alpha"] = STILL
        d["verdict"] = f"undetermined: {STILL}"
    return d


def tail_summary(fit) -> dict:
    """A tail fit as reported: its numbers and the verdict of its likelihood-ratio tests."""
    d = fit.to_dict()
    d["verdict"] = verdicts.tail_verdict(d["tests"])
    return d


@dataclass
class Analysis:
    """Everything ``trajstore analyze`` computes; ``summary()`` is what summary.json holds."""

    path: str
    n_records: int
    n_params: int
    window: int
    windows: list[WindowAnalysis] = field(default_factory=list)
    whole_run: Any = None  # WindowAnalysis-like exponents of the whole run (dict) or None
    whole_run_msd: WindowMSD | None = None
    step_lengths: np.ndarray | None = None
    tails: dict[str, Any] = field(default_factory=dict)
    stable: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    msl: list = field(default_factory=list)
    fluct: Any = None
    notes: list[str] = field(default_factory=list)
    step_stride: int | None = None  # optimizer steps per step length pooled in tails (one stride)
    # stride in optimizer steps → the step lengths ‖w(t+s) − w(t)‖ of the windows recorded at it
    # (a run resumed with another stride has two: never one sample, see pool_step_lengths)
    step_lengths_by_stride: dict[int, np.ndarray] = field(default_factory=dict)
    toy_curves: dict | None = None  # toy stores: phase -> (lags, Δr²), for the figure
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )  # loss, lr: (steps, values)

    def summary(self) -> dict:
        return {
            "trajstore_version": __version__,
            "store": self.path,
            "n_records": self.n_records,
            "n_params": self.n_params,
            "window": self.window,
            "windows": [w.to_dict() for w in self.windows],
            "whole_run": self.whole_run,
            "tails": {
                k: {**tail_summary(v), **({"stride_steps": self.step_stride} if k == "step_length" else {})}
                for k, v in self.tails.items()
            },
            "stable": {k: v for k, v in self.stable.items()},
            **{k: v for k, v in self.extra.items()},
            "notes": self.notes,
            "definitions": DEFINITIONS,
        }


def analysis_passes(n_records: int, window: int, traj: Trajectory | None = None) -> int:
    """Passes over the data :func:`analyze` makes, for its progress bar: one per window, one for
    the whole run (with more than one window), one for the landscape and fluctuations. ``traj``:
    the store, whose segments each have windows of their own."""
    segments = traj.segments if traj is not None else [slice(0, n_records)]
    bounds = record_windows(traj, window, partial=True) if traj is not None else None
    if bounds is None:
        from .windows import window_bounds

        bounds = window_bounds(n_records, window, partial=True)
    n_full = sum(1 for r0, r1 in bounds if r1 - r0 >= min(window, n_records))
    whole = (n_full > 1 or len(segments) > 1) and n_records <= WHOLE_RUN_MAX_RECORDS
    return len(bounds) + (1 if whole else 0) + 1


def analyze(
    traj: Trajectory,
    window: int = 1000,
    *,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    progress: bool | Progress | None = None,
    engine: Any = None,
) -> Analysis:
    """Run the diffusion analyses over every window of ``traj`` (see docs/analysis.md).

    ``progress``: True shows a bar with ETA on stderr (a plain line every few seconds when
    stderr is not a terminal), False nothing, None (default) a bar only on a terminal; a
    :class:`~trajstore.progress.Progress` is advanced by one per pass (windows, whole run,
    landscape) and left open, so that ``compare`` can show one bar over several stores. ``traj``
    may be a part of a store (:func:`trajstore.selection.select`); summary.json then says which.
    ``engine``: a :class:`~trajstore.analysis.distributed.DaskEngine` runs the passes over the
    weights on a Dask cluster (same results); None runs them here.
    """
    check_window(window)  # a window too short for any fit: refused, not ~40 lines of notes
    if traj.n_records < 2:
        raise ValueError(
            f"{traj.path} has {traj.n_records} record(s): the diffusion analyses need at least 2; "
            "record more steps"
        )
    segments = traj.segments
    if traj.n_params == 0:
        raise ValueError(
            f"{traj.path} holds 0 parameters per record: there is no trajectory to analyse; "
            "check the store's layout (trajstore info)"
        )
    # One block decoded against its digest: values that decode cleanly but differ from what was
    # written (an edited zarr.json) would change every number below without any checksum failing.
    base = getattr(traj, "base", traj)
    check = getattr(base, "check_one_block", None)
    if check is not None:
        check()
    # Blocks whose stored objects have no recorded size and tail (HDF5: all of them) are compared
    # with their digests whole: values rewritten in place pass every checksum, and the passes
    # below read parts of blocks, which cannot be compared (one extra decode of the records read).
    check_unsized = getattr(base, "check_unsized_blocks", None)
    if check_unsized is not None:
        first, last = np.searchsorted(base.steps, [traj.steps[0], traj.steps[-1]])
        check_unsized(slice(int(first), int(last) + 1))
    out = Analysis(traj.path, traj.n_records, traj.n_params, window)
    out.extra["store_id"] = getattr(base, "store_id", None)  # which store (catalog matches reports)
    if engine is not None:  # where the passes over the weights ran (summary.json)
        out.extra["engine"] = engine.describe()
    lossy = traj.lossy
    if lossy:  # said in the notes and summary.json: rounding changes small displacements
        out.extra["lossy"] = lossy
        out.notes.append(
            f"the store is lossy: weights were rounded (BitRound) to {lossy.get('keepbits')} mantissa "
            "bits before storage, so displacements below that resolution are rounding, not motion; "
            "MSD exponents at short lags, step lengths and tail fits can differ from the exact run's"
        )
    selection = selection_summary(traj)  # part of a run, or frozen tensors included: say which
    if selection is not None:
        out.extra["selection"] = selection
        out.notes.append(f"selection: {_describe_selection(traj, selection)}")
    if len(segments) > 1:  # lags, windows and increments stay within a segment (analysis/pairs.py)
        out.extra["segments"] = segment_summary(traj, segments)
        out.notes.append(
            f"the store holds {len(segments)} segments (a resume that did not continue the trajectory "
            f"starts a new one, at records {', '.join(str(s.start) for s in segments[1:])}): windows "
            "are cut at each boundary and no lag, step or increment spans one"
        )
    if not all(is_regular(traj.steps[s]) for s in segments):
        out.notes.append(
            f"records are not equally spaced in optimizer steps ({_spacing(traj)}): windows whose "
            "records are not get the MSD at each step lag from the pairs that exist at it "
            "(lag_pairs in summary.json); step lengths, displacements, path geometry and "
            "update-component fits need one stride and are undetermined there"
        )
    if traj.n_records < window:
        out.notes.append(
            f"the run has {traj.n_records} records, fewer than the window of {window}: "
            "the whole run is analysed as one window"
        )
    bounds = record_windows(traj, window, partial=True)
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < window and len(segments) == 1:
        r0, r1 = bounds[-1]
        out.notes.append(
            f"the trailing {r1 - r0} records (records {r0}–{r1 - 1}) do not fill a window: they are "
            "analysed as a last, shorter window (marked partial) and included in every pooled result"
        )
    names = traj.layout.names
    kinds = store_kinds(traj)
    out.extra["layer_kinds"] = kinds_summary(kinds)
    bar = progress if isinstance(progress, Progress) else None
    if bar is None:
        enabled = sys.stderr.isatty() if progress is None else bool(progress)
        total = analysis_passes(traj.n_records, window, traj)
        bar = Progress("trajstore analyze", total=total, unit=" passes", enabled=enabled)
    out.curves = {
        n: traj.observable(n)
        for n in traj.observables
        if n in ("loss", "lr") or n.startswith(("lr_group", "lr.", "loss."))
    }
    step_lengths = []
    loss_series = traj.observable("loss") if "loss" in traj.observables else None
    window_pass = iter_windows if engine is None else engine.iter_windows
    for stats in window_pass(traj, window, memory_limit=memory_limit, partial=True):
        wm = window_msd(stats, names)
        if not stats.finite:
            out.notes.append(
                f"window {stats.index} (t_w = {stats.t_w}) has non-finite weights at records "
                f"{stats.nonfinite_records[:5]}{'…' if len(stats.nonfinite_records) > 5 else ''}: "
                "its MSD and fits are skipped"
            )
        two, single = _fits(wm, out.notes)
        lengths = np.sqrt(np.maximum(stats.step_sq, 0))
        lengths = lengths[np.isfinite(lengths) & (lengths > 0)]
        step_lengths.append(lengths)
        wa = WindowAnalysis(
            msd=wm,
            two_regime=two,
            power_law=single,
            slope=local_slope(wm.lags, wm.msd)
            if len(wm.msd) > 21 and wm.step_lags is None
            else (np.zeros(0), np.zeros(0)),
            smooth_slope=smoothed_local_slope(wm.lags[1:], wm.msd[1:])
            if wm.step_lags is None
            else smoothed_local_slope(wm.lags[wm.usable()], wm.msd[wm.usable()]),
            displacements=displacements(stats),
            geometry=geometry(stats),
            stride=stats.uniform_stride,
            partial=stats.index > 0 and stats.n < window,
            tensor_alpha=_tensor_alphas(wm),
        )
        if stats.finite and wa.geometry.zero_steps:
            zero = np.sqrt(np.maximum(stats.step_sq, 0)) == 0
            wa.zero_step_steps = np.asarray(stats.steps)[1:][zero]
        _window_tails(wa, stats, lengths, loss_series, out.notes)
        wa.layers = window_layers(wm, kinds)
        out.windows.append(wa)
        bar.update(postfix=f"window {stats.index + 1}/{len(bounds)}")
    _note_undetermined_updates(out)
    _note_zero_steps(out, traj)
    full = [w for w in out.windows if not w.partial]
    if (len(full) > 1 or len(segments) > 1) and traj.n_records <= WHOLE_RUN_MAX_RECORDS:
        bar.update(postfix="whole run")
        try:
            if len(segments) > 1:  # pairs of every segment pooled, none across a boundary
                pieces = [(s.start, s.stop) for s in segments]
                out.whole_run_msd = pooled_msd(traj, pieces, memory_limit=memory_limit)
            else:
                whole = next(window_pass(traj, traj.n_records, memory_limit=memory_limit, extras=False))
                out.whole_run_msd = window_msd(whole, names)
        except ValueError as exc:  # unequally spaced records too many to pair in memory
            out.notes.append(f"whole-run fit skipped: {exc}")
            out.whole_run_msd = out.windows[0].msd
            out.whole_run = out.windows[0].exponents()
        else:
            two, single = _fits(out.whole_run_msd, out.notes, "whole run")
            lags = out.whole_run_msd.lags
            out.whole_run = _still(
                out.whole_run_msd,
                verdicts.exponent_summary(
                    single,
                    two,
                    (lags, np.nan_to_num(out.whole_run_msd.lag_steps, nan=0.0)),
                    unit=out.whole_run_msd.lag_unit,
                ),
            )
            out.whole_run["lag_pairs"] = lag_summary(out.whole_run_msd)
    elif len(full) > 1 or len(segments) > 1:
        out.notes.append(f"whole-run fit skipped: {traj.n_records} records exceed {WHOLE_RUN_MAX_RECORDS}")
    else:
        out.whole_run = out.windows[0].exponents()
        out.whole_run_msd = out.windows[0].msd
    _tails(out, pool_step_lengths(out, step_lengths), traj)
    _landscape(out, traj, window, memory_limit, engine)
    _toy_phases(out, traj, memory_limit)
    bar.update(postfix="landscape and fluctuations")
    if bar is not progress:
        bar.close()
    return out


def pool_step_lengths(out: Analysis, per_window: list[np.ndarray]) -> np.ndarray | None:
    """Pool the windows' step lengths (``per_window``, one array per window of ``out.windows``)
    by stride: sets ``out.step_lengths_by_stride``, ``out.step_stride`` and ``out.step_lengths``
    and returns the pooled sample, or None when the windows are recorded at different strides (a
    step of one window spans 1 optimizer step, of another 10: not one quantity; a note says so)."""
    by: dict[int, list[np.ndarray]] = {}
    for w, x in zip(out.windows, per_window, strict=True):
        if len(x) and w.stride:
            by.setdefault(w.stride, []).append(x)
    out.step_lengths_by_stride = {s: np.concatenate(v) for s, v in sorted(by.items())}
    strides = list(out.step_lengths_by_stride)
    out.step_stride = strides[0] if len(strides) == 1 else None
    if len(strides) > 1:
        out.notes.append(
            f"windows are recorded at different strides ({', '.join(map(str, strides))} steps): their "
            "step lengths are displacements over different numbers of steps, so no step-length tail is "
            "pooled over the run (see each window's)"
        )
        out.step_lengths = None
        return None
    out.step_lengths = out.step_lengths_by_stride[strides[0]] if strides else np.zeros(0)
    return out.step_lengths


def _spacing(traj: Trajectory) -> str:
    """How the records' steps depart from one stride, naming AMP-skipped steps (analysis/spacing.py)."""
    try:
        skipped = traj.observable("skipped")[0] if "skipped" in traj.observables else None
    except (KeyError, AttributeError, OSError, ValueError):
        skipped = None
    return describe_uneven_spacing(np.asarray(traj.steps[:]), skipped)


def _describe_selection(traj: Trajectory, selection: dict) -> str:
    if isinstance(traj, SelectedTrajectory):
        return traj.describe()
    frozen = selection["frozen_tensors"]
    return (
        f"every tensor, {len(frozen)} of them frozen at some record included (--all): "
        + ", ".join(frozen[:5])
        + (", …" if len(frozen) > 5 else "")
    )


def _toy_phases(out: Analysis, traj: Trajectory, memory_limit: int) -> None:
    """A toy store: each walker's descent and near-minimum exponents (docs/analysis.md)."""
    if "toy" not in traj.metadata:
        return
    from .toy_phases import phase_exponents, phase_msd, read_toy_paths

    if 4 * traj.n_records * traj.n_params * 8 > memory_limit:  # positions, losses, TAMSD work
        out.notes.append("toy phases skipped: the walkers' paths do not fit the memory limit")
        return
    try:
        pos, loss = read_toy_paths(traj)
    except ValueError as exc:
        out.notes.append(f"toy phases skipped: {exc}")
        return
    out.extra["toy_phases"] = {name: ph.summary() for name, ph in phase_exponents(pos, loss).items()}
    out.toy_curves = phase_msd(pos, loss)


def _toy_repeat0(traj: Trajectory) -> tuple[str, slice | None]:
    """Toy stores hold several independent walkers: the landscape is measured along the first."""
    if "toy" in traj.metadata and "loss_r0" in traj.observables and "r0" in traj.layout.names:
        t = traj.layout["r0"]
        return "loss_r0", slice(t.offset, t.stop)
    return "loss", None


def _landscape(out: Analysis, traj: Trajectory, window: int, memory_limit: int, engine: Any = None) -> None:
    from .fluctuations import gradient_noise, loss_fluctuations
    from .landscape import paired_losses, windowed_msl

    loss_name, params = _toy_repeat0(traj)
    if loss_name not in traj.observables:
        others = [n for n in traj.observables if n != loss_name]
        out.notes.append(
            "the store has no losses: landscape (MSL, Hurst) and loss-fluctuation analyses skipped"
            if not others
            else f"the store has no observable {loss_name!r} (it has: {', '.join(others)}): landscape "
            "(MSL, Hurst) and loss-fluctuation analyses skipped"
        )
    else:
        losses = paired_losses(traj, loss_name)
        fl_losses = fluctuation_losses(traj, losses, out.notes, loss_name)  # None: needs one stride
        if not np.isfinite(losses).any():
            out.notes.append(
                f"no {loss_name!r} value is logged at a weights record's step (pre_step values pair "
                "with the record one step earlier): landscape and loss-fluctuation analyses skipped"
            )
        elif np.isfinite(losses).sum() < 2:
            out.notes.append(
                f"only one {loss_name!r} value pairs with a weights record: landscape and "
                "loss-fluctuation analyses skipped (they need losses at several records)"
            )
        elif np.nanmax(losses) == np.nanmin(losses):
            out.notes.append("the loss is constant: landscape and loss-fluctuation analyses skipped")
        else:
            try:
                out.msl = windowed_msl(
                    traj,
                    window,
                    loss=loss_name,
                    memory_limit=memory_limit,
                    params=params,
                    notes=out.notes,
                    distances=None if engine is None else engine.pair_distances,
                )
                out.extra["landscape"] = [_msl_summary(m) for m in out.msl]
                hs = "; ".join(
                    f"t_w = {m.t_w}: "
                    + (
                        f"H = {m.hurst:.2f} [{m.hurst_ci[0]:.2f}, {m.hurst_ci[1]:.2f}]"
                        if m.hurst is not None
                        else f"H undetermined ({m.undetermined})"
                    )
                    for m in out.msl
                )
                floors = ", ".join(
                    f"{m.noise_floor:.2g}"
                    if m.noise_floor is not None
                    else f"< {m.noise_floor_upper:.2g} (no plateau)"
                    for m in out.msl
                )
                out.notes.append(
                    f"landscape: {hs}. Minibatch noise floor F per window (loss²): {floors}. "
                    "H intervals: parametric bootstrap over Gaussian landscapes with the fitted variogram"
                )
            except ValueError as exc:
                out.notes.append(f"landscape analysis skipped: {exc}")
            try:
                if fl_losses is not None:
                    values, stride, steps = fl_losses
                    out.fluct = loss_fluctuations(values, out.notes, increment_steps=stride, steps=steps)
                    out.extra["loss_fluctuations"] = out.fluct.to_dict()
            except ValueError as exc:
                out.notes.append(f"loss fluctuations skipped: {exc}")
    if traj.gradients is not None and (len(traj.segments) > 1 or not is_regular(traj.steps)):
        # (epochs of a resumed run restart; a log schedule samples an epoch unevenly)
        out.notes.append(
            "gradient noise undetermined: epoch means of gradients need every step of one continuous "
            "segment (the records are not equally spaced, or the store has several segments)"
        )
    elif traj.gradients is not None and traj.gradients.n_records >= 2:
        gn = gradient_noise(traj, window, memory_limit=memory_limit)
        out.extra["gradient_noise"] = gn.to_dict()
        if gn.skipped_records:
            out.notes.append(
                f"gradient noise leaves out {gn.skipped_records} "
                f"record{'s' if gn.skipped_records != 1 else ''} of iterations whose update AMP's "
                "GradScaler skipped (the stored gradient is 0 where no update used one)"
            )
    elif traj.gradients is None:
        out.notes.append("no gradients recorded: gradient-noise analyses skipped (record with --gradients)")


def _msl_summary(m) -> dict:
    d = {
        k: v
        for k, v in m.to_dict().items()
        if k not in ("centers", "msl", "counts", "contour_centers", "msl_contour")
    }
    d["two_h"] = d.pop("slope")
    d["two_h_ci"] = d.pop("slope_ci")
    d["undetermined"] = (
        {"hurst": m.undetermined, "dimension_profile": m.undetermined} if m.undetermined else {}
    )
    return d


def _fits(wm: WindowMSD, notes: list[str], what: str | None = None):
    """Single and two-regime fits of one window's MSD, with bootstrap intervals over its
    parameter blocks. ``what`` names the curve in the notes (default ``window {index}``; the
    whole run's curve must not be noted as window 0, whose own note would then appear twice)."""
    what = what or f"window {wm.index}"
    if not wm.finite:
        return None, None
    if len(wm.msd) > 1 and not np.any(wm.msd[1:] > 0):
        notes.append(f"{what}: {STILL}; nothing to fit")
        return None, None
    idx = wm.usable()  # record lags, or step lags with enough pairs (analysis/pairs.py)
    lags = wm.lags[idx]
    groups = wm.msd_groups[:, idx] if wm.msd_groups is not None else None
    try:
        single, two = fit_exponents(lags, wm.msd[idx], msd_groups=groups, seed=wm.index)
    except ValueError as exc:
        notes.append(f"{what}: no power-law fit ({exc})")
        return None, None
    if two is None:
        notes.append(f"{what}: no two-regime fit (too few log-binned lags)")
    return two, single


def _tensor_alphas(wm: WindowMSD) -> dict[str, float | None]:
    """Single power-law exponent of each tensor's own MSD over the usable lags (None: the
    tensor did not move, or too few lags)."""
    if not wm.finite:
        return {}
    idx = wm.usable()
    lags = wm.lags[idx]
    out: dict[str, float | None] = {}
    for name, m in wm.msd_tensor.items():
        try:
            out[name] = fit_power_law(lags, m[idx]).alpha if np.all(m[idx] > 0) else None
        except ValueError:
            out[name] = None
    return out


MIN_TAIL_SAMPLES = 50


def _window_tails(wa: WindowAnalysis, stats, lengths: np.ndarray, loss_series, notes: list[str]) -> None:
    """Per window: the step-length tail fit, and α-stable fits (McCulloch) with the Mohammadi
    estimate of the update components w_k(t+1) − w_k(t) and of the loss increments ΔL."""
    if len(lengths) >= MIN_TAIL_SAMPLES and np.ptp(lengths) > 0:
        try:
            wa.step_tail = fit_power_law_tail(lengths)
        except ValueError as exc:
            notes.append(f"window {stats.index}: no step-length tail fit ({exc})")
    distinct = _distinct_update_fraction(stats.update_samples)
    samples = {}
    if distinct is not None and distinct < MIN_DISTINCT_UPDATES:
        wa.undetermined["stable.update_components"] = (
            f"the update components take few distinct values (median {distinct:.0%} of a coordinate's "
            "nonzero updates distinct): they are multiples of the weights' resolution (a float16 or "
            "bfloat16 model, or rounded storage), so their distribution is the rounding's, not the updates'"
        )
    else:
        samples["update_components"] = _standardised_updates(stats.update_samples)
    stride: dict[str, int] = {}  # ΔL's stride in optimizer steps
    if loss_series is not None:
        ls, lv = loss_series
        inside = (ls >= stats.steps[0]) & (ls <= stats.steps[-1])
        if inside.sum() > 1 and is_regular(ls[inside]):  # unequally spaced: ΔL is no increment
            samples["loss_increments"] = finite_increments(lv[inside])
            stride["loss_increments"] = int(np.diff(ls[inside])[0])
    for key, x in samples.items():
        if len(x) >= MIN_TAIL_SAMPLES and np.ptp(x) > 0:
            try:
                wa.stable[key] = _stable_summary(x)
                if key in stride:  # ΔL over the loss's logging stride, in optimizer steps
                    wa.stable[key]["increment_steps"] = stride[key]
            except ValueError as exc:
                notes.append(f"window {stats.index}: no α-stable fit of the {key.replace('_', ' ')} ({exc})")


def _note_undetermined_updates(out: Analysis) -> None:
    """One note for the windows whose update-component fit is undetermined (a bfloat16 model):
    the reason was only in summary.json, while the report's table showed a bare '–'."""
    key = "stable.update_components"
    out.notes[:] = [n for n in out.notes if not n.startswith(UNDETERMINED_UPDATES)]  # (sketch: anew)
    und = [w for w in out.windows if key in w.undetermined]
    if not und:
        return
    tws = ", ".join(str(w.msd.t_w) for w in und[:8]) + (", …" if len(und) > 8 else "")
    out.notes.append(
        f"{UNDETERMINED_UPDATES} in {len(und)} of {len(out.windows)} windows (t_w = {tws}): "
        f"{und[0].undetermined[key]}"
    )


def _note_zero_steps(out: Analysis, traj: Trajectory) -> None:
    """Count the steps of length exactly 0 in windows that moved (summary.json ``zero_steps``)
    and say where they went: no update happened there (an iteration whose update AMP's
    GradScaler skipped, recorded at stride 1), so they are left out of what describes updates."""
    moved = [w for w in out.windows if w.msd.finite and np.any(w.msd.msd[1:] > 0)]
    n = sum(w.geometry.zero_steps for w in moved)
    if not n:
        return
    from .fluctuations import skipped_steps

    skipped = skipped_steps(traj)
    at_skips = sum(
        int(np.isin(w.zero_step_steps, skipped).sum()) for w in moved if w.zero_step_steps is not None
    )
    out.extra["zero_steps"] = {"left_out": n, "at_skipped_iterations": at_skips}
    out.notes.append(
        f"{n} step{'s' if n != 1 else ''} of length exactly 0 (the weights did not move; {at_skips} at "
        "iterations whose update was skipped: AMP, observable 'skipped') are no update: "
        "they are left out of the step-length distributions and tail fits, the update-component "
        "fits and the step-length and direction autocorrelations; the MSD and contour length keep "
        "them (the iteration happened)"
    )


UNDETERMINED_UPDATES = "the α-stable fit of the update components is undetermined"


def finite_increments(values: np.ndarray) -> np.ndarray:
    """ΔL between consecutive values of a series logged at one stride, leaving out every
    increment that touches a non-finite value (a hole is not bridged: the values either side
    are two strides apart)."""
    with np.errstate(invalid="ignore"):
        d = np.diff(np.asarray(values, dtype=np.float64))
    return d[np.isfinite(d)]


MIN_DISTINCT_UPDATES = 0.5  # float32 training: 97–100 % distinct; bfloat16: 3–7 %


def _distinct_update_fraction(rows: np.ndarray) -> float | None:
    """Median over the sampled coordinates (K, T−1) of the fraction of distinct values among a
    coordinate's nonzero |updates| (coordinates with at least 5); None without such coordinates.
    Near 1 for continuous updates; small when the updates are a few multiples of a resolution."""
    fractions = []
    for row in np.asarray(rows):
        nz = np.abs(row[np.isfinite(row) & (row != 0)])
        if len(nz) >= 5:
            fractions.append(len(np.unique(nz)) / len(nz))
    return float(np.median(fractions)) if fractions else None


def _standardised_updates(rows: np.ndarray) -> np.ndarray:
    """The update components of a window's sampled coordinates (K, T−1), each coordinate divided
    by its median |update|, pooled: coordinates move on scales that differ by orders of
    magnitude, and pooling them raw would fit the tail of a scale mixture, not of the updates."""
    import warnings

    rows = np.where(np.isfinite(rows), rows, np.nan)
    with warnings.catch_warnings():  # a coordinate that never moved has no scale: dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        nonzero = np.abs(np.where(rows != 0, rows, np.nan))
        scale = np.nanmedian(nonzero, axis=1) if rows.size else np.zeros(0)
    ok = np.isfinite(scale) & (scale > 0)
    x = (rows[ok] / scale[ok, None]).ravel()
    return x[np.isfinite(x) & (x != 0)]


def _stable_summary(x: np.ndarray) -> dict:
    return {**fit_stable(x).to_dict(), "mohammadi_alpha": mohammadi_alpha(x)}


def _tails(out: Analysis, lengths: np.ndarray | None, traj: Trajectory) -> None:
    """Pooled over the run (every window, the trailing partial one included): the step-length
    tail fit (``lengths`` None: windows of different strides, none), and α-stable fits labelled
    as pooled (the scale changes over training)."""
    if lengths is None:
        pass  # windows of different strides: no pooled sample (a note says so)
    elif len(lengths) >= 10:
        out.tails["step_length"] = fit_power_law_tail(lengths)
    elif out.windows and all(w.msd.finite and not np.any(w.msd.msd[1:] > 0) for w in out.windows):
        out.notes.append("the weights did not move: every step length is 0, no tail to fit")
    else:
        out.notes.append("too few finite step lengths for a tail fit")
    pooled: dict[str, Any] = {}
    for key in ("update_components", "loss_increments"):
        alphas = [w.stable[key]["alpha"] for w in out.windows if key in w.stable]
        if alphas:
            pooled[key] = {
                "per_window_alpha_median": float(np.median(alphas)),
                "per_window_alpha_range": [float(min(alphas)), float(max(alphas))],
                "n_windows": len(alphas),
            }
    if "loss" in traj.observables:
        ls, loss = traj.observable("loss")
        # increments within each segment only, and only where the loss is logged at one stride
        pieces = [(s, v) for s, v in split_by_segments(traj, ls, loss) if is_regular(s) and len(s) > 1]
        dl = np.concatenate([finite_increments(v) for _, v in pieces]) if pieces else np.zeros(0)
        strides = {int(s[1] - s[0]) for s, _ in pieces}
        if len(dl) >= MIN_TAIL_SAMPLES and np.ptp(dl) > 0:
            try:
                pooled.setdefault("loss_increments", {})["pooled_over_run"] = {
                    **_stable_summary(dl),
                    "increment_steps": strides.pop() if len(strides) == 1 else None,
                    "label": "pooled over the whole run: non-stationary, for reference only",
                }
            except ValueError as exc:
                out.notes.append(f"pooled α-stable fit of the loss increments skipped ({exc})")
        elif not pieces and all(len(s) <= 1 for s, _ in split_by_segments(traj, ls, loss)):
            out.notes.append(
                f"only {len(ls)} loss value(s) logged, none two in one segment: no loss increments to fit"
            )
        elif not pieces:  # said as it is: a loss at two strides is neither constant nor short
            out.notes.append(
                "the loss is not logged at one stride within any segment: its increments span different "
                "numbers of steps, so no pooled loss-increment fit"
            )
        elif len(dl) < MIN_TAIL_SAMPLES:
            out.notes.append(
                f"only {len(dl)} finite loss increments (a fit needs {MIN_TAIL_SAMPLES}): pooled "
                "loss-increment fit skipped"
            )
        else:
            out.notes.append("every loss increment is equal (a constant loss): loss-increment fits skipped")
    else:
        out.notes.append("the store has no 'loss' observable: loss analyses skipped")
    out.stable = pooled
