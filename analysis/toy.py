"""The paper's 2-D toy model: landscapes and noisy gradient descent on them.

Domain [−1, 1]², loss U = 10 − z(x, y). Landscapes: the paper's diamond–square fractal (raw, as
the authors' generator returns it; ``diamond-square-clipped`` is the clipped copy they drew as a
preview), a spectral-synthesis fractional-Brownian surface of chosen Hurst exponent (exact
ground truth), the authors' convex control, a cone z = 1 − r/2, a Gaussian bowl
z = 10·exp(−r²/2) (U = 10 − 10·exp(−r²/2), only a commented-out line in the authors' code), and a
shuffled control. Dynamics: x ← x − η ∇U(x) + σ ξ with the gradient of the bicubic interpolant of
the grid (axis 0 is x, axis 1 is y; the released code swapped them and used a coarse lookup).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
from scipy import interpolate, ndimage

from .toy_phases import phase_exponents

LANDSCAPES = ("diamond-square", "diamond-square-clipped", "fbm", "cone", "bowl", "shuffled")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def diamond_square(
    levels: int = 10,
    amplitude: float = 3.0,
    decay: float = 0.5,
    seed: int = 0,
    clip_border: bool = False,
    floor: float | None = None,
) -> np.ndarray:
    """The paper's landscape z on a (2^levels + 1)² grid (1025² for 10 levels).

    Corners 0; at each level the diamond and square midpoints get the mean of their neighbours
    plus uniform noise of width a (in [−a/2, a/2], as the authors' generator draws
    ``(rand − 0.5)·a``), a starting at ``amplitude`` and multiplied by ``decay`` per level (0.5:
    halved). The default is the raw landscape the authors' generator returns (values about
    [−1.7, 1.9]). ``clip_border=True, floor=-0.1`` gives the clipped variant: after every
    level borders clipped to ≤ 0 and values below the floor set to it, which the authors
    applied only to the copy they drew as a preview. Halving per level implies
    H = −log2(decay) = 1 at small scales; the measured
    structure-function exponent is lower (see docs/analysis.md).
    """
    _check(1 <= levels <= 13, f"levels must be in 1..13 (grid 3..8193), got {levels}")
    _check(amplitude > 0 and 0 < decay < 1, "amplitude must be > 0 and decay in (0, 1)")
    rng = np.random.default_rng(seed)
    n = 2**levels + 1
    z = np.zeros((n, n))
    a = amplitude
    step = n - 1
    while step > 1:
        h = step // 2
        # diamond: centres of squares
        c = (
            z[:-1:step, :-1:step]
            + z[step::step, :-1:step]
            + z[:-1:step, step::step]
            + z[step::step, step::step]
        ) / 4
        z[h::step, h::step] = c + rng.uniform(-a / 2, a / 2, c.shape)
        # square: edge midpoints, averaging the 3 or 4 neighbours that exist
        for off_i, off_j in ((h, 0), (0, h)):
            ii, jj = np.meshgrid(np.arange(off_i, n, step), np.arange(off_j, n, step), indexing="ij")
            total = np.zeros(ii.shape)
            count = np.zeros(ii.shape)
            for di, dj in ((-h, 0), (h, 0), (0, -h), (0, h)):
                ni, nj = ii + di, jj + dj
                ok = (ni >= 0) & (ni < n) & (nj >= 0) & (nj < n)
                total[ok] += z[ni[ok], nj[ok]]
                count[ok] += 1
            z[ii, jj] = total / count + rng.uniform(-a / 2, a / 2, ii.shape)
        if clip_border:
            for edge in (z[0], z[-1], z[:, 0], z[:, -1]):
                np.minimum(edge, 0.0, out=edge)
        if floor is not None:
            np.maximum(z, floor, out=z)
        a *= decay
        step = h
    return z


def fbm_surface(size: int = 513, hurst: float = 0.8, amplitude: float = 3.0, seed: int = 0) -> np.ndarray:
    """A fractional-Brownian surface by spectral synthesis: power ∝ |k|^−(2H+2), random phases,
    scaled to a peak-to-peak range of ``amplitude``."""
    _check(0 < hurst < 1, f"the Hurst exponent must be in (0, 1), got {hurst}")
    _check(8 <= size <= 8193, f"size must be in 8..8193, got {size}")
    rng = np.random.default_rng(seed)
    m = 2 * size  # synthesise on a larger periodic grid and cut, to avoid wrap-around correlations
    kx = np.fft.fftfreq(m)[:, None]
    ky = np.fft.rfftfreq(m)[None, :]
    k = np.sqrt(kx**2 + ky**2)
    k[0, 0] = np.inf
    amp = k ** (-(hurst + 1.0))
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    z = np.fft.irfft2(spec, s=(m, m))[:size, :size]
    z -= z.min()
    return z * (amplitude / np.ptp(z))


def cone(size: int = 513) -> np.ndarray:
    """z = 1 − r/2: the authors' convex control (their "convex" file; its descent is ballistic,
    α ≈ 1.8, so it is not a "no superdiffusion" control)."""
    x = np.linspace(-1, 1, size)
    r = np.hypot(x[:, None], x[None, :])
    return 1.0 - r / 2.0


def bowl(size: int = 513) -> np.ndarray:
    """z = 10·exp(−r²/2), so U = 10 − 10·exp(−r²/2): a Gaussian bowl (in the authors' code only a
    commented-out line, not their convex control)."""
    x = np.linspace(-1, 1, size)
    return 10.0 * np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / 2.0)


def shuffled(z: np.ndarray, sigma: float = 8.0, power: float = 0.7, seed: int = 0) -> np.ndarray:
    """Control: pixels randomly permuted, Gaussian-smoothed (σ in pixels), rescaled to the
    original range and raised to ``power`` on [0, 1]: same range, no long-range correlation."""
    rng = np.random.default_rng(seed)
    flat = rng.permutation(z.ravel()).reshape(z.shape)
    sm = ndimage.gaussian_filter(flat, sigma, mode="reflect")
    u = (sm - sm.min()) / max(np.ptp(sm), 1e-300)
    return z.min() + np.ptp(z) * u**power


def structure_function_hurst(z: np.ndarray, max_lag: int | None = None) -> float:
    """H from S(ℓ) = ⟨(z(p + ℓ) − z(p))²⟩ ∝ ℓ^{2H} along both axes, ℓ = 1, 2, 4 … max_lag."""
    max_lag = max_lag or z.shape[0] // 16
    lags = 2 ** np.arange(int(np.log2(max_lag)) + 1)
    s = [
        np.mean(
            np.concatenate([((z[lag:] - z[:-lag]) ** 2).ravel(), ((z[:, lag:] - z[:, :-lag]) ** 2).ravel()])
        )
        for lag in lags
    ]
    return float(np.polyfit(np.log(lags), np.log(s), 1)[0] / 2)


def make_landscape(kind: str, *, size: int = 513, hurst: float = 0.8, seed: int = 0) -> np.ndarray:
    """z grid for a landscape name of ``LANDSCAPES``."""
    _check(kind in LANDSCAPES, f"unknown landscape {kind!r}; choose one of {', '.join(LANDSCAPES)}")
    if kind in ("diamond-square", "diamond-square-clipped"):
        levels = int(round(np.log2(size - 1)))
        _check(2**levels + 1 == size, f"{kind} needs size 2^k + 1 (e.g. 513, 1025), got {size}")
        if kind == "diamond-square-clipped":
            return diamond_square(levels, seed=seed, clip_border=True, floor=-0.1)
        return diamond_square(levels, seed=seed)
    if kind == "fbm":
        return fbm_surface(size, hurst, seed=seed)
    if kind == "cone":
        return cone(size)
    if kind == "bowl":
        return bowl(size)
    levels = int(round(np.log2(size - 1)))
    _check(2**levels + 1 == size, f"shuffled needs size 2^k + 1 (it shuffles a diamond-square), got {size}")
    return shuffled(diamond_square(levels, seed=seed), seed=seed)


class Landscape:
    """U(x, y) = 10 − z on [−1, 1]² from a grid ``z[i, j]`` at (x_i, y_j), bicubic."""

    def __init__(self, z: np.ndarray):
        _check(z.ndim == 2 and z.shape[0] == z.shape[1] and z.shape[0] >= 4, "z must be a square grid (≥ 4²)")
        self.z = z
        grid = np.linspace(-1, 1, z.shape[0])
        self._spline = interpolate.RectBivariateSpline(grid, grid, 10.0 - z, kx=3, ky=3)
        # Derivative splines built once: evaluating with dx=1 would rebuild them at every call.
        self._dx = self._spline.partial_derivative(1, 0)
        self._dy = self._spline.partial_derivative(0, 1)

    def loss(self, p: np.ndarray) -> np.ndarray:
        """U at points p (..., 2)."""
        return self._spline.ev(p[..., 0], p[..., 1])

    def grad(self, p: np.ndarray) -> np.ndarray:
        """∇U at points p (..., 2)."""
        return np.stack(
            [self._dx(p[..., 0], p[..., 1], grid=False), self._dy(p[..., 0], p[..., 1], grid=False)], axis=-1
        )


@dataclass(frozen=True)
class Dynamics:
    """Noisy gradient descent x ← x − lr·∇U(x) + noise·ξ, ξ ~ N(0, I), on [−1, 1]²."""

    lr: float = 0.02
    noise: float = 0.01
    steps: int = 1000
    repeats: int = 5
    seed: int = 0
    max_redraws: int = 500

    def __post_init__(self) -> None:
        _check(self.lr > 0, f"lr must be positive, got {self.lr}")
        _check(self.noise >= 0, f"noise must be non-negative, got {self.noise}")
        _check(1 <= self.steps <= 10**7, f"steps must be in 1..10^7, got {self.steps}")
        _check(1 <= self.repeats <= 10**4, f"repeats must be in 1..10^4, got {self.repeats}")


def simulate(
    land: Landscape, dyn: Dynamics, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (steps + 1, repeats, 2) and losses (steps + 1, repeats), vectorised over repeats.

    Starts uniformly in the square (seeded) unless ``start`` (repeats, 2) is given. A proposal
    that leaves the square redraws its noise, up to ``max_redraws`` times; then it stays put.
    """
    rng = np.random.default_rng(dyn.seed)
    x = rng.uniform(-1, 1, (dyn.repeats, 2)) if start is None else np.array(start, dtype=float)
    pos = np.empty((dyn.steps + 1, dyn.repeats, 2))
    pos[0] = x
    for t in range(1, dyn.steps + 1):
        drift = x - dyn.lr * land.grad(x)
        prop = drift + dyn.noise * rng.standard_normal(x.shape)
        out = np.flatnonzero(np.any(np.abs(prop) > 1, axis=1))
        if len(out):
            # All redraws at once; the first that stays inside is taken, else the walker stays.
            trial = drift[out, None, :] + dyn.noise * rng.standard_normal((len(out), dyn.max_redraws, 2))
            inside = np.all(np.abs(trial) <= 1, axis=2)
            first = inside.argmax(axis=1)
            ok = inside[np.arange(len(out)), first]
            prop[out] = np.where(ok[:, None], trial[np.arange(len(out)), first], x[out])
        x = prop
        pos[t] = x
    return pos, land.loss(pos)


