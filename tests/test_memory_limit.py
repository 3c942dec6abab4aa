"""The out-of-core passes stay under ``memory_limit`` when one chunk column of a window does not
fit it (wide models: chunks 64 records × 16,384 parameters), with the same results as a run
without a tight limit; a limit too small for even one column is a one-line error naming the
memory needed."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from trajstore.analysis.landscape import msl_from_pairs, pair_distances, paired_losses
from trajstore.analysis.pipeline import analyze
from trajstore.analysis.windows import iter_windows

import trajstore

N_RECORDS, N_PARAMS = 300, 24_000  # 2 chunk columns (the last narrower) × 5 record chunks
CHUNKS = (64, 16_384)
LAYOUT = {"conv.weight": (15_000,), "fc.weight": (8_000,), "fc.bias": (1_000,)}
LIMIT = 16 << 20  # below one chunk column of the window: 300 × 16,384 float32 = 18.75 MiB
UNLIMITED = 1 << 30


@pytest.fixture(scope="module")
def wide_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("wide") / "wide.zarr"
    rng = np.random.default_rng(0)
    w = rng.normal(size=N_PARAMS).astype(np.float32)
    scale = np.geomspace(1e-3, 1e-1, N_PARAMS).astype(np.float32)  # every coordinate its own step
    with trajstore.create(path, LAYOUT, chunk_records=CHUNKS[0], chunk_params=CHUNKS[1]) as wr:
        for i in range(N_RECORDS):
            w += scale * rng.normal(size=N_PARAMS).astype(np.float32)
            wr.append(i, w)
            wr.log("loss", i + 1, float(np.exp(-i / 100) + 0.05 * rng.random()))
    return path


def _peak(fn):
    """``fn()`` and the peak bytes Python and numpy allocated during it, above what was
    allocated before (tracemalloc traces numpy's buffers and the decoders' bytes)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _assert_rel(got, ref, what):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, what
    scale = np.maximum(np.abs(ref), 1e-300)
    worst = float(np.max(np.abs(got - ref) / scale)) if ref.size else 0.0
    assert worst <= 1e-12, f"{what}: relative difference {worst:.2g}"


def test_window_pass_stays_under_a_limit_narrower_than_a_chunk_column(wide_store):
    with trajstore.open(wide_store) as traj:
        assert traj.weights.chunks == CHUNKS
        assert N_RECORDS * CHUNKS[1] * traj.weights.dtype.itemsize > LIMIT
        ref = list(iter_windows(traj, N_RECORDS, memory_limit=UNLIMITED))
        got, peak = _peak(lambda: list(iter_windows(traj, N_RECORDS, memory_limit=LIMIT)))
    assert peak <= LIMIT, f"peak {peak / 2**20:.1f} MiB above the limit of {LIMIT / 2**20:.0f} MiB"
    assert len(got) == len(ref) == 1
    (g,), (r,) = got, ref
    assert g.finite and r.finite
    _assert_rel(g.msd, r.msd, "window MSD")
    _assert_rel(g.msd_tensor, r.msd_tensor, "per-tensor MSDs")
    _assert_rel(g.msd_groups, r.msd_groups, "block MSDs")
    assert g.msd_tensor_groups.shape[0] > 0  # the per-tensor blocks were kept under the limit
    _assert_rel(g.msd_tensor_groups, r.msd_tensor_groups[: len(g.msd_tensor_groups)], "per-tensor block MSDs")
    _assert_rel(g.step_sq, r.step_sq, "squared step lengths")
    for tau in r.disp_sq:
        _assert_rel(g.disp_sq[tau], r.disp_sq[tau], f"displacements at lag {tau}")


def test_gram_pass_stays_under_a_limit_narrower_than_a_chunk_column(wide_store):
    with trajstore.open(wide_store) as traj:
        ref = pair_distances(traj, slice(0, N_RECORDS), memory_limit=UNLIMITED)
        got, peak = _peak(lambda: pair_distances(traj, slice(0, N_RECORDS), memory_limit=LIMIT))
        x = traj.weights[:].astype(np.float64)
        losses, steps = paired_losses(traj), traj.steps
    assert peak <= LIMIT, f"peak {peak / 2**20:.1f} MiB above the limit of {LIMIT / 2**20:.0f} MiB"
    off = ~np.eye(N_RECORDS, dtype=bool)
    _assert_rel(got[off], ref[off], "pair distances")
    for i in (0, 1, 150, 299):  # rows by direct differences, independent of the Gram matrix
        np.testing.assert_allclose(got[i], ((x - x[i]) ** 2).sum(axis=1), rtol=1e-9, atol=1e-9)
    # The MSL as windowed_msl computes it from each window's distances
    m, mr = msl_from_pairs(got, losses, steps), msl_from_pairs(ref, losses, steps)
    _assert_rel(m.centers, mr.centers, "MSL distance bins")
    _assert_rel(m.msl, mr.msl, "MSL")
    np.testing.assert_array_equal(m.counts, mr.counts)


