"""Coverage of the exponent intervals and calibration of the two-regime test on exact synthetic
walks with known truth (used by tests/test_analysis_intervals.py and bench/coverage.py).

* fBm: ``n_params`` independent fractional-Brownian coordinates of ``n_records`` points with
  Hurst exponent α/2, so the MSD exponent is α exactly.
* Crossover: Gaussian coordinates with stationary increments whose MSD is
  ``fbm.crossover_msd`` (1.6 → 0.6 at τ0 = 100 by default). The truth of the two-regime fit is
  the fit of the exact expected MSD over the same lags (what the estimator targets).

Every replicate goes through the same code as a store: ``msd.tamsd_groups`` gives the partial
MSDs of the window pass's parameter blocks, and ``exponents`` fits them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .exponents import fit_exponents, fit_two_regime, usable_lags
from .fbm import crossover_msd, fbm, stationary_increment_paths
from .msd import tamsd_groups


def _covers(ci, truth) -> bool:
    return ci is not None and ci[0] <= truth <= ci[1]


@dataclass
class FbmCoverage:
    """Per α: fraction of replicates whose interval covers α (single fit), mean interval width,
    and fraction the two-regime test calls "one regime"."""

    alphas: list[float]
    replicates: int
    coverage: list[float] = field(default_factory=list)
    width: list[float] = field(default_factory=list)
    one_regime: list[float] = field(default_factory=list)

    @property
    def pooled_coverage(self) -> float:
        return float(np.mean(self.coverage))


def fbm_coverage(
    alphas=(0.3, 0.6, 1.0, 1.4, 1.7),
    *,
    n_records: int = 500,
    n_params: int = 64,
    replicates: int = 80,
    seed: int = 0,
) -> FbmCoverage:
    out = FbmCoverage(list(alphas), replicates)
    lags = usable_lags(n_records)
    for i, alpha in enumerate(alphas):
        rng = np.random.default_rng([seed, i])
        cov = one = 0
        widths = []
        for r in range(replicates):
            g = tamsd_groups(fbm(n_records, alpha / 2, size=n_params, rng=rng))[:, lags]
            single, two = fit_exponents(lags, g.sum(axis=0), msd_groups=g, seed=r)
            cov += _covers(single.alpha_ci, alpha)
            widths.append(single.alpha_ci[1] - single.alpha_ci[0])
            one += two.supported is False
        out.coverage.append(cov / replicates)
        out.width.append(float(np.mean(widths)))
        out.one_regime.append(one / replicates)
    return out


@dataclass
class CrossoverCoverage:
    """Truth of (α_short, α_long, τ0), the coverage of each interval and the fraction of
    replicates in which the two-regime test finds the break."""

    truth: tuple[float, float, float]
    replicates: int
    coverage: tuple[float, float, float]
    found: float


def crossover_coverage(
    alpha_short: float = 1.6,
    alpha_long: float = 0.6,
    tau0: float = 100.0,
    *,
    n_records: int = 1000,
    n_params: int = 64,
    replicates: int = 80,
    seed: int = 0,
) -> CrossoverCoverage:
    lags = usable_lags(n_records)
    target = crossover_msd(np.arange(n_records, dtype=float), alpha_short, alpha_long, tau0)
    rng = np.random.default_rng(seed)
    _, exact = stationary_increment_paths(target, size=1, rng=rng)
    ref = fit_two_regime(lags, exact[lags])
    truth = (ref.alpha_short, ref.alpha_long, ref.tau0)
    hits = np.zeros(3)
    found = 0
    for r in range(replicates):
        paths, _ = stationary_increment_paths(target, size=n_params, rng=rng)
        g = tamsd_groups(paths)[:, lags]
        two = fit_two_regime(lags, g.sum(axis=0), msd_groups=g, seed=r)
        hits += [
            _covers(two.alpha_short_ci, truth[0]),
            _covers(two.alpha_long_ci, truth[1]),
            _covers(two.tau0_ci, truth[2]),
        ]
        found += bool(two.supported)
    cov = hits / replicates
    return CrossoverCoverage(
        truth, replicates, (float(cov[0]), float(cov[1]), float(cov[2])), found / replicates
    )
