"""Mean squared displacement of the weights: windowed TAMSD, fixed-origin TAMSD, two-time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trajstore.reader import DEFAULT_MEMORY_LIMIT, Trajectory

from .windows import WindowStats, iter_windows


@dataclass(frozen=True)
class WindowMSD:
    """Windowed time-averaged MSD of one window.

    ``msd[τ]`` = 1/(T−τ) Σ_i ‖w(i+τ) − w(i)‖² for record lags τ = 0 … T−1 (squared weight units,
    summed over all parameters); ``origins[τ]`` = T − τ; ``lag_steps[τ]`` the lag in optimizer
    steps; ``msd_tensor[name]`` the same sum restricted to one tensor; ``msd_groups`` (G, T) the
    same sum restricted to each of G contiguous parameter blocks (``windows.group_offsets``), the
    units of the bootstrap over parameter blocks; ``msd_tensor_groups[name]`` (G_t, T) the same
    for the blocks that cut one tensor (``windows.tensor_group_offsets``; absent when not kept),
    the units of the per-tensor bootstrap (``layers.py``).
    """

    index: int
    t_w: int
    msd: np.ndarray
    origins: np.ndarray
    lag_steps: np.ndarray
    msd_tensor: dict[str, np.ndarray]
    finite: bool
    msd_groups: np.ndarray | None = None
    # Records not equally spaced in steps (analysis/pairs.py): ``msd`` and the rest are indexed
    # by these distinct step lags (``step_lags[0] = 0``), ``origins`` holds the pairs at each;
    # None: indexed by record lag τ = 0 … T−1.
    step_lags: np.ndarray | None = None
    n_records: int | None = None  # records of the window (T); len(msd) when equally spaced
    step_span: int | None = None  # with step_lags: the longest piece's steps (pairs.usable_step_lags)
    msd_tensor_groups: dict[str, np.ndarray] | None = None

    @property
    def lags(self) -> np.ndarray:
        """Record lags τ = 0 … T−1, or the step lags when the records are not equally spaced."""
        return self.step_lags if self.step_lags is not None else np.arange(len(self.msd))

    @property
    def lag_unit(self) -> str:
        return "records" if self.step_lags is None else "steps"

    def usable(self) -> np.ndarray:
        """Indices of the lags fits use: T − τ ≥ T/4 (``exponents.usable_lags``), or for records
        not equally spaced ``pairs.usable_step_lags`` (T/4 pairs per log bin, lag ≤ 3/4 span)."""
        from .exponents import usable_lags
        from .pairs import usable_step_lags

        if self.step_lags is None:
            return usable_lags(len(self.msd))
        n = self.n_records or len(self.msd)
        span = self.step_span if self.step_span is not None else int(self.step_lags[-1])
        return usable_step_lags(self.step_lags, self.origins, n, span)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "t_w": self.t_w,
            "n_records": len(self.msd),
            "finite": self.finite,
            "msd": self.msd.tolist(),
            "lag_steps": self.lag_steps.tolist(),
            "origins": self.origins.tolist(),
        }


def window_msd(stats: WindowStats, names: list[str]) -> WindowMSD:
    pairs = stats.pairs
    return WindowMSD(
        index=stats.index,
        t_w=stats.t_w,
        msd=stats.msd,
        origins=stats.origins,
        lag_steps=stats.lag_steps,
        msd_tensor=dict(zip(names, stats.msd_tensor, strict=True)),
        finite=stats.finite,
        msd_groups=stats.msd_groups,
        step_lags=None if pairs is None else pairs.lags,
        n_records=stats.n,
        step_span=None if pairs is None else pairs.span,
        msd_tensor_groups=_split_tensor_groups(stats, names),
    )


def pooled_msd(
    traj: Trajectory,
    pieces: list[tuple[int, int]],
    *,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    index: int = 0,
) -> WindowMSD:
    """The TAMSD at every step lag over the record ranges ``pieces`` (e.g. the segments of a
    resumed run), pooling the pairs of all pieces and never pairing records of two pieces
    (analysis/pairs.py). Indexed by step lag; ``origins`` holds the pairs at each lag."""
    from .pairs import lag_pairs

    lp = lag_pairs(traj, pieces, memory_limit=memory_limit)
    return WindowMSD(
        index=index,
        t_w=int(traj.steps[pieces[0][0]]),
        msd=lp.msd,
        origins=lp.n_pairs,
        lag_steps=lp.lags.astype(np.float64),
        msd_tensor=dict(zip(traj.layout.names, lp.msd_tensor, strict=True)),
        finite=lp.finite,
        msd_groups=lp.msd_groups,
        step_lags=lp.lags,
        n_records=sum(b - a for a, b in pieces),
        step_span=lp.span,
    )


def _split_tensor_groups(stats: WindowStats, names: list[str]) -> dict[str, np.ndarray] | None:
    """The window pass's per-tensor block MSDs (B, T), split by tensor: name → (G_t, T)."""
    owner = stats.tensor_group_owner
    if len(owner) == 0 or len(stats.msd_tensor_groups) != len(owner):
        return None
    return {names[t]: stats.msd_tensor_groups[owner == t] for t in np.unique(owner)}


