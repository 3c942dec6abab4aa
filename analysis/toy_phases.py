"""Descent and near-minimum phases of toy-model walkers and their diffusion exponents.

The paper's Fig. 4 contrasts the MSD of a walker while it descends through the fractal landscape
with its MSD near the minimum it reaches. Its segments were chosen by eye on one walker; here
each walker's path is split by a rule, so that the comparison runs over many walkers and seeds:
the descent ends at the first step t* at which the walker's loss U(t) comes within ``fraction``
of its total drop from its final level U_f (the mean of U over the last ``tail`` of the run):
U(t*) ≤ U_f + fraction · (U(0) − U_f). [0, t*] is the descent, [t*, T] the near-minimum phase.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .exponents import fit_power_law
from .msd import tamsd

PHASES = ("descent", "near_minimum")


def descent_end(loss: np.ndarray, fraction: float = 0.1, tail: float = 0.2) -> int:
    """t* of one walker's loss series ``loss`` (T,) (see the module docstring); 0 if it never
    descends (its final level is not below its start)."""
    loss = np.asarray(loss, dtype=np.float64)
    final = loss[-max(1, int(round(tail * len(loss)))) :].mean()
    drop = loss[0] - final
    if not drop > 0:
        return 0
    return int(np.argmax(loss <= final + fraction * drop))


@dataclass
class PhaseExponent:
    """α of one phase over walkers (never one walker): ``alpha`` the median over the walkers
    whose phase has at least ``min_points`` positions, each fitted over lags 1 … n/4 of its own
    phase (n its length);
    ``direction_cos`` the mean cosine between successive steps (< 0: steps reverse, zig-zag)."""

    alpha: float
    alphas: list[float] = field(default_factory=list)
    n_walkers: int = 0
    median_length: float = float("nan")
    direction_cos: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """``to_dict()`` without the per-walker ``alphas``, with their distribution instead:
        quartiles and the fraction of walkers above 1 (superdiffusive)."""
        d = {k: v for k, v in self.to_dict().items() if k != "alphas"}
        a = np.asarray(self.alphas, dtype=float)
        d["alpha_quartiles"] = [float(q) for q in np.quantile(a, [0.25, 0.75])] if len(a) else None
        d["fraction_above_1"] = float(np.mean(a > 1)) if len(a) else None
        return d


def _split(pos: np.ndarray, loss: np.ndarray, fraction: float, tail: float) -> dict[str, list[np.ndarray]]:
    """Each walker's path cut at its t*: phase -> one (n, d) path per walker."""
    parts: dict[str, list[np.ndarray]] = {p: [] for p in PHASES}
    for k in range(pos.shape[1]):
        t_star = descent_end(loss[:, k], fraction, tail)
        parts["descent"].append(pos[: t_star + 1, k])
        parts["near_minimum"].append(pos[t_star:, k])
    return parts


def _alpha(path: np.ndarray) -> float:
    msd = tamsd(path)
    hi = len(path) // 4
    lags = np.arange(1, hi + 1)
    if hi < 5 or not np.all(msd[1 : hi + 1] > 0):
        return float("nan")
    return fit_power_law(lags, msd[1 : hi + 1], per_decade=10).alpha


def _direction_cos(path: np.ndarray) -> np.ndarray:
    d = np.diff(path, axis=0)
    norm = np.linalg.norm(d, axis=1)
    ok = (norm[1:] > 0) & (norm[:-1] > 0)
    return (np.einsum("ij,ij->i", d[1:], d[:-1])[ok]) / (norm[1:] * norm[:-1])[ok]


def phase_exponents(
    pos: np.ndarray, loss: np.ndarray, *, fraction: float = 0.1, tail: float = 0.2, min_points: int = 20
) -> dict[str, PhaseExponent]:
    """α of the descent and near-minimum phases of walkers ``pos`` (T, R, d) with losses
    ``loss`` (T, R) (positions in landscape units, one row per step)."""
    pos = np.asarray(pos, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    if pos.ndim != 3 or loss.shape != pos.shape[:2]:
        raise ValueError(f"need pos (T, R, d) and loss (T, R), got {pos.shape} and {loss.shape}")
    out = {}
    for phase, paths in _split(pos, loss, fraction, tail).items():
        usable = [p for p in paths if len(p) >= min_points]
        alphas = [a for a in (_alpha(p) for p in usable) if np.isfinite(a)]
        cos = np.concatenate([_direction_cos(p) for p in usable]) if usable else np.zeros(0)
        out[phase] = PhaseExponent(
            alpha=float(np.median(alphas)) if alphas else float("nan"),
            alphas=alphas,
            n_walkers=len(alphas),
            median_length=float(np.median([len(p) for p in paths])),
            direction_cos=float(cos.mean()) if len(cos) else float("nan"),
        )
    return out


def phase_msd(
    pos: np.ndarray, loss: np.ndarray, *, fraction: float = 0.1, tail: float = 0.2, min_points: int = 20
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per phase: (lags, Δr²) with Δr² the geometric mean over walkers of their TAMSD, at lags
    1 … n/4 of each walker's phase, kept where at least half the walkers (and 3) contribute.
    For plots."""
    out = {}
    for phase, paths in _split(pos, loss, fraction, tail).items():
        curves = []
        for path in paths:
            if len(path) >= min_points:
                m = tamsd(path)[1 : len(path) // 4 + 1]
                if np.all(m > 0):
                    curves.append(np.log(m))
        longest = max((len(c) for c in curves), default=0)
        sums, counts = np.zeros(longest), np.zeros(longest)
        for c in curves:
            sums[: len(c)] += c
            counts[: len(c)] += 1
        keep = counts >= max(3, 0.5 * len(curves))  # where walkers drop out, the mean would jump
        lags = np.arange(1, longest + 1)[keep]
        out[phase] = (lags, np.exp(sums[keep] / counts[keep]))
    return out


def read_toy_paths(traj) -> tuple[np.ndarray, np.ndarray]:
    """Positions (T − 1, R, 2) and losses (T − 1, R) of the walkers of a toy store (records 1 …
    T − 1: the losses are logged after each step, so record 0 has none)."""
    names = [n for n in traj.layout.names if n.startswith("r")]
    if "toy" not in traj.metadata or not all(f"loss_{n}" in traj.observables for n in names):
        raise ValueError(f"{traj.path} is not a toy store (write it with trajstore toy)")
    w = np.asarray(traj.weights[1:], dtype=np.float64)
    pos = np.stack([w[:, traj.layout[n].offset : traj.layout[n].stop] for n in names], axis=1)
    loss = np.stack([traj.observable(f"loss_{n}")[1] for n in names], axis=1)
    return pos, loss
