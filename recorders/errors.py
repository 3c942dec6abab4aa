"""Refusals of the recorder: a script or model that trajstore cannot record correctly."""

from __future__ import annotations

from trajstore.errors import RecordingError


class RecordingRefusedError(RecordingError):
    """trajstore cannot record this run correctly; the message says why and what to do.
    Records written before the refusal stay in the store, which is closed validly, and its
    metadata key ``trajstore_recording_refused`` says why recording stopped. (A write failure,
    the other kind of :class:`~trajstore.errors.RecordingError`, stops recording too.)"""

    kept: str | None = None  # what the store holds, added by the recorder when it closes

    def __str__(self) -> str:
        said = super().__str__()
        return said if self.kept is None else f"{said}; {self.kept}"


class ResumeGapError(RecordingRefusedError):
    """``--resume`` would append weights that do not continue the stored trajectory."""


class IterationOrderError(RecordingRefusedError):
    """Several optimizers stepped in a pattern that does not delimit training iterations."""


class UnsupportedPatternError(RecordingRefusedError):
    """A training pattern whose records or losses trajstore cannot define correctly."""


class ReplacedParameterError(RecordingRefusedError):
    """Training code replaced or added parameters after the recorder attached, in a way the store's
    fixed layout cannot hold (a new shape or device, a renamed or replaced parameter, a new one)."""


class WeightsChangedAfterStepError(RecordingRefusedError):
    """Code between one iteration's last ``optimizer.step()`` and the next iteration changed the
    weights, so records taken when ``step()`` returns would not be the weights training uses."""
