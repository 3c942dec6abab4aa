"""Windows in parallel: each window pass is independent, so windows become Dask tasks.

Every task opens the store by path (a local path, or a URL its workers can reach) and reads only
its own window, with its own memory limit; nothing large travels between workers. Needs the
``dask`` extra; with a ``dask.distributed`` client active, the tasks run on its cluster.
"""

from __future__ import annotations

import os

from trajstore.reader import DEFAULT_MEMORY_LIMIT
from trajstore.reader import open as open_store

from .msd import WindowMSD, window_msd
from .windows import iter_windows, record_windows


def _one_window(path: str, window: int, index: int, memory_limit: int) -> WindowMSD:
    with open_store(path) as traj:
        stats = next(iter_windows(traj, window, memory_limit=memory_limit, windows=[index], extras=False))
        return window_msd(stats, traj.layout.names)


def windowed_msd_dask(
    path: str | os.PathLike,
    window: int = 1000,
    *,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    scheduler: str | None = None,
) -> list[WindowMSD]:
    """:func:`~trajstore.analysis.msd.windowed_msd` with one Dask task per window.

    ``memory_limit`` is per task. ``scheduler``: any Dask scheduler name ("threads",
    "processes", "synchronous"); None uses the active default (a distributed Client if one exists).
    """
    import dask

    path = os.fspath(path)
    with open_store(path) as traj:
        n = len(record_windows(traj, window))
    tasks = [dask.delayed(_one_window)(path, window, k, memory_limit) for k in range(n)]
    return list(dask.compute(*tasks, scheduler=scheduler))
