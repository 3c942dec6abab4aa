"""Coverage of the per-layer intervals on exact fBm with a different α per tensor (used by
tests/test_layers.py and bench/layer_coverage.py).

Each replicate draws independent fBm coordinates, tensor by tensor with the tensor's own α,
computes every tensor's block MSDs as the window pass does (``msd.tamsd_groups`` with
``min(TENSOR_GROUPS, size)`` blocks, ``windows.tensor_group_offsets``) and fits them with
``layers.fit_strata``: each tensor alone, and each requested type (several tensors, stratified).
The truth of a tensor is its α; the truth of a type is the single power-law fit of its exact
expected MSD Σ size_t · τ^α_t over the same lags (what the estimator targets; equal to α when
all its tensors share one α).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .exponents import fit_power_law, usable_lags
from .fbm import fbm
from .layers import fit_strata
from .msd import tamsd_groups
from .windows import TENSOR_GROUPS


@dataclass
class LayerCoverage:
    """Per tensor and per type: the fraction of replicates whose interval covers the truth, the
    mean interval width and the fraction with an interval at all."""

    truth: dict[str, float]
    replicates: int
    coverage: dict[str, float] = field(default_factory=dict)
    width: dict[str, float] = field(default_factory=dict)
    with_interval: dict[str, float] = field(default_factory=dict)


def tensor_blocks(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """The block MSDs (G_t, T) of each tensor of a path ``x`` (T, Σ sizes), tensors contiguous
    in the order of ``sizes``, as the window pass keeps them."""
    out, off = [], 0
    for size in sizes:
        out.append(tamsd_groups(x[:, off : off + size], n_groups=min(TENSOR_GROUPS, size)))
        off += size
    return out


def layer_coverage(
    tensors: dict[str, tuple[int, float]],
    types: dict[str, list[str]] | None = None,
    *,
    n_records: int = 400,
    replicates: int = 60,
    n_boot: int = 200,
    seed: int = 0,
) -> LayerCoverage:
    """``tensors``: name → (number of coordinates, α); ``types``: name → member tensors."""
    types = types or {}
    rng = np.random.default_rng(seed)
    lags = usable_lags(n_records)
    tl = lags.astype(float)
    truth = {n: a for n, (_, a) in tensors.items()}
    for t, members in types.items():
        expected = sum(tensors[m][0] * tl ** tensors[m][1] for m in members)
        truth[t] = fit_power_law(lags, expected).alpha
    hits = dict.fromkeys(truth, 0)
    widths: dict[str, list[float]] = {k: [] for k in truth}
    names = list(tensors)
    for r in range(replicates):
        x = np.concatenate([fbm(n_records, a / 2, size=s, rng=rng) for s, a in tensors.values()], axis=1)
        blocks = dict(
            zip(names, (b[:, lags] for b in tensor_blocks(x, [s for s, _ in tensors.values()])), strict=True)
        )
        groups = {n: [n] for n in names} | types
        for key, members in groups.items():
            strata = [blocks[m] for m in members]
            curve = sum(s.sum(axis=0) for s in strata)
            sizes = [tensors[m][0] for m in members]
            e = fit_strata(lags, curve, strata, n_boot=n_boot, seed=r, two_regime=False, sizes=sizes)
            ci = e["alpha_ci"]
            if ci is not None:
                hits[key] += ci[0] <= truth[key] <= ci[1]
                widths[key].append(ci[1] - ci[0])
    out = LayerCoverage(truth, replicates)
    for k in truth:
        out.coverage[k] = hits[k] / replicates
        out.width[k] = float(np.mean(widths[k])) if widths[k] else float("nan")
        out.with_interval[k] = len(widths[k]) / replicates
    return out
