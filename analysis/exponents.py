"""Diffusion exponents: local slopes, power-law fits with intervals, two-regime fits.

Lag rule for fits: only lags with at least ``min_origin_fraction`` × T time origins are used
(default 0.25, so τ ≤ 0.75 T), and τ ≥ 1. Fits use log-binned lags (``per_decade`` points per
decade, each the mean of log Δr² in its bin) so that long lags do not outweigh short ones.

Intervals come from a bootstrap over parameter blocks: the window pass keeps the partial MSD of
each of G contiguous blocks of coordinates (``msd_groups``, G × T); a resample draws G blocks
with replacement, sums their partial MSDs into a new curve and refits it. The points of one
TAMSD curve are strongly correlated (overlapping origins, one shared path), so regression
intervals on them cover the truth far less often than they claim; resampling whole blocks of
coordinates keeps every correlation along the lag axis and is checked for coverage on exact
fBm and on a synthetic crossover (tests/test_analysis_intervals.py, docs/analysis.md). Without
blocks, or with fewer than ``MIN_GROUPS`` of them, there is no interval (``None``, with the
reason in ``ci_method``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .binning import log_binned_mean

MIN_ORIGIN_FRACTION = 0.25
PER_DECADE = 10
N_BOOT = 400  # bootstrap resamples per fit
LEVEL = 0.95
MIN_GROUPS = 16  # fewer independent parameter blocks give no usable bootstrap
MIN_SLOPE_CHANGE = 0.1  # a two-regime fit whose slopes differ by less is reported as one regime
GRID_POINTS = 200  # break points scanned by the two-regime fit


MIN_FIT_BINS = 3  # log-binned lags a power-law fit needs


def usable_lags(n: int, min_origin_fraction: float = MIN_ORIGIN_FRACTION) -> np.ndarray:
    """Record lags 1 … τ_max with T − τ ≥ min_origin_fraction · T."""
    tau_max = int(np.floor(n * (1 - min_origin_fraction)))
    return np.arange(1, max(tau_max, 1) + 1)


def min_window() -> int:
    """The fewest records per window whose usable lags fall into :data:`MIN_FIT_BINS` log bins
    (the binning of the fits, :func:`log_bins`): shorter windows cannot give any MSD fit."""
    window = 2
    while len(log_bins(usable_lags(window)).x) < MIN_FIT_BINS:
        window += 1
    return window


def check_window(window: int) -> None:
    """One-line ValueError for a window too short for any MSD fit (fewer than 3 lag bins)."""
    least = min_window()
    if window < least:
        raise ValueError(
            f"a window of {window} records is too short: its lags fall into fewer than {MIN_FIT_BINS} "
            f"log-spaced bins, the fewest an MSD fit needs; use a window of at least {least} records "
            "(hundreds give usable fits)"
        )


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
    """Δr² ≈ D·τ^α over ``lag_range`` (record lags, first and last fitted bin).

    ``alpha_ci``: the 95 % bootstrap interval over parameter blocks (None without blocks, see
    ``ci_method``). ``residual_rms``: root-mean-square residual of the binned ln Δr² about the
    line; ``noise_ratio``: the same residuals in units of the bootstrap standard deviation of each
    binned point (≈ 1 or less: the line fits within the sampling noise; ≫ 1: the curve is not one
    power law)."""

    alpha: float
    alpha_ci: tuple[float, float] | None
    prefactor: float
    lag_range: tuple[float, float]
    n_points: int
    residual_rms: float = float("nan")
    noise_ratio: float | None = None
    ci_method: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["alpha_ci"] = list(self.alpha_ci) if self.alpha_ci is not None else None
        d["lag_range"] = list(self.lag_range)
        return d


@dataclass(frozen=True)
class LogBins:
    """The fixed linear map from ln Δr² at ``lags`` to the log-binned points of a fit:
    y_bins = ``matrix`` @ ln Δr²(lags); ``x`` = ln of each bin's geometric-mean lag."""

    lags: np.ndarray  # (L,)
    x: np.ndarray  # (nb,)
    matrix: np.ndarray  # (nb, L)

    def apply(self, curves: np.ndarray) -> np.ndarray:
        """Binned ln Δr² of curves (..., L) of Δr² at ``lags``: (..., nb)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(curves) @ self.matrix.T


def log_bins(lags: np.ndarray, per_decade: int = PER_DECADE) -> LogBins:
    """The bins of ``binning.log_binned_mean`` for positive ``lags``, as a matrix."""
    lags = np.asarray(lags, dtype=float)
    lx = np.log10(lags)
    edges = np.arange(lx.min(), lx.max() + 1.0 / per_decade, 1.0 / per_decade)
    idx = np.clip(np.digitize(lx, edges) - 1, 0, len(edges) - 1)
    used = np.unique(idx)
    m = (idx[None, :] == used[:, None]).astype(float)
    m /= m.sum(axis=1, keepdims=True)
    return LogBins(lags, (m @ lx) * np.log(10.0), m)


def _select(lags, msd, lag_range, groups):
    lags = np.asarray(lags, dtype=float)
    msd = np.asarray(msd, dtype=float)
    lo, hi = lag_range or (1, lags.max())
    sel = (lags >= lo) & (lags <= hi) & np.isfinite(msd) & (msd > 0)
    g = None
    if groups is not None:
        g = np.asarray(groups, dtype=float)
        if g.ndim != 2 or g.shape[1] != len(lags):
            raise ValueError(f"msd_groups must be (G, {len(lags)}) like the lags, got {g.shape}")
        g = g[:, sel]
    return lags[sel], msd[sel], g, (lo, hi)


def bootstrap_curves(groups: np.ndarray | None, n_boot: int = N_BOOT, seed: int = 0):
    """Resampled Δr² curves (n_boot, L) from the partial curves of G parameter blocks (G, L):
    each sums G blocks drawn with replacement. Returns (curves or None, method description)."""
    if groups is None:
        return None, "no interval: no parameter blocks to resample (pass msd_groups)"
    n_groups = groups.shape[0]
    if n_groups < MIN_GROUPS:
        return None, (
            f"no interval: {n_groups} parameter block(s), fewer than the {MIN_GROUPS} a bootstrap "
            "over parameter blocks needs"
        )
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups)) + n_groups * np.arange(n_boot)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    curves = counts.astype(float) @ groups
    ok = np.all(curves > 0, axis=1) & np.all(np.isfinite(curves), axis=1)
    return curves[ok], f"bootstrap over {n_groups} parameter blocks, {int(ok.sum())} resamples, percentile"


def _interval(
    values: np.ndarray, estimate: float, n_groups: int, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile interval of the resampled ``values``, widened about ``estimate`` by the
    small-sample factor t_{G−1}/z · sqrt(G/(G−1)) (G blocks: the bootstrap spread of a sum of G
    units underestimates its standard error; measured coverage without it: 91 %, docs)."""
    q = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    c = (
        stats.t.ppf((1 + level) / 2, n_groups - 1)
        / stats.norm.ppf((1 + level) / 2)
        * np.sqrt(n_groups / (n_groups - 1))
    )
    return float(estimate - c * (estimate - q[0])), float(estimate + c * (q[1] - estimate))


