"""Side-by-side comparison of several runs (networks and toy models): table, overlays, report."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trajstore import jsonsafe
from trajstore.progress import Progress
from trajstore.reader import DEFAULT_MEMORY_LIMIT
from trajstore.reader import open as open_store
from trajstore.selection import select

from .exponents import smoothed_local_slope
from .layers_report import compare_layer_rows, compare_section_html
from .pipeline import Analysis, analysis_passes, analyze
from .report import _CSS, TOY_PHASES_CAPTION, _plt, save, step_length_label, toy_phase_figure
from .steps import ccdf
from .sweep import hyper_parameters, sweep_figure, sweep_points, varying


def compare_rows(name: str, a: Analysis, phases: dict | None = None) -> list[dict]:
    """One table row per window: the reported exponents (α_short, α_long, τ0 only where two
    regimes are supported; None otherwise, with the reason in ``undetermined``), α, the pooled
    step-length tail exponent and its verdict, H (None when undetermined), whether the window lies
    in the paper's ranges; for a toy run also the walkers' descent and near-minimum exponents
    (``phases``, from its metadata)."""
    from .verdicts import tail_verdict

    tail = a.tails.get("step_length")
    tail_v = tail_verdict(tail.to_dict()["tests"]) if tail else None
    msl_by_tw = {m.t_w: m for m in a.msl}
    rows = []
    for w in a.windows:
        e = w.exponents()
        msl = msl_by_tw.get(w.msd.t_w)
        und = dict(e["undetermined"])
        if tail is None and len(a.step_lengths_by_stride) > 1:
            und["tail_alpha"] = und["tail_verdict"] = (
                f"recorded at several strides ({', '.join(map(str, a.step_lengths_by_stride))} steps): "
                "its step lengths are not one quantity, so no pooled tail"
            )
        if msl is not None and msl.undetermined:
            und["hurst"] = msl.undetermined
        rows.append(
            {
                "run": name,
                "t_w": w.msd.t_w,
                "regimes": e["regimes"],
                "alpha_short": e["alpha_short"],
                "alpha_long": e["alpha_long"],
                "tau0": e["tau0"],
                "tau0_steps": e["tau0_steps"],
                "alpha": e["alpha"],
                "alpha_ci": e.get("alpha_ci"),
                "paper": {k: v["inside"] for k, v in e["paper"].items()},
                "tail_alpha": tail.alpha if tail else None,
                "tail_alpha_ci": tail.alpha_ci if tail else None,
                "tail_verdict": tail_v,
                "tail_stride_steps": a.step_stride if tail else None,
                "hurst": msl.hurst if msl else None,
                "descent_alpha": (phases or {}).get("descent", {}).get("alpha"),
                "near_minimum_alpha": (phases or {}).get("near_minimum", {}).get("alpha"),
                "undetermined": und,
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
    engine: Any = None,
) -> dict:
    """Analyse each store and write ``summary.json``, overlay figures and ``index.html``.

    ``windows`` may give a window length per store (toy runs are shorter than network runs).
    ``progress``: one bar with ETA over the passes of all stores on stderr (True; a plain line
    every few seconds when stderr is not a terminal), none (False), or only on a terminal (None).
    ``selection``: keyword arguments of :func:`trajstore.selection.select` (``steps``,
    ``tensors``, ``exclude``, ``trainable_only``) applied to every store. ``engine``: as for
    :func:`~trajstore.analysis.pipeline.analyze` (a Dask cluster).
    """
    out = Path(outdir)
    labels = labels or [Path(s).name for s in stores]
    results: list[tuple[str, Analysis]] = []
    phases: dict[str, dict | None] = {}
    hypers: dict[str, dict] = {}
    total = 0
    for path in stores:  # opening reads metadata only
        with open_store(path) as traj:
            part = select(traj, **(selection or {}))
            try:
                total += analysis_passes(part.n_records, (windows or {}).get(path, window), part)
            except ValueError as exc:  # (a store of 1 record): say which of the stores
                raise ValueError(f"{path}: {exc}") from None
    enabled = sys.stderr.isatty() if progress is None else progress
    with Progress("trajstore compare", total=total, unit=" passes", enabled=enabled) as bar:
        for label, path in zip(labels, stores, strict=True):
            bar.set_description(f"trajstore compare: {label}")
            with open_store(path) as traj:
                hypers[label] = hyper_parameters(traj)
                toy = traj.metadata.get("toy")
                phases[label] = toy.get("phases") if isinstance(toy, dict) else None
                win = (windows or {}).get(path, window)
                part = select(traj, **(selection or {}))
                result = analyze(part, win, memory_limit=memory_limit, progress=bar, engine=engine)
                results.append((label, result))
    out.mkdir(parents=True, exist_ok=True)  # after the analyses: a store that fails leaves no folder
    table = [row for label, a in results for row in compare_rows(label, a, phases[label])]
    summary = {
        "runs": [{"label": lb, "store": a.path, "summary": a.summary()} for lb, a in results],
        "table": table,
        "notes": stride_notes(results) + missing_curve_notes(results),
    }
    summary["layer_table"] = compare_layer_rows([(r["label"], r["summary"]) for r in summary["runs"]])
    keys = varying(hypers)
    if keys:  # a sweep: the first window's exponents against the parameter that varies
        points = sweep_points(table, hypers, keys[0])
        summary["sweep"] = {"parameter": keys[0], "also_varying": keys[1:], "points": points}
        sweep_figure(points, keys[0], out / "sweep.png")
    (out / "summary.json").write_text(jsonsafe.dumps(summary))  # strict: NaN/inf -> null
    _overlays(results, out)
    toys = [(label, a.toy_curves) for label, a in results if a.toy_curves is not None]
    if toys:  # the curves analyze() computed for each toy store
        toy_phase_figure(toys, out / "toy_phases.png")
    layers = compare_section_html(summary["layer_table"], [lb for lb, _ in results])
    _page(
        results,
        table,
        out,
        with_toy_figure=bool(toys),
        sweep=summary.get("sweep"),
        layers=layers,
        notes=summary["notes"],
    )
    return summary


def msd_overlay_curve(a, at: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(lags in optimizer steps, MSD over its value at lag ``at`` steps) of a run's whole-run MSD
    (else its first window's), usable lags only; ``at`` None: its first lag; a lag between two
    of its lags is interpolated on log-log axes. None when it cannot be drawn. Runs recorded at
    different strides share the step axis (record lags would put 10 steps of one at 1 of
    another) and, normalised at one lag in steps, coincide where their dynamics do."""
    m = a.whole_run_msd or a.windows[0].msd
    if not (m.finite and len(m.msd) > 1 and m.msd[1] > 0):
        return None
    idx = m.usable()  # lags with enough origins (pairs) only
    idx = idx[idx > 0]
    lags = np.asarray(m.lag_steps, dtype=np.float64)[idx]
    msd = np.asarray(m.msd, dtype=np.float64)[idx]
    if len(lags) == 0 or np.any(msd <= 0):
        return None
    ref = msd[0] if at is None else float(np.exp(np.interp(np.log(at), np.log(lags), np.log(msd))))
    return lags, msd / ref


