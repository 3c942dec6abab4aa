"""Figures (PNG, in the style of the paper) and the HTML report of an :class:`Analysis`.

Needs matplotlib (the ``plot`` extra); imported only here.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from trajstore import jsonsafe

from .pipeline import Analysis
from .steps import ccdf


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike) -> None:
    """Lay out, write (PNG, 120 dpi) and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)


def _colors(n: int):
    plt = _plt()
    return plt.cm.viridis(np.linspace(0, 0.9, max(n, 1)))


def fig_msd(a: Analysis, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cols = _colors(len(a.windows))
    for w, c in zip(a.windows, cols, strict=True):
        m = w.msd
        if not m.finite:
            continue
        lags = m.lags[1:]
        ax.loglog(lags, m.msd[1:], color=c, lw=1, label=f"t_w = {m.t_w}")
    ax.set_xlabel("lag τ (records)")
    ax.set_ylabel("Δr²(τ)")
    ax.set_title("Windowed time-averaged MSD")
    if len(a.windows) <= 12:
        ax.legend(fontsize=7, loc="upper left")
    inset = ax.inset_axes([0.62, 0.1, 0.35, 0.35])
    for w, c in zip(a.windows, cols, strict=True):
        x, b = w.slope
        if len(x):
            inset.semilogx(x, b, color=c, lw=0.8)
    inset.axhline(1.0, color="k", lw=0.5, ls="--")
    inset.set_xlabel("τ", fontsize=7)
    inset.set_ylabel("β(τ)", fontsize=7)
    inset.tick_params(labelsize=6)
    save(fig, path)


def fig_alpha(a: Analysis, path: Path) -> None:
    plt = _plt()
    rows = [w for w in a.windows if w.two_regime is not None]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    if rows:
        t = np.array([w.msd.t_w for w in rows])
        for key, label, color in (("alpha_short", "α short", "C0"), ("alpha_long", "α long", "C3")):
            v = np.array([getattr(w.two_regime, key) for w in rows])
            ci = np.array([getattr(w.two_regime, key + "_ci") for w in rows])
            axes[0].errorbar(
                t, v, yerr=[v - ci[:, 0], ci[:, 1] - v], fmt="o-", color=color, label=label, ms=3
            )
        single = [w for w in rows if w.power_law is not None]
        axes[0].plot(
            [w.msd.t_w for w in single],
            [w.power_law.alpha for w in single],
            "s--",
            color="0.4",
            ms=3,
            label="α (single fit)",
        )
        tau = np.array([w.two_regime.tau0 for w in rows])
        tci = np.array([w.two_regime.tau0_ci for w in rows])
        axes[1].errorbar(t, tau, yerr=[tau - tci[:, 0], tci[:, 1] - tau], fmt="o-", ms=3)
    axes[0].axhline(1.0, color="k", lw=0.5, ls="--")
    axes[0].set_xlabel("t_w (step)")
    axes[0].set_ylabel("exponent")
    axes[0].legend(fontsize=7)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("t_w (step)")
    axes[1].set_ylabel("crossover τ0 (records)")
    save(fig, path)


def fig_steps(a: Analysis, path: Path) -> None:
    plt = _plt()
    w = a.windows[0]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    cols = _colors(len(w.displacements.lags))
    for tau, c in zip(w.displacements.lags, cols, strict=True):
        d = w.displacements.distributions[tau]
        s = w.displacements.collapsed[tau]
        axes[0].loglog(d.centers, d.density, ".-", color=c, ms=3, lw=0.8, label=f"τ = {tau}")
        axes[1].loglog(s.centers, s.density, ".-", color=c, ms=3, lw=0.8)
    axes[0].set_xlabel("‖w(t+τ) − w(t)‖")
    axes[0].set_ylabel("density")
    axes[0].set_title(f"Displacements, window t_w = {w.msd.t_w}", fontsize=9)
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].set_xlabel("‖w(t+τ) − w(t)‖ / sqrt(Δr²(τ))")
    axes[1].set_title("Scaling collapse", fontsize=9)
    save(fig, path)


