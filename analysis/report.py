"""Figures (PNG, in the style of the paper) and the HTML report of an :class:`Analysis`.

Needs matplotlib (the ``plot`` extra); imported only here.
"""

from __future__ import annotations

import html
import os
import warnings
from pathlib import Path

import numpy as np

from trajstore import jsonsafe

from .layers_report import FIGURE_CAPTION, fig_layers_of, section_html
from .pipeline import Analysis
from .steps import ccdf


def _tail_ci_text(ci) -> str:
    """A tail exponent's 95 % interval as printed, or why there is none."""
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "(no interval)"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike) -> None:
    """Lay out, write (PNG, 120 dpi, and the same figure as SVG beside it) and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.savefig(Path(path).with_suffix(".svg"))
    _plt().close(fig)


def _legend(ax, **kwargs) -> None:
    """A legend, only when something drawn has a label (a panel without data draws none rather
    than have matplotlib warn on the terminal)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _colors(n: int):
    plt = _plt()
    return plt.cm.viridis(np.linspace(0, 0.9, max(n, 1)))


def fig_msd(a: Analysis, path: Path) -> None:
    """MSD per window against the lag in optimizer steps, with its reported fit: the two-regime
    fit (solid, τ0 marked) where two regimes are supported, else the single power law (dashed),
    over the fitted lags (``msd_figure.msd_curves``: windows recorded at different strides share
    the step axis)."""
    from .msd_figure import msd_curves

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    curves = msd_curves(a)
    cols = _colors(len(curves))[: len(curves)]  # (no curve: every window non-finite, an empty panel)
    strides = {c.stride for c in curves}
    for cv, c in zip(curves, cols, strict=True):
        label = f"t_w = {cv.t_w}"
        if len(strides) > 1:  # say which windows are recorded how
            label += f", every {cv.stride} steps" if cv.stride else ", uneven spacing"
        ax.loglog(cv.lag_steps, cv.msd, color=c, lw=1, alpha=0.8, label=label)
        if cv.fit == "two":
            ax.loglog(cv.fit_lag_steps, cv.fit_msd, color=c, lw=2.2, alpha=0.6)
            ax.axvline(cv.tau0_steps, color=c, lw=0.8, ls=":")
            ax.plot([cv.tau0_steps], [cv.tau0_msd], "o", color=c, ms=5)
        elif cv.fit == "one":
            ax.loglog(cv.fit_lag_steps, cv.fit_msd, "--", color=c, lw=1.6, alpha=0.7)
    ax.set_xlabel("lag τ (optimizer steps)")
    ax.set_ylabel("Δr²(τ)")
    ax.set_title(
        "Windowed time-averaged MSD; reported fits (solid: two regimes, τ0 dotted; dashed: one)", fontsize=8
    )
    if len(curves) <= 12:
        _legend(ax, fontsize=7, loc="upper left")
    inset = ax.inset_axes([0.62, 0.1, 0.35, 0.35])
    for cv, c in zip(curves, cols, strict=True):
        if len(cv.slope):
            inset.semilogx(cv.slope_lag_steps, cv.slope, color=c, lw=0.8)
    inset.axhline(1.0, color="k", lw=0.5, ls="--")
    inset.set_xlabel("τ (steps)", fontsize=7)
    inset.set_ylabel("β(τ)", fontsize=7)
    inset.tick_params(labelsize=6)
    save(fig, path)