def test_a_limit_below_one_column_is_a_one_line_error(wide_store):
    with trajstore.open(wide_store) as traj:
        with pytest.raises(ValueError, match=r"needs at least [\d.]+ MiB .*raise --memory-limit") as win:
            list(iter_windows(traj, N_RECORDS, memory_limit=4 << 20))
        # 300 records: a 0.7 MB Gram matrix, 3 of them reserved; 1 MiB cannot hold the decoded chunks
        with pytest.raises(ValueError, match=r"Gram matrix.*needs at least [\d.]+ MiB") as gram:
            pair_distances(traj, slice(0, N_RECORDS), memory_limit=1 << 20)
        for exc in (win.value, gram.value):
            assert "\n" not in str(exc)
        # A limit below what decoding one chunk takes: no window can help, so none is suggested;
        # a limit under 0.1 MiB is written in KiB (it read "0.0 MiB").
        with pytest.raises(ValueError, match=r"limit of 10\.0 KiB; raise --memory-limit \(decoding") as tiny:
            list(iter_windows(traj, N_RECORDS, memory_limit=10 << 10))
        assert "smaller --window" not in str(tiny.value)
        # The pipeline: the landscape pass that does not fit is skipped with its reason, as its
        # other refusals are; the window pass that does not fit stops the analysis (CLI: one line).
        with pytest.raises(ValueError, match="window pass over 300 records needs"):
            analyze(traj, N_RECORDS, memory_limit=4 << 20, progress=False)


def test_landscape_that_does_not_fit_is_skipped_with_its_reason(tmp_path):
    # Few parameters, many records: the window pass fits 8 MiB, the 2000 × 2000 Gram matrix
    # (3 × 32 MB reserved) does not.
    path = tmp_path / "long.zarr"
    rng = np.random.default_rng(1)
    w = np.zeros(8, dtype=np.float32)
    with trajstore.create(path, 8) as wr:
        for i in range(2000):
            w += rng.normal(size=8).astype(np.float32)
            wr.append(i, w)
            wr.log("loss", i + 1, float(rng.random()))
    with trajstore.open(path) as traj:
        res = analyze(traj, 2000, memory_limit=8 << 20, progress=False)
    skipped = [n for n in res.notes if n.startswith("landscape analysis skipped")]
    assert skipped and "Gram matrix" in skipped[0] and "--memory-limit" in skipped[0]
    assert res.msl is None or not res.msl


def test_landscape_window_stays_under_the_limit_with_its_pair_arrays(tmp_path):
    """The MSL of a window holds several T × T float64 arrays after its Gram pass (pair
    distances, the H interval's pair arrays and field): they are counted, so a limit that holds
    the Gram pass but not them is refused in one line naming the memory needed, and a limit
    that holds them is kept to (traced peak), with the results of an unlimited run."""
    from trajstore.analysis.fbm import fbm
    from trajstore.analysis.landscape import MSL_ARRAYS, windowed_msl

    t_records = 600
    rng = np.random.default_rng(5)
    profile = fbm(2**13, 0.5, rng=rng)[:, 0]  # a rough landscape: H determined, interval computed
    x = np.clip(2**12 + np.cumsum(np.round(rng.normal(0, 4.0, t_records))), 0, 2**13 - 1).astype(int)
    path = tmp_path / "rough.h5"
    with trajstore.create(path, 4, chunk_records=64) as wr:
        for i in range(t_records):
            wr.append(i, np.array([x[i] - 2**12, 0, 0, 0], dtype=np.float32))
            wr.log("loss", i, float(profile[x[i]]), evaluated_at="post_step")
    square = t_records * t_records * 8  # one T × T float64 array
    with trajstore.open(path) as traj:
        (ref,) = windowed_msl(traj, t_records, memory_limit=UNLIMITED)
        assert ref.hurst is not None  # the costly path (the interval) is taken
        # 5 arrays hold the Gram pass (3 reserved) but not the MSL: refused before anything is read
        needs = rf"needs at least [\d.]+ MiB .*{MSL_ARRAYS} arrays of 600 × 600"
        with pytest.raises(ValueError, match=needs) as e:
            windowed_msl(traj, t_records, memory_limit=5 * square)
        assert "\n" not in str(e.value) and "--memory-limit" in str(e.value)
        limit = MSL_ARRAYS * square + (1 << 20)
        (got,), peak = _peak(lambda: windowed_msl(traj, t_records, memory_limit=limit))
    assert peak <= limit, f"peak {peak / square:.2f} T² arrays above the limit of {limit / square:.2f}"
    _assert_rel(got.msl, ref.msl, "MSL")
    assert got.hurst == ref.hurst and got.hurst_ci == ref.hurst_ci
