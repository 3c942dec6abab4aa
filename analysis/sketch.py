"""Analyses of a store recorded as a sketch (and a sample) of its weights (format 1.2).

* MSD, exponents (with their bootstrap intervals), displacements, path geometry and the
  landscape's pair distances come from the CountSketch: every one of them is a sum of squared
  distances or inner products, which the sketch preserves in expectation. Each squared distance
  (and the time-averaged MSD at every lag) has a relative standard deviation of at most
  √(2/K) (trajstore.sketch); the MSD is run through the same windowed pass as a full store, with
  the K sketch coordinates in place of the N parameters.
* The exponent intervals come from the usual bootstrap over 64 blocks of coordinates. The
  hash sends contiguous parameter block g (the block a full store's bootstrap resamples) to
  bucket block g only, so a bucket block is the sketch of that parameter block plus its own
  share of the sketch's error; the shares of different blocks are independent with mean zero
  and add up to the sketch's error, so resampling blocks carries the sketch's variance into the
  interval, and the verdicts (one or two regimes) rest on the same units as for a full store.
  The per-lag standard deviation of the MSD is bounded by √(Σ_g (2/K_g) MSD_g²) (K_g buckets
  of block g), between √(2/K)·MSD (blocks moving alike) and √(2G/K)·MSD (one block moving).
* Step lengths ‖w(t+1) − w(t)‖ and the update components w_k(t+1) − w_k(t) (α-stable fits)
  come from the sample: ‖Δw‖² is estimated as (N/M) Σ_{k ∈ sample} Δw_k², and the components
  are real parameters (a sketch coordinate is a signed sum of ~N/K parameters, Gaussian by
  construction: its α would say 2 whatever the updates are). Without a sample, step lengths
  come from the sketch and the component fits are left out, with a note.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from trajstore.progress import Progress
from trajstore.reader import DEFAULT_MEMORY_LIMIT, Trajectory
from trajstore.sketch import (
    Sample,
    full_weights,
    has_sample,
    has_sketch,
    relative_std_bound,
    sample_of,
    sketch_blocks,
    sketch_view,
)

from . import pipeline
from .exponents import usable_lags
from .windows import UPDATE_SAMPLE_COORDS, group_offsets, window_bounds

INTERVALS = (
    "bootstrap over the 64 blocks of sketch coordinates, which are the sketches of the 64 contiguous "
    "parameter blocks a full store's bootstrap resamples (the hash keeps each parameter block in its "
    "own bucket block): the same units, each carrying its own independent share of the sketch's "
    "error, so the sketch's variance is inside the interval"
)


def uses_sketch(traj: Trajectory, from_sketch: bool = False) -> bool:
    """Whether ``analyze`` should read the sketch: asked for, or the store has no full weights."""
    if from_sketch and not has_sketch(traj):
        raise ValueError(f"{traj.path} holds no sketch; record with --sketch K or analyse the full weights")
    if from_sketch:
        return True
    if not full_weights(traj):
        if not has_sketch(traj):
            raise ValueError(
                f"{traj.path} holds only a sample of the weights, no sketch and no full weights: "
                "the MSD needs one of them (record with --sketch K)"
            )
        return True
    return False


def analyze_sketch(
    traj: Trajectory,
    window: int = 1000,
    *,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    progress: bool | Progress | None = None,
) -> pipeline.Analysis:
    """Every analysis :func:`trajstore.analysis.pipeline.analyze` runs, from the store's sketch
    (MSD, exponents, geometry, landscape) and sample (step lengths, update components); the
    summary says which quantity came from where (``summary()["sketch"]``)."""
    view = sketch_view(traj)
    sample = sample_of(traj) if has_sample(traj) else None
    if view.n_records < 2:
        raise ValueError(
            f"{traj.path}: the sketch has {view.n_records} record(s); the analyses need at least 2"
        )
    out = pipeline.analyze(view, window, memory_limit=memory_limit, progress=progress)
    n, k = view.full_n_params, view.spec.dim
    out.n_params = n
    for w in out.windows:
        w.tensor_alpha = {}  # a sketch mixes every tensor into every coordinate
    sketch_lengths = sum(len(x) for x in out.step_lengths_by_stride.values())
    sources = {
        "msd": "sketch",
        "exponents": "sketch",
        "displacements": "sketch",
        "geometry": "sketch",
        "landscape": "sketch",
        "tensor_alpha": "not available from a sketch",
    }
    sample_info = None
    if sample is not None and np.array_equal(sample.steps, view.steps):
        agreement = _from_sample(out, view, sample, window)
        sources["step_length"] = f"sample (M = {len(sample.indices)}): ‖Δw‖² ≈ (N/M) Σ_sample Δw_k²"
        sources["update_components"] = "sample"
        sample_info = {"size": int(len(sample.indices)), "seed": sample.seed, **agreement}
    else:
        if sample is not None:
            out.notes.append("the sample's steps differ from the sketch's: it is not used")
        for w in out.windows:
            w.stable.pop("update_components", None)
            w.undetermined.pop("stable.update_components", None)  # not available at all (sources)
        pipeline._note_undetermined_updates(out)
        out.stable.pop("update_components", None)
        sources["step_length"] = "sketch"
        sources["update_components"] = "not available (no sample: record with --sample M)"
    blocks = sketch_blocks(n, k)
    bound = relative_std_bound(k, blocks)
    per_window = [_window_std_bound(w.msd, k, blocks) for w in out.windows]
    out.extra["sketch"] = {
        "method": view.spec.to_json()["method"],
        "dim": k,
        "seed": view.spec.seed,
        "n_params": n,
        "full_weights_in_store": full_weights(traj),
        "blocks": blocks,
        "msd_relative_std_bound": bound,
        "msd_relative_std_bound_per_window": per_window,
        "intervals": INTERVALS,
        "sources": sources,
        "sample": sample_info,
        "sketch_step_lengths": int(sketch_lengths),
    }
    out.notes.insert(
        0,
        f"analysed from a CountSketch of dimension K = {k} of the {n} parameters: MSD, exponents, "
        "displacements, geometry and landscape distances are sketch estimates (relative standard "
        f"deviation of the MSD at usable lags ≤ {_fmt(per_window)} per window, at most {bound:.3f} "
        "for any squared distance; the exponent intervals include the sketch's variance); "
        "per-tensor exponents are not available; step "
        + (
            f"lengths and update components come from the sample of {len(sample.indices)} parameters"
            if sample_info
            else "lengths come from the sketch, update components are not available (no sample)"
        ),
    )
    return out


def _from_sample(out: pipeline.Analysis, view, sample: Sample, window: int) -> dict:
    """Per window: step lengths and update components from the sample; then the pooled fits.
    Returns how the sample's step lengths compare with the sketch's."""
    n, m = view.full_n_params, len(sample.indices)
    rng = np.random.default_rng(0)
    coords = np.sort(rng.choice(m, min(m, UPDATE_SAMPLE_COORDS), replace=False))
    bounds = window_bounds(view.n_records, window, partial=True)
    lengths_all = []
    ratios = []
    notes_before = len(out.notes)
    for wa, (r0, r1) in zip(out.windows, bounds, strict=True):
        vals = np.asarray(sample.values[r0:r1], dtype=np.float64)  # (T, M)
        d = np.diff(vals, axis=0)
        step_sq = (n / m) * np.einsum("ij,ij->i", d, d)
        lengths = np.sqrt(step_sq)
        ok = np.isfinite(lengths) & (lengths > 0)
        sketch_sq = np.diff(np.asarray(view.weights[r0:r1], dtype=np.float64), axis=0)
        sketch_len = np.sqrt(np.einsum("ij,ij->i", sketch_sq, sketch_sq))
        good = ok & (sketch_len > 0)
        ratios.append(lengths[good] / sketch_len[good])
        lengths = lengths[ok]
        lengths_all.append(lengths)
        wa.step_tail = None
        wa.stable.pop("update_components", None)
        wa.undetermined.pop("stable.update_components", None)  # decided anew on the sample
        stats = SimpleNamespace(index=wa.msd.index, steps=view.steps[r0:r1], update_samples=d[:, coords].T)
        pipeline._window_tails(wa, stats, lengths, None, out.notes)
    pipeline._note_undetermined_updates(out)  # decided anew on the sample
    out.tails.pop("step_length", None)
    # pool_step_lengths says it again for the sample's lengths: one note, not two
    out.notes[:] = [n for n in out.notes if "recorded at different strides" not in n]
    stable_loss = out.stable.get("loss_increments")
    pipeline._tails(out, pipeline.pool_step_lengths(out, lengths_all), view)
    if stable_loss is not None:
        out.stable["loss_increments"] = stable_loss
    # _tails repeats the notes of the first pass about the loss: keep one of each
    seen = set(out.notes[:notes_before])
    out.notes[notes_before:] = [x for x in out.notes[notes_before:] if x not in seen]
    r = np.concatenate(ratios) if ratios else np.zeros(0)
    return {
        "step_length_ratio_sample_to_sketch_median": float(np.median(r)) if len(r) else None,
        "step_length_ratio_sample_to_sketch_iqr": (
            [float(np.quantile(r, 0.25)), float(np.quantile(r, 0.75))] if len(r) else None
        ),
    }


def msd_std_bound(msd_groups: np.ndarray, dim: int, blocks: int) -> np.ndarray | None:
    """Upper bound (T,) on the standard deviation of a sketched MSD at each lag, from the MSDs
    of its G bucket blocks (G, T): Var = Σ_g (2/K_g)(‖D_g‖²_F − Σ_a D_aa²) ≤ Σ_g (2/K_g) MSD_g²,
    as ‖D_g‖_F ≤ tr D_g = MSD_g for the PSD matrix D_g = 1/(T−τ) Σ_i d_i d_iᵀ of block g.
    None when the groups are not the sketch's blocks."""
    b_off = group_offsets(dim, blocks)
    if msd_groups is None or msd_groups.shape[0] != blocks:
        return None
    k_g = np.diff(b_off).astype(np.float64)
    return np.sqrt(np.sum((2.0 / k_g)[:, None] * np.clip(msd_groups, 0, None) ** 2, axis=0))


def _window_std_bound(wm, dim: int, blocks: int) -> float | None:
    """Largest relative std bound of one window's sketched MSD over its usable lags."""
    sd = msd_std_bound(wm.msd_groups, dim, blocks)
    lags = usable_lags(len(wm.msd))
    lags = lags[lags > 0]
    if sd is None or not len(lags) or not np.all(wm.msd[lags] > 0):
        return None
    return float(np.max(sd[lags] / wm.msd[lags]))


def _fmt(values: list) -> str:
    known = [v for v in values if v is not None]
    return f"{max(known):.3f}" if known else "unknown"
