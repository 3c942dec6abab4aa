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
    return _circulant_paths(lam, m, size, rng)


def _circulant_paths(lam: np.ndarray, m: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` paths of m + 1 points from circulant eigenvalues ``lam``: each complex Gaussian
    draw gives two independent increment series (real and imaginary parts)."""
    order = len(lam)
    out = np.empty((m + 1, size))
    out[0] = 0.0
    pairs = (size + 1) // 2
    scale = np.sqrt(lam / order)
    for p0 in range(0, pairs, 256):  # bounded memory: 256 draws at a time
        k = min(256, pairs - p0)
        z = rng.standard_normal((k, order)) + 1j * rng.standard_normal((k, order))
        y = np.fft.fft(scale * z, axis=1)[:, :m]
        inc = np.stack([y.real, y.imag], axis=1).reshape(2 * k, m)  # (re, im) of each draw
        cols = slice(2 * p0, min(2 * (p0 + k), size))
        out[1:, cols] = np.cumsum(inc[: cols.stop - cols.start].T, axis=0)
    return out


def crossover_msd(
    tau: np.ndarray, alpha_short: float, alpha_long: float, tau0: float, sharpness: float = 4.0
) -> np.ndarray:
    """V(τ) = τ^α_short·(1 + (τ/τ0)^s)^((α_long − α_short)/s): slope α_short well below τ0,
    α_long well above, a corner of width set by s. s = 4 with 1.6 → 0.6 at τ0 = 100 is a valid
    variogram (circulant embedding exact to round-off); much sharper corners are not."""
    tau = np.asarray(tau, dtype=float)
    return tau**alpha_short * (1 + (tau / tau0) ** sharpness) ** ((alpha_long - alpha_short) / sharpness)


def increment_covariance(variogram: np.ndarray) -> np.ndarray:
    """Autocovariance γ(k) = ½[V(k+1) − 2V(k) + V(k−1)] (V(−1) = V(1), V(0) = 0) of the
    increments of a process with stationary increments and MSD V(τ), τ = 0 … n: (n,)."""
    v = np.asarray(variogram, dtype=float)
    ext = np.concatenate([[v[1]], v])  # V(−1), V(0), …, V(n)
    return 0.5 * (ext[2:] - 2 * ext[1:-1] + ext[:-2])


def stationary_increment_paths(
    variogram: np.ndarray, size: int = 1, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` independent Gaussian paths of n = len(variogram) points whose increments are
    stationary with MSD ``variogram`` V(τ) (τ = 0 … n−1; V(0) = 0), by circulant embedding.

    A target V that is not exactly a valid variogram (e.g. a sharp crossover) gets circulant
    eigenvalues below 0, which are set to 0: the paths are then exact draws of a nearby process,
    whose MSD is returned as well. Returns (paths (n, size), exact MSD of the paths (n,)).
    """
    v = np.asarray(variogram, dtype=float)
    n = len(v)
    if n < 3 or v[0] != 0:
        raise ValueError("the variogram needs V(0) = 0 and at least 3 lags")
    rng = rng or np.random.default_rng()
    m = n - 1
    gamma = increment_covariance(np.concatenate([v, [2 * v[-1] - v[-2]]]))[: m + 1]
    circ = np.concatenate([gamma, gamma[-2:0:-1]])
    lam = np.clip(np.fft.fft(circ).real, 0, None)
    realised = np.fft.ifft(lam).real[:m]  # the increment autocovariance actually drawn
    # V(τ) = Σ_{i,j<τ} γ(i − j) = τγ(0) + 2 Σ_{k=1}^{τ−1} (τ − k) γ(k)
    tau = np.arange(1, m + 1)
    c1 = np.cumsum(realised)
    c2 = np.cumsum(np.arange(m) * realised)
    exact = np.concatenate([[0.0], 2 * (tau * c1 - c2) - tau * realised[0]])
    return _circulant_paths(lam, m, size, rng), exact
