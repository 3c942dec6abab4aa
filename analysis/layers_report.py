"""Per-layer results in the report and in ``compare``: the figure of α per layer type and per
tensor over t_w (with intervals), readable tables, and the rows of the per-layer comparison.

Everything here reads summary.json's ``windows[].layers`` / ``layer_types`` (``layers.py``), so
the page, the figure and the JSON show the same numbers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .layers import interval_of, layers_by_window

MAX_TENSOR_ROWS = 200  # larger models: the per-tensor table and curves are left to summary.json
FIGURE_CAPTION = (
    "MSD exponent α per layer type (left) and per tensor (right) over the window start t_w, with 95 % "
    "bootstrap intervals over blocks of each tensor's coordinates (stratified per tensor for a type); "
    "open markers: α without an interval (too few coordinates), missing: undetermined"
)


def fig_layers(summary: dict, path: str | os.PathLike) -> None:
    """α against t_w: per layer type (left; kinds solid, roles dashed) and per tensor (right)."""
    from .report import _plt, save

    t_w, types = layers_by_window(summary, "layer_types")
    _, tensors = layers_by_window(summary, "layers")
    if not types and not tensors:
        raise ValueError("no per-layer exponents")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, series, title in ((axes[0], types, "layer types"), (axes[1], tensors, "tensors")):
        shown = list(series.items())[:MAX_TENSOR_ROWS]
        for k, (name, entries) in enumerate(shown):
            color = plt.cm.tab10(k % 10) if len(shown) <= 10 else plt.cm.tab20(k % 20)
            _plot_series(
                ax, t_w, entries, name, color, dashed=any(e and e.get("by") == "role" for e in entries)
            )
        ax.axhline(1.0, color="k", lw=0.5, ls="--")
        ax.set_xlabel("t_w (step)")
        ax.set_title(title, fontsize=9)
        if len(shown) <= 20:
            ax.legend(fontsize=6, ncol=2 if len(shown) > 8 else 1)
    axes[0].set_ylabel("MSD exponent α (95 % interval)")
    save(fig, path)


def fig_layers_of(a, path: str | os.PathLike) -> None:
    """:func:`fig_layers` of an ``pipeline.Analysis`` (for report.FIGURES)."""
    ws = [{"t_w": w.msd.t_w, **w.layers} for w in a.windows]
    fig_layers({"windows": ws}, path)


def _plot_series(ax, t_w, entries, label, color, dashed=False) -> None:
    t = np.asarray(t_w, dtype=float)
    v = np.array([np.nan if interval_of(e)[0] is None else interval_of(e)[0] for e in entries])
    ax.plot(t, v, ls="--" if dashed else "-", lw=0.7, color=color, label=label)
    with_ci = [(ti, vi, ci) for ti, vi, (_, ci) in zip(t, v, map(interval_of, entries), strict=True) if ci]
    if with_ci:
        ti, vi, ci = (np.array(x, dtype=float) for x in zip(*with_ci, strict=True))
        ax.errorbar(ti, vi, yerr=[vi - ci[:, 0], ci[:, 1] - vi], fmt="o", ms=3, color=color, lw=0.8)
    bare = [
        (ti, vi) for ti, vi, e in zip(t, v, entries, strict=True) if np.isfinite(vi) and not interval_of(e)[1]
    ]
    if bare:
        ax.plot(*zip(*bare, strict=True), "o", ms=4, mfc="none", color=color)


def cell(entry: dict | None) -> dict:
    """One table cell: α [interval], or why there is none (``why`` for the hover text)."""
    if not entry:
        return {"text": "–", "why": "not in this window"}
    a, ci = interval_of(entry)
    und = entry.get("undetermined") or {}
    # the verdict, and why α or its interval is missing (the two-regime reasons are in the JSON)
    why = "; ".join([entry.get("verdict") or ""] + [und[k] for k in ("alpha", "alpha_ci") if k in und])
    if a is None:
        return {"text": "undetermined", "why": why}
    text = f"{a:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{a:.2f} (no interval)"
    if entry.get("regimes") == "two":  # either exponent may be undetermined (null)
        short, long_ = (entry.get(k) for k in ("alpha_short", "alpha_long"))
        fmt = [f"{v:.2f}" if v is not None else "undetermined" for v in (short, long_)]
        text += f"; two regimes {fmt[0]} → {fmt[1]}"
    return {"text": text, "why": why}


def report_tables(summary: dict) -> dict:
    """The report's per-layer tables: ``t_w`` (column heads), ``types`` rows [name, grouping,
    tensors, cells…] and ``tensors`` rows [name, layer type, parameters, cells…] (empty beyond
    ``MAX_TENSOR_ROWS`` tensors), and the classification's ``source``."""
    t_w, types = layers_by_window(summary, "layer_types")
    _, tensors = layers_by_window(summary, "layers")
    kinds = (summary.get("layer_kinds") or {}).get("tensors") or {}
    type_rows = []
    for name, entries in types.items():
        first = next(e for e in entries if e)
        by = "by module kind" if first.get("by") == "kind" else "by role, all kinds"
        type_rows.append([name, by, str(len(first.get("tensors") or []))] + [cell(e) for e in entries])
    tensor_rows = []
    if len(tensors) <= MAX_TENSOR_ROWS:
        for name, entries in tensors.items():
            k = kinds.get(name) or {}
            kind = k.get("kind", "other") + (f" ({k['module']})" if k.get("module") else "")
            size = next((e.get("n_params") for e in entries if e and e.get("n_params")), None)
            tensor_rows.append([name, kind, str(size or "–")] + [cell(e) for e in entries])
    return {
        "t_w": t_w,
        "types": type_rows,
        "tensors": tensor_rows,
        "n_tensors": len(tensors),
        "source": (summary.get("layer_kinds") or {}).get("source", ""),
    }


