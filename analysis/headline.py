"""The findings of a run in a few sentences, generated from summary.json's numbers and verdicts."""

from __future__ import annotations

from .verdicts import PAPER, tail_kind


def _fmt_ci(ci) -> str:
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def diffusion_sentence(windows: list[dict]) -> str:
    fitted = [w for w in windows if w.get("verdict")]
    if not fitted:
        return "No window could be fitted."
    two = [w for w in fitted if w.get("regimes") == "two"]
    parts = []
    for w in fitted:
        tag = f"t_w = {w['t_w']}" + (" (partial)" if w.get("partial") else "")
        if w.get("regimes") == "two":
            tau = w.get("tau0_steps") or w.get("tau0")
            in_steps = w.get("tau0_steps") or (w.get("lag_pairs") or {}).get("lag_unit") == "steps"
            unit = "steps" if in_steps else "records"
            parts.append(
                f"{tag}: α_short = {w['alpha_short']:.2f}{_fmt_ci(w['alpha_short_ci'])}, "
                f"α_long = {w['alpha_long']:.2f}{_fmt_ci(w['alpha_long_ci'])}, τ0 ≈ {tau:.3g} {unit}"
                if w.get("alpha_short") is not None and w.get("alpha_long") is not None
                else f"{tag}: two regimes (an exponent undetermined)"
            )
        elif w.get("alpha") is not None and w.get("regimes") == "untested":
            parts.append(f"{tag}: α = {w['alpha']:.2f} (single fit; no interval)")
        elif w.get("alpha") is not None:
            parts.append(f"{tag}: one power law, α = {w['alpha']:.2f}{_fmt_ci(w.get('alpha_ci'))}")
        else:
            parts.append(f"{tag}: undetermined")
    untested = [w for w in fitted if w.get("regimes") == "untested"]
    if two:
        lead = f"Two diffusion regimes are supported in {len(two)} of {len(fitted)} windows"
    elif len(untested) == len(fitted):
        lead = (
            "Neither intervals nor the two-regime test are available (fewer than 16 parameters to "
            f"resample; {len(fitted)} windows)"
        )
    else:
        lead = f"No window supports two diffusion regimes against one power law ({len(fitted)} windows)"
    return lead + ": " + "; ".join(parts) + "."


def paper_sentence(windows: list[dict]) -> str:
    """Whether any window shows the paper's picture (α_short > 1 > α_long, inside its ranges)."""
    lo1, hi1 = PAPER["alpha_short"]
    lo2, hi2 = PAPER["alpha_long"]
    lo3, hi3 = PAPER["tau0_steps"]
    paper = (
        f"The paper reports α_short ∈ [{lo1}, {hi1}] below τ0 ∈ [{lo3:g}, {hi3:g}] steps and "
        f"α_long ∈ [{lo2}, {hi2}] above it."
    )
    shape = [
        w
        for w in windows
        if w.get("regimes") == "two"
        and w.get("alpha_short") is not None
        and w.get("alpha_long") is not None
        and w["alpha_short"] > 1 > w["alpha_long"]
    ]
    inside = [w for w in shape if all(w["paper"][k]["inside"] for k in PAPER)]
    if inside:
        return paper + " Windows inside all three ranges: " + ", ".join(str(w["t_w"]) for w in inside) + "."
    if shape:
        return (
            paper
            + " Windows with the same shape (superdiffusive, then subdiffusive) but outside a range: "
            + ", ".join(str(w["t_w"]) for w in shape)
            + "."
        )
    return paper + " No window of this run shows that picture."


def tail_sentence(summary: dict) -> str:
    pooled = summary.get("tails", {}).get("step_length")
    per = [w["step_length_tail"] for w in summary.get("windows", []) if w.get("step_length_tail")]
    if not pooled and not per:
        return ""
    kinds = [tail_kind(t["verdict"]) for t in per]
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds)))
    # a step length spans the records' stride: ‖w(t+10) − w(t)‖ for a run recorded every 10 steps
    strides = sorted(
        {w["stride"] for w in summary.get("windows", []) if w.get("step_length_tail") and w.get("stride")}
    )
    if len(strides) > 1:
        what = f"over each window's stride ({', '.join(map(str, strides))} steps, not pooled)"
    else:
        s = strides[0] if strides else (pooled or {}).get("stride_steps") or 1
        what = "‖w(t+1) − w(t)‖" if s == 1 else f"‖w(t+{s}) − w(t)‖ (records every {s} steps)"
    parts = []
    if pooled:
        parts.append(
            f"pooled over the run the tail is {pooled['verdict']} (power-law α = {pooled['alpha']:.2f}"
            f" above x_min = {pooled['xmin']:.3g})"
        )
    if per:
        parts.append(f"per window: {counts}")
    return f"Step lengths {what}: " + "; ".join(parts) + "."


def landscape_sentence(summary: dict) -> str:
    land = summary.get("landscape") or []
    if not land:
        return ""
    ok = [m for m in land if m.get("hurst") is not None]
    text = f"Landscape roughness: H determined in {len(ok)} of {len(land)} windows"
    if ok:
        text += " (" + ", ".join(f"t_w = {m['t_w']}: {m['hurst']:.2f}" for m in ok) + ")"
    bad = [m for m in land if m.get("hurst") is None]
    if bad:
        text += f"; undetermined elsewhere ({bad[0]['undetermined']['hurst']})"
    return text + "."


def stable_sentence(summary: dict) -> str:
    fitted = [w for w in summary.get("windows", []) if w.get("stable", {}).get("update_components")]
    vals = [w["stable"]["update_components"]["alpha"] for w in fitted]
    if not vals:
        return ""
    strides = sorted({w.get("stride") or 1 for w in fitted})  # an update spans the records' stride
    if len(strides) > 1:
        what = f"over each window's stride ({', '.join(map(str, strides))} steps)"
    else:
        what = "w_k(t+1) − w_k(t)" if strides[0] == 1 else f"w_k(t+{strides[0]}) − w_k(t)"
    return (
        f"α-stable index of the update components {what}, per window: "
        + ", ".join(f"{v:.2f}" for v in vals)
        + " (2 = Gaussian)."
    )


def headline(summary: dict) -> list[str]:
    """The paragraph of findings: one sentence per analysis that produced numbers."""
    ws = summary.get("windows", [])
    out = [diffusion_sentence(ws), paper_sentence(ws)]
    out += [s for s in (tail_sentence(summary), stable_sentence(summary), landscape_sentence(summary)) if s]
    return out