def common_first_lag(results) -> float | None:
    """The largest first lag in steps of the runs' overlay curves: where all of them are drawn."""
    firsts = [c[0][0] for c in (msd_overlay_curve(a) for _, a in results) if c is not None]
    return max(firsts) if firsts else None


def _overlays(results, out: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    at = common_first_lag(results)  # every run normalised at the same lag in steps
    for k, (label, a) in enumerate(results):
        c = f"C{k}"
        curve = msd_overlay_curve(a, at)
        if curve is not None:
            lags, msd = curve
            axes[0].loglog(lags, msd, color=c, label=label)
            x, b = smoothed_local_slope(lags, msd)
            axes[1].semilogx(x, b, color=c)
        for stride, lengths, style in step_length_curves(a):
            x, p = ccdf(lengths / np.median(lengths))
            axes[2].loglog(x, p, style, color=c, lw=0.8, label=f"{label}: {step_length_label(stride)}")
        if a.msl:
            msl = a.msl[0]
            axes[3].loglog(msl.centers / msl.centers[0], msl.msl / msl.msl[0], ".-", color=c, ms=3, lw=0.8)
    axes[0].set_xlabel("τ (steps)")
    axes[0].set_ylabel(f"Δr²(τ) / Δr²({at:g} steps)" if at else "Δr²(τ)")
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="k", lw=0.5, ls="--")
    axes[1].set_xlabel("τ (steps)")
    axes[1].set_ylabel("local slope")
    axes[2].set_xlabel("step length / median (over each run's stride: see legend)")
    axes[2].set_ylabel("P(X ≥ x)")
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=6)
    axes[3].set_xlabel("Δr / smallest")
    axes[3].set_ylabel("MSL / smallest")
    save(fig, out / "overlay.png")


