"""Round trips through both back ends with random layouts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trajstore

shapes = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
layouts = st.lists(shapes, min_size=1, max_size=5).map(lambda ss: {f"t{i}": s for i, s in enumerate(ss)})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=layouts,
    n=st.integers(1, 40),
    chunk=st.integers(1, 9),
    flush_every=st.integers(0, 7),
    backend=st.sampled_from(["zarr", "h5"]),
)
def test_roundtrip_random_layouts(tmp_path_factory, params, n, chunk, flush_every, backend):
    path = tmp_path_factory.mktemp("rt") / f"s.{backend}"
    layout = trajstore.Layout.from_params(params)
    rng = np.random.default_rng(n)
    w = rng.normal(size=(n, layout.n_params)).astype(np.float32)
    with trajstore.create(path, params, chunk_records=chunk, chunk_params=max(1, layout.n_params // 2)) as wr:
        for i in range(n):
            wr.append(3 * i + 1, w[i])
            wr.log("loss", 3 * i + 1, float(i))
            if flush_every and i % flush_every == 0:
                wr.flush()
    with trajstore.open(path) as t:
        assert t.n_records == n and t.n_params == layout.n_params
        np.testing.assert_array_equal(t.weights[:], w)
        np.testing.assert_array_equal(t.steps, 3 * np.arange(n) + 1)
        assert t.layout == layout
        for spec_ in layout:
            np.testing.assert_array_equal(
                t.tensor(spec_.name)[:], w[:, spec_.offset : spec_.stop].reshape((n, *spec_.shape))
            )
        steps, values = t.observable("loss")
        np.testing.assert_array_equal(values, np.arange(n, dtype=float))


def test_lazy_slicing_reads_selection(store):
    path, w, steps = store
    with trajstore.open(path) as t:
        np.testing.assert_array_equal(t.weights[3:17, 5:40], w[3:17, 5:40])
        np.testing.assert_array_equal(t.weights[-1], w[-1])
        np.testing.assert_array_equal(t.weights[::7, 2], w[::7, 2])
        np.testing.assert_array_equal(t.weights[[1, 4, 2]], w[[1, 4, 2]])
        np.testing.assert_array_equal(t.tensor("conv.weight")[5], w[5, :36].reshape(4, 1, 3, 3))
        np.testing.assert_array_equal(t.times, np.arange(len(w), dtype=float))
        assert t.metadata == {"lab": "test"} and t.provenance == {"seed": 0}
        with pytest.raises(IndexError):
            t.weights[len(w)]


def test_blocks_cover_everything_once_within_memory(store):
    path, w, _ = store
    with trajstore.open(path) as t:
        seen = np.zeros_like(w, dtype=int)
        limit = 8 * 10 * 20  # float64 bytes of a 10 x 20 piece
        for b in t.blocks(memory_limit=limit):
            assert b.data.size * 8 <= limit
            np.testing.assert_array_equal(b.data, w[b.records, b.params])
            seen[b.records, b.params] += 1
        assert (seen == 1).all()


def test_gradients_buffers_and_lossy(tmp_path, suffix):
    path = tmp_path / f"g{suffix}"
    rng = np.random.default_rng(1)
    w = rng.normal(size=(10, 6)).astype(np.float32)
    with trajstore.create(path, 6, buffers={"bn.running_mean": (2,)}, keepbits=7) as wr:
        wr.append(0, w[0], buffers=np.zeros(2))
        for i in range(1, 10):
            wr.append(i, w[i], gradients=w[i] - w[i - 1], buffers=np.full(2, i))
    with trajstore.open(path) as t:
        assert t.lossy == {"method": "bitround", "keepbits": 7, "groups": ["weights", "gradients", "buffers"]}
        np.testing.assert_allclose(t.weights[:], w, rtol=2.0**-7)
        assert not np.array_equal(t.weights[:], w)  # rounding really happened
        np.testing.assert_array_equal(t.gradients.steps, np.arange(1, 10))
        assert t.buffers.tensor("bn.running_mean")[3].tolist() == [3.0, 3.0]


def test_bitround_is_nearest_and_keeps_nonfinite():
    from trajstore.lossy import bitround

    x = np.array([1.0 + 2.0**-10, 1.0 + 3 * 2.0**-10, np.nan, np.inf, -2.5], dtype=np.float32)
    y = bitround(x.copy(), 9)
    assert y[0] == 1.0  # tie rounds to even
    assert y[1] == np.float32(1.0 + 4 * 2.0**-10)
    assert np.isnan(y[2]) and np.isinf(y[3]) and y[4] == -2.5


def test_nonfinite_weights_stored_as_they_are(tmp_path, suffix):
    path = tmp_path / f"nan{suffix}"
    with trajstore.create(path, 4) as wr:
        wr.append(0, np.array([1, np.nan, np.inf, 2], dtype=np.float32))
    with trajstore.open(path) as t:
        row = t.weights[0]
        assert np.isnan(row[1]) and np.isinf(row[2])
