"""Side-by-side comparison of several runs (networks and toy models): table, overlays, report."""

from __future__ import annotations

import html
import os
import sys
from pathlib import Path

import numpy as np

from trajstore import jsonsafe
from trajstore.progress import Progress
from trajstore.reader import DEFAULT_MEMORY_LIMIT
from trajstore.reader import open as open_store
from trajstore.selection import select

from .exponents import smoothed_local_slope, usable_lags
from .pipeline import Analysis, analysis_passes, analyze
from .report import _CSS, TOY_PHASES_CAPTION, _plt, save, toy_phase_figure
from .steps import ccdf


def compare_rows(name: str, a: Analysis, phases: dict | None = None) -> list[dict]:
    """One table row per window: α_short, α_long, τ0, α, tail exponent, H; for a toy run also
    the walkers' descent and near-minimum exponents (``phases``, from its metadata)."""
    tail = a.tails.get("step_length")
    rows = []
    for i, w in enumerate(a.windows):
        two = w.two_regime
        msl = a.msl[i] if i < len(a.msl) else None
        rows.append(
            {
                "run": name,
                "t_w": w.msd.t_w,
                "alpha_short": two.alpha_short if two else None,
                "alpha_long": two.alpha_long if two else None,
                "tau0": two.tau0 if two else None,
                "alpha": w.power_law.alpha if w.power_law else None,
                "tail_alpha": tail.alpha if tail else None,
                "hurst": msl.hurst if msl else None,
                "descent_alpha": (phases or {}).get("descent", {}).get("alpha"),
                "near_minimum_alpha": (phases or {}).get("near_minimum", {}).get("alpha"),
            }
        )
    return rows


def compare(
    stores: list[str],
    outdir: str | os.PathLike,
    *,
    window: int = 1000,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    labels: list[str] | None = None,
    windows: dict[str, int] | None = None,
    progress: bool | None = None,
    selection: dict | None = None,
) -> dict:
    """Analyse each store and write ``summary.json``, overlay figures and ``index.html``.

    ``windows`` may give a window length per store (toy runs are shorter than network runs).
    ``progress``: one bar with ETA over the passes of all stores on stderr (True; a plain line
    every few seconds when stderr is not a terminal), none (False), or only on a terminal (None).
    ``selection``: keyword arguments of :func:`trajstore.selection.select` (``steps``,
    ``tensors``, ``exclude``) applied to every store.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    labels = labels or [Path(s).name for s in stores]
    results: list[tuple[str, Analysis]] = []
    phases: dict[str, dict | None] = {}
    total = 0
    for path in stores:  # opening reads metadata only
        with open_store(path) as traj:
            part = select(traj, **(selection or {}))
            total += analysis_passes(part.n_records, (windows or {}).get(path, window))
    enabled = sys.stderr.isatty() if progress is None else progress
    with Progress("trajstore compare", total=total, unit=" passes", enabled=enabled) as bar:
        for label, path in zip(labels, stores, strict=True):
            bar.set_description(f"trajstore compare: {label}")
            with open_store(path) as traj:
                toy = traj.metadata.get("toy")
                phases[label] = toy.get("phases") if isinstance(toy, dict) else None
                win = (windows or {}).get(path, window)
                part = select(traj, **(selection or {}))
                results.append((label, analyze(part, win, memory_limit=memory_limit, progress=bar)))
    table = [row for label, a in results for row in compare_rows(label, a, phases[label])]
    summary = {
        "runs": [{"label": lb, "store": a.path, "summary": a.summary()} for lb, a in results],
        "table": table,
    }
    (out / "summary.json").write_text(jsonsafe.dumps(summary))  # strict: NaN/inf -> null
    _overlays(results, out)
    toys = [(label, a.toy_curves) for label, a in results if a.toy_curves is not None]
    if toys:  # the curves analyze() computed for each toy store
        toy_phase_figure(toys, out / "toy_phases.png")
    _page(results, table, out, with_toy_figure=bool(toys))
    return summary


def _overlays(results, out: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for k, (label, a) in enumerate(results):
        c = f"C{k}"
        m = a.whole_run_msd or a.windows[0].msd
        if m.finite and m.msd[1] > 0:
            lags = usable_lags(len(m.msd))  # lags with enough origins only
            axes[0].loglog(lags, m.msd[lags] / m.msd[1], color=c, label=label)
            x, b = smoothed_local_slope(lags, m.msd[lags])
            axes[1].semilogx(x, b, color=c)
        if a.step_lengths is not None and len(a.step_lengths):
            x, p = ccdf(a.step_lengths / np.median(a.step_lengths))
            axes[2].loglog(x, p, color=c, lw=0.8)
        if a.msl:
            msl = a.msl[0]
            axes[3].loglog(msl.centers / msl.centers[0], msl.msl / msl.msl[0], ".-", color=c, ms=3, lw=0.8)
    axes[0].set_xlabel("τ (records)")
    axes[0].set_ylabel("Δr²(τ) / Δr²(1)")
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="k", lw=0.5, ls="--")
    axes[1].set_xlabel("τ")
    axes[1].set_ylabel("local slope")
    axes[2].set_xlabel("step length / median")
    axes[2].set_ylabel("P(X ≥ x)")
    axes[3].set_xlabel("Δr / smallest")
    axes[3].set_ylabel("MSL / smallest")
    save(fig, out / "overlay.png")


_CAPTION = (
    "MSD normalised at τ = 1 (whole run, lags with enough origins), local slopes, step-length CCDFs "
    "(scaled by the median), MSL (first window, normalised)"
)


_TOY_FIGURE = (
    "<figure><img src='toy_phases.png' alt='toy phases'>"
    f"<figcaption>{TOY_PHASES_CAPTION}</figcaption></figure>"
)


def _page(results, table, out: Path, with_toy_figure: bool = False) -> None:
    cols = ["run", "t_w", "alpha_short", "alpha_long", "tau0", "alpha", "tail_alpha", "hurst"]
    cols += ["descent_alpha", "near_minimum_alpha"]

    def cell(v):
        if v is None:
            return "–"
        return f"{v:.3g}" if isinstance(v, float) else html.escape(str(v))

    rows = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in cols) + "</tr>" for r in table)
    def part(a: Analysis) -> str:  # a selection (trajstore.selection) says what was analysed
        note = next((n for n in a.notes if n.startswith("selection: ")), None)
        return f"; {html.escape(note)}" if note else ""

    runs = "".join(
        f"<li>{html.escape(lb)}: {html.escape(a.path)} ({a.n_records} records{part(a)})</li>"
        for lb, a in results
    )
    head = "".join(f"<th>{c}</th>" for c in cols)
    page = "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'><title>trajstore comparison</title>",
            f"<style>{_CSS}</style>",
            "</head><body><h1>trajstore comparison</h1>",
            f"<ul>{runs}</ul><table><tr>{head}</tr>{rows}</table>",
            f"<figure><img src='overlay.png' alt='overlays'><figcaption>{_CAPTION}</figcaption></figure>",
            _TOY_FIGURE if with_toy_figure else "",
            "</body></html>",
        ]
    )
    (out / "index.html").write_text(page)