def compare_layer_rows(runs: list[tuple[str, dict]]) -> list[dict]:
    """The per-layer comparison across runs (``runs``: (label, summary)): one row per run,
    window and layer type or tensor, with α, its interval, regimes, verdict and undetermined."""
    rows = []
    for label, summary in runs:
        for w in summary.get("windows") or []:
            for key, by in (("layer_types", None), ("layers", "tensor")):
                for name, e in (w.get(key) or {}).items():
                    rows.append(
                        {
                            "run": label,
                            "t_w": w["t_w"],
                            "layer": name,
                            "by": by or e.get("by", "kind"),
                            "alpha": e.get("alpha"),
                            "alpha_ci": e.get("alpha_ci"),
                            "regimes": e.get("regimes"),
                            "verdict": e.get("verdict"),
                            "undetermined": e.get("undetermined") or {},
                        }
                    )
    return rows


def compare_table(rows: list[dict], runs: list[str]) -> dict:
    """The comparison page's per-layer table: one row per (layer type or tensor, window index),
    one column per run. Tensors appear only when at most ``MAX_TENSOR_ROWS`` names in all."""
    windows: dict[str, list[int]] = {}
    for r in rows:
        tws = windows.setdefault(r["run"], [])
        if r["t_w"] not in tws:
            tws.append(r["t_w"])
    by_key = {(r["run"], r["layer"], windows[r["run"]].index(r["t_w"])): r for r in rows}
    names = []
    for r in rows:
        if (r["layer"], r["by"]) not in names:
            names.append((r["layer"], r["by"]))
    types = [n for n in names if n[1] != "tensor"]
    tensors = [n for n in names if n[1] == "tensor"]
    if len(tensors) > MAX_TENSOR_ROWS:
        tensors = []
    n_win = max((len(v) for v in windows.values()), default=0)
    out = []
    for name, by in types + tensors:
        for k in range(n_win):
            cells = [cell(by_key.get((run, name, k))) for run in runs]
            if all(c["text"] == "–" for c in cells):
                continue
            # the k-th windows of two runs start at different steps when their windows or strides
            # differ: the row says the step, or each cell says its own
            starts = {run: windows[run][k] for run in runs if k < len(windows.get(run, []))}
            same = len(set(starts.values())) == 1
            if not same:
                for run, c in zip(runs, cells, strict=True):
                    if run in starts and c["text"] != "–":
                        c["text"] += f" (t_w = {starts[run]})"
            label = {"tensor": "tensor", "kind": "layer type", "role": "role"}.get(by, by)
            where = f"t_w = {next(iter(starts.values()))}" if same else f"window {k} (t_w differs)"
            out.append(
                {"layer": name, "what": label, "window": k, "t_w": starts, "where": where, "cells": cells}
            )
    return {"runs": runs, "rows": out}


