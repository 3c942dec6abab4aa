"""Roughness of the loss landscape along the trajectory: MSL(Δr) and the Hurst exponent.

For all pairs i < j of a window: ΔL_ij = L_j − L_i and Δr_ij = ‖w_j − w_i‖. The mean squared
loss MSL(Δr) = ⟨ΔL_ij²⟩ over pairs binned by Δr (log bins). For a self-affine landscape with
Hurst exponent H, MSL ∝ Δr^{2H}; the graph of a profile along a path then has fractal
dimension D = 2 − H (a d-dimensional surface: d + 1 − H). Losses are paired with the weights
they were computed at (``evaluated_at``): a ``pre_step`` loss of step s with the weights of step
s − 1. Pair distances come from the window's centred float64 Gram matrix, accumulated over
parameter blocks (bounded memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from trajstore import spec
from trajstore.reader import DEFAULT_MEMORY_LIMIT, Trajectory

from . import landscape_interval
from .binning import log_binned_mean
from .verdicts import range_reason
from .windows import plan_reads, prefetch, record_windows

MIN_PAIRS_PER_BIN = 20
# (T, T) float64 arrays the MSL of a T-record window holds at its peak, its distances included
# (msl_from_pairs with the H interval; tests/test_memory_limit.py measures 5.7 with every
# record's loss, one more when some are missing: their distances are copied).
MSL_ARRAYS = 7
UPPER_PAIR_QUANTILE = 0.25  # the fit range ends where this fraction of the pairs is closer


def paired_losses(traj: Trajectory, name: str = "loss") -> np.ndarray:
    """Loss at each weights record (NaN where none): (n_records,) float64.

    A ``pre_step`` value logged at step s belongs to the weights recorded at step s − 1; a
    ``post_step`` value at step s to the weights of step s.
    """
    if name not in traj.observables:
        raise KeyError(f"{traj.path} has no observable {name!r}: the landscape analyses need the losses")
    evaluated_at = traj.observable_attrs(name).get(spec.ATTR_EVALUATED_AT)
    if evaluated_at == spec.WITHIN_STEP:
        raise ValueError(
            f"{name} was computed inside an iteration, after other optimizers had stepped: it belongs "
            "to no weights record, so it cannot be paired (use the first optimizer's loss)"
        )
    steps, values = traj.observable(name)
    shift = 1 if evaluated_at == spec.PRE_STEP else 0
    out = np.full(traj.n_records, np.nan)
    idx = np.searchsorted(traj.steps, steps - shift)
    ok = idx < traj.n_records
    ok[ok] &= traj.steps[idx[ok]] == steps[ok] - shift
    out[idx[ok]] = values[ok]
    return out


def pair_distances(
    traj: Trajectory,
    records: slice,
    *,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    params: slice | None = None,
) -> np.ndarray:
    """Squared distances ‖w_j − w_i‖² of every pair of records in ``records``: (T, T) float64.

    Accumulates the Gram matrix of the window-centred weights over parameter blocks
    (D²_ij = G_ii + G_jj − 2 G_ij); ``params`` restricts to a parameter range.
    """
    r0, r1, _ = records.indices(traj.n_records)
    n = r1 - r0
    gram = np.zeros((n, n))
    # Memory: the Gram matrix and the product added to it (3 T² float64 reserved), the read
    # path's decoded chunks, three blocks in flight (prefetch) and, per column of a sub-block,
    # its float64 centred copy. Reads take up to half of what is left, in whole chunk columns
    # when one fits, else in narrower pieces of one (each chunk then decoded once per piece,
    # the price of the limit). The MSL of the window (msl_from_pairs) then holds MSL_ARRAYS T²
    # float64 arrays, after the reads: refused here too when they exceed the limit.
    read_cols, sub_cols = plan_reads(
        traj,
        n,
        memory_limit,
        3 * gram.nbytes,
        16 * n,
        read_share=0.5,
        max_sub_cols=1 << 62,
        what=f"the landscape (MSL) pass over {n} records (its {n} × {n} Gram matrix)",
        after=(MSL_ARRAYS * gram.nbytes, f"{MSL_ARRAYS} arrays of {n} × {n} float64 for its pair distances"),
    )
    for block in prefetch(
        traj.blocks(
            records=slice(r0, r1),
            params=params,
            memory_limit=read_cols * n * 8,
            split_records=False,
            param_major=True,
        )
    ):
        for c0 in range(0, block.data.shape[0], sub_cols):
            x = block.data[c0 : c0 + sub_cols].astype(np.float64)  # (columns, records)
            x -= x.mean(axis=1, keepdims=True)
            gram += x.T @ x
        del block, x  # (so that only three blocks are alive while the next one is read)
    d = np.diag(gram).copy()
    gram *= -2.0  # D²_ij = G_ii + G_jj − 2 G_ij, in place: no second T × T array
    gram += d[:, None]
    gram += d[None, :]
    return np.maximum(gram, 0.0, out=gram)


PLATEAU_FACTOR = 1.3  # leading distance bins within this factor of the smallest one: the noise plateau
FLOOR_MARGIN = 3.0  # the fit starts where the MSL is at least this many times the floor
MIN_DYNAMIC_RANGE = 2.5  # MSL − F must change by at least this factor over the fit range
MIN_FIT_BINS = 4
HURST_CI_METHOD = landscape_interval.METHOD


@dataclass(frozen=True)
class MSLResult:
    """MSL(Δr) of one window and the fit MSL − F ∝ Δr^{2H} over ``fit_range``.

    ``noise_floor`` F: the plateau of the MSL at the smallest distances (minibatch sampling
    noise adds 2σ² to every ΔL², whatever the distance), None when the smallest resolved
    distances show no plateau (then F < ``noise_floor_upper`` = MSL of the smallest bin and
    F = 0 is used). ``fit_range``: from the first distance bin where MSL ≥ 3F (the landscape
    at least twice the noise), to the distance below which a quarter of the pairs lie.
    ``resolution``: the median single-step distance of the window (smaller distances come from
    revisits only). ``slope`` = 2H as fitted; ``hurst`` = slope / 2 and
    ``dimension_profile`` = 2 − H (graph of a 1-D profile), both None with ``undetermined``
    giving the reason when H is outside (0, 1), its interval is wider than that range, fewer than
    4 bins lie above the floor, or the fitted MSL − F changes by less than 2.5× over the fit
    range (``dynamic_range``). ``floor_ratio``: MSL at the low end of the fit range over F.
    """

    t_w: int
    centers: np.ndarray
    msl: np.ndarray
    counts: np.ndarray
    slope: float | None
    slope_ci: tuple[float, float] | None
    hurst: float | None
    hurst_ci: tuple[float, float] | None
    dimension_profile: float | None
    fit_range: tuple[float, float] | None
    noise_floor: float | None
    noise_floor_upper: float
    floor_ratio: float | None
    dynamic_range: float | None
    resolution: float
    undetermined: str | None
    contour_centers: np.ndarray
    msl_contour: np.ndarray
    hurst_ci_method: str = HURST_CI_METHOD

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("centers", "msl", "counts", "contour_centers", "msl_contour"):
            d[k] = np.asarray(d[k]).tolist()
        for k in ("slope_ci", "hurst_ci", "fit_range"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d


def noise_floor(centers: np.ndarray, msl: np.ndarray) -> float | None:
    """The MSL plateau at the smallest distances: the mean of the leading bins (at least 2) that
    stay within ``PLATEAU_FACTOR`` of the smallest-distance bin; None without such a plateau
    (the MSL already rises between the first two bins: the floor is below the resolved scales)."""
    ref = msl[0]
    run = 0
    while run < len(msl) and ref / PLATEAU_FACTOR <= msl[run] <= ref * PLATEAU_FACTOR:
        run += 1
    return float(np.mean(msl[:run])) if run >= 2 else None


def default_fit_range(centers, counts, msl=None, floor: float | None = None, resolution: float = 0.0):
    """The scaling range: from the first distance bin at or above ``resolution`` whose MSL is at
    least ``FLOOR_MARGIN`` × ``floor`` (when there is a floor), to the distance below which a
    quarter of the pairs lie (the best-sampled scales, short of the saturation at the largest
    distances of a window); at least 4 bins when the data allow."""
    centers = np.asarray(centers, dtype=float)
    ok = centers >= resolution
    if msl is not None and floor is not None:
        ok &= np.asarray(msl) >= FLOOR_MARGIN * floor
    first = int(np.argmax(ok)) if ok.any() else len(centers) - 1
    cum = np.cumsum(counts) / np.sum(counts)
    hi = max(int(np.searchsorted(cum, UPPER_PAIR_QUANTILE)), first + MIN_FIT_BINS - 1)
    return float(centers[first]), float(centers[min(hi, len(centers) - 1)])


def fit_msl(centers, msl, fit_range: tuple[float, float], floor: float = 0.0):
    """Line through (ln Δr, ln(MSL − F)) over ``fit_range``: returns (slope 2H, its 95 %
    regression interval (too narrow: binned points share records; the reported interval comes
    from ``landscape_interval``), number of bins, dynamic range: the factor by which the fitted MSL − F
    changes over the range, (Δr_last/Δr_first)^slope, which bin-to-bin noise cannot inflate)."""
    sel = (centers >= fit_range[0]) & (centers <= fit_range[1]) & (msl - floor > 0)
    if sel.sum() < MIN_FIT_BINS:
        raise ValueError(f"too few distance bins above the noise floor for an MSL fit (need {MIN_FIT_BINS})")
    above = msl[sel] - floor
    res = stats.linregress(np.log(centers[sel]), np.log(above))
    t = stats.t.ppf(0.975, sel.sum() - 2)
    ci = (float(res.slope - t * res.stderr), float(res.slope + t * res.stderr))
    span = float(np.log(centers[sel][-1] / centers[sel][0]))
    return float(res.slope), ci, int(sel.sum()), float(np.exp(res.slope * span))


def _refit(centers, msl, counts, fit_range) -> float:
    """2H of a binned MSL by the same procedure as ``msl_from_pairs``: noise floor, then the
    default fit range (unless one was given), then the fit."""
    floor = noise_floor(centers, msl)
    rng = fit_range or default_fit_range(centers, counts, msl, floor)
    return fit_msl(centers, msl, rng, floor or 0.0)[0]


def msl_from_pairs(
    d2: np.ndarray, losses: np.ndarray, steps: np.ndarray, contour: np.ndarray | None = None, fit_range=None
) -> MSLResult:
    """MSL of one window from its pair distances ``d2`` (T, T) and losses (T,) (NaN skipped)."""
    iu, ju = np.triu_indices(len(losses), 1)
    with np.errstate(invalid="ignore"):  # inf − inf (a diverged loss): dropped as non-finite below
        dl2 = (losses[ju] - losses[iu]) ** 2
    dist = np.sqrt(d2[iu, ju])
    ok = np.isfinite(dl2)
    if ok.sum() < 3 * MIN_PAIRS_PER_BIN:
        raise ValueError("too few pairs with losses in this window for an MSL")
    if np.nanmax(dl2) == 0:
        raise ValueError("the loss is constant: the MSL is zero everywhere and no roughness can be measured")
    dist, dl2 = dist[ok], dl2[ok]
    iu, ju = iu[ok], ju[ok]
    centers, msl, counts = log_binned_mean(dist, dl2, min_count=MIN_PAIRS_PER_BIN)
    if len(centers) < 4:
        raise ValueError("too few populated distance bins for an MSL fit")
    cc, mc = (np.zeros(0), np.zeros(0))
    if contour is not None:
        cc, mc, _ = log_binned_mean(contour[ju] - contour[iu], dl2, min_count=MIN_PAIRS_PER_BIN)
    del iu, ju, dist, dl2  # the pair arrays (~2 T² float64) are not held through the interval
    step = np.sqrt(np.maximum(np.diag(d2, 1), 0))
    resolution = float(np.median(step[step > 0])) if np.any(step > 0) else 0.0
    floor = noise_floor(centers, msl)
    rng = fit_range or default_fit_range(centers, counts, msl, floor)
    slope = ci = dyn = None
    reason = None
    try:
        slope, _, _, dyn = fit_msl(centers, msl, rng, floor or 0.0)
    except ValueError as exc:
        reason = str(exc)
    if reason is None:
        reason = range_reason("H", slope / 2, None, 0.0, 1.0)
    if reason is None and dyn < MIN_DYNAMIC_RANGE:
        above = "above its noise floor " if floor else ""
        reason = (
            f"too little dynamic range: the fitted MSL {above}changes only ×{dyn:.2g} over the fit "
            f"range (need ×{MIN_DYNAMIC_RANGE:g})"
        )
    if reason is None:  # the interval (the costly part) only for an H that stands so far
        has_loss = np.isfinite(losses)
        ci, reason = landscape_interval.hurst_interval(
            d2 if has_loss.all() else d2[np.ix_(has_loss, has_loss)],
            centers,
            msl,
            rng,
            floor or 0.0,
            lambda c, m, n: _refit(c, m, n, fit_range),
            min_count=MIN_PAIRS_PER_BIN,
        )
    if reason is None:
        reason = range_reason("H", slope / 2, (ci[0] / 2, ci[1] / 2), 0.0, 1.0)
    lower = msl[centers >= rng[0]][0] if (centers >= rng[0]).any() else np.nan
    h = None if reason else slope / 2
    return MSLResult(
        t_w=int(steps[0]),
        centers=centers,
        msl=msl,
        counts=counts,
        slope=slope,
        slope_ci=ci,
        hurst=h,
        hurst_ci=None if reason else (ci[0] / 2, ci[1] / 2),
        dimension_profile=None if reason else 2 - h,
        fit_range=rng,
        noise_floor=floor,
        noise_floor_upper=float(msl[0]),
        floor_ratio=float(lower / floor) if floor else None,
        dynamic_range=dyn,
        resolution=resolution,
        undetermined=reason,
        contour_centers=cc,
        msl_contour=mc,
    )


def windowed_msl(
    traj: Trajectory,
    window: int = 1000,
    *,
    loss: str = "loss",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    params: slice | None = None,
    fit_range=None,
    notes: list[str] | None = None,
    distances: Callable[..., Iterator[np.ndarray]] | None = None,
) -> list[MSLResult]:
    """MSL(Δr) and the Hurst exponent per window of ``window`` records.

    A window that cannot be fitted (constant loss there, too few pairs) is skipped with a line
    in ``notes``; when no window can be, the first reason is raised as ValueError.
    ``distances(traj, bounds, memory_limit=, params=)`` yields the :func:`pair_distances` of each
    window of ``bounds`` in turn (default: computed here, one window after the other; see
    analysis/distributed.py for a Dask cluster).
    """
    losses = paired_losses(traj, loss)
    out, reasons = [], []
    bounds = record_windows(traj, window)  # within segments
    if distances is None:
        d2s = (
            pair_distances(traj, slice(r0, r1), memory_limit=memory_limit, params=params) for r0, r1 in bounds
        )
    else:
        d2s = distances(traj, bounds, memory_limit=memory_limit, params=params)
    for k, ((r0, r1), d2) in enumerate(zip(bounds, d2s, strict=True)):
        step = np.sqrt(np.maximum(np.diag(d2, 1), 0))
        contour = np.concatenate([[0.0], np.cumsum(step)])
        try:
            out.append(msl_from_pairs(d2, losses[r0:r1], traj.steps[r0:r1], contour, fit_range))
        except ValueError as exc:
            reasons.append(str(exc))
            if notes is not None:
                notes.append(f"landscape window {k} (t_w = {int(traj.steps[r0])}) skipped: {exc}")
    if not out:
        if notes is not None and reasons:  # each window's reason is noted: not the first one again
            raise ValueError(f"no window could be analysed ({len(reasons)} skipped, reasons above)")
        raise ValueError(reasons[0] if reasons else "no window to analyse")
    return out
