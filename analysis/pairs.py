"""Time-averaged MSD at optimizer-step lags, from the pairs of records that exist at each lag.

The paper's TAMSD assumes a record after every step. For records at steps s_0 < … < s_{T−1}
that are not equally spaced (a ``log:N`` or ``ranges:…`` schedule), or that come in separate
pieces (the segments of a resumed run), the TAMSD at step lag Δ is

    Δr²(Δ) = 1/n(Δ) · Σ_{(i, j) in one piece, s_j − s_i = Δ} ‖w_j − w_i‖²

with n(Δ) the number of such pairs: only pairs that really are Δ steps apart are averaged, and
no pair spans two pieces. For one equally spaced piece this is the ordinary TAMSD (n = T − τ at
record lag τ = Δ/stride), which is computed by the FFT sums of the window pass; a piece that is
not equally spaced is summed over all its pairs from Gram matrices of its centred float64
records (‖w_j − w_i‖² = G_ii + G_jj − 2 G_ij), O(T² · N) time and O(T²) memory.

Which lags fits use (:func:`usable_step_lags`). For equally spaced records the rule stays
T − τ ≥ T/4 (``exponents.usable_lags``). Records that are not equally spaced rarely have two
pairs at exactly the same lag (a ``log:10`` schedule over 2,000 steps: 32 records, 378 distinct
lags, none with 8 pairs), so pairs are counted per log bin of lags, the fit's own binning (10
per decade): a lag is fitted when its bin holds at least T/4 pairs (T the window's records) and
it is at most 3/4 of the longest piece's span in steps (the analogue of τ ≤ 3T/4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trajstore.reader import Trajectory

from .exponents import PER_DECADE  # log bins of lags per decade: the fit's own binning

# Of the memory limit, the share a Gram piece may use for its (T × T) work arrays.
_GRAM_SHARE = 0.5
_GRAM_ARRAYS = 5  # G, D², the pair index arrays and temporaries, in T² float64 units


MAX_LAG_FRACTION = 0.75  # of the longest piece's span in steps, as τ ≤ 3T/4 for equal spacing


def min_pairs(n_records: int) -> float:
    """Fewest pairs a fitted lag (equally spaced records) or log bin of lags (not equally
    spaced) holds: a quarter of the window's records (``exponents.usable_lags``: T − τ ≥ T/4)."""
    return 0.25 * n_records


def usable_step_lags(lags: np.ndarray, n_pairs: np.ndarray, n_records: int, span: float) -> np.ndarray:
    """Indices of the step lags a fit uses when records are not equally spaced: lag ≤ 3/4 of
    ``span`` (the longest piece's steps) and at least T/4 pairs in its log bin (10 per decade,
    anchored at the smallest lag)."""
    pos = np.flatnonzero(lags > 0)
    if len(pos) == 0:
        return pos
    lx = np.log10(lags[pos].astype(np.float64))
    b = np.floor((lx - lx[0]) * PER_DECADE + 1e-9).astype(np.int64)
    per_bin = np.bincount(b, weights=n_pairs[pos])
    ok = (per_bin[b] >= min_pairs(n_records)) & (lags[pos] <= MAX_LAG_FRACTION * span)
    return pos[ok]


