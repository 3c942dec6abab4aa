"""Step lengths and displacements ‖w(t+τ) − w(t)‖ at lags τ = 2^0 … 2^8, and their collapse."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .windows import WindowStats


@dataclass(frozen=True)
class Distribution:
    """Log-binned probability density: ``density[i]`` on [edges[i], edges[i+1])."""

    edges: np.ndarray
    density: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        return np.sqrt(self.edges[:-1] * self.edges[1:])

    def to_dict(self) -> dict:
        return {"edges": self.edges.tolist(), "density": self.density.tolist()}


def log_histogram(x: np.ndarray, bins_per_decade: int = 10) -> Distribution:
    """Density of positive ``x`` on log-spaced bins."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if len(x) == 0:
        return Distribution(np.zeros(0), np.zeros(0))
    lo, hi = np.log10(x.min()), np.log10(x.max())
    nb = max(int(np.ceil((hi - lo) * bins_per_decade)), 1)
    edges = np.logspace(lo, hi + 1e-12, nb + 1)
    counts, _ = np.histogram(x, edges)
    return Distribution(edges, counts / (len(x) * np.diff(edges)))


def ccdf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Complementary CDF P(X ≥ x) at the sorted values."""
    xs = np.sort(np.asarray(x, dtype=float)[np.isfinite(x)])
    return xs, 1.0 - np.arange(len(xs)) / max(len(xs), 1)


@dataclass(frozen=True)
class Displacements:
    """Displacement lengths of one window at record lags ``lags``; ``samples[τ]`` the lengths
    ‖w(t+τ) − w(t)‖ over all origins; ``scaled`` the same divided by sqrt(Δr²(τ))."""

    t_w: int
    lags: tuple[int, ...]
    samples: dict[int, np.ndarray]
    distributions: dict[int, Distribution]
    collapsed: dict[int, Distribution]

    def to_dict(self) -> dict:
        return {
            "t_w": self.t_w,
            "lags": list(self.lags),
            "mean": {str(k): float(v.mean()) for k, v in self.samples.items()},
            "distributions": {str(k): d.to_dict() for k, d in self.distributions.items()},
            "collapsed": {str(k): d.to_dict() for k, d in self.collapsed.items()},
        }


def displacements(stats: WindowStats, bins_per_decade: int = 10) -> Displacements:
    samples = {tau: np.sqrt(np.maximum(d, 0)) for tau, d in stats.disp_sq.items()}
    dists = {tau: log_histogram(s, bins_per_decade) for tau, s in samples.items()}
    collapsed = {}
    for tau, s in samples.items():
        scale = np.sqrt(stats.msd[tau]) if tau < len(stats.msd) and stats.msd[tau] > 0 else np.nan
        collapsed[tau] = log_histogram(s / scale, bins_per_decade)
    return Displacements(stats.t_w, tuple(samples), samples, dists, collapsed)
