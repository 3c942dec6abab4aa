"""The passes over the weights on a Dask cluster: window × parameter-block tasks whose partial sums
add up to exactly what the serial pass computes.

Every statistic of the window pass (:mod:`.windows`) and of the landscape's pair distances
(:func:`.landscape.pair_distances`) is a sum over parameter coordinates. So the work of one window
is cut into tasks over contiguous parameter blocks (whole chunk columns of the store), each task
runs the *same* serial code on its block only, and a tree of additions on the workers reduces the
blocks of a window to one result:

* MSD per lag, per tensor and per bootstrap block (``msd``, ``msd_tensor``, ``msd_groups``): sums
  of the blocks' Δr²(τ) (Δr² is linear in the blocks' spectra and squared norms);
* step lengths, displacements and update dot products (``step_sq``, ``disp_sq``, ``step_dot``);
* the fragments' sums ‖p_i‖², p_i·c, ‖c‖², from which the chord distances are computed after the
  sum; the sampled update components (each coordinate lies in exactly one block);
* the MSL's squared pair distances (the blocks' Gram matrices, as distances).

Tasks open the store themselves, by path or URL (:class:`StoreRef`): only arguments and the small
per-window sums travel through the scheduler, never weights. Needs the ``dask`` extra
(``dask`` and ``distributed``); docs/scale.md says how to run it on a cluster.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from trajstore.errors import TrajstoreError
from trajstore.reader import open as open_store
from trajstore.selection import SelectedTrajectory, Selection

from .landscape import pair_distances
from .pairs import is_regular
from .windows import WindowStats, fragment_perp_max, iter_windows, record_windows

# Fields of WindowStats that every block of a window computes identically, and those that are
# sums over the block's coordinates (arrays, or dicts of arrays).
_SAME_IN_EVERY_BLOCK = ("index", "start", "steps", "fragment_starts", "tensor_group_owner")
_ADDED = (
    "msd",
    "msd_tensor",
    "msd_groups",
    "step_sq",
    "disp_sq",
    "step_dot",
    "fragment_chord_sq",
    "update_samples",
    "msd_tensor_groups",
)
_FAN_IN = 4  # partial results added per reduction task


@dataclass(frozen=True)
class StoreRef:
    """What a task needs to open its data itself: the store's path (absolute) or URL, the part
    of it being analysed, and the number of records the client saw (a store being recorded may
    grow during the analysis: every task analyses the same records)."""

    path: str
    n_records: int
    selection: Selection | None = None

    @classmethod
    def of(cls, traj: Any) -> StoreRef:
        path = str(traj.path)
        if "://" not in path:
            path = os.path.abspath(path)
        selection = traj.selection if isinstance(traj, SelectedTrajectory) else None
        return cls(path, int(traj.n_records), selection)

    @contextmanager
    def open(self) -> Iterator[Any]:
        with open_store(self.path) as base:
            traj = SelectedTrajectory(base, self.selection) if self.selection is not None else base
            if traj.n_records < self.n_records:
                raise TrajstoreError(
                    f"{self.path}: a Dask task found {traj.n_records} records where the analysis began "
                    f"with {self.n_records}; the store was replaced during the analysis, run it again"
                )
            yield traj


class _ParamBlock:
    """``traj`` read through columns [p0, p1) only, with its full layout, size and the first
    ``n_records`` records: the window pass run on it accumulates this block's share of every sum,
    in the store's own coordinates (tensor and bootstrap-block boundaries, sampled coordinates)."""

    def __init__(self, traj: Any, p0: int, p1: int, n_records: int):
        self._traj, self._p0, self._p1, self._n_records = traj, p0, p1, n_records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._traj, name)

    @property
    def n_records(self) -> int:
        return self._n_records

    def blocks(self, records=None, params=None, **kwargs):
        a, b, _ = (params or slice(None)).indices(self._traj.n_params)
        a, b = max(a, self._p0), min(b, self._p1)
        return self._traj.blocks(records, slice(a, max(a, b)), **kwargs)


def window_block(
    ref: StoreRef, window: int, index: int, params: tuple[int, int], memory_limit: int, options: dict
) -> WindowStats:
    """One task: the window pass of window ``index`` over parameters [params[0], params[1])."""
    with ref.open() as traj:
        view = _ParamBlock(traj, *params, ref.n_records)
        return next(iter_windows(view, window, memory_limit=memory_limit, windows=[index], **options))


def distances_block(
    ref: StoreRef, records: tuple[int, int], params: tuple[int, int], memory_limit: int
) -> np.ndarray:
    """One task: the squared pair distances of ``records`` over parameters ``params``, (T, T)."""
    with ref.open() as traj:
        return pair_distances(traj, slice(*records), memory_limit=memory_limit, params=slice(*params))


def add_arrays(parts: Sequence[np.ndarray]) -> np.ndarray:
    out = parts[0].copy()
    for p in parts[1:]:
        out += p
    return out