def write_toy_store(
    path: str | os.PathLike,
    kind: str = "diamond-square",
    *,
    size: int = 513,
    hurst: float = 0.8,
    dynamics: Dynamics | None = None,
    landscape_seed: int = 0,
    overwrite: bool = False,
) -> str:
    """Simulate and write an ordinary trajstore store: weights = positions (tensor ``r<k>`` of
    shape (2,) per repeat), observables ``loss`` (mean over repeats) and ``loss_r<k>``
    (post_step: U at the recorded position), metadata = landscape and dynamics parameters and the
    walkers' descent and near-minimum exponents (``toy.phases``, see ``toy_phases``)."""
    import trajstore

    dyn = dynamics or Dynamics()
    z = make_landscape(kind, size=size, hurst=hurst, seed=landscape_seed)
    pos, loss = simulate(Landscape(z), dyn)
    phases = {  # NaN (a phase too short to fit) stored as null: the metadata is plain JSON
        name: {k: (None if v != v else v) for k, v in ph.summary().items()}
        # records 1 … T: the store logs no loss for record 0, so analyses of the store agree
        for name, ph in phase_exponents(pos[1:], loss[1:]).items()
    }
    layout = {f"r{k}": (2,) for k in range(dyn.repeats)}
    meta = {
        "toy": {
            "landscape": kind,
            "size": size,
            "hurst": hurst if kind == "fbm" else None,
            "landscape_seed": landscape_seed,
            "dynamics": asdict(dyn),
            "structure_function_hurst": structure_function_hurst(z),
            "phases": phases,
        }
    }
    with trajstore.create(
        path, layout, mode="w" if overwrite else "x", metadata=meta, provenance={"program": "trajstore toy"}
    ) as w:
        for t in range(dyn.steps + 1):
            w.append(t, pos[t].reshape(-1).astype(np.float32), time=float(t))
            if t:
                w.log("loss", t, float(loss[t].mean()), unit="1", description="mean U over repeats")
        w.flush()
        for k in range(dyn.repeats):
            for t in range(1, dyn.steps + 1):
                w.log(f"loss_r{k}", t, float(loss[t, k]), unit="1", description=f"U of repeat {k}")
    return os.fspath(path)
