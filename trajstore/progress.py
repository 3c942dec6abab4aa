"""Progress on stderr through tqdm: a live bar on a terminal, a plain line every few seconds
otherwise (log files, CI, ``nohup``), and output of the code being run kept off the bar's line.

The bar and the plain lines share one :data:`CONSOLE` with :class:`ScriptStream`, the stand-in
for ``sys.stdout``/``sys.stderr`` that ``trajstore record`` gives the training script: while the
script has written part of a line, no progress is drawn; before the script writes, the bar is
cleared and it is redrawn below the script's finished line.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
import time
from typing import IO, Any

INTERVAL_ENV = "TRAJSTORE_PROGRESS_SECONDS"
DEFAULT_PLAIN_SECONDS = 10.0  # between plain lines when stderr is not a terminal


def plain_interval() -> float:
    """Seconds between plain progress lines: ``$TRAJSTORE_PROGRESS_SECONDS`` (positive) or 10."""
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_PLAIN_SECONDS
    return value if math.isfinite(value) and value > 0 else DEFAULT_PLAIN_SECONDS


class Console:
    """What one process shows on its terminal: the active progress displays and whether the
    code being run has an unfinished line there (then progress waits for its newline)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.line_open = False
        self.displays: list[Progress] = []

    def before_output(self) -> None:
        for d in self.displays:
            d._hide()

    def after_output(self) -> None:
        if not self.line_open:
            for d in self.displays:
                d._show()


CONSOLE = Console()


class Progress:
    """A progress display on ``stream`` (default stderr).

    On a terminal: a tqdm bar (count, rate, and ETA when ``total`` is known). Otherwise: a plain
    line ``desc: 40% 4/10 [00:02<00:03, 2.00window/s]`` at most every ``interval`` seconds
    (:func:`plain_interval`) and once at :meth:`close`. ``enabled=False`` shows nothing.
    Thread-safe: ``update`` may be called from a worker thread.
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        unit: str = "it",
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        terminal: bool | None = None,
        interval: float | None = None,
    ) -> None:
        self.desc = desc
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        while isinstance(self.stream, ScriptStream):  # progress goes to the real stream
            self.stream = self.stream._stream
        self.enabled = enabled and self.stream is not None  # no stderr at all (pythonw)
        if terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            terminal = bool(isatty and isatty())
        self.terminal = terminal
        self.interval = plain_interval() if interval is None else interval
        self.n = 0
        self.postfix = ""
        self._start = self._last_line = time.monotonic()
        self._bar: Any = None
        self._visible = False  # the bar is drawn on the terminal's current line
        self._written: tuple[int, str] | None = None  # state shown by the last plain line
        self._closed = False
        if not self.enabled:
            return
        if terminal:
            from tqdm import tqdm

            # miniters=1: tqdm's monitor thread then never redraws on its own, which could land
            # in the middle of a line the script is writing; delay: drawn below, not by tqdm.
            cols, rows = _terminal_size(self.stream)
            self._bar = tqdm(
                total=total, desc=desc, unit=unit, file=self.stream, miniters=1, delay=1, ncols=cols
            )
            self._bar.nrows = rows
        with CONSOLE.lock:
            CONSOLE.displays.append(self)
            self._show()

    def due(self) -> bool:
        """Whether an update now would be shown (a bar: always; plain lines: once per interval),
        so that callers can skip computing what only the display needs."""
        if not self.enabled or self._closed:
            return False
        return self._bar is not None or time.monotonic() - self._last_line >= self.interval

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        """Advance by ``n`` (and replace the text after the rate with ``postfix``)."""
        self.update_to(self.n + n, postfix)

    def update_to(self, n: int, postfix: str | None = None) -> None:
        """Set the count to ``n`` (and the text after the rate to ``postfix``)."""
        if not self.enabled or self._closed:
            return
        with CONSOLE.lock:
            self.n = n
            if postfix is not None:
                self.postfix = postfix
            if self._bar is not None:
                self._bar.n = n
                if postfix is not None:
                    self._bar.set_postfix_str(postfix, refresh=False)
                self._show()
            elif time.monotonic() - self._last_line >= self.interval and not CONSOLE.line_open:
                self._write_line()

    def set_description(self, desc: str) -> None:
        """Change the text before the count (e.g. the phase of the work)."""
        if not self.enabled or self._closed:
            return
        with CONSOLE.lock:
            self.desc = desc
            if self._bar is not None:
                self._bar.set_description_str(desc, refresh=False)
                self._show()

    def line(self) -> str:
        """The plain progress line of the current state."""
        from tqdm import tqdm

        elapsed = time.monotonic() - self._start
        postfix = self.postfix or None
        return tqdm.format_meter(self.n, self.total, elapsed, 0, self.desc, unit=self.unit, postfix=postfix)

    def _write_line(self) -> None:
        self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._last_line = time.monotonic()
        self._written = (self.n, self.postfix)

    def _hide(self) -> None:
        if self._bar is not None and self._visible:
            self._bar.clear()
            self._visible = False

    def _show(self) -> None:
        """Draw the bar unless the script has an unfinished line (it is drawn after its newline)."""
        if self._bar is not None and not CONSOLE.line_open:
            self._bar.refresh()
            self._visible = True

    def close(self, final: bool = True) -> None:
        """Show the final state on its own line (unless ``final`` is false: the work failed and
        its error says what is left) and stop."""
        if not self.enabled or self._closed:
            return
        with CONSOLE.lock:
            self._closed = True
            if self in CONSOLE.displays:
                CONSOLE.displays.remove(self)
            if CONSOLE.line_open:  # finish the script's line first: the final state gets its own
                self.stream.write("\n")
                CONSOLE.line_open = False
            if self._bar is not None:
                last = str(self._bar)
                self._bar.leave = False  # tqdm clears its line (if it drew it); we end with ours
                self._bar.close()
                if final:
                    self.stream.write("\r" + last + "\n")
                self.stream.flush()
            elif final and self._written != (self.n, self.postfix):  # unless just shown
                self._write_line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _terminal_size(stream: IO[str]) -> tuple[int, int]:
    """Columns and lines of the terminal behind ``stream``; $COLUMNS/$LINES or 80x24 when it
    does not say (a pseudo-terminal without a size would make tqdm hide the bar)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        pass
    size = shutil.get_terminal_size()
    return size.columns, size.lines


class ScriptStream:
    """Stands in for ``sys.stdout`` or ``sys.stderr`` of code run in this process: passes every
    write through to ``stream`` and keeps the progress display off the lines it writes."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if not text:
            return 0
        with CONSOLE.lock:
            if not CONSOLE.displays:
                CONSOLE.line_open = not text.endswith("\n")
                return self._stream.write(text)
            CONSOLE.before_output()
            n = self._stream.write(text)
            self._stream.flush()  # before the bar is redrawn on the other stream
            CONSOLE.line_open = not text.endswith("\n")
            CONSOLE.after_output()
            return n

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer, ...
        return getattr(self._stream, name)


class script_output:  # noqa: N801 - used as a context manager, like contextlib's helpers
    """Within ``with script_output():``, ``sys.stdout`` and ``sys.stderr`` are :class:`ScriptStream`
    proxies of themselves, so progress never lands in the middle of a line they write."""

    def __enter__(self) -> None:
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = ScriptStream(sys.stdout), ScriptStream(sys.stderr)

    def __exit__(self, *exc: object) -> None:
        sys.stdout, sys.stderr = self._saved
