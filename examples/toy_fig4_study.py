"""The paper's Fig. 4 over many walkers and seeds: the numbers behind docs/analysis.md.

For each landscape and seed: the descent and near-minimum exponents of the walkers (median over
walkers), the mean cosine between successive steps, the α of the first 200 steps (lags 5–40),
and the excess kurtosis of the gradient components met along the paths. ``--scheme table``
replaces the bicubic gradient by the authors' scheme (a 2001² table of the linear interpolant,
central differences, the table point just above the position), to check that the scheme is not
what decides the result.

    python examples/toy_fig4_study.py [--landscapes diamond-square,bowl,cone,shuffled,fbm]
        [--hurst 0.8] [--seeds 4] [--size 513] [--walkers 20] [--lr 0.02] [--scheme bicubic|table]
        [--start X,Y] [--summary]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import interpolate, stats
from trajstore.analysis.exponents import fit_power_law
from trajstore.analysis.msd import tamsd
from trajstore.analysis.toy import Dynamics, Landscape, make_landscape, simulate
from trajstore.analysis.toy_phases import phase_exponents


class TableLandscape:
    """U and ∇U looked up on a (2/spacing + 1)² table of the linear interpolant of ``z``."""

    def __init__(self, z: np.ndarray, spacing: float = 1e-3):
        grid = np.linspace(-1, 1, z.shape[0])
        linear = interpolate.RegularGridInterpolator((grid, grid), 10.0 - z, method="linear")
        self.table = np.linspace(-1, 1, int(round(2 / spacing)) + 1)
        tx, ty = np.meshgrid(self.table, self.table, indexing="ij")
        self.u = linear(np.stack([tx, ty], axis=-1))
        self.gx, self.gy = np.gradient(self.u, spacing)

    def _index(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = len(self.table) - 1
        i = np.clip(np.searchsorted(self.table, p[..., 0], side="right"), 0, last)
        j = np.clip(np.searchsorted(self.table, p[..., 1], side="right"), 0, last)
        return i, j

    def loss(self, p: np.ndarray) -> np.ndarray:
        return self.u[self._index(p)]

    def grad(self, p: np.ndarray) -> np.ndarray:
        i, j = self._index(p)
        return np.stack([self.gx[i, j], self.gy[i, j]], axis=-1)


def early_alpha(pos: np.ndarray, steps: int = 200, lags: tuple[int, int] = (5, 40)) -> float:
    """Median over walkers of the TAMSD exponent of their first ``steps`` steps."""
    out = []
    for k in range(pos.shape[1]):
        msd = tamsd(pos[: steps + 1, k])
        lag = np.arange(lags[0], lags[1] + 1)
        if np.all(msd[lag] > 0):
            out.append(fit_power_law(lag, msd[lag]).alpha)
    return float(np.median(out)) if out else float("nan")


def study(kinds, seeds, size, walkers, lr, scheme, hurst=0.8, start=None) -> list[dict]:
    rows = []
    for kind in kinds:
        for seed in range(seeds):
            z = make_landscape(kind, size=size, hurst=hurst, seed=seed)
            land = Landscape(z) if scheme == "bicubic" else TableLandscape(z)
            at = None if start is None else np.tile(np.asarray(start, dtype=float), (walkers, 1))
            pos, loss = simulate(land, Dynamics(lr=lr, repeats=walkers, seed=seed), start=at)
            ph = phase_exponents(pos, loss)
            g = land.grad(pos[:-1]).reshape(-1)
            rows.append(
                {
                    "landscape": kind,
                    "seed": seed,
                    "descent_alpha": ph["descent"].alpha,
                    "descent_steps": ph["descent"].median_length,
                    "near_minimum_alpha": ph["near_minimum"].alpha,
                    "cos_descent": ph["descent"].direction_cos,
                    "cos_near_minimum": ph["near_minimum"].direction_cos,
                    "early_alpha": early_alpha(pos),
                    "grad_kurtosis": float(stats.kurtosis(g)),
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landscapes", default="diamond-square,bowl,cone,shuffled")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--size", type=int, default=513)
    ap.add_argument("--walkers", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--scheme", choices=["bicubic", "table"], default="bicubic")
    ap.add_argument("--hurst", type=float, default=0.8, help="Hurst exponent of the fbm landscape")
    ap.add_argument("--start", default=None, help="x,y of every walker's start (default: uniform)")
    ap.add_argument("--summary", action="store_true", help="medians and counts over seeds, not a table")
    args = ap.parse_args()
    start = None if args.start is None else [float(v) for v in args.start.split(",")]
    kinds = args.landscapes.split(",")
    rows = study(kinds, args.seeds, args.size, args.walkers, args.lr, args.scheme, args.hurst, start)
    if args.summary:
        for kind in kinds:
            sub = [r for r in rows if r["landscape"] == kind]
            line = [f"{kind}: {len(sub)} seeds"]
            for key in ("descent_alpha", "near_minimum_alpha", "early_alpha"):
                v = np.array([r[key] for r in sub], dtype=float)
                v = v[np.isfinite(v)]
                if len(v):
                    line.append(
                        f"{key} median {np.median(v):.2f} (range {v.min():.2f}–{v.max():.2f}, "
                        f"> 1 on {np.sum(v > 1)} of {len(v)})"
                    )
            print("; ".join(line))
        return
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
