"""Saying why a store's records are not equally spaced in optimizer steps: shared with
``trajstore info`` (:mod:`trajstore.spacing`, which has no analysis dependencies)."""

from trajstore.spacing import describe_uneven_spacing

__all__ = ["describe_uneven_spacing"]