def _line(x: np.ndarray, Y: np.ndarray):
    """Least-squares slope and intercept of every row of Y (..., nb) against x (nb,)."""
    xc = x - x.mean()
    slope = (Y - Y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)
    return slope, Y.mean(axis=-1) - slope * x.mean()


@dataclass
class _Prepared:
    """One curve ready for fitting: its bins, binned points and the binned bootstrap resamples."""

    bins: LogBins
    y: np.ndarray  # (nb,)
    boot: np.ndarray | None  # (B, nb) or None
    method: str
    n_groups: int
    lag_range: tuple[float, float]


def _prepare(lags, msd, lag_range, per_decade, msd_groups, n_boot, seed) -> _Prepared:
    lags, msd, groups, (lo, hi) = _select(lags, msd, lag_range, msd_groups)
    if len(lags) < 3:
        raise ValueError(f"too few lags in {lo}..{hi} for a power-law fit (need 3 log bins)")
    bins = log_bins(lags, per_decade)
    curves, method = bootstrap_curves(groups, n_boot, seed)
    boot = None
    if curves is not None and len(curves) >= n_boot // 2:
        boot = bins.apply(curves)
    elif curves is not None:
        method = f"no interval: only {len(curves)} usable resamples"
    g = groups.shape[0] if groups is not None else 0
    return _Prepared(bins, bins.apply(msd), boot, method, g, (lo, hi))