def fig_alpha(a: Analysis, path: Path) -> None:
    """Exponents against t_w as reported: α_short/α_long only where two regimes are supported,
    the single-fit α elsewhere; the paper's ranges shaded."""
    from .verdicts import PAPER

    plt = _plt()
    rows = [(w.msd.t_w, w.exponents()) for w in a.windows]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    axes[0].axhspan(*PAPER["alpha_short"], color="C0", alpha=0.1, label="paper: exponent 1")
    axes[0].axhspan(*PAPER["alpha_long"], color="C3", alpha=0.1, label="paper: exponent 2")
    axes[1].axhspan(*PAPER["tau0_steps"], color="0.5", alpha=0.15, label="paper: τ0 (steps)")
    for key, label, color, fmt in (
        ("alpha_short", "α short", "C0", "o"),
        ("alpha_long", "α long", "C3", "o"),
        ("alpha", "α (single fit)", "0.4", "s"),
    ):
        pts = [(t, e[key], e[key + "_ci"]) for t, e in rows if e.get(key) is not None and e.get(key + "_ci")]
        if pts:
            t, v, ci = (np.array(x, dtype=float) for x in zip(*pts, strict=True))
            axes[0].errorbar(t, v, yerr=[v - ci[:, 0], ci[:, 1] - v], fmt=fmt, color=color, label=label, ms=4)
    taus = [(t, e.get("tau0_steps") or e["tau0"]) for t, e in rows if e.get("tau0") is not None]
    if taus:
        t, v = zip(*taus, strict=True)
        axes[1].plot(t, v, "o", ms=4, label="τ0 (two regimes supported)")
    axes[0].axhline(1.0, color="k", lw=0.5, ls="--")
    axes[0].set_xlabel("t_w (step)")
    axes[0].set_ylabel("MSD exponent (95 % bootstrap interval)")
    _legend(axes[0], fontsize=6)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("t_w (step)")
    axes[1].set_ylabel("crossover τ0 (steps)")
    _legend(axes[1], fontsize=6)
    save(fig, path)


def fig_training(a: Analysis, path: Path) -> None:
    """The recorded training loss and learning rate against the step."""
    curves = a.curves
    if not curves:
        raise ValueError("no loss or learning-rate observables")
    plt = _plt()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.4), squeeze=False)
    for ax, (name, (steps, values)) in zip(axes[0], curves.items(), strict=True):
        ax.plot(steps, values, lw=0.6)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        if name.startswith("loss") and np.all(values[np.isfinite(values)] > 0):
            ax.set_yscale("log")
    save(fig, path)


def fig_steps(a: Analysis, path: Path) -> None:
    plt = _plt()
    w = next((w for w in a.windows if w.displacements.lags), None)  # equally spaced windows only
    if w is None:
        raise ValueError("no window's records are equally spaced in steps, so no displacements at fixed lags")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    cols = _colors(len(w.displacements.lags))
    for tau, c in zip(w.displacements.lags, cols, strict=True):
        d = w.displacements.distributions[tau]
        s = w.displacements.collapsed[tau]
        # displacement lags count records: τ records = stride × τ optimizer steps
        label = f"τ = {tau * (w.stride or 1)} steps"
        axes[0].loglog(d.centers, d.density, ".-", color=c, ms=3, lw=0.8, label=label)
        axes[1].loglog(s.centers, s.density, ".-", color=c, ms=3, lw=0.8)
    axes[0].set_xlabel("‖w(t+τ) − w(t)‖")
    axes[0].set_ylabel("density")
    every = "every step" if w.stride == 1 else f"every {w.stride} steps"
    axes[0].set_title(f"Displacements, window t_w = {w.msd.t_w} (records {every})", fontsize=9)
    _legend(axes[0], fontsize=6, ncol=2)
    axes[1].set_xlabel("‖w(t+τ) − w(t)‖ / sqrt(Δr²(τ))")
    axes[1].set_title("Scaling collapse", fontsize=9)
    save(fig, path)


def step_length_label(stride: int | None) -> str:
    """What a step length is, in steps: ‖w(t+1) − w(t)‖, or ‖w(t+10) − w(t)‖ at stride 10."""
    return "‖w(t+1) − w(t)‖" if stride in (1, None) else f"‖w(t+{stride}) − w(t)‖"


