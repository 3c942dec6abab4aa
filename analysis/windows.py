"""The shared per-window pass: one read of each window, every additive statistic at once.

For a window of T records, every statistic below is a sum over parameter coordinates, so it is
accumulated block by block over parameter blocks read from the store, with bounded memory:

* FFT power spectra and squared norms per tensor → the time-averaged MSD over all lags
  (Δr²(τ) = [S1(τ) − 2·S2(τ)] / (T − τ), S2 the autocorrelation, S1 from prefix sums);
* squared step lengths ‖w(t+1) − w(t)‖² and displacements ‖w(t+τ) − w(t)‖², τ = 2^0 … 2^8,
  by direct differences (exact);
* dot products of updates Δw(t)·Δw(t+k), k = 1, 2, 4, …, 32 (directional autocorrelation);
* for random fragments of L steps: ‖p_i‖², p_i·c and ‖c‖² (p_i = w(a+i) − w(a), c the chord),
  which give the transverse excursions.

Each block is centred per coordinate (window mean) and converted to float64 before any sum.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from trajstore.reader import Trajectory

from .pairs import LagPairs, is_regular, lag_pairs

DISPLACEMENT_LAGS = tuple(2**k for k in range(9))  # 1 … 256 records
# Parameter coordinates are cut into this many contiguous blocks of equal size, whose partial
# MSDs are kept for the bootstrap over parameter blocks (exponents.py; docs/analysis.md).
BOOTSTRAP_GROUPS = 64
# Each tensor is also cut into up to this many contiguous blocks of its own, whose partial MSDs
# give the per-tensor (per-layer) bootstrap intervals (layers.py); fewer when memory is short.
TENSOR_GROUPS = 32
DIRECTION_LAGS = (1, 2, 4, 8, 16, 32)
FRAGMENT_STEPS = 100
FRAGMENTS_PER_WINDOW = 50
UPDATE_SAMPLE_COORDS = 100  # coordinates per window whose update series w_k(t+1) − w_k(t) are kept
# Bytes per (record, column) of a compute sub-block: the zero-padded float64 copy (2 × 8), its
# complex spectrum (~16), the power (~8) and temporaries.
_BYTES_PER_CELL = 64
_MAX_SUB_COLS = 256
_DECODE_CONCURRENCY = 10  # chunks the storage library decodes at once (zarr's default concurrency)


def reads_directly(traj: Trajectory) -> bool:
    """Whether parameter-major blocks of ``traj`` come straight from its shard files
    (trajstore/shard_reader.py) rather than through zarr or h5py."""
    return bool(getattr(traj.weights, "reads_shards_directly", False))


def _mib(nbytes: int) -> str:
    """A byte count for a message: MiB with one decimal, KiB below 0.1 MiB."""
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 // 10 else f"{nbytes / 2**10:.1f} KiB"


def decode_reserve(traj: Trajectory, n_records: int, read_cols: int) -> int:
    """Bytes the read path holds while reading a (n_records × read_cols) block besides the block
    itself. Read straight from the shards: one chunk's compressed bytes and its decoded copy
    (2 chunks). Through the storage library:
    compressed and decoded copies of the chunks it decodes concurrently, and the block before it
    is transposed to parameter-major."""
    tc, pc = traj.weights.chunks
    chunk_bytes = tc * pc * traj.weights.dtype.itemsize
    if reads_directly(traj):
        return 2 * chunk_bytes
    n_chunks = -(-n_records // tc) * -(-read_cols // pc)
    block = n_records * read_cols * traj.weights.dtype.itemsize
    return 2 * chunk_bytes * min(n_chunks, _DECODE_CONCURRENCY) + block


def plan_reads(
    traj: Trajectory,
    n: int,
    memory_limit: int,
    fixed: int,
    compute_per_col: int,
    *,
    read_share: float,
    max_sub_cols: int,
    what: str,
    after: tuple[int, str] = (0, ""),
) -> tuple[int, int]:
    """Columns per read block and per compute sub-block of a pass over ``n`` records that stays
    within ``memory_limit`` bytes: ``fixed`` (its sums, whatever the blocks) + the read path
    (:func:`decode_reserve`) + three blocks in flight (being read, queued, in use: ``prefetch``)
    + ``compute_per_col`` bytes per column of a sub-block (at most ``max_sub_cols``).

    Reads are whole chunk columns when ``read_share`` of what is left holds one: every chunk is
    then decoded once per window. When not, reads are narrower pieces of one chunk column each
    (equal, ``Trajectory.blocks`` keeps them within a chunk column), and each chunk is decoded
    once per piece: that extra decoding is the price of the limit (docs/scale.md). ValueError,
    naming the memory needed, when even one column does not fit (``what`` names the pass), or
    when ``after`` = (bytes, what they are), what the pass holds once its reads are done (not
    alongside them), exceeds the limit."""
    cp = int(traj.weights.chunks[1])
    per_read_col = 3 * n * traj.weights.dtype.itemsize
    avail = memory_limit - fixed
    decode = decode_reserve(traj, n, 1)
    need = fixed + decode + per_read_col + compute_per_col
    if memory_limit < max(need, after[0]):
        need_mib = math.ceil(max(need, after[0]) / 2**20 * 10) / 10
        parts = (
            f"{fixed / 2**20:.1f} MiB for its sums, {decode / 2**20:.1f} MiB to decode chunks of "
            f"{traj.weights.chunks[0]} records × {cp} parameters, and one column of {n} records"
            if need >= after[0]
            else after[1]
        )
        raise ValueError(
            f"{what} needs at least {need_mib:g} MiB of memory ({parts}), more than the memory limit "
            f"of {_mib(memory_limit)}; "
            + (
                "raise --memory-limit (decoding this store's chunks alone needs more)"
                if decode >= memory_limit
                else "raise --memory-limit or use a smaller --window"
            )
        )
    read_cols = (int(read_share * avail) // per_read_col) // cp * cp
    if read_cols >= cp:
        left = avail - decode_reserve(traj, n, read_cols) - read_cols * per_read_col
        sub_cols = min(max_sub_cols, read_cols, left // compute_per_col)
        if sub_cols >= 1:
            return read_cols, sub_cols
    # Not one chunk column: pieces of one, as wide as the rest allows once the compute has its
    # share (at most half of it).
    left = avail - decode
    sub_cols = max(1, min(max_sub_cols, left // 2 // compute_per_col))
    read_cols = min(cp, (left - sub_cols * compute_per_col) // per_read_col)
    pieces = -(-cp // read_cols)
    read_cols = -(-cp // pieces)  # equal pieces of a chunk column
    return read_cols, min(sub_cols, read_cols)


@dataclass
class WindowStats:
    """Everything the diffusion analyses need from one window of ``n`` records.

    Arrays indexed by lag τ have length ``n`` (τ = 0 … n−1). ``sum_sq_tensor`` etc. are per
    tensor of the layout (rows in layout order).
    """

    index: int
    start: int  # first record
    steps: np.ndarray  # (n,) int64
    msd: np.ndarray  # (n,) Δr²(τ), summed over all parameters
    msd_tensor: np.ndarray  # (n_tensors, n)
    msd_groups: np.ndarray  # (G, n) the MSD restricted to each of G contiguous parameter blocks
    step_sq: np.ndarray  # (n-1,) ‖w(t+1) − w(t)‖²
    disp_sq: dict[int, np.ndarray]  # τ → (n−τ,) ‖w(t+τ) − w(t)‖²
    step_dot: dict[int, np.ndarray]  # k → (n−1−k,) Δw(t)·Δw(t+k)
    fragment_starts: np.ndarray  # (F,)
    fragment_perp_max: np.ndarray  # (F,) max squared perpendicular distance from the chord
    fragment_chord_sq: np.ndarray  # (F,) squared chord length
    finite: bool = True
    nonfinite_records: list[int] = field(default_factory=list)
    # (K, n−1) update components w_k(t+1) − w_k(t) of K randomly chosen coordinates (extras only)
    update_samples: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # Records not equally spaced in steps (analysis/pairs.py): the MSD arrays are indexed by the
    # distinct step lags ``pairs.lags`` (not by record lag), and the extras, which assume one
    # stride between consecutive records, are left empty.
    pairs: LagPairs | None = None
    # (B, n) the MSD restricted to each of B blocks that cut every tensor into contiguous pieces
    # (``tensor_group_offsets``), and the index of the tensor each block lies in (B,); B = 0 when
    # not kept.
    msd_tensor_groups: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    tensor_group_owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # (pp (F, L+1), pc (F, L+1), cc (F,)): the fragments' sums over coordinates, from which
    # fragment_perp_max is computed; kept so that passes over parameter blocks add up
    # (analysis/distributed.py)
    fragment_sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def n(self) -> int:
        return len(self.steps)

    @property
    def t_w(self) -> int:
        return int(self.steps[0])

    @property
    def origins(self) -> np.ndarray:
        """Number of time origins averaged at each lag τ: T − τ (pairs at each step lag when
        the records are not equally spaced)."""
        if self.pairs is not None:
            return self.pairs.n_pairs
        return self.n - np.arange(self.n)

    @property
    def lag_steps(self) -> np.ndarray:
        """Optimizer-step difference of the pairs at each lag (exact: equally spaced records,
        or the step lags themselves when they are not)."""
        if self.pairs is not None:
            return self.pairs.lags.astype(np.float64)
        csum = np.concatenate([[0], np.cumsum(self.steps, dtype=np.float64)])
        n = self.n
        tau = np.arange(n)
        upper = csum[n] - csum[tau]  # Σ_{i≥τ} steps[i]
        lower = csum[n - tau]  # Σ_{i<n−τ} steps[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (upper - lower) / (n - tau)

    @property
    def uniform_stride(self) -> int | None:
        d = np.diff(self.steps)
        return int(d[0]) if len(d) and np.all(d == d[0]) else None


def group_offsets(n_params: int, n_groups: int = BOOTSTRAP_GROUPS) -> np.ndarray:
    """Start offsets of ``min(n_groups, n_params)`` contiguous parameter blocks of (nearly) equal
    size, with ``n_params`` appended: (G + 1,) int64. Coordinate p is in block g with
    offsets[g] <= p < offsets[g + 1]."""
    g = max(1, min(n_groups, n_params))
    return (np.arange(g + 1, dtype=np.int64) * n_params) // g


def tensor_group_offsets(tensor_offsets: np.ndarray, per_tensor: int = TENSOR_GROUPS) -> np.ndarray:
    """Start offsets of the blocks that cut each tensor into ``min(per_tensor, size)`` contiguous
    pieces of (nearly) equal size, with ``n_params`` appended: (B + 1,) int64. ``tensor_offsets``
    (n_tensors + 1,): each tensor's start and the total. Empty tensors get no block; with
    ``per_tensor`` = 0 the result is ``[n_params]`` (no blocks)."""
    tensor_offsets = np.asarray(tensor_offsets, dtype=np.int64)
    starts = []
    if per_tensor > 0:
        for a, b in zip(tensor_offsets[:-1], tensor_offsets[1:], strict=True):
            if b > a:
                starts.append(a + group_offsets(int(b - a), per_tensor)[:-1])
    return np.concatenate(starts + [tensor_offsets[-1:]]).astype(np.int64)


def tensor_groups_per_tensor(n_tensors: int, n: int, memory_limit: int) -> int:
    """Blocks per tensor that fit a quarter of ``memory_limit`` for a window of ``n`` records
    (their spectra, squared norms and MSDs, twice over), at most ``TENSOR_GROUPS``; 0 when fewer
    than 16 fit (too few for a bootstrap, see exponents.MIN_GROUPS)."""
    per_block = 2 * 8 * (scipy.fft.next_fast_len(2 * n, real=True) // 2 + 1 + 2 * n)
    fit = (memory_limit // 4) // max(1, n_tensors * per_block)
    return int(min(TENSOR_GROUPS, fit)) if fit >= 16 else 0


def window_bounds(n_records: int, window: int, *, partial: bool = False) -> list[tuple[int, int]]:
    """Consecutive, non-overlapping windows of ``window`` records; the whole run if shorter.

    ``partial``: also the trailing records that do not fill a window (as a last, shorter window,
    if they are at least 2)."""
    if n_records < 2:
        raise ValueError(f"the store has {n_records} record(s); diffusion analyses need at least 2")
    if window < 2:
        raise ValueError(f"the window must hold at least 2 records, got {window}")
    if n_records <= window:
        return [(0, n_records)]
    out = [(s, s + window) for s in range(0, n_records - window + 1, window)]
    if partial and n_records - out[-1][1] >= 2:
        out.append((out[-1][1], n_records))
    return out


def record_windows(traj: Trajectory, window: int, *, partial: bool = False) -> list[tuple[int, int]]:
    """:func:`window_bounds` within each segment of ``traj`` (``Trajectory.segments``): no window
    straddles a resume that did not continue the trajectory; a segment shorter than ``window``
    is one window, a segment of one record none."""
    segments = getattr(traj, "segments", None) or [slice(0, traj.n_records)]
    if len(segments) == 1:
        return window_bounds(traj.n_records, window, partial=partial)
    out = []
    for seg in segments:
        if seg.stop - seg.start >= 2:
            bounds = window_bounds(seg.stop - seg.start, window, partial=partial)
            out += [(seg.start + a, seg.start + b) for a, b in bounds]
    if not out:
        raise ValueError("no segment of the store holds 2 records; diffusion analyses need at least 2")
    return out


def iter_windows(
    traj: Trajectory,
    window: int = 1000,
    *,
    memory_limit: int = 1 << 30,
    seed: int = 0,
    windows: list[int] | None = None,
    extras: bool = True,
    workers: int = 1,
    partial: bool = False,
) -> Iterator[WindowStats]:
    """Yield :class:`WindowStats` for each window (or the listed window indices).

    ``extras=False`` computes the MSD only (displacements, dot products, fragments and update
    samples are left empty); ``workers`` is the FFT's thread count (default 1: a second core
    reads ahead); ``partial`` adds the trailing partial window (``window_bounds``). Windows lie
    within one segment (:func:`record_windows`); a window whose records are not equally spaced
    in steps gets the pair-based MSD of ``analysis.pairs`` (``WindowStats.pairs``) and no extras.
    """
    bounds = record_windows(traj, window, partial=partial)
    rng = np.random.default_rng(seed)
    offsets = np.array([t.offset for t in traj.layout] + [traj.n_params])
    groups = group_offsets(traj.n_params)
    for k, (r0, r1) in enumerate(bounds):
        per_tensor = tensor_groups_per_tensor(len(offsets) - 1, r1 - r0, memory_limit)
        tgroups = tensor_group_offsets(offsets, per_tensor)
        frag_starts = _fragment_starts(r1 - r0, rng)
        if windows is not None and k not in windows:
            continue
        if not is_regular(traj.steps[r0:r1]):
            yield _pair_window(traj, k, r0, r1, memory_limit)
            continue
        k_rng = np.random.default_rng([seed, k])
        sample = np.sort(k_rng.choice(traj.n_params, min(traj.n_params, UPDATE_SAMPLE_COORDS), replace=False))
        yield _window_pass(
            traj,
            k,
            r0,
            r1,
            offsets,
            groups,
            memory_limit,
            frag_starts if extras else frag_starts[:0],
            extras,
            workers,
            sample if extras else sample[:0],
            tgroups,
        )


def prefetch(iterator: Iterator, depth: int = 1) -> Iterator:
    """Yield from ``iterator`` while a background thread reads the next ``depth`` items, so that
    reading and decompressing overlap with computing (both release the GIL)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)
    done = object()

    def run() -> None:
        try:
            for item in iterator:
                q.put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(exc)
        q.put(done)

    threading.Thread(target=run, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
        del item  # the consumer's reference is the only one while the next item is awaited


def _fragment_starts(n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= FRAGMENT_STEPS:
        return np.zeros(0, dtype=np.int64)
    return np.sort(rng.integers(0, n - FRAGMENT_STEPS, size=FRAGMENTS_PER_WINDOW))


def _window_pass(
    traj,
    index,
    r0,
    r1,
    offsets,
    groups,
    memory_limit,
    frag_starts,
    extras=True,
    workers=-1,
    sample=None,
    tgroups=None,
) -> WindowStats:
    n = r1 - r0
    n_tensors = len(offsets) - 1
    nfft = scipy.fft.next_fast_len(2 * n, real=True)
    power = np.zeros((n_tensors, nfft // 2 + 1))
    sq_rows = np.zeros((n_tensors, n))
    g_power = np.zeros((len(groups) - 1, nfft // 2 + 1))
    g_sq_rows = np.zeros((len(groups) - 1, n))
    tgroups = offsets[-1:] if tgroups is None else tgroups
    tg_power = np.zeros((len(tgroups) - 1, nfft // 2 + 1))
    tg_sq_rows = np.zeros((len(tgroups) - 1, n))
    step_sq = np.zeros(n - 1)
    disp = {tau: np.zeros(n - tau) for tau in DISPLACEMENT_LAGS if tau < n and extras}
    dots = {k: np.zeros(n - 1 - k) for k in DIRECTION_LAGS if k < n - 1 and extras}
    F = len(frag_starts)
    pp = np.zeros((F, FRAGMENT_STEPS + 1))
    pc = np.zeros((F, FRAGMENT_STEPS + 1))
    cc = np.zeros(F)
    sample = np.zeros(0, dtype=np.int64) if sample is None else sample
    updates = np.zeros((len(sample), n - 1))
    bad_rows: set[int] = set()
    # Memory: the sums above, the MSDs computed from them at the end, three read blocks alive at
    # once (being read, queued, in use), the read path's decoded chunks, and the float64 working
    # set of a compute sub-block (at most _MAX_SUB_COLS columns: narrower column-wise FFTs stay
    # in cache and run faster). Reads take up to a quarter of the limit, in whole chunk columns
    # when one fits, else in narrower pieces of one (each chunk then decoded once per piece).
    sums = [(power, sq_rows), (g_power, g_sq_rows), (tg_power, tg_sq_rows)]
    fixed = sum(p.nbytes + q.nbytes for p, q in sums) + updates.nbytes + pp.nbytes + pc.nbytes
    fixed += sum(a.nbytes for a in (*disp.values(), *dots.values()))
    # _msd_from_sums: a complex copy of the power and its inverse FFT, cumulative sums, the MSDs
    fixed += max(4 * p.nbytes + 3 * q.nbytes for p, q in sums)
    read_cols, sub_cols = plan_reads(
        traj,
        n,
        memory_limit,
        fixed,
        n * _BYTES_PER_CELL,
        read_share=0.25,
        max_sub_cols=_MAX_SUB_COLS,
        what=f"the window pass over {n} records",
    )
    blocks = traj.blocks(
        records=slice(r0, r1), memory_limit=read_cols * n * 8, split_records=False, param_major=True
    )
    # One buffer for every sub-block: the FFT's zero padding [n, nfft) is never written, so it
    # stays zero (a fresh buffer per sub-block cost ~5 % of the pass in page faults).
    padded = np.zeros((sub_cols, nfft))
    for block in prefetch(blocks):
        for c0 in range(0, block.data.shape[0], sub_cols):
            # Parameter-major (columns × time), as read: every FFT and difference runs along
            # contiguous memory, about twice as fast as along the strided time axis.
            data = block.data[c0 : c0 + sub_cols]
            p0 = block.params.start + c0
            p1 = p0 + data.shape[0]
            pad = padded[: data.shape[0]]
            x = pad[:, :n]
            x[...] = data
            row_sums = x.sum(axis=1)  # NaN or inf anywhere in a row makes its sum non-finite
            if not np.isfinite(row_sums).all():
                bad_rows.update((np.flatnonzero(~np.isfinite(x).all(axis=0)) + r0).tolist())
                continue
            x -= (row_sums / n)[:, None]  # centre per coordinate: distances unchanged, round-off not
            # Row segments of this sub-block that lie in one tensor block and one parameter block.
            inside = [o[(o > p0) & (o < p1)] for o in (offsets, groups, tgroups)]
            cuts = np.unique(np.concatenate([[p0, p1], *inside]))
            spec = scipy.fft.rfft(pad, axis=1, workers=workers)
            ri = spec.view(np.float64)  # (re, im) interleaved along each row
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                t_id = int(np.searchsorted(offsets, a, side="right")) - 1
                g_id = int(np.searchsorted(groups, a, side="right")) - 1
                tg_id = int(np.searchsorted(tgroups, a, side="right")) - 1
                a, b = a - p0, b - p0
                # |F|² and x² summed over the segment's rows, without temporaries
                seg_power = np.einsum("ij,ij->j", ri[a:b], ri[a:b]).reshape(-1, 2).sum(axis=1)
                seg_sq = np.einsum("ij,ij->j", x[a:b], x[a:b])
                power[t_id] += seg_power
                sq_rows[t_id] += seg_sq
                g_power[g_id] += seg_power
                g_sq_rows[g_id] += seg_sq
                if len(tgroups) > 1:
                    tg_power[tg_id] += seg_power
                    tg_sq_rows[tg_id] += seg_sq
            del spec, ri
            if not extras:
                continue
            d = np.diff(x, axis=1)
            step_sq += np.einsum("ij,ij->j", d, d)
            mine = (sample >= p0) & (sample < p1)
            if mine.any():
                updates[mine] = d[sample[mine] - p0]
            for tau, acc in disp.items():
                dd = x[:, tau:] - x[:, :-tau]
                acc += np.einsum("ij,ij->j", dd, dd)
            for k, acc in dots.items():
                acc += np.einsum("ij,ij->j", d[:, :-k], d[:, k:])
            for f, a in enumerate(frag_starts):
                frag = x[:, a : a + FRAGMENT_STEPS + 1] - x[:, a : a + 1]
                chord = frag[:, -1]
                pp[f] += np.einsum("ij,ij->j", frag, frag)
                pc[f] += chord @ frag
                cc[f] += chord @ chord
        del block, data  # (so that only three blocks are alive while the next one is read)
    padded = pad = x = d = dd = frag = None  # the working set, before the MSDs are computed
    steps = traj.steps[r0:r1]
    msd_t = _msd_from_sums(power, sq_rows, n, nfft)
    msd_g = _msd_from_sums(g_power, g_sq_rows, n, nfft)
    msd_tg = _msd_from_sums(tg_power, tg_sq_rows, n, nfft) if len(tgroups) > 1 else np.zeros((0, n))
    finite = not bad_rows
    nan = np.full(n, np.nan)
    if not finite:  # partial sums are meaningless: say so with NaN
        disp = {tau: np.full_like(a, np.nan) for tau, a in disp.items()}
        dots = {k: np.full_like(a, np.nan) for k, a in dots.items()}
    return WindowStats(
        index=index,
        start=r0,
        steps=steps,
        msd=msd_t.sum(axis=0) if finite else nan,
        msd_tensor=msd_t if finite else np.full_like(msd_t, np.nan),
        msd_groups=msd_g if finite else np.full_like(msd_g, np.nan),
        step_sq=step_sq if finite else nan[:-1],
        disp_sq=disp,
        step_dot=dots,
        fragment_starts=frag_starts,
        fragment_perp_max=fragment_perp_max(pp, pc, cc),
        fragment_chord_sq=cc,
        finite=finite,
        nonfinite_records=sorted(bad_rows),
        update_samples=updates if finite else updates[:0],
        msd_tensor_groups=msd_tg if finite else np.full_like(msd_tg, np.nan),
        tensor_group_owner=np.searchsorted(offsets, tgroups[:-1], side="right") - 1,
        fragment_sums=(pp, pc, cc),
    )


def _pair_window(traj: Trajectory, index: int, r0: int, r1: int, memory_limit: int) -> WindowStats:
    """A window whose records are not equally spaced: the MSD at every step lag from the pairs
    that exist at it (analysis/pairs.py); the extras, which assume one stride, stay empty."""
    lp = lag_pairs(traj, [(r0, r1)], memory_limit=memory_limit)
    empty = np.zeros(0)
    return WindowStats(
        index=index,
        start=r0,
        steps=np.asarray(traj.steps[r0:r1]),
        msd=lp.msd,
        msd_tensor=lp.msd_tensor,
        msd_groups=lp.msd_groups,
        step_sq=empty,
        disp_sq={},
        step_dot={},
        fragment_starts=np.zeros(0, dtype=np.int64),
        fragment_perp_max=empty,
        fragment_chord_sq=empty,
        finite=lp.finite,
        nonfinite_records=lp.nonfinite_records,
        pairs=lp,
    )


def fragment_perp_max(pp: np.ndarray, pc: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """Max squared distance from the chord of each fragment, (F,), from its sums over
    coordinates: pp (F, L+1) = ‖p_i‖², pc (F, L+1) = p_i·c, cc (F,) = ‖c‖²."""
    if not len(cc):
        return np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        perp = np.where(cc[:, None] > 0, pp - pc**2 / cc[:, None], 0.0)
    return np.clip(perp, 0, None).max(axis=1)


def _msd_from_sums(power: np.ndarray, sq_rows: np.ndarray, n: int, nfft: int) -> np.ndarray:
    """Δr²(τ) per tensor from Σ|F|² (autocorrelation) and per-record squared norms."""
    s2 = scipy.fft.irfft(power, n=nfft, axis=1)[:, :n]
    q = np.concatenate([np.zeros((len(sq_rows), 1)), np.cumsum(sq_rows, axis=1)], axis=1)
    tau = np.arange(n)
    s1 = q[:, n - tau] + (q[:, [n]] - q[:, tau])  # Σ_{i<n−τ} x_i² + Σ_{i≥τ} x_i²
    msd = (s1 - 2.0 * s2) / (n - tau)
    msd[:, 0] = 0.0
    return np.maximum(msd, 0.0)
