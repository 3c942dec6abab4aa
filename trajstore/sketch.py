"""(1.2) Sketches and samples of the weights, for models too large to record in full.

A **sketch** is a CountSketch of the flat parameter vector w ∈ R^N into R^K (docs/format.md,
section 3.7): parameter i goes to bucket h(i) ∈ [0, K) with sign s(i) = ±1, both from a seeded
64-bit hash of its flat index, and y_k = Σ_{i: h(i)=k} s(i)·w_i. The N parameters are cut into
G = 64 contiguous blocks and block g is hashed into its own K/G buckets only (so analyses can
resample the same parameter blocks as on a full store). It is linear, so y(t+τ) − y(t) is the
sketch of the displacement, and E‖S d‖² = ‖d‖² for every vector d, with
Var ‖S d‖² = Σ_g (2/K_g)(‖d_g‖⁴ − Σ_{i∈g} d_i⁴): a relative standard deviation between √(2/K)
(blocks moving alike; 2.2 % at K = 4096) and √(2G/K) (all motion in one block).

A **sample** holds the exact values of M parameters chosen uniformly at random without
replacement (their flat indices stored), in the stored dtype of the weights.

Here: the hash (a reference that needs only numpy), the writer side (:class:`SketchRecording`,
which adds the groups to a :class:`~trajstore.writer.Writer`) and the reader side
(:func:`sketch_view`, :func:`sample_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import spec
from .errors import InvalidStoreError
from .integrity import digest
from .layout import Layout, TensorSpec
from .reader import LazyArray, Trajectory, VectorGroup, WeightsAccess
from .series import SeriesWriter

SKETCH_VERSION = "1.2"  # the format version a store with a sketch or a sample declares
SKETCH = "sketch"  # group and root-attribute names
SAMPLE = "sample"
SAMPLE_INDEX = "index"  # sample/index: the flat indices (M,) int64, strictly increasing
ATTR_SKETCH = "sketch"  # attribute of the sketch group: the projection
ATTR_SAMPLE = "sample"  # attribute of the sample group: how the indices were drawn
ATTR_FULL_WEIGHTS = "full_weights"  # root: false when only a sketch/sample was recorded
SKETCH_METHOD = "countsketch"
SKETCH_HASH = "splitmix64"
SAMPLE_METHOD = "uniform_without_replacement"
DIM_SAMPLE = "sample"
MAX_SKETCH_DIM = 1 << 31  # the hash maps into [0, K) for K ≤ 2^32; memory sets a lower bound
BLOCKS = 64  # = analysis.windows.BOOTSTRAP_GROUPS: parameter blocks sketched separately
_HASH_CHUNK = 1 << 22  # flat indices hashed at once (bounded temporaries for huge models)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


# -- the projection --------------------------------------------------------------------------


def splitmix64(x: np.ndarray | int) -> np.ndarray:
    """SplitMix64's output function of ``x`` (uint64, arithmetic mod 2^64):
    z = x + 0x9E3779B97F4A7C15; z = (z ⊕ z≫30)·0xBF58476D1CE4E5B9; z = (z ⊕ z≫27)·0x94D049BB133111EB;
    return z ⊕ z≫31."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def sketch_blocks(n_params: int, dim: int) -> int:
    """G, the number of blocks: parameter block g (flat indices ⌊g·N/G⌋ … ⌊(g+1)·N/G⌋ − 1) is
    sketched into bucket block g (buckets ⌊g·K/G⌋ … ⌊(g+1)·K/G⌋ − 1) only, so the analysis's
    bootstrap over 64 contiguous parameter blocks resamples the same units from a sketch."""
    return max(1, min(BLOCKS, n_params, dim))