def write_figure(summary: dict, outdir: str | os.PathLike, name: str = "layers.png") -> bool:
    """Draw :func:`fig_layers` into ``outdir``; False when there is nothing to draw."""
    try:
        fig_layers(summary, Path(outdir) / name)
    except ValueError:
        return False
    return True


_SECTION = """{% if t.types %}<h2>Diffusion exponent per layer</h2>
<p class="small">α of each layer type's and each tensor's own MSD with its 95 % bootstrap interval (over
blocks of the tensor's coordinates; for a type, stratified per tensor). "no interval": too few
coordinates to resample; hover a cell for the verdict or the reason. Layer types known from:
{{ t.source }}.</p>
<table><tr><th>layer type</th><th>grouping</th><th>tensors</th>
{%- for tw in t.t_w %}<th>α at t_w = {{ tw }}</th>{% endfor %}</tr>
{% for r in t.types %}<tr>{% for v in r[:3] %}<td>{{ v }}</td>{% endfor %}
{%- for c in r[3:] %}<td title="{{ c.why }}"{% if c.text == "undetermined" %} class="und"{% endif %}>
{{- c.text }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if t.tensors %}<table><tr><th>tensor</th><th>layer type</th><th>parameters</th>
{%- for tw in t.t_w %}<th>α at t_w = {{ tw }}</th>{% endfor %}</tr>
{% for r in t.tensors %}<tr>{% for v in r[:3] %}<td>{{ v }}</td>{% endfor %}
{%- for c in r[3:] %}<td title="{{ c.why }}"{% if c.text == "undetermined" %} class="und"{% endif %}>
{{- c.text }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% else %}<p class="small">{{ t.n_tensors }} tensors: the per-tensor results are in summary.json
(windows[].layers).</p>{% endif %}{% endif %}"""


def section_html(summary: dict):
    """The report's per-layer section (HTML, escaped by Jinja2) for the page template."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return Markup(env.from_string(_SECTION).render(t=report_tables(summary)))


_COMPARE_SECTION = """{% if t.rows %}<h2>Diffusion exponent per layer, run by run</h2>
<table><tr><th>layer</th><th>grouping</th><th>window (start step t_w)</th>
{%- for r in t.runs %}<th>α: {{ r }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr><td>{{ row.layer }}</td><td>{{ row.what }}</td><td>{{ row.where }}</td>
{%- for c in row.cells %}<td title="{{ c.why }}"{% if c.text == "undetermined" %} class="und"{% endif %}>
{{- c.text }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p style="font-size:11px">α of each layer type's (and, for at most {{ max_rows }} tensors, each tensor's)
own MSD with its 95 % bootstrap interval, in the k-th window of each run (window 0 first; where the runs'
k-th windows start at different optimizer steps, each cell gives its own t_w); hover a
cell for the verdict or the reason a value is undetermined. summary.json: layer_table.</p>{% endif %}"""


def compare_section_html(rows: list[dict], runs: list[str]):
    """The comparison page's per-layer section (HTML, escaped by Jinja2)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(_COMPARE_SECTION).render(t=compare_table(rows, runs), max_rows=MAX_TENSOR_ROWS)
    return Markup(html)