def add_window_stats(parts: Sequence[WindowStats]) -> WindowStats:
    """The :class:`WindowStats` of a window from those of disjoint parameter blocks of it.

    A field this function does not know how to combine is an error, not a silent copy or sum:
    a new field of WindowStats must be declared here (``_SAME_IN_EVERY_BLOCK``, ``_ADDED``)."""
    first = parts[0]
    finite = all(p.finite for p in parts)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(WindowStats):
        vals = [getattr(p, f.name) for p in parts]
        if f.name in _SAME_IN_EVERY_BLOCK:
            values[f.name] = vals[0]
        elif f.name == "finite":
            values[f.name] = finite
        elif f.name == "nonfinite_records":
            values[f.name] = sorted(set().union(*vals))
        elif f.name == "fragment_perp_max":
            continue  # from the added fragment sums, below
        elif f.name == "update_samples" and not finite:
            values[f.name] = np.zeros((0, first.n - 1))  # as the serial pass: none for such a window
        elif f.name == "pairs":  # irregular windows are refused before any task runs
            if any(v is not None for v in vals):
                raise TypeError("add_window_stats cannot combine pair-based (irregular) windows")
            values[f.name] = None
        elif f.name == "fragment_sums":
            values[f.name] = (
                None if vals[0] is None else tuple(add_arrays(v) for v in zip(*vals, strict=True))
            )
        elif f.name in _ADDED and isinstance(vals[0], dict):
            values[f.name] = {k: add_arrays([v[k] for v in vals]) for k in vals[0]}
        elif f.name in _ADDED:
            values[f.name] = add_arrays(vals)
        else:
            raise TypeError(f"add_window_stats cannot combine WindowStats.{f.name}; declare how it adds up")
    sums = values["fragment_sums"]
    values["fragment_perp_max"] = first.fragment_perp_max if sums is None else fragment_perp_max(*sums)
    return WindowStats(**values)


