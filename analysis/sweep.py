"""Sweeps: which hyper-parameter varies over several runs, and the exponents against it.

The paper's learning-rate and batch-size figures: for runs that differ in one hyper-parameter
(read from each store's provenance and observables), the first window's exponents with their
intervals against that parameter. Runs where two regimes are not supported show α only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from trajstore.reader import Trajectory

from .report import _plt, save

HYPER_PARAMETERS = ("lr", "batch_size", "momentum", "weight_decay", "seed")


def hyper_parameters(traj: Trajectory) -> dict[str, float | None]:
    """The run's learning rate, momentum and weight decay (first parameter group of the first
    optimizer), batch size (largest value of the ``batch_size`` observable) and seed."""
    prov = traj.provenance
    groups = prov.get("optimizer") or []
    if not groups and isinstance(prov.get("optimizers"), list) and prov["optimizers"]:
        first = prov["optimizers"][0]
        groups = (first.get("optimizer") or []) if isinstance(first, dict) else []
    group = groups[0] if groups and isinstance(groups[0], dict) else {}
    out: dict[str, float | None] = {k: _number(group.get(k)) for k in ("lr", "momentum", "weight_decay")}
    out["seed"] = _number(prov.get("seed"))
    out["batch_size"] = _number(prov.get("batch_size"))
    if out["batch_size"] is None and "batch_size" in traj.observables:
        values = traj.observable("batch_size")[1]
        out["batch_size"] = float(values.max()) if len(values) else None
    return out


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def varying(hypers: Mapping[str, Mapping[str, float | None]]) -> list[str]:
    """Hyper-parameters known for every run and not the same in all of them (seed last)."""
    if len(hypers) < 2:
        return []
    keys = []
    for key in HYPER_PARAMETERS:
        values = [h.get(key) for h in hypers.values()]
        if all(v is not None for v in values) and len(set(values)) > 1:
            keys.append(key)
    return keys


def sweep_points(table: list[dict], hypers: Mapping[str, Mapping[str, float | None]], key: str) -> list[dict]:
    """One point per run: the parameter's value and the first window's α, α_short, α_long
    (None where not reported) with α's interval, sorted by the parameter."""
    points = []
    for label, h in hypers.items():
        rows = [r for r in table if r["run"] == label]
        if not rows:
            continue
        first = min(rows, key=lambda r: r["t_w"])
        points.append(
            {
                "run": label,
                key: h[key],
                "alpha": first.get("alpha"),
                "alpha_ci": first.get("alpha_ci"),
                "alpha_short": first.get("alpha_short"),
                "alpha_long": first.get("alpha_long"),
            }
        )
    return sorted(points, key=lambda p: p[key])


def sweep_figure(points: list[dict], key: str, path: str | os.PathLike) -> None:
    """α (with its interval), α_short and α_long of the first window against ``key``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    x = [p[key] for p in points]
    alpha = [p["alpha"] if p["alpha"] is not None else float("nan") for p in points]
    low = [a - p["alpha_ci"][0] if p["alpha_ci"] else 0.0 for a, p in zip(alpha, points, strict=True)]
    high = [p["alpha_ci"][1] - a if p["alpha_ci"] else 0.0 for a, p in zip(alpha, points, strict=True)]
    ax.errorbar(x, alpha, yerr=[low, high], fmt="o-", capsize=3, label="α (one power law, 95 % interval)")
    for name, marker in (("alpha_short", "^"), ("alpha_long", "v")):
        pts = [(p[key], p[name]) for p in points if p[name] is not None]
        if pts:
            ax.plot(
                *zip(*pts, strict=True),
                marker,
                ls="none",
                label=name.replace("alpha_", "α ") + " (two regimes)",
            )
    ax.axhline(1.0, color="k", lw=0.5, ls="--")
    if min(x) > 0 and max(x) / min(x) > 10:
        ax.set_xscale("log")
    ax.set_xlabel(key.replace("_", " "))
    ax.set_ylabel("MSD exponent, first window")
    ax.legend(fontsize=7)
    save(fig, path)
