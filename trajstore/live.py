"""``trajstore.log(name, value)``: extra observables from inside a training script.

A recorder (``trajstore record`` or a ``Recorder``) registers itself while it records; with
none, :func:`log` does nothing, so a script can call it unconditionally. No torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Sink = Callable[..., None]
_sinks: list[Sink] = []


def log(name: str, value: Any, step: int | None = None) -> None:
    """Record scalar ``value`` (a float or a 0-d tensor) as observable ``name`` at ``step``
    (default: the last completed training iteration; the value is ``post_step``, computed
    at the weights recorded with that step). A no-op when nothing records."""
    for sink in list(_sinks):
        sink(name, value, step)


def register(sink: Sink) -> Callable[[], None]:
    """Make ``sink(name, value, step)`` receive :func:`log` calls; returns the function that
    unregisters it."""
    _sinks.append(sink)

    def unregister() -> None:
        if sink in _sinks:
            _sinks.remove(sink)

    return unregister
