"""Loss fluctuations (ΔL, avalanches, moving variance, spectrum) and gradient noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal, stats

from trajstore.reader import DEFAULT_MEMORY_LIMIT, Trajectory

from .steps import Distribution, log_histogram
from .tails import StableFit, TailFit, fit_power_law_tail, fit_stable

MOVING_WINDOW = 100
MIN_AVALANCHES = 20
MIN_SPECTRUM = 64  # values of an unbroken stretch a spectrum slope needs (a few Welch bins per decade)


def avalanche_durations(dl: np.ndarray) -> np.ndarray:
    """Lengths of the maximal runs of consecutive steps with |ΔL| > std(|ΔL|); a non-finite
    ΔL (a hole in the loss) ends a run and is left out of the std."""
    a = np.abs(np.asarray(dl, dtype=float))
    finite = np.isfinite(a)
    above = finite & (a > (a[finite].std() if finite.any() else np.inf))
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return (stops - starts).astype(np.int64)


def moving_variance(x: np.ndarray, window: int = MOVING_WINDOW) -> np.ndarray:
    """Variance of x over sliding windows of ``window`` points (prefix sums, float64): (n − w + 1,)."""
    x = np.asarray(x, dtype=float)
    if len(x) < window:
        return np.zeros(0)
    c1 = np.concatenate([[0.0], np.cumsum(x - x.mean())])
    c2 = np.concatenate([[0.0], np.cumsum((x - x.mean()) ** 2)])
    s1 = c1[window:] - c1[:-window]
    s2 = c2[window:] - c2[:-window]
    return np.maximum(s2 / window - (s1 / window) ** 2, 0.0)


@dataclass(frozen=True)
class LossFluctuations:
    """ΔL = L(t+1) − L(t) of the recorded losses and what follows from it.

    ``spectrum_slope``: slope of the log–log Welch power spectrum of L (−2: random walk, 0:
    white), fitted over the upper 90 % of the log-frequency range.
    """

    n: int
    dl_distribution: Distribution
    dl_stable: StableFit | None
    durations: np.ndarray
    durations_fit: TailFit | None
    moving_var: np.ndarray
    frequencies: np.ndarray
    power: np.ndarray
    spectrum_slope: float
    increment_steps: int | None = None  # optimizer steps between the losses of one ΔL
    # first and last optimizer step of the values the moving variance and spectrum use (the whole
    # series, or its longest finite stretch); None when the steps were not given
    stretch_steps: tuple[int, int] | None = None
    undetermined: dict[str, str] | None = None  # quantity → why it is null

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "increment_steps": self.increment_steps,
            "dl_stable": self.dl_stable.to_dict() if self.dl_stable else None,
            "avalanches": int(len(self.durations)),
            "mean_duration": float(self.durations.mean()) if len(self.durations) else None,
            "durations_fit": self.durations_fit.to_dict() if self.durations_fit else None,
            "spectrum_slope": self.spectrum_slope if np.isfinite(self.spectrum_slope) else None,
            "stretch_steps": list(self.stretch_steps) if self.stretch_steps else None,
            "undetermined": dict(self.undetermined or {}),
        }


def loss_fluctuations(
    losses: np.ndarray,
    notes: list[str] | None = None,
    increment_steps: int | None = None,
    steps: np.ndarray | None = None,
) -> LossFluctuations:
    """Every loss-fluctuation analysis of a loss series logged at one stride (``increment_steps``
    optimizer steps apart, reported); ``notes`` collects what could not be fitted and why;
    ``steps`` (optional, as ``losses``): the optimizer step of each value, to name the stretch used.

    A non-finite loss (NaN, inf: a step a guard skipped) is a hole: no ΔL spans it (the values
    either side are not one stride apart), it ends an avalanche, and the moving variance and the
    spectrum, which need an unbroken series, use the longest stretch without holes.
    """
    notes = notes if notes is not None else []
    x = np.asarray(losses, dtype=float)
    finite = np.isfinite(x)
    if finite.sum() < 3:
        raise ValueError(f"only {int(finite.sum())} finite losses: loss fluctuations need at least 3")
    if np.ptp(x[finite]) == 0:
        raise ValueError("the loss is constant: there are no fluctuations to analyse")
    with np.errstate(invalid="ignore"):  # inf − inf: a hole like any other
        dl_all = np.diff(x)
    dl = dl_all[np.isfinite(dl_all)]
    lo, hi = 0, len(x)
    if not finite.all():  # the longest run of finite values: the spectrum needs no gaps
        edges = np.diff(np.concatenate([[0], finite.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        k = int(np.argmax(stops - starts))
        lo, hi = int(starts[k]), int(stops[k])
        where = f", steps {int(steps[lo])}–{int(steps[hi - 1])}" if steps is not None else ""
        notes.append(
            f"{int((~finite).sum())} of {len(x)} losses are not finite: no ΔL spans them, and the "
            f"moving variance and spectrum use the longest finite stretch ({hi - lo} values{where})"
        )
        x = x[lo:hi]
    st = None
    try:
        st = fit_stable(dl)
    except ValueError as exc:
        notes.append(f"ΔL α-stable fit skipped: {exc}")
    dur = avalanche_durations(dl_all)
    dfit = None
    if len(dur) >= MIN_AVALANCHES and len(np.unique(dur)) > 1:
        try:
            dfit = fit_power_law_tail(dur.astype(float), discrete=True)
        except ValueError as exc:
            notes.append(f"avalanche-duration fit skipped: {exc}")
    else:
        notes.append(f"{len(dur)} avalanches: too few (or all of one length) for a power-law fit")
    undetermined = {}
    if len(x) < MIN_SPECTRUM:  # a slope through a handful of Welch bins is not a spectrum's
        undetermined["spectrum_slope"] = (
            f"the longest stretch without a non-finite loss holds {len(x)} values: too few for a "
            f"spectrum (need {MIN_SPECTRUM})"
        )
        f, p, slope = np.zeros(0), np.zeros(0), float("nan")
    else:
        f, p = signal.welch(x - x.mean(), nperseg=min(len(x), 1024))
        ok = (f > 0) & (p > 0)
        lf = np.log(f[ok])
        keep = lf >= lf.min() + 0.1 * np.ptp(lf) if len(lf) else ok[ok]
        fit = stats.linregress(lf[keep], np.log(p[ok][keep])) if keep.sum() >= 3 else None
        slope = float(fit.slope) if fit is not None else float("nan")
    if len(x) < MOVING_WINDOW:
        undetermined["moving_variance"] = (
            f"the longest stretch without a non-finite loss holds {len(x)} values, fewer than the "
            f"moving window of {MOVING_WINDOW}"
        )
    return LossFluctuations(
        int(finite.sum()),
        log_histogram(np.abs(dl)),
        st,
        dur,
        dfit,
        moving_variance(x),
        f,
        p,
        slope,
        increment_steps,
        (int(steps[lo]), int(steps[hi - 1])) if steps is not None else None,
        undetermined,
    )


@dataclass(frozen=True)
class GradientNoise:
    """Per gradient record: ``noise_norm`` = ‖g_t − ḡ_e‖ with ḡ_e the mean gradient of its epoch;
    per window: α-stable fit of a sample of gradient components. Records of iterations whose
    update was skipped (AMP) are left out of means and samples; their norms are NaN."""

    steps: np.ndarray
    epochs: np.ndarray
    noise_norm: np.ndarray
    grad_norm: np.ndarray
    window_t_w: np.ndarray
    window_alpha: np.ndarray
    skipped_records: int = 0  # records of skipped updates (AMP), left out: NaN in the norms

    def to_dict(self) -> dict:
        return {
            "skipped_records_left_out": self.skipped_records,
            "mean_noise_norm": float(np.nanmean(self.noise_norm)) if len(self.noise_norm) else None,
            "mean_grad_norm": float(np.nanmean(self.grad_norm)) if len(self.grad_norm) else None,
            "alpha_vs_t_w": {"t_w": self.window_t_w.tolist(), "alpha": self.window_alpha.tolist()},
        }


def gradient_noise(
    traj: Trajectory,
    window: int = 1000,
    *,
    samples_per_window: int = 20000,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    seed: int = 0,
) -> GradientNoise:
    """Gradient noise of a store with gradients. Epochs come from the ``epoch`` observable: each
    gradient step belongs to the last epoch logged at or before it (logged every step by the
    Recorder, or once per epoch by a loop of one's own); without it, consecutive blocks of
    ``window`` gradient records are used."""
    g = traj.gradients
    if g is None:
        raise KeyError(f"{traj.path} has no gradients: record with --gradients")
    n = g.n_records
    steps = g.steps
    if "epoch" in traj.observables:
        es, ev = traj.observable("epoch")
        # an epoch counter holds until the next value: a loop may log it once per epoch
        idx = np.searchsorted(es, steps, side="right") - 1
        epochs = np.where(idx >= 0, ev[np.maximum(idx, 0)], np.nan)
        epochs = np.nan_to_num(epochs, nan=-1).astype(np.int64)
    else:
        epochs = np.arange(n) // window
    # A record of an iteration whose update AMP skipped holds gradient 0 where no update used
    # one (docs/format.md 3.3): it is no sample of the gradient, so it is left out (NaN here).
    used = ~np.isin(steps, skipped_steps(traj))
    noise_sq = np.zeros(n)
    norm_sq = np.zeros(n)
    bounds = np.flatnonzero(np.diff(epochs)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [n]])
    for a, b in zip(starts, stops, strict=True):
        keep = used[a:b]
        if not keep.any():
            continue
        for block in traj.blocks(
            records=slice(a, b), memory_limit=memory_limit // 2, split_records=False, group="gradients"
        ):
            x = block.data.astype(np.float64)
            norm_sq[a:b] += np.einsum("ij,ij->i", x, x)
            dev = x - x[keep].mean(axis=0)
            noise_sq[a:b] += np.einsum("ij,ij->i", dev, dev)
    noise_sq[~used] = norm_sq[~used] = np.nan
    rng = np.random.default_rng(seed)
    tw, alphas = [], []
    for r0 in range(0, n, window):
        r1 = min(r0 + window, n)
        pool = r0 + np.flatnonzero(used[r0:r1])
        if len(pool) == 0:
            alphas.append(np.nan)
            tw.append(int(steps[r0]))
            continue
        recs = pool[rng.integers(0, len(pool), samples_per_window)]
        cols = rng.integers(0, traj.n_params, samples_per_window)
        order = np.argsort(recs)
        vals = np.empty(samples_per_window)
        for rec in np.unique(recs):
            sel = order[recs[order] == rec]
            row = g.values[int(rec)]
            vals[sel] = row[cols[sel]]
        try:
            alphas.append(fit_stable(vals).alpha)
        except ValueError:
            alphas.append(np.nan)
        tw.append(int(steps[r0]))
    return GradientNoise(
        steps, epochs, np.sqrt(noise_sq), np.sqrt(norm_sq), np.array(tw), np.array(alphas), int((~used).sum())
    )


def skipped_steps(traj: Trajectory) -> np.ndarray:
    """Steps (int64, sorted) at which an optimizer's update was skipped: the nonzero values of
    ``skipped`` and of every ``skipped.<optimizer>`` series (docs/format.md 3.2, 3.6)."""
    found = [np.zeros(0, dtype=np.int64)]
    for name in traj.observables:
        if name == "skipped" or name.startswith("skipped."):
            s, v = traj.observable(name)
            found.append(np.asarray(s, dtype=np.int64)[np.asarray(v) != 0])
    return np.unique(np.concatenate(found))
