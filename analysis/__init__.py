"""Analyses of weight trajectories (numpy/scipy only, never torch).

Every analysis reads a :class:`trajstore.Trajectory` and returns a small frozen result object
with ``to_dict()``. Definitions follow Chen, Qu & Gong (2022); see docs/analysis.md.
"""