_CAPTION = (
    "MSD against the lag in steps, every run normalised at the same lag (the largest first lag; whole "
    "run, lags with enough origins), "
    "local slopes, step-length CCDFs "
    "(scaled by the median; each over its records' stride, ‖w(t+s) − w(t)‖ for stride s: curves of "
    "different strides are not the same quantity), MSL (first window, normalised)"
)


_STYLES = ("-", "--", ":", "-.")


def step_length_curves(a: Analysis) -> list[tuple[int, np.ndarray, str]]:
    """(stride in steps, step lengths, line style) of each stride a run was recorded at: a run
    resumed with another stride has one sample per stride, never one pooled sample."""
    return [
        (stride, x, _STYLES[k % len(_STYLES)])
        for k, (stride, x) in enumerate(a.step_lengths_by_stride.items())
        if len(x)
    ]


def missing_curve_notes(results: list[tuple[str, Analysis]]) -> list[str]:
    """Runs the MSD overlay cannot draw (non-finite weights in the whole run, or weights that
    never moved): said, rather than left out of the figure without a word."""
    missing = [label for label, a in results if msd_overlay_curve(a) is None]
    if not missing:
        return []
    return [
        f"no MSD curve of {', '.join(missing)} in the overlay: its whole-run MSD is not finite (non-finite "
        "weights at some record) or zero (the weights never moved); see its notes in runs[].summary"
    ]


def window_span_notes(results: list[tuple[str, Analysis]]) -> list[str]:
    """A note when the runs' first windows cover different stretches of training in optimizer
    steps (same records per window, different strides): the table, per-layer rows and sweep set
    their exponents side by side as if they described the same part of training."""
    spans = {}
    for label, a in results:
        if a.windows:
            m = a.windows[0].msd
            spans[label] = (m.t_w, m.t_w + int(round(float(np.nanmax(m.lag_steps)))))
    ends = [b - a for a, b in spans.values()]
    if len(ends) < 2 or max(ends) <= 1.1 * max(min(ends), 1):
        return []
    listed = "; ".join(f"{label}: steps {a}–{b}" for label, (a, b) in spans.items())
    return [
        f"the runs' first windows cover different stretches of training ({listed}): their exponents "
        "(table, per-layer rows, sweep) describe different parts of the run; give each run a window of "
        "the same span in steps to compare like with like (compare(windows=...))"
    ]


def stride_notes(results: list[tuple[str, Analysis]]) -> list[str]:
    """Notes of a comparison whose step lengths span different numbers of optimizer steps
    (between runs, or within one run): their CCDFs and tail exponents are not the same quantity."""
    strides = {label: list(a.step_lengths_by_stride) for label, a in results}
    notes = window_span_notes(results)
    every = sorted({s for v in strides.values() for s in v})
    if len(every) < 2:
        return notes
    listed = "; ".join(
        f"{label}: " + " and ".join("every step" if x == 1 else f"every {x} steps" for x in v)
        for label, v in strides.items()
        if v
    )
    return notes + [
        f"the runs' step lengths span different numbers of optimizer steps ({listed}): a step length over "
        "10 steps is not the quantity a step length over 1 step is, so their CCDFs (each labelled with "
        "its stride) and tail exponents (tail stride column) are not comparable across strides"
    ]


