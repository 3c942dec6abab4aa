"""Run every analysis a store's content allows; collect results and notes for the report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trajstore import __version__
from trajstore.progress import Progress
from trajstore.reader import DEFAULT_MEMORY_LIMIT, Trajectory
from trajstore.selection import SelectedTrajectory

from .exponents import fit_power_law, fit_two_regime, local_slope, smoothed_local_slope, usable_lags
from .geometry import Geometry, geometry
from .msd import WindowMSD, window_msd
from .steps import Displacements, displacements
from .tails import fit_power_law_tail, fit_stable, mohammadi_alpha
from .windows import iter_windows, window_bounds

WHOLE_RUN_MAX_RECORDS = 50_000

DEFINITIONS = {
    "t_w": "optimizer step of the first record of the window",
    "msd": "Δr²(τ) = 1/(T−τ) Σ_i ‖w(i+τ) − w(i)‖², summed over all parameters, record lag τ",
    "alpha_short": "exponent of Δr² ∝ τ^α below the crossover τ0 (two-regime fit on log-binned lags)",
    "alpha_long": "exponent of Δr² ∝ τ^α above the crossover τ0",
    "tau0": "crossover lag of the two-regime fit, in records (× stride = optimizer steps)",
    "*_ci": "95 % interval: regression interval for exponents, RSS-profile (F-test) interval for tau0",
    "alpha": "single power-law exponent over all usable lags (T − τ ≥ T/4)",
    "step_length": "‖w(t+1) − w(t)‖ over the run; tail fit by Clauset–Shalizi–Newman",
    "contour_exponent": "slope of ln Δr² against ln contour length (2 ballistic, 1 random walk)",
    "direction_autocorr": "mean cosine between updates k records apart",
    "stable": "α-stable fit (McCulloch quantiles) and Mohammadi block estimate of increments",
    "landscape.hurst": "H from MSL(Δr) = ⟨(L_j − L_i)²⟩ = F + A·Δr^{2H} over pairs of a window "
    "(losses paired with the weights they were computed at); dimension_profile = 2 − H; noise_floor = F",
    "loss_fluctuations": "ΔL series: α-stable fit, avalanches (runs of |ΔL| > std|ΔL|) with a discrete "
    "power-law fit of durations, Welch spectrum slope of L",
    "gradient_noise": "‖g_t − ḡ_epoch‖ per record; α-stable α of gradient components per window",
    "toy_phases": "toy stores: per phase (descent until U ≤ U_f + 0.1 (U(0) − U_f), then near_minimum) "
    "the median over walkers of the TAMSD exponent over lags 1 … n/4; mean cosine of successive steps",
}


@dataclass
class WindowAnalysis:
    msd: WindowMSD
    two_regime: Any  # TwoRegimeFit | None
    power_law: Any  # PowerLawFit | None
    slope: tuple[np.ndarray, np.ndarray]
    smooth_slope: tuple[np.ndarray, np.ndarray]
    displacements: Displacements
    geometry: Geometry
    stride: int | None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "index": self.msd.index,
            "t_w": self.msd.t_w,
            "n_records": len(self.msd.msd),
            "stride": self.stride,
            "finite": self.msd.finite,
        }
        if self.two_regime is not None:
            d.update(self.two_regime.to_dict())
        if self.power_law is not None:
            d["alpha"] = self.power_law.alpha
            d["alpha_ci"] = list(self.power_law.alpha_ci)
        d["msd_1"] = float(self.msd.msd[1]) if len(self.msd.msd) > 1 else None
        d["msd_last_usable"] = (
            float(self.msd.msd[usable_lags(len(self.msd.msd))[-1]]) if len(self.msd.msd) > 1 else None
        )
        d["contour_exponent"] = self.geometry.contour_exponent
        d["direction_autocorr"] = {str(k): v for k, v in self.geometry.direction_autocorr.items()}
        d["step_autocorr"] = {str(k): v for k, v in self.geometry.step_autocorr.items()}
        return d


@dataclass
class Analysis:
    """Everything ``trajstore analyze`` computes; ``summary()`` is what summary.json holds."""

    path: str
    n_records: int
    n_params: int
    window: int
    windows: list[WindowAnalysis] = field(default_factory=list)
    whole_run: Any = None
    whole_run_msd: WindowMSD | None = None
    step_lengths: np.ndarray | None = None
    tails: dict[str, Any] = field(default_factory=dict)
    stable: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    msl: list = field(default_factory=list)
    fluct: Any = None
    notes: list[str] = field(default_factory=list)
    toy_curves: dict | None = None  # toy stores: phase -> (lags, Δr²), for the figure

    def summary(self) -> dict:
        return {
            "trajstore_version": __version__,
            "store": self.path,
            "n_records": self.n_records,
            "n_params": self.n_params,
            "window": self.window,
            "windows": [w.to_dict() for w in self.windows],
            "whole_run": self.whole_run.to_dict() if self.whole_run is not None else None,
            "tails": {k: v.to_dict() for k, v in self.tails.items()},
            "stable": {k: v for k, v in self.stable.items()},
            **{k: v for k, v in self.extra.items()},
            "notes": self.notes,
            "definitions": DEFINITIONS,
        }


def analysis_passes(n_records: int, window: int) -> int:
    """Passes over the data :func:`analyze` makes, for its progress bar: one per window, one for
    the whole run (with more than one window), one for the landscape and fluctuations."""
    n_windows = len(window_bounds(n_records, window))
    return n_windows + (1 if n_windows > 1 and n_records <= WHOLE_RUN_MAX_RECORDS else 0) + 1


def analyze(
    traj: Trajectory,
    window: int = 1000,
    *,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    progress: bool | Progress | None = None,
) -> Analysis:
    """Run the diffusion analyses over every window of ``traj`` (see docs/analysis.md).

    ``progress``: True shows a bar with ETA on stderr (a plain line every few seconds when
    stderr is not a terminal), False nothing, None (default) a bar only on a terminal; a
    :class:`~trajstore.progress.Progress` is advanced by one per pass (windows, whole run,
    landscape) and left open, so that ``compare`` can show one bar over several stores. ``traj``
    may be a part of a store (:func:`trajstore.selection.select`); summary.json then says which.
    """
    if traj.n_records < 2:
        raise ValueError(
            f"{traj.path} has {traj.n_records} record(s): the diffusion analyses need at least 2; "
            "record more steps"
        )
    segments = traj.segments
    if len(segments) > 1:
        raise ValueError(
            f"{traj.path} holds {len(segments)} separate segments (a resume that did not continue the "
            f"trajectory starts at record {segments[1].start}): lags across them would be meaningless, "
            "and analysing segments separately is not supported yet"
        )
    if traj.n_params == 0:
        raise ValueError(
            f"{traj.path} holds 0 parameters per record: there is no trajectory to analyse; "
            "check the store's layout (trajstore info)"
        )
    out = Analysis(traj.path, traj.n_records, traj.n_params, window)
    if isinstance(traj, SelectedTrajectory):  # part of a run (trajstore.selection): say which
        out.extra["selection"] = traj.summary()
        out.notes.append(f"selection: {traj.describe()}")
    if traj.n_records < window:
        out.notes.append(
            f"the run has {traj.n_records} records, fewer than the window of {window}: "
            "the whole run is analysed as one window"
        )
    bounds = window_bounds(traj.n_records, window)
    names = traj.layout.names
    bar = progress if isinstance(progress, Progress) else None
    if bar is None:
        enabled = sys.stderr.isatty() if progress is None else bool(progress)
        total = analysis_passes(traj.n_records, window)
        bar = Progress("trajstore analyze", total=total, unit=" passes", enabled=enabled)
    step_lengths = []
    for stats in iter_windows(traj, window, memory_limit=memory_limit):
        wm = window_msd(stats, names)
        if not stats.finite:
            out.notes.append(
                f"window {stats.index} (t_w = {stats.t_w}) has non-finite weights at records "
                f"{stats.nonfinite_records[:5]}{'…' if len(stats.nonfinite_records) > 5 else ''}: "
                "its MSD and fits are skipped"
            )
        two, single = _fits(wm, out.notes)
        step_lengths.append(np.sqrt(np.maximum(stats.step_sq, 0)))
        out.windows.append(
            WindowAnalysis(
                msd=wm,
                two_regime=two,
                power_law=single,
                slope=local_slope(wm.lags, wm.msd) if len(wm.msd) > 21 else (np.zeros(0), np.zeros(0)),
                smooth_slope=smoothed_local_slope(wm.lags[1:], wm.msd[1:]),
                displacements=displacements(stats),
                geometry=geometry(stats),
                stride=stats.uniform_stride,
            )
        )
        bar.update(postfix=f"window {stats.index + 1}/{len(bounds)}")
    if len(bounds) > 1 and traj.n_records <= WHOLE_RUN_MAX_RECORDS:
        whole = next(iter_windows(traj, traj.n_records, memory_limit=memory_limit))
        bar.update(postfix="whole run")
        out.whole_run_msd = window_msd(whole, names)
        out.whole_run, _ = _fits(out.whole_run_msd, out.notes)
    elif len(bounds) > 1:
        out.notes.append(f"whole-run fit skipped: {traj.n_records} records exceed {WHOLE_RUN_MAX_RECORDS}")
    else:
        out.whole_run = out.windows[0].two_regime
        out.whole_run_msd = out.windows[0].msd
    lengths = np.concatenate(step_lengths)
    lengths = lengths[np.isfinite(lengths) & (lengths > 0)]
    out.step_lengths = lengths
    _tails(out, lengths, traj)
    _landscape(out, traj, window, memory_limit)
    _toy_phases(out, traj, memory_limit)
    bar.update(postfix="landscape and fluctuations")
    if bar is not progress:
        bar.close()
    return out


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


def _landscape(out: Analysis, traj: Trajectory, window: int, memory_limit: int) -> None:
    from .fluctuations import gradient_noise, loss_fluctuations
    from .landscape import paired_losses, windowed_msl

    loss_name, params = _toy_repeat0(traj)
    if loss_name not in traj.observables:
        out.notes.append(
            "the store has no losses: landscape (MSL, Hurst) and loss-fluctuation analyses skipped"
        )
    else:
        losses = paired_losses(traj, loss_name)
        if np.nanmax(losses) == np.nanmin(losses):
            out.notes.append("the loss is constant: landscape and loss-fluctuation analyses skipped")
        else:
            try:
                out.msl = windowed_msl(
                    traj, window, loss=loss_name, memory_limit=memory_limit, params=params, notes=out.notes
                )
                out.extra["landscape"] = [_msl_summary(m) for m in out.msl]
                hs = ", ".join(f"{m.hurst:.2f} [{m.hurst_ci[0]:.2f}, {m.hurst_ci[1]:.2f}]" for m in out.msl)
                floors = ", ".join(f"{m.noise_floor:.2g}" for m in out.msl)
                out.notes.append(
                    f"landscape: Hurst exponent H per window (95 % interval) {hs}; "
                    f"minibatch noise floor F per window (loss²) {floors}"
                )
            except ValueError as exc:
                out.notes.append(f"landscape analysis skipped: {exc}")
            try:
                out.fluct = loss_fluctuations(losses, out.notes)
                out.extra["loss_fluctuations"] = out.fluct.to_dict()
            except ValueError as exc:
                out.notes.append(f"loss fluctuations skipped: {exc}")
    if traj.gradients is not None and traj.gradients.n_records >= 2:
        gn = gradient_noise(traj, window, memory_limit=memory_limit)
        out.extra["gradient_noise"] = gn.to_dict()
    elif traj.gradients is None:
        out.notes.append("no gradients recorded: gradient-noise analyses skipped (record with --gradients)")


def _msl_summary(m) -> dict:
    return {
        "t_w": m.t_w,
        "hurst": m.hurst,
        "hurst_ci": list(m.hurst_ci),
        "two_h": m.slope,
        "dimension_profile": m.dimension_profile,
        "fit_range": list(m.fit_range),
        "noise_floor": m.noise_floor,
        "floor_ratio": m.floor_ratio,
    }


def _fits(wm: WindowMSD, notes: list[str]):
    if not wm.finite:
        return None, None
    lags = usable_lags(len(wm.msd))
    try:
        single = fit_power_law(lags, wm.msd[lags])
    except ValueError as exc:
        notes.append(f"window {wm.index}: no power-law fit ({exc})")
        return None, None
    try:
        two = fit_two_regime(lags, wm.msd[lags])
    except ValueError as exc:
        notes.append(f"window {wm.index}: no two-regime fit ({exc})")
        two = None
    return two, single


def _tails(out: Analysis, lengths: np.ndarray, traj: Trajectory) -> None:
    if len(lengths) >= 10:
        out.tails["step_length"] = fit_power_law_tail(lengths)
    else:
        out.notes.append("too few finite step lengths for a tail fit")
    incr = np.diff(lengths)
    if len(incr) >= 50 and np.ptp(incr) > 0:
        st = fit_stable(incr)
        out.stable["step_length_increments"] = {**st.to_dict(), "mohammadi_alpha": mohammadi_alpha(incr)}
    if "loss" in traj.observables:
        _, loss = traj.observable("loss")
        dl = np.diff(loss[np.isfinite(loss)])
        if len(dl) >= 50 and np.ptp(dl) > 0:
            st = fit_stable(dl)
            out.stable["loss_increments"] = {**st.to_dict(), "mohammadi_alpha": mohammadi_alpha(dl)}
        else:
            out.notes.append("the loss is constant or too short: loss-increment fits skipped")
    else:
        out.notes.append("the store has no 'loss' observable: loss analyses skipped")