def fig_tail(a: Analysis, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if a.step_lengths is not None and len(a.step_lengths):
        x, p = ccdf(a.step_lengths)
        ax.loglog(x, p, ".", ms=2, color="0.3", label="step lengths")
        fit = a.tails.get("step_length")
        if fit is not None:
            frac = fit.n_tail / fit.n
            xs = np.logspace(np.log10(fit.xmin), np.log10(x.max()), 50)
            ax.loglog(
                xs,
                frac * (xs / fit.xmin) ** (1 - fit.alpha),
                "r-",
                label=f"power law α = {fit.alpha:.2f} ± {fit.sigma:.2f}, x_min = {fit.xmin:.3g}",
            )
    ax.set_xlabel("‖w(t+1) − w(t)‖")
    ax.set_ylabel("P(X ≥ x)")
    ax.legend(fontsize=7)
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
        if g.direction_autocorr:
            k = sorted(g.direction_autocorr)
            axes[1].semilogx(k, [g.direction_autocorr[i] for i in k], "o-", color=c, ms=3)
        if g.step_autocorr:
            k = sorted(g.step_autocorr)
            axes[2].semilogx(k, [g.step_autocorr[i] for i in k], "o-", color=c, ms=3)
    axes[0].set_xlabel("contour length s")
    axes[0].set_ylabel("Δr²")
    axes[0].set_title("MSD vs contour length", fontsize=9)
    axes[1].set_xlabel("lag k")
    axes[1].set_ylabel("mean cos(Δw(t), Δw(t+k))")
    axes[2].set_xlabel("lag k")
    axes[2].set_ylabel("step-length autocorrelation")
    save(fig, path)


def fig_msl(a: Analysis, path: Path) -> None:
    if not a.msl:
        raise ValueError("no MSL (the store has no losses)")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    cols = _colors(len(a.msl))
    for m, c in zip(a.msl, cols, strict=True):
        axes[0].loglog(
            m.centers, m.msl, ".-", color=c, ms=3, lw=0.8, label=f"t_w = {m.t_w}, H = {m.hurst:.2f}"
        )
        lo, hi = m.fit_range
        axes[0].axvspan(lo, hi, color=c, alpha=0.05)
        if len(m.contour_centers):
            axes[1].loglog(m.contour_centers, m.msl_contour, ".-", color=c, ms=3, lw=0.8)
    axes[0].set_xlabel("Δr = ‖w_j − w_i‖")
    axes[0].set_ylabel("MSL = ⟨(L_j − L_i)²⟩")
    axes[0].legend(fontsize=6)
    axes[1].set_xlabel("contour length s")
    axes[1].set_ylabel("MSL")
    save(fig, path)


def fig_fluctuations(a: Analysis, path: Path) -> None:
    f = a.fluct
    if f is None:
        raise ValueError("no loss fluctuations (the store has no losses)")
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
            axes[1].legend(fontsize=7)
    axes[1].set_xlabel("avalanche duration (steps)")
    axes[1].set_ylabel("P(D ≥ d)")
    axes[2].plot(f.moving_var, lw=0.6)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("record")
    axes[2].set_ylabel("moving variance of L (100)")
    ok = f.frequencies > 0
    axes[3].loglog(f.frequencies[ok], f.power[ok], lw=0.8)
    axes[3].set_xlabel("frequency (1/record)")
    axes[3].set_ylabel(f"power (slope {f.spectrum_slope:.2f})")
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
    ax.legend(fontsize=6)


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
    "msd.png": (fig_msd, "MSD per window (log–log) with the local slope β(τ) inset"),
    "exponents.png": (fig_alpha, "Two-regime exponents and crossover lag over training"),
    "displacements.png": (fig_steps, "Displacement-length distributions and their collapse"),
    "tail.png": (fig_tail, "Step-length CCDF with the power-law tail fit"),
    "geometry.png": (fig_geometry, "Path geometry"),
    "msl.png": (
        fig_msl,
        "Mean squared loss difference against distance and contour length (landscape roughness)",
    ),
    "fluctuations.png": (
        fig_fluctuations,
        "Loss fluctuations: ΔL, avalanche durations, moving variance, spectrum",
    ),
}


_CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto} "
    "table{border-collapse:collapse;font-size:12px} "
    "td,th{border:1px solid #ccc;padding:2px 6px} img{max-width:100%} figure{display:inline-block;margin:8px}"
)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, float) for x in v):
        return f"[{v[0]:.3g}, {v[1]:.3g}]"
    return html.escape(str(v))


def write_report(a: Analysis, outdir: str | os.PathLike, extra_figures: dict | None = None) -> dict:
    """Write summary.json, one PNG per analysis and index.html into ``outdir``; return the summary."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    summary = a.summary()
    (out / "summary.json").write_text(jsonsafe.dumps(summary))  # strict: NaN/inf -> null
    figures = dict(FIGURES)
    if a.toy_curves is not None:
        figures["toy_phases.png"] = (fig_toy_phases, TOY_PHASES_CAPTION)
    figures.update(extra_figures or {})
    made = []
    for name, (fn, caption) in figures.items():
        try:
            fn(a, out / name)
            made.append((name, caption))
        except (ValueError, IndexError, KeyError) as exc:  # a figure the data cannot support
            a.notes.append(f"figure {name} skipped: {exc}")
    cols = [
        "t_w",
        "n_records",
        "alpha_short",
        "alpha_short_ci",
        "alpha_long",
        "alpha_long_ci",
        "tau0",
        "tau0_ci",
        "alpha",
        "alpha_ci",
        "msd_1",
        "contour_exponent",
    ]
    rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(w.get(c))}</td>" for c in cols) + "</tr>" for w in summary["windows"]
    )
    tails = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['alpha']:.3g} ± {v['sigma']:.2g}</td><td>{v['xmin']:.3g}</td>"
        f"<td>{v['n_tail']}</td><td>{_fmt(v['tests'])}</td></tr>"
        for k, v in summary["tails"].items()
    )
    figs = "".join(
        f"<figure><img src='{n}' alt='{html.escape(c)}'><figcaption>{html.escape(c)}</figcaption></figure>"
        for n, c in made
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in a.notes)
    defs = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in summary["definitions"].items()
    )
    title = html.escape(a.path)
    head = "".join(f"<th>{c}</th>" for c in cols)
    tail_head = (
        "<tr><th>quantity</th><th>α</th><th>x_min</th><th>n tail</th><th>likelihood-ratio tests</th></tr>"
    )
    page = "\n".join(
        [
            f"<!doctype html><html><head><meta charset='utf-8'><title>trajstore report: {title}</title>",
            f"<style>{_CSS}</style></head><body><h1>trajstore report</h1>",
            f"<p>{title}: {a.n_records} records, {a.n_params} parameters, windows of {a.window} records.</p>",
            f"<h2>Diffusion exponents per window</h2><table><tr>{head}</tr>{rows}</table>",
            f"<h2>Tail fits</h2><table>{tail_head}{tails}</table>",
            f"<h2>Figures</h2>{figs}",
            f"<h2>Notes</h2><ul>{notes or '<li>none</li>'}</ul>",
            f"<h2>Definitions</h2><dl>{defs}</dl></body></html>",
        ]
    )
    (out / "index.html").write_text(page)
    return summary
