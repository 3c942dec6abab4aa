"""Path geometry: contour length, MSD versus contour length, autocorrelations, excursions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .binning import log_binned_mean
from .windows import WindowStats


@dataclass(frozen=True)
class Geometry:
    """Geometry of one window's path.

    ``mean_contour[τ]``: mean over origins of s(i, i+τ) = Σ_{k=i+1..i+τ} ‖w(k) − w(k−1)‖;
    ``msd_vs_contour``: (contour-length bin centres, mean Δr² in the bin) over the pairs at lags
    2^0 … 2^8; ``contour_exponent``: slope of ln Δr² against ln s (2: straight ballistic
    segments, 1: random-walk path); ``step_autocorr[k]``: autocorrelation of step lengths at
    lag k; ``direction_autocorr[k]``: mean cosine between updates k steps apart;
    ``excursions``: (chord², maximum squared perpendicular distance) of random fragments.
    Steps of length exactly 0 (``zero_steps`` of them: an iteration whose update AMP's
    GradScaler skipped, recorded at stride 1) are no update, with no size or direction: they
    are left out of both autocorrelations (in the contour length they are the 0 they are).
    """

    t_w: int
    mean_contour: np.ndarray
    msd_vs_contour: tuple[np.ndarray, np.ndarray]
    contour_exponent: float
    step_autocorr: dict[int, float]
    direction_autocorr: dict[int, float]
    excursions: tuple[np.ndarray, np.ndarray]
    zero_steps: int = 0

    def to_dict(self) -> dict:
        return {
            "t_w": self.t_w,
            "contour_exponent": self.contour_exponent,
            "step_autocorr": {str(k): v for k, v in self.step_autocorr.items()},
            "direction_autocorr": {str(k): v for k, v in self.direction_autocorr.items()},
            "mean_contour": self.mean_contour.tolist(),
            "msd_vs_contour": [a.tolist() for a in self.msd_vs_contour],
            "excursions": {
                "chord_sq": self.excursions[0].tolist(),
                "perp_max_sq": self.excursions[1].tolist(),
            },
        }


def geometry(stats: WindowStats, autocorr_lags=(1, 2, 4, 8, 16, 32)) -> Geometry:
    step = np.sqrt(np.maximum(stats.step_sq, 0))
    prefix = np.concatenate([[0.0], np.cumsum(step)])  # s(0, t)
    n = len(prefix)
    cums = np.concatenate([[0.0], np.cumsum(prefix)])
    tau = np.arange(n)
    # mean_i prefix[i+τ] − prefix[i] over i = 0 … n−1−τ, by prefix sums of the prefix sums
    mean_contour = ((cums[n] - cums[tau]) - cums[n - tau]) / (n - tau)
    s_all, r_all = [], []
    for lag, d in stats.disp_sq.items():
        s_all.append(prefix[lag:] - prefix[:-lag])
        r_all.append(d)
    s_all = np.concatenate(s_all) if s_all else np.zeros(0)
    r_all = np.concatenate(r_all) if r_all else np.zeros(0)
    centers, means, _ = log_binned_mean(s_all, r_all, per_decade=8)
    ok = (centers > 0) & (means > 0)
    expo = float(np.polyfit(np.log(centers[ok]), np.log(means[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")
    # A zero-length step is no update: counted as a size of 0 it would pull the mean down and
    # make a run of AMP-skipped iterations look like correlated step lengths (a random walk
    # with 11 skips in 600 steps: 0.24 at lag 1 against a true 0).
    moved = step > 0
    sizes = step[moved]
    mean, var = (sizes.mean(), sizes.var()) if len(sizes) else (np.nan, 0.0)
    sa = {}
    for k in autocorr_lags:
        if k < len(step) - 1:
            both = moved[:-k] & moved[k:]
            a, b = step[:-k][both] - mean, step[k:][both] - mean
            sa[k] = float(np.mean(a * b) / var) if var > 0 and both.any() else float("nan")
    da = {}
    for k, dots in stats.step_dot.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = dots / (step[:-k] * step[k:])
        da[k] = float(np.nanmean(cos)) if np.isfinite(cos).any() else float("nan")
    return Geometry(
        stats.t_w,
        mean_contour,
        (centers, means),
        expo,
        sa,
        da,
        (stats.fragment_chord_sq, stats.fragment_perp_max),
        int(np.count_nonzero(step == 0)),
    )
