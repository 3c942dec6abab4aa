"""Log-spaced binning shared by the analyses."""

from __future__ import annotations

import numpy as np


def log_binned_mean(
    x: np.ndarray, y: np.ndarray, per_decade: int = 10, min_count: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``y`` in bins of log10 ``x`` (``per_decade`` bins per decade).

    Returns (geometric-mean x of each bin, mean y, count), for bins with at least ``min_count``
    points; non-finite values and x ≤ 0 are dropped.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    lx, y = np.log10(x[ok]), y[ok]
    if len(lx) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)
    idx, n_bins = log_bin_index(lx, per_decade)
    cnt = np.bincount(idx, minlength=n_bins)
    sx = np.bincount(idx, lx, minlength=n_bins)
    sy = np.bincount(idx, y, minlength=n_bins)
    keep = cnt >= max(min_count, 1)
    return 10 ** (sx[keep] / cnt[keep]), sy[keep] / cnt[keep], cnt[keep]


def log_bin_index(lx: np.ndarray, per_decade: int = 10) -> tuple[np.ndarray, int]:
    """Bin of each log10 value ``lx`` (non-empty, finite) in ``log_binned_mean``'s binning, and
    the number of bins."""
    edges = np.arange(lx.min(), lx.max() + 1.0 / per_decade, 1.0 / per_decade)
    return np.clip(np.digitize(lx, edges) - 1, 0, len(edges) - 1), len(edges)