@dataclass
class LagPairs:
    """Summed squared displacements of a set of records, by optimizer-step lag.

    ``lags`` (L,) int64 step lags, ``lags[0] = 0``; ``n_pairs`` (L,) pairs at each lag
    (``n_pairs[0]`` = number of records); ``sums_tensor`` (n_tensors, L) and ``sums_groups``
    (G, L): Σ ‖w_j − w_i‖² over the pairs, restricted to each tensor of the layout / each
    contiguous parameter block of ``windows.group_offsets`` (squared weight units, float64).
    """

    lags: np.ndarray
    n_pairs: np.ndarray
    sums_tensor: np.ndarray
    sums_groups: np.ndarray
    nonfinite_records: list[int] = field(default_factory=list)
    span: int = 0  # the longest piece's steps, s_last − s_first

    @property
    def finite(self) -> bool:
        return not self.nonfinite_records

    def _mean(self, sums: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(self.n_pairs > 0, sums / np.maximum(self.n_pairs, 1), np.nan)
        out[..., 0] = 0.0
        return np.maximum(out, 0.0) if self.finite else np.full_like(out, np.nan)

    @property
    def msd(self) -> np.ndarray:
        """(L,) Δr²(Δ) summed over all parameters."""
        return self._mean(self.sums_tensor.sum(axis=0))

    @property
    def msd_tensor(self) -> np.ndarray:
        return self._mean(self.sums_tensor)

    @property
    def msd_groups(self) -> np.ndarray:
        return self._mean(self.sums_groups)


def is_regular(steps: np.ndarray) -> bool:
    """Whether records at ``steps`` are equally spaced (one stride)."""
    d = np.diff(np.asarray(steps, dtype=np.int64))
    return len(d) == 0 or bool(np.all(d == d[0]))


def lag_pairs(traj: Trajectory, pieces: list[tuple[int, int]], *, memory_limit: int = 1 << 30) -> LagPairs:
    """Pair sums at every step lag over the record ranges ``pieces`` (each [r0, r1), pairs
    only within a piece), merged: the TAMSD of several segments pools their pairs."""
    from .windows import group_offsets

    offsets = np.array([t.offset for t in traj.layout] + [traj.n_params])
    groups = group_offsets(traj.n_params)
    parts = []
    for r0, r1 in pieces:
        if r1 - r0 < 1:
            continue
        steps = np.asarray(traj.steps[r0:r1], dtype=np.int64)
        if is_regular(steps):
            parts.append(_regular_piece(traj, r0, r1, steps, offsets, groups, memory_limit))
        else:
            parts.append(_gram_piece(traj, r0, r1, steps, offsets, groups, memory_limit))
    if not parts:
        raise ValueError("no records to pair")
    lags = np.unique(np.concatenate([p.lags for p in parts]))
    n_pairs = np.zeros(len(lags), dtype=np.int64)
    sums_t = np.zeros((len(offsets) - 1, len(lags)))
    sums_g = np.zeros((len(groups) - 1, len(lags)))
    bad: list[int] = []
    for p in parts:
        at = np.searchsorted(lags, p.lags)
        n_pairs[at] += p.n_pairs
        sums_t[:, at] += p.sums_tensor
        sums_g[:, at] += p.sums_groups
        bad += p.nonfinite_records
    span = max(int(traj.steps[r1 - 1] - traj.steps[r0]) for r0, r1 in pieces if r1 > r0)
    return LagPairs(lags, n_pairs, sums_t, sums_g, sorted(bad), span)


def _regular_piece(traj, r0, r1, steps, offsets, groups, memory_limit) -> LagPairs:
    """An equally spaced piece: the window pass's FFT sums, times the number of origins."""
    from .windows import _window_pass

    n = r1 - r0
    stride = int(steps[1] - steps[0]) if n > 1 else 1
    if n == 1:
        z = np.zeros((len(offsets) - 1, 1)), np.zeros((len(groups) - 1, 1))
        return LagPairs(np.zeros(1, np.int64), np.ones(1, np.int64), *z)
    st = _window_pass(
        traj, 0, r0, r1, offsets, groups, memory_limit, np.zeros(0, np.int64), extras=False, workers=1
    )
    origins = (n - np.arange(n)).astype(np.int64)
    sums_t = np.nan_to_num(st.msd_tensor) * origins
    sums_g = np.nan_to_num(st.msd_groups) * origins
    return LagPairs(
        stride * np.arange(n, dtype=np.int64), origins, sums_t, sums_g, list(st.nonfinite_records)
    )


def _gram_piece(traj, r0, r1, steps, offsets, groups, memory_limit) -> LagPairs:
    """A piece that is not equally spaced: every pair i < j from Gram matrices of the centred
    float64 records, summed by step lag."""
    n = r1 - r0
    budget = int(memory_limit * _GRAM_SHARE)
    work = _GRAM_ARRAYS * n * n * 8
    if work + 3 * n * 8 > budget:  # the (T × T) arrays and one column (no read floor: any width)
        raise ValueError(
            f"records {r0}–{r1 - 1} are not equally spaced in steps: their pairs need "
            f"{work / 2**20:.0f} MiB, more than the memory limit allows; use a smaller --window "
            "or a larger --memory-limit"
        )
    iu, ju = np.triu_indices(n, 1)
    pair_lag = steps[ju] - steps[iu]
    lags, inv = np.unique(np.concatenate([[0], pair_lag]), return_inverse=True)
    inv = inv[1:]
    n_pairs = np.bincount(inv, minlength=len(lags)).astype(np.int64)
    n_pairs[0] = n
    sums_t = np.zeros((len(offsets) - 1, len(lags)))
    sums_g = np.zeros((len(groups) - 1, len(lags)))
    cols = max(1, (budget - work) // (3 * n * 8))  # float32 read, float64 copy, a slice
    bad: set[int] = set()
    for block in traj.blocks(records=slice(r0, r1), memory_limit=cols * n * 8, split_records=False):
        x = np.asarray(block.data, dtype=np.float64)
        if not np.isfinite(x.sum()):
            bad.update((np.flatnonzero(~np.isfinite(x).all(axis=1)) + r0).tolist())
            continue
        x -= x.mean(axis=0)  # centre per coordinate: distances unchanged, round-off smaller
        p0 = block.params.start
        p1 = p0 + x.shape[1]
        cuts = np.union1d(
            np.concatenate([[p0, p1], offsets[(offsets > p0) & (offsets < p1)]]),
            groups[(groups > p0) & (groups < p1)],
        )
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            t_id = int(np.searchsorted(offsets, a, side="right")) - 1
            g_id = int(np.searchsorted(groups, a, side="right")) - 1
            xs = x[:, a - p0 : b - p0]
            sq = np.einsum("ij,ij->i", xs, xs)
            gram = xs @ xs.T
            d2 = sq[iu] + sq[ju] - 2.0 * gram[iu, ju]
            s = np.bincount(inv, weights=d2, minlength=len(lags))
            sums_t[t_id] += s
            sums_g[g_id] += s
    return LagPairs(lags, n_pairs, sums_t, sums_g, sorted(bad))


# What a window whose records are not equally spaced does not compute (summary.json
# ``undetermined``): each of these takes consecutive records to be one stride apart.
_ONE_STRIDE = "the window's records are not equally spaced in optimizer steps (an irregular schedule)"
IRREGULAR_UNDETERMINED = {
    "step_length_tail": f"{_ONE_STRIDE}: consecutive records are not one step apart, so their "
    "distances are not step lengths",
    "displacements": f"{_ONE_STRIDE}: displacements at record lags 2^k are not at fixed step lags",
    "contour_exponent": f"{_ONE_STRIDE}: the contour length needs every step",
    "direction_autocorr": f"{_ONE_STRIDE}: successive updates are not recorded",
    "step_autocorr": f"{_ONE_STRIDE}: successive step lengths are not recorded",
    "stable.update_components": f"{_ONE_STRIDE}: update components w(t+1) − w(t) are not recorded",
    "local_slope": f"{_ONE_STRIDE}: the paper's secant slope takes 20 record lags; the smoothed "
    "slope over step lags is given",
}


def lag_summary(wm) -> dict:
    """summary.json ``lag_pairs`` of a window's MSD (a ``msd.WindowMSD``): the lag unit, the
    rule for a usable lag, and the pairs at each lag (every lag when the records are not
    equally spaced; equally spaced windows have T − τ pairs at record lag τ)."""
    usable = wm.usable()
    n = wm.n_records or len(wm.msd)
    d: dict = {
        "equally_spaced": wm.step_lags is None,
        "lag_unit": wm.lag_unit,
        "rule": "T − τ ≥ T/4 pairs at each record lag"
        if wm.step_lags is None
        else "at least T/4 pairs in the lag's log bin (10 per decade), lag ≤ 3/4 of the span in steps",
        "min_pairs": min_pairs(n),
        "n_lags": int(len(wm.msd) - 1),
        "n_usable_lags": int(len(usable)),
        "usable_lag_steps": [float(wm.lag_steps[usable[0]]), float(wm.lag_steps[usable[-1]])]
        if len(usable)
        else None,
        "usable_pairs": [int(wm.origins[usable].min()), int(wm.origins[usable].max())]
        if len(usable)
        else None,
    }
    if wm.step_lags is not None:
        d["lag_steps"] = [int(x) for x in wm.step_lags[1:]]
        d["n_pairs"] = [int(x) for x in wm.origins[1:]]
    return d


def segment_summary(traj, segments: list[slice]) -> list[dict]:
    """summary.json ``segments``: the record range and step range of each segment."""
    steps = traj.steps
    return [
        {
            "index": k,
            "start_record": s.start,
            "stop_record": s.stop,
            "n_records": s.stop - s.start,
            "start_step": int(steps[s.start]),
            "last_step": int(steps[s.stop - 1]),
        }
        for k, s in enumerate(segments)
    ]


def split_by_segments(traj, steps: np.ndarray, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """An observable's (steps, values) cut where a new segment of ``traj`` starts (at the first
    step of each segment's first record): increments must not span a resume."""
    segments = traj.segments
    if len(segments) == 1:
        return [(steps, values)]
    starts = [int(traj.steps[s.start]) for s in segments[1:]]
    cuts = np.searchsorted(steps, starts)
    return list(zip(np.split(steps, cuts), np.split(values, cuts), strict=True))


def fluctuation_losses(
    traj, losses: np.ndarray, notes: list[str], loss_name: str = "loss"
) -> tuple[np.ndarray, int, np.ndarray] | None:
    """The loss series the loss-fluctuation analyses (ΔL, avalanches, spectrum) may use, its
    stride in optimizer steps and the optimizer step of each value: the per-record ``losses`` of
    one equally spaced segment (the longest segment when there are several; a note says so) when
    a loss is logged at every
    record; otherwise the logged series ``loss_name`` within the segment if it is at one stride
    (a loss logged every step, or every 10th step beside weights of every step: ΔL is then an
    increment over that stride, a note says so), else None (a note says why). Non-finite losses
    stay in as holes (``fluctuations.loss_fluctuations`` never takes a ΔL across one)."""
    segments = traj.segments
    if len(segments) > 1:
        longest = max(segments, key=lambda s: s.stop - s.start)
        notes.append(
            f"loss fluctuations measured on the longest segment only (records {longest.start}–"
            f"{longest.stop - 1}): ΔL, avalanches and spectra must not span a resume"
        )
        segments = [longest]
    seg = segments[0]
    rec_steps = traj.steps[seg]
    steps, values = traj.observable(loss_name)
    shift = 1 if traj.observable_attrs(loss_name).get("evaluated_at") == "pre_step" else 0
    inside = (steps - shift >= int(rec_steps[0])) & (steps - shift <= int(rec_steps[-1]))
    if inside.sum() >= 2 and is_regular(steps[inside]):  # the logged series: the finest stride
        stride = int(np.diff(steps[inside])[0])
        if not is_regular(rec_steps) or stride != int(rec_steps[1] - rec_steps[0]):
            notes.append(
                f"loss fluctuations use the loss as logged (every {stride} step(s)), not the records"
                + ("" if stride == 1 else f": ΔL is the change over {stride} steps")
            )
        return values[inside], stride, np.asarray(steps[inside])
    interior = np.isin(rec_steps[1:-1] + shift, steps)
    if is_regular(rec_steps) and len(rec_steps) > 2 and interior.all():  # a loss at every record
        stride = int(rec_steps[1] - rec_steps[0])
        notes.append(
            f"loss fluctuations use the loss at each record (every {stride} step(s)): the loss "
            "as logged is not equally spaced"
        )
        return losses[seg], stride, np.asarray(rec_steps)
    if inside.sum() < 2:  # e.g. a run refused at step 2: too few values, not unevenly spaced ones
        notes.append(
            f"loss fluctuations undetermined: only {int(inside.sum())} {loss_name!r} value(s) within the "
            f"records' steps (the store holds {len(rec_steps)} record(s)); ΔL needs at least 2"
        )
        return None
    notes.append(
        "loss fluctuations undetermined: neither the records nor the logged losses are equally "
        "spaced in optimizer steps, so ΔL between consecutive values is not an increment over one stride"
    )
    return None