def windowed_msd(
    traj: Trajectory, window: int = 1000, *, memory_limit: int = DEFAULT_MEMORY_LIMIT
) -> list[WindowMSD]:
    """The paper's windowed TAMSD for consecutive windows of ``window`` records.

    Out of core: each window is read once in parameter blocks of at most ``memory_limit``
    bytes. Example::

        >>> results = windowed_msd(trajstore.open("run.zarr"), window=1000)
        >>> results[0].msd[1]        # Δr²(1) of the first window
    """
    names = traj.layout.names
    return [window_msd(s, names) for s in iter_windows(traj, window, memory_limit=memory_limit, extras=False)]


def fixed_origin_tamsd(
    traj: Trajectory,
    start: int,
    lags: np.ndarray,
    n_origins: int = 1000,
    *,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> np.ndarray:
    """TAMSD(t_w, τ) = 1/W_o Σ_{i<W_o} ‖w(t_w+i+τ) − w(t_w+i)‖² for record ``start`` = t_w.

    ``lags`` (record lags, any size up to the run's end); lags whose last origin falls beyond
    the run give NaN. Returns (len(lags),) float64. Records that are not equally spaced in
    optimizer steps, or that span a segment boundary, are refused (ValueError).
    """
    lags = np.asarray(lags, dtype=np.int64)
    out = np.full(len(lags), np.nan)
    n = traj.n_records
    used = [int(tau) for tau in lags if tau >= 1 and start + tau + n_origins <= n]
    if used:  # a record lag is one lag in steps only where the records are equally spaced
        from .pairs import is_regular

        end = start + max(used) + n_origins
        cut = [g.start for g in traj.segments if start < g.start < end]
        if cut or not is_regular(traj.steps[start:end]):
            raise ValueError(
                f"records {start}–{end - 1} "
                + (
                    f"span a resume (a new segment starts at record {cut[0]})"
                    if cut
                    else "are not equally spaced in optimizer steps (a log or ranged schedule)"
                )
                + ": a lag in records is no single lag; use windowed_msd, which pairs records by step lag"
            )
    cols = max(1, memory_limit // (2 * 8 * n_origins))
    for j, tau in enumerate(lags):
        if tau < 1 or start + tau + n_origins > n:
            continue
        total = 0.0
        for p0 in range(0, traj.n_params, cols):
            p1 = min(p0 + cols, traj.n_params)
            a = traj.weights[start : start + n_origins, p0:p1].astype(np.float64)
            b = traj.weights[start + tau : start + tau + n_origins, p0:p1].astype(np.float64)
            d = b - a
            total += float(np.einsum("ij,ij->", d, d))
        out[j] = total / n_origins
    return out


def two_time_displacement(
    traj: Trajectory, start: int, *, memory_limit: int = DEFAULT_MEMORY_LIMIT
) -> tuple[np.ndarray, np.ndarray]:
    """Δ(t_w, t_w+τ) = ‖w(t_w+τ) − w(t_w)‖² for every record after ``start`` (= t_w).

    Returns (lag in optimizer steps, Δ) of shape (n_records − start,). (The released code of
    the paper subtracted parameter #1 instead of w(t_w); this is the definition.)
    """
    n = traj.n_records
    out = np.zeros(n - start)
    for block in traj.blocks(records=slice(start, n), memory_limit=memory_limit):
        ref = traj.weights[start, block.params].astype(np.float64)
        d = block.data.astype(np.float64) - ref
        out[block.records.start - start : block.records.stop - start] += np.einsum("ij,ij->i", d, d)
    return traj.steps[start:] - traj.steps[start], out


def tamsd(x: np.ndarray) -> np.ndarray:
    """Time-averaged MSD of an in-memory path ``x`` (T, d): Δr²(τ) for τ = 0 … T−1, summed over
    the d coordinates, by the same FFT sums as the out-of-core window pass (float64, centred)."""
    return tamsd_groups(x, n_groups=1)[0]


def tamsd_groups(x: np.ndarray, n_groups: int | None = None) -> np.ndarray:
    """Partial TAMSDs of an in-memory path ``x`` (T, d) over the contiguous coordinate blocks of
    ``windows.group_offsets(d, n_groups)`` (default: the window pass's blocks): (G, T), the same
    numbers the out-of-core pass keeps in ``msd_groups``; their sum over G is ``tamsd(x)``."""
    import scipy.fft

    from .windows import BOOTSTRAP_GROUPS, _msd_from_sums, group_offsets

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a path of shape (T >= 2, d), got {x.shape}")
    n = len(x)
    xc = (x - x.mean(axis=0)).T  # (d, T): centred per coordinate, one FFT per row
    nfft = scipy.fft.next_fast_len(2 * n, real=True)
    spec = scipy.fft.rfft(xc, n=nfft, axis=1)
    bounds = group_offsets(x.shape[1], n_groups or BOOTSTRAP_GROUPS)
    power = np.add.reduceat(spec.real**2 + spec.imag**2, bounds[:-1], axis=0)
    sq_rows = np.add.reduceat(xc * xc, bounds[:-1], axis=0)
    return _msd_from_sums(power, sq_rows, n, nfft)