def fig_tail(a: Analysis, path: Path) -> None:
    """The step-length CCDF with its pooled power-law fit; a run recorded at several strides gets
    one CCDF per stride (their lengths span different numbers of steps) and no pooled fit."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    by_stride = a.step_lengths_by_stride or (
        {a.step_stride or 1: a.step_lengths} if a.step_lengths is not None else {}
    )
    by_stride = {s: x for s, x in by_stride.items() if len(x)}
    for k, (stride, lengths) in enumerate(by_stride.items()):
        x, p = ccdf(lengths)
        ax.loglog(
            x,
            p,
            ".",
            ms=2,
            color="0.3" if len(by_stride) == 1 else f"C{k}",
            label=f"{step_length_label(stride)}",
        )
    fit = a.tails.get("step_length")
    if fit is not None and len(by_stride) == 1:
        x, _ = ccdf(next(iter(by_stride.values())))
        frac = fit.n_tail / fit.n
        xs = np.logspace(np.log10(fit.xmin), np.log10(x.max()), 50)
        ax.loglog(
            xs,
            frac * (xs / fit.xmin) ** (1 - fit.alpha),
            "r-",
            label=f"power law α = {fit.alpha:.2f} {_tail_ci_text(fit.alpha_ci)}, x_min = {fit.xmin:.3g}",
        )
        from .verdicts import tail_kind, tail_verdict

        verdict = tail_verdict(fit.to_dict()["tests"])
        ax.set_title(f"pooled over the run; verdict: {tail_kind(verdict)}", fontsize=8)
    elif len(by_stride) > 1:
        ax.set_title("recorded at several strides: one CCDF per stride, no pooled fit", fontsize=8)
    stride = next(iter(by_stride), 1)
    ax.set_xlabel(step_length_label(stride) if len(by_stride) <= 1 else "step length over the stride")
    ax.set_ylabel("P(X ≥ x)")
    _legend(ax, fontsize=7)
    save(fig, path)


def fig_geometry(a: Analysis, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    cols = _colors(len(a.windows))
    for w, c in zip(a.windows, cols, strict=True):
        g = w.geometry
        s, r = g.msd_vs_contour
        if len(s):
            axes[0].loglog(s, r, ".-", color=c, ms=3, lw=0.8)
        stride = w.stride or 1  # the lags count records: k records = stride × k steps
        if g.direction_autocorr:
            k = sorted(g.direction_autocorr)
            x = [stride * i for i in k]
            axes[1].semilogx(x, [g.direction_autocorr[i] for i in k], "o-", color=c, ms=3)
        if g.step_autocorr:
            k = sorted(g.step_autocorr)
            x = [stride * i for i in k]
            axes[2].semilogx(x, [g.step_autocorr[i] for i in k], "o-", color=c, ms=3)
    axes[0].set_xlabel("contour length s")
    axes[0].set_ylabel("Δr²")
    axes[0].set_title("MSD vs contour length", fontsize=9)
    axes[1].set_xlabel("lag k (optimizer steps)")
    axes[1].set_ylabel("mean cos(Δw(t), Δw(t+k))")
    axes[2].set_xlabel("lag k (optimizer steps)")
    axes[2].set_ylabel("step-length autocorrelation")
    save(fig, path)


def fig_msl(a: Analysis, path: Path) -> None:
    if not a.msl:
        raise ValueError("no MSL (see the notes for why)")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    cols = _colors(len(a.msl))
    for m, c in zip(a.msl, cols, strict=True):
        h = f"H = {m.hurst:.2f}" if m.hurst is not None else "H undetermined"
        axes[0].loglog(m.centers, m.msl, ".-", color=c, ms=3, lw=0.8, label=f"t_w = {m.t_w}, {h}")
        if m.fit_range is not None:
            axes[0].axvspan(*m.fit_range, color=c, alpha=0.05)
        if m.noise_floor is not None:
            axes[0].axhline(m.noise_floor, color=c, lw=0.6, ls=":")
        if len(m.contour_centers):
            axes[1].loglog(m.contour_centers, m.msl_contour, ".-", color=c, ms=3, lw=0.8)
    axes[0].set_xlabel("Δr = ‖w_j − w_i‖")
    axes[0].set_ylabel("MSL = ⟨(L_j − L_i)²⟩")
    _legend(axes[0], fontsize=6)
    axes[1].set_xlabel("contour length s")
    axes[1].set_ylabel("MSL")
    save(fig, path)


def fig_fluctuations(a: Analysis, path: Path) -> None:
    f = a.fluct
    if f is None:
        raise ValueError("no loss fluctuations (see the notes for why)")
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.5))
    axes[0].loglog(f.dl_distribution.centers, f.dl_distribution.density, ".-", ms=3)
    axes[0].set_xlabel("|ΔL|")
    axes[0].set_ylabel("density")
    if len(f.durations):
        x, p = ccdf(f.durations)
        axes[1].loglog(x, p, ".", ms=3)
        if f.durations_fit is not None:
            d = f.durations_fit
            xs = np.logspace(np.log10(d.xmin), np.log10(x.max()), 30)
            axes[1].loglog(
                xs, (d.n_tail / d.n) * (xs / d.xmin) ** (1 - d.alpha), "r-", label=f"α = {d.alpha:.2f}"
            )
            _legend(axes[1], fontsize=7)
    # the series is logged every s = increment_steps optimizer steps: durations count increments
    # of s steps, the moving variance runs over 100 values, frequencies are per value
    s = f.increment_steps or 1
    unit = "steps" if s == 1 else f"increments of {s} steps"
    axes[1].set_xlabel(f"avalanche duration ({unit})")
    axes[1].set_ylabel("P(D ≥ d)")
    first = f.stretch_steps[0] if f.stretch_steps else 0
    axes[2].plot(first + s * np.arange(len(f.moving_var)), f.moving_var, lw=0.6)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("step (first of the 100 values)" if f.stretch_steps else "value of the loss series")
    axes[2].set_ylabel(f"moving variance of L (100 values, {100 * s} steps)")
    ok = f.frequencies > 0
    axes[3].loglog(f.frequencies[ok] / s, f.power[ok], lw=0.8)
    axes[3].set_xlabel("frequency (1/step)")
    slope = f"slope {f.spectrum_slope:.2f}" if np.isfinite(f.spectrum_slope) else "slope undetermined"
    axes[3].set_ylabel(f"power ({slope})")
    save(fig, path)


def plot_phase_curves(ax, curves: dict, label: str, color: str) -> None:
    """Draw a toy run's descent (solid) and near-minimum (dashed) MSD curves on ``ax``."""
    for phase, style in (("descent", "-"), ("near_minimum", "--")):
        lags, msd = curves[phase]
        if len(lags):
            ax.loglog(lags, msd, style, color=color, label=f"{label}: {phase.replace('_', ' ')}")