_COLUMNS = [
    ("run", "run", "store"),
    ("t_w", "window t_w", "optimizer step of the window's first record"),
    ("regimes", "regimes", "one power law, or two regimes supported against it"),
    ("alpha", "α (one power law)", "MSD exponent over all usable lags"),
    ("alpha_short", "α short", "two-regime exponent below τ0 (only where two regimes are supported)"),
    ("alpha_long", "α long", "two-regime exponent above τ0 (idem)"),
    ("tau0_steps", "τ0 (steps)", "crossover lag (idem)"),
    (
        "paper",
        "paper ranges",
        "inside the paper's exponent 1 ∈ [1.01, 1.42], exponent 2 ∈ [0.60, 0.88], τ0 ∈ [45, 400]",
    ),
    ("tail_alpha", "step tail α", "power-law exponent of the pooled step-length tail"),
    (
        "tail_stride_steps",
        "tail stride (steps)",
        "optimizer steps one step length spans (‖w(t+s) − w(t)‖): tails of different strides are "
        "not comparable",
    ),
    ("tail_verdict", "tail verdict", "likelihood-ratio verdict on the step-length tail"),
    ("hurst", "H", "Hurst exponent of the loss landscape along the path (– : undetermined)"),
    ("descent_alpha", "toy: descent α", "median over walkers of the descent-phase exponent"),
    ("near_minimum_alpha", "toy: near-minimum α", "median over walkers of the near-minimum exponent"),
]


def _page(
    results,
    table,
    out: Path,
    with_toy_figure: bool = False,
    sweep: dict | None = None,
    layers: str = "",
    notes: list[str] | None = None,
) -> None:
    import jinja2

    def cell(r, key):
        v = r[key]
        if key == "paper":
            vals = [x for x in v.values() if x is not None]
            return ("all inside" if all(vals) else f"{sum(vals)} of {len(vals)} inside") if vals else "–"
        if key == "tail_verdict" and v:
            return v.split(":", 1)[0]
        if key == "tau0_steps" and v is None and r["tau0"] is not None:
            v = r["tau0"]
        if v is None:
            return "–"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    rows = [
        [{"text": cell(r, c[0]), "why": r["undetermined"].get(c[0], "")} for c in _COLUMNS] for r in table
    ]
    page = (
        jinja2.Environment(autoescape=True)
        .from_string(_PAGE)
        .render(
            css=_CSS,
            runs=[(lb, a.path, a.n_records, _selection_note(a)) for lb, a in results],
            cols=_COLUMNS,
            rows=rows,
            caption=_CAPTION,
            toy=with_toy_figure,
            sweep=sweep,
            toy_caption=TOY_PHASES_CAPTION,
            layers=layers,
            notes=notes or [],
        )
    )
    (out / "index.html").write_text(page)


def _selection_note(a: Analysis) -> str:
    """A selection (trajstore.selection) says what part of the run was analysed."""
    return next((n for n in a.notes if n.startswith("selection: ")), "")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trajstore comparison</title>
<style>{{ css }}</style></head><body><h1>trajstore comparison</h1>
<ul>{% for lb, path, n, part in runs %}<li>{{ lb }}: {{ path }} ({{ n }} records
{%- if part %}; {{ part }}{% endif %})</li>
{% endfor %}</ul>
<table><tr>{% for c in cols %}<th title="{{ c[2] }}">{{ c[1] }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for v in r %}<td{% if v.why %} title="{{ v.why }}"{% endif %}>{{ v.text }}</td>
{% endfor %}</tr>{% endfor %}</table>
<p style="font-size:11px">{% for c in cols %}<b>{{ c[1] }}</b>: {{ c[2] }}. {% endfor %}
Hover a "–" for the reason a value is not reported.</p>
{{ layers }}
<figure><img src="overlay.png" alt="overlays"><figcaption>{{ caption }}</figcaption></figure>
{% if notes %}<h2>Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% if sweep %}<figure><img src="sweep.png" alt="sweep"><figcaption>The first window's MSD exponents against
{{ sweep.parameter }}, the hyper-parameter that varies over these runs
{%- if sweep.also_varying %} (also varying: {{ sweep.also_varying|join(", ") }}){% endif %}.</figcaption>
</figure>{% endif %}
{% if toy %}<figure><img src="toy_phases.png" alt="toy phases">
<figcaption>{{ toy_caption }}</figcaption></figure>{% endif %}
</body></html>
"""
