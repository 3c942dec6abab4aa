"""Saying once, in one line, that the store writer cannot keep up with training.

Training produces records at some rate; the writer thread (and its encoder threads) sustains
another. When the first is higher, the snapshot pool runs dry and training waits (policy
``block``) or records are dropped (policy ``drop``). That is worth one line with the measured
rates and what to do about it, not one per step.
"""

from __future__ import annotations

import sys
import time

MIN_SECONDS = 1.0  # look no earlier: the first block and the pool's start are transients
WAITED_FRACTION = 0.10  # training waited this share of its time for the writer
MIN_WAITED = 0.5  # and this many seconds in all (a busy machine's hiccups are not the writer)
CHECK_SECONDS = 0.5  # between looks (the check runs on the training thread)


class KeepUpCheck:
    """Watches the training thread's waits (or drops) and the writer's rate; warns once."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled  # False: measure, keep ``message``, print nothing
        self.warned = False
        self.message: str | None = None
        self._started = time.monotonic()
        self._next = self._started + MIN_SECONDS

    def check(
        self, *, produced_bytes: int, waited: float, dropped: int, written_bytes: int, busy: float
    ) -> None:
        """Called per record; looks every CHECK_SECONDS and warns at most once.

        ``produced_bytes``: bytes of records taken so far; ``waited``: seconds training waited
        for a buffer; ``dropped``: records dropped; ``written_bytes`` / ``busy``: what the
        writer thread wrote and the seconds it was busy doing so (a writer thread that is busy
        only part of the time yet lets training wait is starved of CPU or of the GIL)."""
        if self.warned:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + CHECK_SECONDS
        elapsed = now - self._started
        if not ((waited > WAITED_FRACTION * elapsed and waited >= MIN_WAITED) or dropped):
            return
        training = max(elapsed - waited, 1e-9)
        produced = produced_bytes / training / 1e6  # what training alone would produce
        delivered = written_bytes / elapsed / 1e6  # what the writer kept up with, waits and all
        busy_share = min(busy / elapsed, 1.0)
        lost = f"training waited {waited:.1f} s of {elapsed:.1f} s"
        if dropped:
            lost = f"{dropped} records dropped"
        self.message = (
            f"trajstore: warning: the writer cannot keep up: training produces {produced:.3g} MB/s "
            f"of records, the writer delivers {delivered:.3g} MB/s, busy {busy_share:.0%} of the time "
            f"({lost}); remedies: a faster "
            "codec preset (--codec fast), fewer records (--every K), more writer threads "
            "(--threads N) where cores are free"
        )
        self.warned = True
        if self.enabled:
            print(self.message, file=self.stream or sys.stderr, flush=True)
