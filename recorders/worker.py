"""The background thread that owns the store writer: it decodes snapshots and writes them."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from trajstore.errors import RecordingError, describe_os_error
from trajstore.progress import Progress
from trajstore.shards import lower_thread_priority

_STOP = object()
_POLL_SECONDS = 0.1  # how soon a blocked training thread notices that the writer failed


class WriterThread:
    """Runs every call on the store writer in one thread, fed by a bounded queue.

    ``submit(fn, *args)`` enqueues a call (blocking when the queue is full: back-pressure).
    Every ``flush_seconds`` the writer is flushed so that a crash loses at most that much.

    The first failing call stops all writing: ``failed`` is set (training threads waiting for
    pool buffers watch it), later calls are not run but their ``discard`` is (it gives their
    buffers back), and ``submit`` raises :class:`RecordingError`.
    """

    # Seconds slept before each call: a test hook that makes the writer slower than training.
    slowdown_for_tests = 0.0

    def __init__(
        self,
        writer,
        *,
        flush_seconds: float = 10.0,
        max_queue: int = 64,
        progress: bool | None = None,
        failed: threading.Event | None = None,
        nice: int = 0,
    ):
        self.writer = writer
        self.nice = nice  # steps below the priority of the thread that starts it (Linux)
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._error: BaseException | None = None
        self.failed = failed or threading.Event()
        self._progress = sys.stderr.isatty() if progress is None else progress
        # A bar on a terminal, a plain line every few seconds otherwise (trajstore.progress).
        self._display = Progress("trajstore", unit=" records", enabled=self._progress)
        self.records = 0
        self.bytes_in = 0
        self.busy = 0.0  # seconds spent running calls: bytes_in / busy is the rate it sustains
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="trajstore-writer", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def check(self) -> None:
        """Raise :class:`RecordingError` if the writer has failed."""
        if self._error is not None:
            raise RecordingError(f"the store writer failed: {describe_os_error(self._error)}")

    def submit(self, fn: Callable, *args: Any, discard: Callable | None = None) -> None:
        """Queue ``fn(*args)``; ``discard(*args)`` runs instead if the writer has failed."""
        while True:
            if self._error is not None:
                if discard is not None:
                    discard(*args)
                self.check()
            try:
                self._queue.put((fn, args, discard), timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            self.failed.set()

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        # One compression thread: the training process owns the other cores.
        import numcodecs.blosc

        numcodecs.blosc.set_nthreads(1)
        last_flush = last_progress = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if item is not None:
                fn, args, discard = item
                if self._error is None:
                    started = time.monotonic()
                    try:
                        if self.slowdown_for_tests:
                            time.sleep(self.slowdown_for_tests)
                        fn(*args)
                    except BaseException as exc:  # noqa: BLE001 - reported to the training thread
                        self._fail(exc)
                    self.busy += time.monotonic() - started
                elif discard is not None:
                    discard(*args)
            now = time.monotonic()
            if now - last_flush >= self.flush_seconds and self._error is None:
                try:
                    self.writer.flush()
                except BaseException as exc:  # noqa: BLE001
                    self._fail(exc)
                last_flush = now
                self.busy += time.monotonic() - now  # a flush writes the partial block: work too
            if self._progress and now - last_progress >= 1.0 and self._display.due():
                self._print_progress(now)  # reads the store's size: only when it is shown
                last_progress = now

    def _print_progress(self, now: float) -> None:
        rate = self.bytes_in / max(now - self._started, 1e-9)
        try:  # ratio over what is on disk: buffered records are not written yet
            on_disk = self.writer._backend.nbytes_stored()
            weights = self.writer._series["weights"]
            written = weights.n_written * weights.columns * weights.dtype.itemsize
        except (OSError, AttributeError, KeyError):
            on_disk = written = 0
        ratio = f", ratio {written / on_disk:.2f}" if on_disk and written else ""
        sizes = f"{tqdm.format_sizeof(self.bytes_in, 'B', 1000)} raw, {tqdm.format_sizeof(rate, 'B/s', 1000)}"
        self._display.update_to(self.records, sizes + ratio)

    def close(self) -> BaseException | None:
        """Drain the queue, stop the thread; return the error it met, if any."""
        self._queue.put(_STOP)  # never blocks for long: the thread keeps taking items
        self._thread.join()
        if self._progress:
            if self._error is None:  # after a failure the error line says how many records are safe
                self._print_progress(time.monotonic())
            self._display.close(final=self._error is None)
        return self._error


class Batch:
    """Items gathered on the training thread and handed to the writer thread together: when
    ``size`` are waiting, or on the first ``add`` more than ``seconds`` after the last hand-over.
    Each hand-over wakes the writer thread, and the GIL hand-offs that follow cost the training
    thread more than one item does."""

    def __init__(self, send: Callable[[list], None], size: int, seconds: float):
        self.send = send
        self.size = size
        self.seconds = seconds
        self.items: list = []
        self._sent = time.monotonic()

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Any) -> None:
        self.items.append(item)
        now = time.monotonic()
        if len(self.items) >= self.size or now - self._sent > self.seconds:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Hand over whatever is waiting."""
        if self.items:
            self.send(self.items)
            self.items = []
        self._sent = time.monotonic() if now is None else now
