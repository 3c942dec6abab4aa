"""Exact fractional Brownian motion (Davies–Harte circulant embedding), for validation.

fBm B_H(t) has MSD ⟨(B(t+τ) − B(t))²⟩ = τ^(2H), so a trajectory of independent fBm
coordinates has the diffusion exponent α = 2H exactly.
"""

from __future__ import annotations

import numpy as np


def fgn_autocovariance(n: int, hurst: float) -> np.ndarray:
    """γ(k) = ½(|k+1|^{2H} − 2|k|^{2H} + |k−1|^{2H}) for k = 0 … n−1 (unit-variance increments)."""
    k = np.arange(n, dtype=float)
    h2 = 2.0 * hurst
    return 0.5 * (np.abs(k + 1) ** h2 - 2 * np.abs(k) ** h2 + np.abs(k - 1) ** h2)


def fbm(n: int, hurst: float, size: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
    """``size`` independent fBm paths of ``n`` points (B(0) = 0, unit time step): (n, size).

    Davies–Harte: embed the fGn covariance in a circulant of order 2n whose eigenvalues are
    non-negative for every H in (0, 1); each complex draw gives two independent paths.
    """
    if not 0 < hurst < 1:
        raise ValueError(f"the Hurst exponent must be in (0, 1), got {hurst}")
    if n < 2:
        raise ValueError("n must be at least 2")
    rng = rng or np.random.default_rng()
    m = n - 1  # increments
    gamma = fgn_autocovariance(m + 1, hurst)
    circ = np.concatenate([gamma, gamma[-2:0:-1]])  # order 2m
    lam = np.fft.fft(circ).real
    lam = np.clip(lam, 0, None)  # tiny negative round-off only
    order = len(circ)
    out = np.empty((n, size))
    out[0] = 0.0
    done = 0
    while done < size:
        z = rng.standard_normal(order) + 1j * rng.standard_normal(order)
        y = np.fft.fft(np.sqrt(lam / order) * z)[:m]
        for part in (y.real, y.imag):
            if done < size:
                out[1:, done] = np.cumsum(part)
                done += 1
    return out