def finish_phase_axes(ax) -> None:
    """Reference slopes, labels and legend of a toy-phase figure."""
    ax.plot([1, 10], [1e-4, 1e-2], "k:", lw=0.8, label="slope 2 (ballistic)")
    ax.plot([1, 100], [1e-5, 1e-3], "k-.", lw=0.8, label="slope 1 (normal)")
    ax.set_xlabel("τ (steps)")
    ax.set_ylabel("Δr²(τ), geometric mean over walkers")
    _legend(ax, fontsize=6)


def toy_phase_figure(runs: list[tuple[str, dict]], path: str | os.PathLike) -> None:
    """Descent and near-minimum MSD curves (``toy_phases.phase_msd``) of each (label, curves)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for k, (label, curves) in enumerate(runs):
        plot_phase_curves(ax, curves, label, f"C{k}")
    finish_phase_axes(ax)
    save(fig, path)


def fig_toy_phases(a: Analysis, path: Path) -> None:
    toy_phase_figure([(Path(a.path).name, a.toy_curves)], path)


TOY_PHASES_CAPTION = (
    "Toy walkers: MSD of the descent (solid) and near-minimum phase (dashed), geometric mean over "
    "walkers (the paper's Fig. 4b/4f; phases defined in docs/analysis.md)"
)

FIGURES = {
    "training.png": (fig_training, "Training loss and learning rate as recorded"),
    "msd.png": (
        fig_msd,
        "MSD per window against the lag in optimizer steps (log–log) with the reported fits over "
        "their lag ranges (solid: two regimes, τ0 dotted; dashed: one power law) and the local slope "
        "β(τ) inset",
    ),
    "exponents.png": (
        fig_alpha,
        "Exponents over training as reported (two-regime values only where supported; 95 % bootstrap "
        "intervals) and τ0; the paper's ranges shaded",
    ),
    "layers.png": (fig_layers_of, FIGURE_CAPTION),  # per-layer exponents (layers_report.py)
    "displacements.png": (fig_steps, "Displacement-length distributions and their collapse"),
    "tail.png": (
        fig_tail,
        "Step-length CCDF with the power-law tail fit (a step spans the records' stride in optimizer "
        "steps; a run recorded at several strides: one CCDF per stride, no pooled fit)",
    ),
    "geometry.png": (fig_geometry, "Path geometry"),
    "msl.png": (
        fig_msl,
        "Mean squared loss difference against distance and contour length (landscape roughness; "
        "fit ranges shaded, noise floors dotted)",
    ),
    "fluctuations.png": (
        fig_fluctuations,
        "Loss fluctuations: ΔL, avalanche durations, moving variance, spectrum",
    ),
}


_CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto;line-height:1.4} "
    "table{border-collapse:collapse;font-size:12px;margin:6px 0} "
    "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top} th{background:#f4f4f4} "
    "img{max-width:100%} figure{display:inline-block;margin:8px;max-width:48%} "
    ".headline{background:#f7f7ee;padding:8px 14px;border-left:4px solid #997} "
    ".und{color:#955} .small{font-size:11px;color:#555}"
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trajstore report: {{ title }}</title>
<style>{{ css }}</style></head><body>
<h1>trajstore report</h1>
<p>{{ title }}: {{ n_records }} records, {{ n_params }} parameters, windows of {{ window }} records.</p>
<h2>Findings</h2>
<div class="headline">{% for s in headline %}<p>{{ s }}</p>{% endfor %}</div>
<h2>Diffusion per window</h2>
<table><tr>{% for c in diff_cols %}<th title="{{ c[2] }}">{{ c[1] }}</th>{% endfor %}</tr>
{% for r in diff_rows %}<tr>{% for v in r %}
<td{% if v.und %} class="und" title="{{ v.und }}"{% endif %}>{{ v.text }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p class="small">{% for c in diff_cols %}<b>{{ c[1] }}</b>: {{ c[2] }}. {% endfor %}</p>
{% if lag_rows %}<h2>Lags and pairs</h2>
<table><tr><th>window t_w</th><th>records</th><th>spacing</th><th>distinct lags</th>
<th>lags fitted (steps)</th><th>pairs per fitted lag</th><th>lags with fewer pairs (not fitted)</th></tr>
{% for r in lag_rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="small">The MSD at a lag averages the pairs of records that lag apart within one segment. Fitted:
equally spaced records, lags with at least T/4 pairs (T records in the window); otherwise lags whose log bin
(10 per decade) holds T/4 pairs, up to 3/4 of the window's span in steps (summary.json lag_pairs).</p>
{% endif %}{% if segments %}<p>Segments (a resume that did not continue the trajectory starts a new one; no
window, lag or increment spans a boundary): {% for g in segments %}records {{ g.start_record }}–
{{- g.stop_record - 1 }}
(steps {{ g.start_step }}–{{ g.last_step }}){% if not loop.last %}; {% endif %}{% endfor %}.</p>{% endif %}
{% if selection_line %}<p>Selection: {{ selection_line }}</p>{% endif %}
<h2>This run beside the paper</h2>
<table><tr><th>window t_w</th>{% for k in paper_keys %}<th>{{ paper_labels[k] }}</th>{% endfor %}</tr>
{% for r in paper_rows %}<tr><td>{{ r.t_w }}</td>{% for c in r.cells %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p class="small">Paper: Chen, Qu &amp; Gong (2022), ResNets on CIFAR-10 (depth × batch × shortcut grid). A
two-regime value is compared only where this run supports two regimes.</p>
<h2>Step-length tails</h2>
<table><tr><th>sample</th><th>power-law α [95 % interval,
robust to serial dependence]</th><th>x_min</th><th>points in the tail / all</th>
<th>verdict (likelihood-ratio tests)</th></tr>
{% for r in tail_rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if stable_rows %}<h2>α-stable fits per window</h2>
<table><tr><th>window t_w</th><th>update components: α (McCulloch)</th><th>Mohammadi α</th>
<th>loss increments ΔL: α</th><th>Mohammadi α</th></tr>
{% for r in stable_rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="small">{{ stable_note }}</p>{% endif %}
{% if land_rows %}<h2>Landscape roughness</h2>
<table><tr><th>window t_w</th><th>Hurst H</th><th>profile dimension 2 − H</th><th>fit range Δr</th>
<th>noise floor F (loss²)</th><th>MSL − F dynamic range</th></tr>
{% for r in land_rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="small">95 % intervals of H: parametric bootstrap over Gaussian landscapes with the fitted
variogram and noise, refitted as the data were (coverage 0.94 on fractional Brownian landscapes of
known H; docs/analysis.md).</p>{% endif %}
{{ layer_section }}
{% if toy_rows %}<h2>Toy walkers (distribution over walkers, never one walker)</h2>
<table><tr><th>phase</th><th>median α</th><th>quartiles</th><th>fraction of walkers with α &gt; 1</th>
<th>walkers</th><th>successive-step cosine</th></tr>
{% for r in toy_rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% if grad_rows %}<h2>Gradient noise</h2>
<table><tr><th>window t_w</th><th>α-stable α of gradient components</th></tr>
{% for r in grad_rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<h2>Figures</h2>
{% for f in figures %}<figure><a href="{{ f.svg }}"><img src="{{ f.png }}" alt="{{ f.caption }}"></a>
<figcaption>{{ f.caption }} (<a href="{{ f.svg }}">SVG</a>)</figcaption></figure>
{% endfor %}
{% if links %}<h2>See also</h2><ul>{% for href, text in links %}
<li><a href="{{ href }}">{{ text }}</a></li>{% endfor %}</ul>{% endif %}
<h2>Notes</h2><ul>{% for n in notes %}<li>{{ n }}</li>{% else %}<li>none</li>{% endfor %}</ul>
<h2>Definitions</h2><dl>{% for k, v in definitions %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
</body></html>
"""

