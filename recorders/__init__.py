"""Recorders: stream weight trajectories out of PyTorch training (needs the ``torch`` extra)."""

from .recorder import Recorder
from .schedule import Every, LogSpaced, Ranges, Schedule, parse_schedule

__all__ = ["Every", "LogSpaced", "Ranges", "Recorder", "Schedule", "parse_schedule"]