def countsketch_hash(
    start: int, stop: int, seed: int, dim: int, n_params: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket (int64 in [0, dim)) and sign (int8, ±1) of flat indices ``start … stop − 1`` of a
    vector of ``n_params`` (default ``stop``) parameters.

    key = splitmix64(seed); z_i = splitmix64(i ⊕ key); with G = :func:`sketch_blocks`, i in
    parameter block g = ⌊G·i / N⌋ rounded so that ⌊g·N/G⌋ ≤ i < ⌊(g+1)·N/G⌋, bucket block
    [a_g, a_{g+1}) with a_g = ⌊g·K/G⌋ and K_g = a_{g+1} − a_g:
    bucket = a_g + (((z_i ≫ 32)·K_g) ≫ 32); sign = +1 when the lowest bit of z_i is 0, else −1
    (docs/format.md 3.7)."""
    _check_dim(dim)
    n = stop if n_params is None else int(n_params)
    g_count = sketch_blocks(n, dim)
    key = splitmix64(np.uint64(seed))
    i = np.arange(start, stop, dtype=np.uint64)
    z = splitmix64(i ^ key)
    p_off = (np.arange(g_count + 1, dtype=np.int64) * n) // g_count
    b_off = (np.arange(g_count + 1, dtype=np.int64) * dim) // g_count
    g = np.searchsorted(p_off, i.astype(np.int64), side="right") - 1
    width = (b_off[1:] - b_off[:-1]).astype(np.uint64)[g]
    bucket = b_off[g] + (((z >> np.uint64(32)) * width) >> np.uint64(32)).astype(np.int64)
    sign = (1 - 2 * (z & np.uint64(1)).astype(np.int8)).astype(np.int8)
    return bucket, sign


def sketch_vector(
    w: np.ndarray, seed: int, dim: int, n_params: int | None = None, offset: int = 0
) -> np.ndarray:
    """The CountSketch (dim,) float64 of the flat vector ``w``: the parameters at flat indices
    ``offset …`` of a vector of ``n_params`` (default ``len(w)``), accumulated in float64: the
    reference the recorder's device code matches."""
    w = np.asarray(w)
    n_params = len(w) if n_params is None else n_params
    out = np.zeros(dim, dtype=np.float64)
    for a in range(0, len(w), _HASH_CHUNK):
        b = min(a + _HASH_CHUNK, len(w))
        bucket, sign = countsketch_hash(offset + a, offset + b, seed, dim, n_params)
        out += np.bincount(bucket, weights=w[a:b].astype(np.float64) * sign, minlength=dim)
    return out


def sample_indices(n_params: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct flat indices of ``n_params``, uniformly at random (numpy PCG64 seeded
    with ``seed``), sorted: (size,) int64. They are stored, so a reader needs no RNG."""
    if not 1 <= size <= n_params:
        raise ValueError(f"sample size must be 1 … {n_params} (the number of parameters), got {size}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_params, size=size, replace=False)).astype(np.int64)


def relative_std_bound(dim: int, blocks: int = 1) -> float:
    """Upper bound on the relative standard deviation of any squared distance (and of a
    time-averaged MSD, a sum of squared distances) estimated from a K-dimensional CountSketch
    of G blocks: √(2/K) for G = 1; √(2G/K) in the worst case, all motion in one block of K/G
    buckets; √(2/K) again when the blocks move alike. The analysis reports the data's own
    bound from each block's MSD (trajstore.analysis.sketch.msd_std_bound)."""
    return math.sqrt(2.0 * blocks / dim)


def _check_dim(dim: int) -> None:
    if not 1 <= int(dim) <= MAX_SKETCH_DIM:
        raise ValueError(f"sketch dimension must be 1 … {MAX_SKETCH_DIM}, got {dim}")


# -- descriptions stored in the group attributes -----------------------------------------------


@dataclass(frozen=True)
class SketchSpec:
    """What the ``sketch`` group's attribute ``sketch`` says: the projection."""

    dim: int
    seed: int
    n_params: int

    def to_json(self) -> dict:
        return {
            "method": SKETCH_METHOD,
            "hash": SKETCH_HASH,
            "dim": self.dim,
            "blocks": sketch_blocks(self.n_params, self.dim),
            "seed": self.seed,
            "n_params": self.n_params,
            "of": spec.WEIGHTS,
        }


@dataclass(frozen=True)
class SampleSpec:
    """What the ``sample`` group's attribute ``sample`` says."""

    size: int
    seed: int
    n_params: int
    index_digest: int

    def to_json(self) -> dict:
        return {
            "method": SAMPLE_METHOD,
            "size": self.size,
            "seed": self.seed,
            "n_params": self.n_params,
            "of": spec.WEIGHTS,
            "index_crc32c": self.index_digest,
        }


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)



def _fit_problem(
    width_name: str, width: int, columns: int | None, n: int, n_params: int | None
) -> str | None:
    """Why a well-formed attribute does not fit its ``value`` array (``columns`` wide, None:
    unknown; the attribute says ``width``) or the store's weights layout (``n_params``
    parameters, None: unknown; the attribute says ``n``), or None."""
    if columns is not None and columns != width:
        return f"{width_name} is {width} but value has {columns} columns"
    if n_params is not None and n != n_params:
        return f"n_params is {n} but the weights layout has {n_params} parameters"
    return None

def sketch_attr_problem(value: object, n_params: int | None, columns: int | None) -> str | None:
    """Why ``value`` is not a valid ``sketch`` attribute (rule V60), or None."""
    if not isinstance(value, dict):
        return f"attribute 'sketch' is {type(value).__name__}, not an object"
    if value.get("method") != SKETCH_METHOD or value.get("hash") != SKETCH_HASH:
        got = f"{value.get('method')!r}/{value.get('hash')!r}"
        return f"method/hash are {got}, not {SKETCH_METHOD!r}/{SKETCH_HASH!r}"
    dim, seed, n = value.get("dim"), value.get("seed"), value.get("n_params")
    if not (_is_int(dim) and 1 <= dim <= MAX_SKETCH_DIM):
        return f"dim is {dim!r}, not an integer 1 … {MAX_SKETCH_DIM}"
    if not (_is_int(seed) and 0 <= seed < 1 << 64):
        return f"seed is {seed!r}, not an integer 0 … 2^64 − 1"
    if not (_is_int(n) and n >= 1):
        return f"n_params is {n!r}, not a positive integer"
    if value.get("of") != spec.WEIGHTS:
        return f"of is {value.get('of')!r}, not 'weights'"
    if value.get("blocks") != sketch_blocks(n, dim):
        return f"blocks is {value.get('blocks')!r}, not min(64, n_params, dim) = {sketch_blocks(n, dim)}"
    return _fit_problem("dim", dim, columns, n, n_params)


def sample_attr_problem(value: object, n_params: int | None, columns: int | None) -> str | None:
    """Why ``value`` is not a valid ``sample`` attribute (rule V62), or None."""
    if not isinstance(value, dict):
        return f"attribute 'sample' is {type(value).__name__}, not an object"
    if value.get("method") != SAMPLE_METHOD:
        return f"method is {value.get('method')!r}, not {SAMPLE_METHOD!r}"
    size, n = value.get("size"), value.get("n_params")
    if not (_is_int(n) and n >= 1):
        return f"n_params is {n!r}, not a positive integer"
    if not (_is_int(size) and 1 <= size <= n):
        return f"size is {size!r}, not an integer 1 … n_params"
    if not _is_int(value.get("seed")) or not _is_int(value.get("index_crc32c")):
        return "seed and index_crc32c must be integers"
    if value.get("of") != spec.WEIGHTS:
        return f"of is {value.get('of')!r}, not 'weights'"
    return _fit_problem("size", size, columns, n, n_params)


def index_problem(index: np.ndarray, size: int, n_params: int, crc: int) -> str | None:
    """Why the stored ``sample/index`` is wrong (rule V63), or None."""
    if index.dtype != np.int64 or index.ndim != 1 or len(index) != size:
        return f"index is {index.dtype} {index.shape}, not int64 ({size},)"
    if size and (index[0] < 0 or index[-1] >= n_params or np.any(np.diff(index) <= 0)):
        return f"indices must strictly increase within 0 … {n_params - 1}"
    if digest(index) != crc:
        return "index differs from its recorded index_crc32c"
    return None


# -- writing ----------------------------------------------------------------------------------


def _one_tensor(name: str, n: int, dtype: str) -> Layout:
    return Layout([TensorSpec(name, (n,), dtype, 0)])


class SketchRecording:
    """Adds a ``sketch`` and/or a ``sample`` group to the store of ``writer`` and appends to them.

    ``sketch_dim`` K (None: no sketch), ``sample_size`` M (None: no sample). ``full_weights``:
    whether the weights are also recorded in full (False: the ``weights`` group keeps its
    layout and no records, and the root attribute ``full_weights`` says so). The groups are
    flushed, committed and closed with the writer. Call :meth:`append` with values computed
    elsewhere (the recorder's device code) or :meth:`append_weights` with a full vector.
    """

    def __init__(
        self,
        writer: Any,
        *,
        sketch_dim: int | None = None,
        sketch_seed: int = 0,
        sample_size: int | None = None,
        sample_seed: int = 0,
        full_weights: bool = True,
        sample_index: np.ndarray | None = None,
    ):
        if sketch_dim is None and sample_size is None:
            raise ValueError("a sketch recording needs a sketch dimension, a sample size, or both")
        self.writer = writer
        self.n_params = writer.layout.n_params
        self.full_weights = bool(full_weights)
        b = writer._backend
        if b.exists(SKETCH) or b.exists(SAMPLE):
            raise ValueError(f"{writer.path} already holds a sketch or sample; record into a new store")
        root = {spec.ATTR_SPEC_VERSION: SKETCH_VERSION, ATTR_FULL_WEIGHTS: self.full_weights}
        b.set_attrs("", root)
        self.sketch: SketchSpec | None = None
        self.sample: SampleSpec | None = None
        self.indices = np.zeros(0, dtype=np.int64)
        if sketch_dim is not None:
            _check_dim(sketch_dim)
            self.sketch = SketchSpec(int(sketch_dim), int(sketch_seed), self.n_params)
            self._series(SKETCH, int(sketch_dim), "<f8", {ATTR_SKETCH: self.sketch.to_json()})
        if sample_size is not None:
            if sample_index is None:
                self.indices = sample_indices(self.n_params, int(sample_size), int(sample_seed))
            else:  # a copy of a stored sample (convert): its indices, whoever drew them
                self.indices = np.asarray(sample_index, dtype=np.int64)
            self.sample = SampleSpec(int(sample_size), int(sample_seed), self.n_params, digest(self.indices))
            dtype = b.dtype(f"{spec.WEIGHTS}/{spec.VALUE}").str
            self._series(SAMPLE, int(sample_size), dtype, {ATTR_SAMPLE: self.sample.to_json()})
            path = f"{SAMPLE}/{SAMPLE_INDEX}"
            b.create_array(path, (0,), "<i8", (int(sample_size),), None, (DIM_SAMPLE,), writer._compression)
            b.resize(path, int(sample_size))
            b.write(path, 0, self.indices)
        b.flush()

    def _series(self, name: str, columns: int, dtype: str, attrs: dict) -> None:
        from .chunking import choose_chunks

        w = self.writer
        itemsize = np.dtype(dtype).itemsize
        tc, pc = choose_chunks(columns, itemsize, w._chunk_records, None)
        series = SeriesWriter(w._backend, name, columns, dtype, tc, pc)
        layout = _one_tensor(name, columns, np.dtype(dtype).name)
        w._publish(name, series, {spec.ATTR_LAYOUT: layout.to_json(), **attrs})
        w._series[name] = series

    def append(self, step: int, *, sketch=None, sample=None, time: float | None = None) -> None:
        """Append one record: ``sketch`` (K,) float64 and/or ``sample`` (M,) values at ``step``."""
        import time as _time

        w = self.writer
        w._check_open()
        t = (_time.time() - w._created_epoch) if time is None else float(time)
        for name, given, spec_ in ((SKETCH, sketch, self.sketch), (SAMPLE, sample, self.sample)):
            if spec_ is None:
                if given is not None:
                    raise ValueError(f"append: {name} given but the store records no {name}")
                continue
            if given is None:
                raise ValueError(f"append: the store records a {name}; pass {name}=")
            arr = np.asarray(given)
            cols = spec_.dim if name == SKETCH else spec_.size
            if arr.shape != (cols,):
                raise ValueError(f"append: {name} has shape {arr.shape}, expected ({cols},)")
            w._commit_if(w._series[name].append(int(step), arr, t), name)

    def append_weights(self, step: int, weights: np.ndarray, time: float | None = None) -> None:
        """Compute the sketch and the sample of the flat vector ``weights`` (n_params,) with numpy
        and append them (e.g. to sketch an existing full store)."""
        weights = np.asarray(weights)
        sk = sketch_vector(weights, self.sketch.seed, self.sketch.dim, self.n_params) if self.sketch else None
        sa = weights[self.indices] if self.sample else None
        self.append(step, sketch=sk, sample=sa, time=time)


# -- reading ----------------------------------------------------------------------------------


class SketchView(WeightsAccess):
    """The ``sketch`` group of a store with a Trajectory's reading interface: ``weights`` is the
    (records, K) float64 sketch, ``layout`` one tensor ``"sketch"``; everything else (path,
    observables, provenance, ...) is the store's. ``spec`` says what the projection is;
    ``full_n_params`` is N of the sketched weights."""

    def __init__(self, traj: Trajectory):
        self.base = traj
        b = traj._backend
        self._weights = VectorGroup(b, SKETCH, traj._version)
        attrs = b.attrs(SKETCH).get(ATTR_SKETCH)
        problem = sketch_attr_problem(attrs, traj.n_params, self._weights.layout.n_params)
        if problem:
            raise InvalidStoreError(f"{traj.path}: sketch: {problem} [V60]")
        self.spec = SketchSpec(attrs["dim"], attrs["seed"], attrs["n_params"])
        self.full_n_params = traj.n_params

    def __getattr__(self, name: str) -> Any:  # path, attrs, observables, observable, lossy, ...
        return getattr(self.base, name)

    @property
    def attrs(self) -> dict:
        """The store's root attributes, less those that describe the weights' tensors one by one
        (the sketch mixes every tensor into one; a frozen one adds nothing to a displacement)."""
        per_tensor = {spec.ATTR_TRAINABLE, getattr(spec, "ATTR_TENSOR_MODULES", "tensor_modules")}
        return {k: v for k, v in self.base.attrs.items() if k not in per_tensor}

    def blocks(self, records=None, params=None, **kwargs):
        """As :meth:`Trajectory.blocks`, over the sketch's records and coordinates."""
        if kwargs.pop("group", spec.WEIGHTS) != spec.WEIGHTS:
            raise KeyError(f"{self.base.path}: a sketch has no gradients")
        return Trajectory.blocks(self, records, params, **kwargs)

    @property
    def segments(self) -> list[slice]:
        return [slice(0, self.n_records)]

    def close(self) -> None:
        self.base.close()

    def __enter__(self) -> SketchView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Sample:
    """The ``sample`` group: ``indices`` (M,) flat indices, ``values`` lazy (records, M),
    ``steps`` (records,)."""

    indices: np.ndarray
    values: LazyArray
    steps: np.ndarray
    seed: int
    n_params: int
    times: np.ndarray | None = None

    @property
    def n_records(self) -> int:
        return len(self.steps)


def has_sketch(traj: Trajectory) -> bool:
    return traj._backend.exists(SKETCH)


def has_sample(traj: Trajectory) -> bool:
    return traj._backend.exists(SAMPLE)


def full_weights(traj: Trajectory) -> bool:
    """False when the store deliberately holds no full weights (a sketch/sample-only store)."""
    return traj.attrs.get(ATTR_FULL_WEIGHTS) is not False


def sketch_view(traj: Trajectory) -> SketchView:
    """The store's sketch as a trajectory of K coordinates (raises when it has none)."""
    if not has_sketch(traj):
        raise InvalidStoreError(f"{traj.path} holds no sketch (record with --sketch K)")
    return SketchView(traj)


def sample_of(traj: Trajectory) -> Sample:
    """The store's sample (raises when it has none). Sizes are checked before reading."""
    if not has_sample(traj):
        raise InvalidStoreError(f"{traj.path} holds no sample (record with --sample M)")
    b = traj._backend
    group = VectorGroup(b, SAMPLE, traj._version)
    attrs = b.attrs(SAMPLE).get(ATTR_SAMPLE)
    problem = sample_attr_problem(attrs, traj.n_params, group.layout.n_params)
    if problem:
        raise InvalidStoreError(f"{traj.path}: sample: {problem} [V62]")
    path = f"{SAMPLE}/{SAMPLE_INDEX}"
    if not b.is_array(path) or tuple(b.shape(path)) != (attrs["size"],):
        raise InvalidStoreError(f"{traj.path}: {path} is missing or not of length {attrs['size']} [V63]")
    index = np.asarray(b.read(path, slice(0, attrs["size"])))
    problem = index_problem(index, attrs["size"], traj.n_params, attrs["index_crc32c"])
    if problem:
        raise InvalidStoreError(f"{traj.path}: {path}: {problem} [V63]")
    return Sample(index, group.values, group.steps, attrs["seed"], attrs["n_params"], group.times)


def copy_sketch(writer: Any, traj: Trajectory, copy_series) -> None:
    """Copy the sketch and sample of ``traj`` (if any) into the store of ``writer`` (convert):
    same projection, indices, steps, values and times. ``copy_series(writer, name, series,
    values, steps, times)`` appends the records (trajstore.convert)."""
    if not (has_sketch(traj) or has_sample(traj)):
        return
    sk = sketch_view(traj) if has_sketch(traj) else None
    sa = sample_of(traj) if has_sample(traj) else None
    SketchRecording(
        writer,
        sketch_dim=sk.spec.dim if sk else None,
        sketch_seed=sk.spec.seed if sk else 0,
        sample_size=len(sa.indices) if sa else None,
        sample_seed=sa.seed if sa else 0,
        full_weights=full_weights(traj),
        sample_index=sa.indices if sa else None,
    )
    if sk is not None:
        copy_series(writer, SKETCH, writer._series[SKETCH], sk.weights, sk.steps, sk.times)
    if sa is not None:
        copy_series(writer, SAMPLE, writer._series[SAMPLE], sa.values, sa.steps, sa.times)


def sketch_summary(traj: Trajectory) -> dict | None:
    """What ``trajstore info`` says about the (1.2) sketch and sample, or None without them."""
    b = traj._backend
    if not (b.exists(SKETCH) or b.exists(SAMPLE)):
        return None
    out: dict[str, Any] = {"full_weights": full_weights(traj)}
    parts = []
    for name, key, size in ((SKETCH, ATTR_SKETCH, "dim"), (SAMPLE, ATTR_SAMPLE, "size")):
        if not b.exists(name):
            continue
        attrs = b.attrs(name)
        desc = attrs.get(key) if isinstance(attrs.get(key), dict) else {}
        n = attrs.get(spec.ATTR_N_COMMITTED)
        out[name] = {"records": n, size: desc.get(size), "seed": desc.get("seed")}
        label = "CountSketch K" if name == SKETCH else "sample M"
        parts.append(f"{label} = {desc.get(size)} (seed {desc.get('seed')}): {n} records")
    parts.append("full weights recorded" if out["full_weights"] else "no full weights (sketch-only store)")
    out["text"] = "; ".join(parts)
    return out