def fit_power_law(
    lags,
    msd,
    lag_range: tuple[float, float] | None = None,
    per_decade: int = PER_DECADE,
    *,
    msd_groups: np.ndarray | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> PowerLawFit:
    """Least-squares line through log-binned (ln τ, ln Δr²) within ``lag_range``.

    ``msd_groups`` (G, len(lags)): partial MSDs of G parameter blocks at the same lags (their sum
    is ``msd``); with them, ``alpha_ci`` is a bootstrap interval over blocks (module docstring).
    """
    return _power_law(_prepare(lags, msd, lag_range, per_decade, msd_groups, n_boot, seed))


def fit_exponents(
    lags, msd, *, msd_groups: np.ndarray | None = None, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[PowerLawFit, TwoRegimeFit | None]:
    """:func:`fit_power_law` and :func:`fit_two_regime` of one curve over all ``lags``, sharing
    one set of bootstrap resamples (the two-regime fit is None when there are too few bins)."""
    prep = _prepare(lags, msd, None, PER_DECADE, msd_groups, n_boot, seed)
    single = _power_law(prep)
    try:
        two = _two_regime(prep, 3)
    except ValueError:
        two = None
    return single, two


def _power_law(p: _Prepared) -> PowerLawFit:
    x, y = p.bins.x, p.y
    if len(x) < 3:
        lo, hi = p.lag_range
        raise ValueError(f"too few lags in {lo}..{hi} for a power-law fit (need 3 log bins)")
    slope, icpt = _line(x, y)
    resid = y - (icpt + slope * x)
    ci, ratio = None, None
    if p.boot is not None:
        ci = _interval(_line(x, p.boot)[0], float(slope), p.n_groups)
        sd = p.boot.std(axis=0)
        ratio = float(np.sqrt(np.mean(resid**2 / np.maximum(sd**2, 1e-300))))
    return PowerLawFit(
        alpha=float(slope),
        alpha_ci=ci,
        prefactor=float(np.exp(icpt)),
        lag_range=(float(np.exp(x[0])), float(np.exp(x[-1]))),
        n_points=len(x),
        residual_rms=float(np.sqrt(np.mean(resid**2))),
        noise_ratio=ratio,
        ci_method=p.method,
    )


@dataclass(frozen=True)
class TwoRegimeFit:
    """Broken power law: slope α_short below the crossover lag τ0, α_long above (continuous).

    Intervals (95 %) and ``slope_change_ci`` (of α_long − α_short) from the bootstrap over
    parameter blocks (None without blocks). ``supported``: whether the data support two regimes
    against one power law (see :func:`fit_two_regime`; None when untested); ``verdict`` says it
    in words. ``lag_range``: first and last fitted bin (record lags)."""

    alpha_short: float
    alpha_short_ci: tuple[float, float] | None
    alpha_long: float
    alpha_long_ci: tuple[float, float] | None
    tau0: float
    tau0_ci: tuple[float, float] | None
    n_points: int
    rss: float
    lag_range: tuple[float, float] = (float("nan"), float("nan"))
    slope_change_ci: tuple[float, float] | None = None
    residual_rms: float = float("nan")
    supported: bool | None = None
    verdict: str = ""
    ci_method: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("alpha_short_ci", "alpha_long_ci", "tau0_ci", "slope_change_ci", "lag_range"):
            v = getattr(self, k)
            d[k] = list(v) if v is not None else None
        return d


def _hinge_scan(x: np.ndarray, Y: np.ndarray, grid: np.ndarray):
    """Best hinge fit of every row of Y (R, nb) over break points ``grid`` (K,): returns the
    index of the best break, the coefficients (R, 3) = (a, α₁, α₂ − α₁) and the RSS (R,)."""
    A = np.empty((len(grid), len(x), 3))
    A[:, :, 0] = 1.0
    A[:, :, 1] = x
    A[:, :, 2] = np.maximum(0.0, x[None, :] - grid[:, None])
    Q, Rm = np.linalg.qr(A)  # (K, nb, 3), (K, 3, 3)
    nb = len(x)
    proj = (Y @ Q.transpose(1, 0, 2).reshape(nb, -1)).reshape(len(Y), len(grid), 3)  # (R, K, 3)
    rss = (Y * Y).sum(axis=1)[:, None] - (proj * proj).sum(axis=2)
    best = np.argmin(rss, axis=1)
    rows = np.arange(len(Y))
    coef = np.linalg.solve(Rm[best], proj[rows, best][..., None])[..., 0]
    # The RSS of the chosen fits from their residuals: |Y|² − |proj|² (enough to rank the breaks)
    # cancels to a few digits when the fit is good.
    resid = Y - np.einsum("rnk,rk->rn", A[best], coef)
    return best, coef, (resid * resid).sum(axis=1)


def fit_two_regime(
    lags,
    msd,
    lag_range: tuple[float, float] | None = None,
    per_decade: int = PER_DECADE,
    min_points: int = 3,
    *,
    msd_groups: np.ndarray | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> TwoRegimeFit:
    """Fit ln Δr² = a + α₁ x + (α₂ − α₁)·max(0, x − x₀), x = ln τ, on log-binned lags.

    x₀ is scanned over ``GRID_POINTS`` break points leaving ``min_points`` bins on each side; for
    each x₀ the model is linear least squares. With ``msd_groups`` every bootstrap resample is
    refitted (break included), which gives the intervals of α₁, α₂, τ0 and α₂ − α₁. Two regimes
    are ``supported`` when the 95 % interval of α₂ − α₁ excludes 0 and |α₂ − α₁| ≥
    ``MIN_SLOPE_CHANGE``; this rule says "one regime" on ≥ 90 % of exact-fBm replicates and finds
    a 1.6 → 0.6 break at τ0 = 100 in ≥ 90 % (tests/test_analysis_intervals.py).
    """
    lo, hi = lag_range or (1, np.max(lags))
    try:
        prep = _prepare(lags, msd, lag_range, per_decade, msd_groups, n_boot, seed)
    except ValueError:
        raise ValueError(f"too few lags in {lo}..{hi} for a two-regime fit") from None
    return _two_regime(prep, min_points)


def _two_regime(p: _Prepared, min_points: int) -> TwoRegimeFit:
    x, y = p.bins.x, p.y
    n = len(x)
    if n < 2 * min_points + 1:
        raise ValueError(f"too few lags for a two-regime fit ({n} log bins, need {2 * min_points + 1})")
    grid = np.linspace(x[min_points - 1], x[n - min_points], GRID_POINTS)
    best, coef, rss = _hinge_scan(x, y[None], grid)
    a1, da = coef[0, 1], coef[0, 2]
    x0 = grid[best[0]]
    cis: dict[str, tuple[float, float] | None] = dict.fromkeys(("s", "l", "t", "d"))
    supported, verdict = None, "not tested: no bootstrap (see ci_method)"
    if p.boot is not None:
        bb, bc, _ = _hinge_scan(x, p.boot, grid)
        g = p.n_groups
        cis = {
            "s": _interval(bc[:, 1], a1, g),
            "l": _interval(bc[:, 1] + bc[:, 2], a1 + da, g),
            "t": tuple(float(np.exp(v)) for v in _interval(grid[bb], x0, g)),  # on ln τ0
            "d": _interval(bc[:, 2], da, g),
        }
        supported = bool((cis["d"][0] > 0 or cis["d"][1] < 0) and abs(da) >= MIN_SLOPE_CHANGE)
        d = cis["d"]
        if supported:
            kind = "steepens" if da > 0 else "flattens"
            verdict = (
                f"two regimes: the MSD {kind} from α = {a1:.2f} to {a1 + da:.2f} at τ0 ≈ {np.exp(x0):.3g} "
                f"records (slope change {da:+.2f}, 95 % interval [{d[0]:+.2f}, {d[1]:+.2f}])"
            )
        else:
            verdict = (
                f"one regime: no significant change of slope (α₂ − α₁ = {da:+.2f}, 95 % interval "
                f"[{d[0]:+.2f}, {d[1]:+.2f}]; two regimes need it to exclude 0 and "
                f"|α₂ − α₁| ≥ {MIN_SLOPE_CHANGE})"
            )
    return TwoRegimeFit(
        alpha_short=float(a1),
        alpha_short_ci=cis["s"],
        alpha_long=float(a1 + da),
        alpha_long_ci=cis["l"],
        tau0=float(np.exp(x0)),
        tau0_ci=cis["t"],
        n_points=n,
        rss=float(rss[0]),
        lag_range=(float(np.exp(x[0])), float(np.exp(x[-1]))),
        slope_change_ci=cis["d"],
        residual_rms=float(np.sqrt(rss[0] / n)),
        supported=supported,
        verdict=verdict,
        ci_method=p.method,
    )