def param_ranges(n_params: int, chunk_params: int, n_blocks: int) -> list[tuple[int, int]]:
    """``n_params`` columns cut into at most ``n_blocks`` contiguous ranges of whole chunk
    columns (each chunk is then read by one task only), of nearly equal width."""
    n_cols = max(1, -(-n_params // chunk_params))
    b = max(1, min(n_blocks, n_cols))
    edges = [min(n_params, (i * n_cols // b) * chunk_params) for i in range(b + 1)]
    edges[-1] = n_params
    return [(a, e) for a, e in itertools.pairwise(edges) if e > a]


class DaskEngine:
    """Runs the window pass and the pair distances of :func:`~trajstore.analysis.pipeline.analyze`
    as Dask graphs on ``client`` (a :class:`distributed.Client`).

    ``param_blocks``: parameter blocks per window (default: the cluster's thread count, at most
    the store's chunk columns). ``lookahead``: windows in flight at once (default: enough to keep
    every thread busy), which bounds the partial results held on the workers.
    """

    def __init__(self, client: Any, *, param_blocks: int | None = None, lookahead: int | None = None):
        self.client = client
        self.param_blocks = param_blocks
        self.lookahead = lookahead

    @property
    def n_threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def describe(self) -> dict:
        """What summary.json records about where the passes ran."""
        workers = self.client.nthreads()
        return {
            "engine": "dask.distributed",
            "scheduler": self.client.scheduler.address,
            "workers": len(workers),
            "threads": sum(workers.values()),
        }

    def blocks_of(self, traj: Any) -> list[tuple[int, int]]:
        return param_ranges(traj.n_params, int(traj.weights.chunks[1]), self.param_blocks or self.n_threads)

    def iter_windows(
        self,
        traj: Any,
        window: int = 1000,
        *,
        memory_limit: int,
        seed: int = 0,
        windows: list[int] | None = None,
        extras: bool = True,
        partial: bool = False,
        workers: int = 1,
    ) -> Iterator[WindowStats]:
        """As :func:`~trajstore.analysis.windows.iter_windows`, one Dask task per window ×
        parameter block (``memory_limit`` per task); windows are yielded in order."""
        ref = StoreRef.of(traj)
        bounds = record_windows(traj, window, partial=partial)  # as iter_windows: within segments
        irregular = [k for k, (a, b) in enumerate(bounds) if not is_regular(traj.steps[a:b])]
        if irregular:
            raise ValueError(
                f"--dask: window {irregular[0]} of {traj.path} has records unequally spaced in steps "
                "(a log or ranged schedule); analyse it without --dask"
            )
        n = len(bounds)
        indices = [k for k in range(n) if windows is None or k in windows]
        blocks = self.blocks_of(traj)
        options = {"seed": seed, "extras": extras, "partial": partial, "workers": workers}
        token = uuid.uuid4().hex[:8]

        def graph(k: int):
            parts = [
                self._task(
                    window_block,
                    f"window-{k}-params-{a}-{token}",
                    ref,
                    window,
                    k,
                    (a, b),
                    memory_limit,
                    options,
                )
                for a, b in blocks
            ]
            return self._reduce(parts, add_window_stats, f"window-{k}-{token}")

        return self._in_order((graph(k) for k in indices), len(blocks))

    def pair_distances(
        self,
        traj: Any,
        bounds: Sequence[tuple[int, int]],
        *,
        memory_limit: int,
        params: slice | None = None,
    ) -> Iterator[np.ndarray]:
        """The :func:`~trajstore.analysis.landscape.pair_distances` of each window of ``bounds``
        in turn, one Dask task per window × parameter block (restricted to ``params``)."""
        ref = StoreRef.of(traj)
        p0, p1, _ = (params or slice(None)).indices(traj.n_params)
        blocks = [(max(a, p0), min(b, p1)) for a, b in self.blocks_of(traj) if min(b, p1) > max(a, p0)]
        token = uuid.uuid4().hex[:8]

        def graph(r0: int, r1: int):
            parts = [
                self._task(
                    distances_block, f"distances-{r0}-params-{a}-{token}", ref, (r0, r1), (a, b), memory_limit
                )
                for a, b in blocks
            ]
            return self._reduce(parts, add_arrays, f"distances-{r0}-{token}")

        return self._in_order((graph(r0, r1) for r0, r1 in bounds), len(blocks))

    def map(self, func: Callable, items: Sequence) -> list:
        """``[func(x) for x in items]``, one task per item."""
        return self.client.gather(self.client.map(func, list(items), pure=False))

    # -- graph building ------------------------------------------------------------------

    @staticmethod
    def _task(func: Callable, name: str, *args: Any):
        import dask

        return dask.delayed(func, pure=False)(*args, dask_key_name=name)

    @staticmethod
    def _reduce(parts: list, add: Callable, name: str):
        """Add ``parts`` in a tree of ``_FAN_IN``-way additions, on the workers."""
        import dask

        level = 0
        while len(parts) > 1:
            groups = [parts[i : i + _FAN_IN] for i in range(0, len(parts), _FAN_IN)]
            parts = [
                g[0]
                if len(g) == 1
                else dask.delayed(add, pure=False)(g, dask_key_name=f"{name}-add{level}-{i}")
                for i, g in enumerate(groups)
            ]
            level += 1
        return parts[0]

    def _in_order(self, graphs: Iterator, blocks_per_item: int) -> Iterator:
        """Compute ``graphs`` on the cluster, a bounded number at once, and yield their results
        in order; what is still in flight is cancelled if the consumer stops early."""
        ahead = self.lookahead or max(2, -(-2 * self.n_threads // max(1, blocks_per_item)))
        pending: deque = deque()
        try:
            for g in itertools.islice(graphs, ahead):
                pending.append(self.client.compute(g))
            while pending:
                future = pending.popleft()
                result = _result(future)
                for g in itertools.islice(graphs, 1):
                    pending.append(self.client.compute(g))
                yield result
        finally:
            if pending:
                self.client.cancel(list(pending))


def _result(future: Any) -> Any:
    """A future's result; a lost worker or connection is a one-line error."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        raise TrajstoreError(
            f"the Dask cluster lost the workers running a task ({exc}); they may have run out of memory: "
            "lower --memory-limit or give the workers more memory"
        ) from None


@contextmanager
def dask_engine(address: str, **options: Any) -> Iterator[DaskEngine]:
    """A :class:`DaskEngine` on the cluster named by ``address``; ``options`` go to DaskEngine.

    ``local:N``: a LocalCluster of N worker processes (one thread each) on 127.0.0.1, closed at
    the end. A path ending in ``.json``: a scheduler file (as dask-jobqueue, ``dask scheduler
    --scheduler-file`` and dask-mpi write). Anything else: a scheduler address such as
    ``tcp://10.0.0.5:8786`` (the connect timeout is dask's ``distributed.comm.timeouts.connect``).
    """
    local = address.removeprefix("local:") if address.startswith("local:") else None
    if local is not None and (not local.isdigit() or int(local) < 1):
        raise TrajstoreError(f"--dask {address!r}: write local:N with N ≥ 1 worker processes, e.g. local:4")
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise TrajstoreError("--dask needs the distributed package: pip install 'trajstore[dask]'") from None
    cluster = None
    if local is not None:
        try:
            # Without dask's MALLOC_TRIM_THRESHOLD_ for the workers: it fixes glibc's mmap
            # threshold, so every large temporary of the window pass is a fresh mmap whose pages
            # fault in again (measured: the window pass 3x slower; docs/scale.md).
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                cluster = LocalCluster(
                    n_workers=int(local),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",  # its HTTP server always runs: a free port
                )
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            raise TrajstoreError(f"--dask {address}: the local Dask cluster did not start ({exc})") from None
        connect = {"address": cluster}
    elif address.endswith(".json"):
        if not os.path.isfile(address):
            raise TrajstoreError(f"--dask {address}: no such scheduler file; start the scheduler first")
        connect = {"scheduler_file": address}
    else:
        connect = {"address": address}
    try:
        try:
            client = Client(**connect, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - connection refused, timeout, malformed address
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrajstoreError(
                f"--dask {address}: cannot reach the Dask scheduler ({reason[:200]}); check the address "
                "(tcp://HOST:PORT) and that the scheduler runs, or use --dask local:N"
            ) from None
        try:
            yield DaskEngine(client, **options)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
