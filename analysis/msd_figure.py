"""The curves ``msd.png`` draws, every one against the lag in optimizer steps.

A window's MSD and fits are indexed by record lag when its records are equally spaced (and by
step lag when not, analysis/pairs.py). A run recorded at two strides (every step, then every 10th
after a resume) has windows whose record lag 1 is 1 step and others whose record lag 1 is 10
steps: drawn against record lags, the second are 10× too short on the lag axis. Here every lag
is converted to steps: for a window of stride s, lag_steps = s · lag_records, a fitted
D·τ^α (τ in records) is (D · s^−α)·τ^α with τ in steps, and τ0 and the fitted lag ranges are
multiplied by s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MSDCurve:
    """One window's curve of ``msd.png``; every lag in optimizer steps.

    ``lag_steps``/``msd`` (L,): Δr² (squared weight units) at each lag > 0; ``fit``: "two"
    (the supported two-regime fit), "one" (the single power law) or "" (none drawn);
    ``fit_lag_steps``/``fit_msd``: the fitted line over its lag range; ``prefactor_steps``: D of
    the single fit Δr² = D·τ^α with τ in steps (None without one); ``tau0_steps``/``tau0_msd``:
    the crossover marked on the curve (two regimes only); ``slope_lag_steps``/``slope``: the
    paper's local slope β(τ) of the inset."""

    t_w: int
    stride: int | None  # optimizer steps between records; None: not equally spaced (step lags)
    lag_steps: np.ndarray
    msd: np.ndarray
    fit: str
    fit_lag_steps: np.ndarray
    fit_msd: np.ndarray
    alpha: float | None
    prefactor_steps: float | None
    tau0_steps: float | None
    tau0_msd: float | None
    slope_lag_steps: np.ndarray
    slope: np.ndarray


def _to_steps(m) -> Callable[[np.ndarray | float], np.ndarray]:
    """Lag (the unit of ``m.lags``: records, or steps) → optimizer steps: exact for equally spaced
    records (lag_steps = s · lag), the identity when the MSD is indexed by step lag."""
    lags = np.asarray(m.lags, dtype=np.float64)
    steps = np.asarray(m.lag_steps, dtype=np.float64)
    if m.step_lags is not None:
        return lambda x: np.asarray(x, dtype=np.float64)
    stride = steps[1] / lags[1] if len(lags) > 1 and lags[1] > 0 else 1.0
    return lambda x: np.asarray(x, dtype=np.float64) * stride


def msd_curves(a) -> list[MSDCurve]:
    """The curves of ``msd.png`` for each window of ``a`` (a pipeline.Analysis) with finite
    weights, in steps (see the module docstring)."""
    out = []
    for w in a.windows:
        m = w.msd
        if not m.finite or len(m.msd) < 2:
            continue
        to_steps = _to_steps(m)
        lags = to_steps(m.lags[1:])
        msd = np.asarray(m.msd[1:], dtype=np.float64)
        kind, xs, ys = "", np.zeros(0), np.zeros(0)
        alpha = prefactor = tau0 = at_tau0 = None
        two, single = w.two_regime, w.power_law
        if two is not None and two.supported:
            kind = "two"
            lo, hi = to_steps(two.lag_range)
            tau0 = float(to_steps(two.tau0))
            xs = np.geomspace(lo, hi, 60)
            with np.errstate(divide="ignore"):
                at0 = float(np.interp(np.log(tau0), np.log(lags), np.log(msd)))
            ys = np.exp(at0 + np.where(xs < tau0, two.alpha_short, two.alpha_long) * np.log(xs / tau0))
            at_tau0 = float(np.exp(at0))
        elif single is not None:
            kind, alpha = "one", float(single.alpha)
            stride = float(to_steps(1.0))
            prefactor = float(single.prefactor * stride ** (-single.alpha))  # D·τ_rec^α = D·s^−α·τ_steps^α
            lo, hi = to_steps(single.lag_range)
            xs = np.geomspace(lo, hi, 30)
            ys = prefactor * xs**alpha
        sx, sb = w.slope
        out.append(
            MSDCurve(
                t_w=m.t_w,
                stride=w.stride,
                lag_steps=lags,
                msd=msd,
                fit=kind,
                fit_lag_steps=xs,
                fit_msd=ys,
                alpha=alpha,
                prefactor_steps=prefactor,
                tau0_steps=tau0,
                tau0_msd=at_tau0,
                slope_lag_steps=to_steps(sx),
                slope=np.asarray(sb, dtype=np.float64),
            )
        )
    return out