# (summary key, column title, definition) of the diffusion table
DIFFUSION_COLUMNS = [
    ("t_w", "window t_w", "optimizer step of the window's first record"),
    ("regimes", "regimes", "one power law, or two regimes supported against it (bootstrap test)"),
    ("alpha", "α (one power law)", "exponent of Δr² ∝ τ^α over all usable lags, 95 % bootstrap interval"),
    (
        "alpha_lag_range",
        "lags fitted (steps)",
        "first and last log-binned lag of the fit, in optimizer steps",
    ),
    (
        "alpha_short",
        "α short",
        "exponent below τ0 (two-regime fit; shown only when two regimes are supported)",
    ),
    ("alpha_long", "α long", "exponent above τ0 (idem)"),
    ("tau0_steps", "τ0 (steps)", "crossover lag in optimizer steps (idem)"),
    (
        "alpha_noise_ratio",
        "misfit of one power law",
        "residuals of the single fit in units of the sampling noise",
    ),
    ("verdict", "verdict", "the window's diffusion regime in words"),
]


def _num(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _with_ci(v, ci) -> str:
    if v is None:
        return "–"
    return f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{v:.2f}"


def _cell(w: dict, key: str) -> dict:
    und = (w.get("undetermined") or {}).get(key)
    if key in ("alpha", "alpha_short", "alpha_long"):
        text = _with_ci(w.get(key), w.get(key + "_ci"))
    elif key == "tau0_steps":
        v = w.get(key) if w.get(key) is not None else w.get("tau0")
        text = _num(v)
    elif key == "alpha_lag_range":  # in steps: a window recorded every 10 steps has record lag 1 = 10 steps
        r = w.get("alpha_lag_range_steps") or w.get(key)
        text = f"{r[0]:.3g}–{r[1]:.3g}" if r else "–"
    elif key == "alpha_noise_ratio":
        v = w.get(key)
        text = f"{v:.1f}×" if v is not None else "–"
    else:
        text = _num(w.get(key))
    if key == "t_w" and w.get("partial"):
        text += " (partial)"
    if und and text == "–":
        text = "– (one regime)" if w.get("regimes") == "one" else "undetermined"
    return {"text": text, "und": und}


def _paper_cell(w: dict, key: str) -> str:
    v = w.get(key) if key != "tau0_steps" else (w.get("tau0_steps") or None)
    inside = w["paper"][key]["inside"]
    if v is None:
        return "– (" + ("one regime" if w.get("regimes") == "one" else "undetermined") + ")"
    return f"{v:.3g}: {'inside' if inside else 'outside'}"


def _update_label(ws: list[dict]) -> str:
    """What an update component spans: w_k(t+s) − w_k(t) for records every s steps."""
    fitted = [w for w in ws if (w.get("stable") or {}).get("update_components")]
    strides = sorted({w.get("stride") for w in fitted} - {None})
    if len(strides) > 1:
        return "w_k(t+s) − w_k(t) over each window's stride s (" + ", ".join(map(str, strides)) + " steps)"
    s = strides[0] if strides else 1
    return "w_k(t+1) − w_k(t)" if s == 1 else f"w_k(t+{s}) − w_k(t) (records every {s} steps)"


def _stable_cells(w: dict) -> list[str]:
    out = [str(w["t_w"])]
    for key in ("update_components", "loss_increments"):
        st = (w.get("stable") or {}).get(key)
        why = (w.get("undetermined") or {}).get(f"stable.{key}")
        if st:
            out += [f"{st['alpha']:.2f}", f"{st['mohammadi_alpha']:.2f}"]
        elif why:  # e.g. a bfloat16 model: the updates are multiples of the weights' resolution
            out += [f"undetermined: {why}", "undetermined"]
        else:
            out += ["–", "–"]
    return out


def add_link(outdir: str | os.PathLike, href: str, text: str) -> None:
    """Add a link to the "See also" list of an existing report (valid HTML, before </body>)."""
    page = Path(outdir) / "index.html"
    html_text = page.read_text()
    item = f"<li><a href='{html.escape(href)}'>{html.escape(text)}</a></li>"
    if "<h2>See also</h2><ul>" in html_text:
        html_text = html_text.replace("<h2>See also</h2><ul>", "<h2>See also</h2><ul>" + item, 1)
    else:
        html_text = html_text.replace(
            "<h2>Notes</h2>", f"<h2>See also</h2><ul>{item}</ul>\n<h2>Notes</h2>", 1
        )
    page.write_text(html_text)


def _lag_row(w: dict) -> list[str]:
    """A window's row of the lags-and-pairs table (summary.json ``lag_pairs``)."""
    lp = w["lag_pairs"]
    fitted = lp["usable_lag_steps"]
    pairs = lp["usable_pairs"]
    return [
        str(w["t_w"]),
        str(w["n_records"]),
        ("every step" if w["stride"] == 1 else f"every {w['stride']} steps")
        if lp["equally_spaced"] and w.get("stride")
        else "irregular (by step lag)",
        str(lp["n_lags"]),
        f"{fitted[0]:.4g}–{fitted[1]:.4g}" if fitted else "none",
        f"{pairs[0]}–{pairs[1]}" if pairs else "–",
        str(lp["n_lags"] - lp["n_usable_lags"]),
    ]


def write_report(
    a: Analysis, outdir: str | os.PathLike, extra_figures: dict | None = None, links: list | None = None
) -> dict:
    """Write summary.json, the figures (PNG and SVG) and index.html into ``outdir``; return the
    summary. ``links``: (href, text) pairs listed under "See also"."""
    import jinja2

    from .headline import headline
    from .verdicts import PAPER, PAPER_LABELS

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    figures = dict(FIGURES)
    if a.toy_curves is not None:
        figures["toy_phases.png"] = (fig_toy_phases, TOY_PHASES_CAPTION)
    figures.update(extra_figures or {})
    made = []
    for name, (fn, caption) in figures.items():
        try:
            with warnings.catch_warnings():
                # A panel without data (nothing positive on a log axis, an empty mean) draws empty:
                # the notes say why; matplotlib's and numpy's warnings would only leak to stderr.
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                fn(a, out / name)
            made.append({"png": name, "svg": str(Path(name).with_suffix(".svg")), "caption": caption})
        except (ValueError, IndexError, KeyError) as exc:  # a figure the data cannot support
            a.notes.append(f"figure {name} skipped: {exc}")
    summary = a.summary()
    summary["headline"] = headline(summary)
    (out / "summary.json").write_text(jsonsafe.dumps(summary))  # strict: NaN/inf -> null
    ws = summary["windows"]
    tails = []
    pooled = summary["tails"].get("step_length")
    several = len({w.get("stride") for w in ws if w.get("step_length_tail")}) > 1
    for label, t in [(f"pooled over the run: {step_length_label(a.step_stride)}", pooled)] + [
        (
            f"window t_w = {w['t_w']}"
            + (" (partial)" if w.get("partial") else "")
            + (f": {step_length_label(w.get('stride'))}" if several else ""),
            w.get("step_length_tail"),
        )
        for w in ws
    ]:
        if t:
            tails.append(
                [
                    label,
                    f"{t['alpha']:.3g} {_tail_ci_text(t.get('alpha_ci'))}",
                    f"{t['xmin']:.3g}",
                    f"{t['n_tail']} / {t['n']}",
                    t["verdict"],
                ]
            )
    land = summary.get("landscape") or []
    land_rows = [
        [
            str(m["t_w"]),
            _with_ci(m["hurst"], m["hurst_ci"])
            if m["hurst"] is not None
            else "undetermined: " + m["undetermined"]["hurst"],
            _num(m["dimension_profile"]),
            f"{m['fit_range'][0]:.3g}–{m['fit_range'][1]:.3g}" if m["fit_range"] else "–",
            _num(m["noise_floor"])
            if m["noise_floor"] is not None
            else f"no plateau (< {m['noise_floor_upper']:.3g})",
            f"{m['dynamic_range']:.2g}×" if m.get("dynamic_range") else "–",
        ]
        for m in land
    ]
    gn = summary.get("gradient_noise")
    grad_rows = (
        [
            [str(t), _num(v)]
            for t, v in zip(gn["alpha_vs_t_w"]["t_w"], gn["alpha_vs_t_w"]["alpha"], strict=True)
        ]
        if gn
        else []
    )
    toy_rows = [
        [
            phase.replace("_", " "),
            _num(ph.get("alpha")),
            (
                f"{ph['alpha_quartiles'][0]:.2f}–{ph['alpha_quartiles'][1]:.2f}"
                if ph.get("alpha_quartiles")
                else "–"
            ),
            _num(ph.get("fraction_above_1")),
            str(ph.get("n_walkers")),
            _num(ph.get("direction_cos")),
        ]
        for phase, ph in (summary.get("toy_phases") or {}).items()
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = env.from_string(_PAGE).render(
        title=a.path,
        css=_CSS,
        n_records=a.n_records,
        n_params=a.n_params,
        window=a.window,
        headline=summary["headline"],
        diff_cols=DIFFUSION_COLUMNS,
        diff_rows=[[_cell(w, c[0]) for c in DIFFUSION_COLUMNS] for w in ws],
        lag_rows=[_lag_row(w) for w in ws if w.get("lag_pairs")],
        segments=summary.get("segments") or [],
        selection_line=next(
            (n.removeprefix("selection: ") for n in a.notes if n.startswith("selection: ")), ""
        ),
        paper_keys=list(PAPER),
        paper_labels=PAPER_LABELS,
        paper_rows=[
            {"t_w": w["t_w"], "cells": [_paper_cell(w, k) for k in PAPER]} for w in ws if "paper" in w
        ],
        tail_rows=tails,
        stable_rows=[
            _stable_cells(w)
            for w in ws
            if w.get("stable") or "stable.update_components" in (w.get("undetermined") or {})
        ],
        stable_note="Per window (the scale of the updates changes over training, so pooled fits mix "
        "distributions; summary.json's stable.*.pooled_over_run is labelled as such). Update components: "
        f"{_update_label(ws)} of 100 random coordinates, each divided by its median |update|; Mohammadi's "
        "estimator on the increments in "
        "random order.",
        land_rows=land_rows,
        layer_section=section_html(summary),
        grad_rows=grad_rows,
        toy_rows=toy_rows,
        figures=made,
        links=links or [],
        notes=a.notes,
        definitions=list(summary["definitions"].items()),
    )
    (out / "index.html").write_text(page)
    return summary
