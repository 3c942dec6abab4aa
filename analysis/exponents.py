"""Diffusion exponents: local slopes, power-law fits with intervals, two-regime fits.

Lag rule for fits: only lags with at least ``min_origin_fraction`` × T time origins are used
(default 0.25, so τ ≤ 0.75 T), and τ ≥ 1. Fits use log-binned lags (``per_decade`` points per
decade, each the mean of log Δr² in its bin) so that long lags do not outweigh short ones.
Intervals are 95 % regression intervals on those points (they do not model the correlation
between lags, so they are a lower bound on the uncertainty).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .binning import log_binned_mean

MIN_ORIGIN_FRACTION = 0.25
PER_DECADE = 10


def usable_lags(n: int, min_origin_fraction: float = MIN_ORIGIN_FRACTION) -> np.ndarray:
    """Record lags 1 … τ_max with T − τ ≥ min_origin_fraction · T."""
    tau_max = int(np.floor(n * (1 - min_origin_fraction)))
    return np.arange(1, max(tau_max, 1) + 1)


def local_slope(lags: np.ndarray, msd: np.ndarray, delta: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The paper's secant slope β(τ) = [ln Δr²(τ+δ) − ln Δr²(τ)] / [ln(τ+δ) − ln τ]."""
    lags = np.asarray(lags, dtype=float)
    msd = np.asarray(msd, dtype=float)
    ok = lags[:-delta] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = (np.log(msd[delta:]) - np.log(msd[:-delta])) / (np.log(lags[delta:]) - np.log(lags[:-delta]))
    return lags[:-delta][ok], beta[ok]


def log_bin(lags: np.ndarray, msd: np.ndarray, per_decade: int = PER_DECADE) -> tuple[np.ndarray, np.ndarray]:
    """Geometric-mean lag and mean log Δr² in log-spaced bins (empty bins dropped)."""
    msd = np.asarray(msd, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(msd > 0, np.log(msd), np.nan)
    bx, by, _ = log_binned_mean(lags, logs, per_decade)
    return bx, by


def smoothed_local_slope(lags, msd, per_decade: int = PER_DECADE) -> tuple[np.ndarray, np.ndarray]:
    """Local slope d ln Δr² / d ln τ on log-binned points (central differences)."""
    bx, by = log_bin(lags, msd, per_decade)
    if len(bx) < 3:
        return np.zeros(0), np.zeros(0)
    lx = np.log(bx)
    return bx, np.gradient(by, lx)


@dataclass(frozen=True)
class PowerLawFit:
    """Δr² ≈ D·τ^α over ``lag_range`` (record lags); ``alpha_ci`` the 95 % interval."""

    alpha: float
    alpha_ci: tuple[float, float]
    prefactor: float
    lag_range: tuple[float, float]
    n_points: int

    def to_dict(self) -> dict:
        return asdict(self)


def fit_power_law(
    lags, msd, lag_range: tuple[float, float] | None = None, per_decade: int = PER_DECADE
) -> PowerLawFit:
    """Least-squares line through log-binned (ln τ, ln Δr²) within ``lag_range``."""
    lags = np.asarray(lags, dtype=float)
    msd = np.asarray(msd, dtype=float)
    lo, hi = lag_range or (1, lags.max())
    sel = (lags >= lo) & (lags <= hi)
    bx, by = log_bin(lags[sel], msd[sel], per_decade)
    if len(bx) < 3:
        raise ValueError(f"too few lags in {lo}..{hi} for a power-law fit (need 3 log bins)")
    res = stats.linregress(np.log(bx), by)
    t = stats.t.ppf(0.975, len(bx) - 2)
    return PowerLawFit(
        alpha=float(res.slope),
        alpha_ci=(float(res.slope - t * res.stderr), float(res.slope + t * res.stderr)),
        prefactor=float(np.exp(res.intercept)),
        lag_range=(float(bx[0]), float(bx[-1])),
        n_points=len(bx),
    )


@dataclass(frozen=True)
class TwoRegimeFit:
    """Broken power law: slope α_short below the crossover lag τ0, α_long above (continuous)."""

    alpha_short: float
    alpha_short_ci: tuple[float, float]
    alpha_long: float
    alpha_long_ci: tuple[float, float]
    tau0: float
    tau0_ci: tuple[float, float]
    n_points: int
    rss: float

    def to_dict(self) -> dict:
        return asdict(self)


def fit_two_regime(
    lags, msd, lag_range: tuple[float, float] | None = None, per_decade: int = PER_DECADE, min_points: int = 3
) -> TwoRegimeFit:
    """Fit ln Δr² = a + α₁ x + (α₂ − α₁)·max(0, x − x₀), x = ln τ, on log-binned lags.

    x₀ is scanned over every break point leaving ``min_points`` bins on each side and refined on
    a fine grid; for each x₀ the model is linear least squares. Intervals: α's from the
    regression at the best x₀; τ0 from the profile of the residual sum of squares (the x₀ whose
    RSS stays within the F-test 95 % bound).
    """
    lags = np.asarray(lags, dtype=float)
    msd = np.asarray(msd, dtype=float)
    lo, hi = lag_range or (1, lags.max())
    sel = (lags >= lo) & (lags <= hi)
    bx, y = log_bin(lags[sel], msd[sel], per_decade)
    x = np.log(bx)
    n = len(x)
    if n < 2 * min_points + 1:
        raise ValueError(f"too few lags for a two-regime fit ({n} log bins, need {2 * min_points + 1})")
    grid = np.linspace(x[min_points - 1], x[n - min_points], 200)
    rss = np.array([_hinge_lstsq(x, y, x0)[1] for x0 in grid])
    best = int(np.argmin(rss))
    x0 = grid[best]
    coef, rss0, cov = _hinge_lstsq(x, y, x0, with_cov=True)
    dof = n - 4
    t = stats.t.ppf(0.975, max(dof, 1))
    a1, da = coef[1], coef[2]
    se1 = np.sqrt(cov[1, 1])
    se2 = np.sqrt(cov[1, 1] + cov[2, 2] + 2 * cov[1, 2])
    bound = rss0 * (1 + stats.f.ppf(0.95, 1, max(dof, 1)) / max(dof, 1))
    inside = grid[rss <= bound]
    step = grid[1] - grid[0]  # the scan's resolution bounds how well x0 is known
    inside = np.array([max(inside.min() - step, x[0]), min(inside.max() + step, x[-1])])
    return TwoRegimeFit(
        alpha_short=float(a1),
        alpha_short_ci=(float(a1 - t * se1), float(a1 + t * se1)),
        alpha_long=float(a1 + da),
        alpha_long_ci=(float(a1 + da - t * se2), float(a1 + da + t * se2)),
        tau0=float(np.exp(x0)),
        tau0_ci=(float(np.exp(inside.min())), float(np.exp(inside.max()))),
        n_points=n,
        rss=float(rss0),
    )


def _hinge_lstsq(x, y, x0, with_cov: bool = False):
    A = np.column_stack([np.ones_like(x), x, np.maximum(0.0, x - x0)])
    coef, _, _, _ = np.linalg.lstsq(A, y, rcond=None)
    r = y - A @ coef
    rss = float(r @ r)
    if not with_cov:
        return coef, rss
    dof = max(len(x) - 3, 1)
    cov = (rss / dof) * np.linalg.pinv(A.T @ A)
    return coef, rss, cov
