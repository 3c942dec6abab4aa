"""What the numbers say, in words: physical-range checks ("undetermined"), tail verdicts, the
paper's reference ranges, and the headline of a report.

An estimate that cannot be measured from the data is reported as ``None`` with its reason,
never as a number: outside its physical range, on an optimiser bound, with an interval wider
than the range, or without dynamic range above its noise floor.
"""

from __future__ import annotations

import math

# Chen, Qu & Gong (2022), ResNets on CIFAR-10 over depth × batch × shortcut (science.md §2).
PAPER = {
    "alpha_short": (1.01, 1.42),  # exponent 1 (short lags, superdiffusive)
    "alpha_long": (0.60, 0.88),  # exponent 2 (long lags, subdiffusive)
    "tau0_steps": (45.0, 400.0),  # crossover lag in optimizer steps
}
PAPER_LABELS = {
    "alpha_short": "exponent 1 ∈ [1.01, 1.42]",
    "alpha_long": "exponent 2 ∈ [0.60, 0.88]",
    "tau0_steps": "τ0 ∈ [45, 400] steps",
}
TAIL_P = 0.1  # significance of a likelihood-ratio test (Clauset, Shalizi & Newman use 0.1)


def finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def range_reason(
    name: str,
    value: float | None,
    ci: tuple[float, float] | None,
    lo: float,
    hi: float,
    *,
    closed: bool = False,
    bounds: tuple[float, float] | None = None,
) -> str | None:
    """Why ``value`` (with interval ``ci``) of a quantity whose physical range is (lo, hi) (or
    [lo, hi] when ``closed``) is undetermined, or None if it is determined."""
    if not finite(value):
        return f"{name} could not be computed"
    inside = lo <= value <= hi if closed else lo < value < hi
    brackets = "[]" if closed else "()"
    if not inside:
        rng = f"{brackets[0]}{lo:g}, {hi:g}{brackets[1]}"
        return f"{name} = {value:.3g} lies outside its physical range {rng}"
    if bounds is not None and any(abs(value - b) <= 1e-6 * max(1.0, abs(b)) for b in bounds):
        return f"{name} = {value:.3g} sits on the optimiser's bound"
    if ci is not None and (not finite(ci[0]) or not finite(ci[1]) or ci[1] - ci[0] > hi - lo):
        return f"the 95 % interval of {name} is wider than its whole physical range ({lo:g} to {hi:g})"
    return None


def paper_check(key: str, value: float | None) -> dict:
    """The paper's range of ``key`` and whether ``value`` lies inside it (None: no value)."""
    lo, hi = PAPER[key]
    return {
        "paper_range": [lo, hi],
        "inside": (lo <= value <= hi) if finite(value) else None,
    }


def tail_verdict(tests: dict) -> str:
    """Plain-language verdict from the likelihood-ratio tests {alternative: {R, p}} of a power-law
    tail fit (R > 0 favours the power law; p its significance, threshold ``TAIL_P``).

    lognormal / exponential: that alternative fits significantly better. power law: it beats at
    least one alternative and none beats it (Clauset, Shalizi & Newman's "moderate support"; a
    lognormal with a large variance can mimic a power law, so "not worse than lognormal" is as
    far as the data can go). inconclusive: no test is significant."""
    if not tests:
        return "inconclusive: no likelihood-ratio test"
    favoured_alt = [a for a, t in tests.items() if t["R"] < 0 and t["p"] < TAIL_P]
    beaten = sorted(a for a, t in tests.items() if t["R"] > 0 and t["p"] < TAIL_P)
    if "lognormal" in favoured_alt:
        p = tests["lognormal"]["p"]
        return f"lognormal: a lognormal fits the tail significantly better than a power law (p = {p:.2g})"
    if favoured_alt:
        alt = favoured_alt[0]
        return f"{alt}: an {alt} tail fits significantly better than a power law (p = {tests[alt]['p']:.2g})"
    if beaten:
        rest = sorted(set(tests) - set(beaten))
        text = "power law: favoured over " + " and ".join(beaten) + f" (p < {TAIL_P})"
        if rest:
            text += "; " + " or ".join(rest) + " fits no better and no worse (not excluded)"
        return text
    return (
        "inconclusive: the power law cannot be told apart from "
        + " or ".join(sorted(tests))
        + f" (p ≥ {TAIL_P}); the exponent is not evidence of a power law"
    )


def tail_kind(verdict: str) -> str:
    """The first word of a tail verdict: power law, lognormal, exponential or inconclusive."""
    return verdict.split(":", 1)[0]


def diffusion_kind(alpha: float, ci: tuple[float, float] | None) -> str:
    """superdiffusive / subdiffusive / normal (interval contains 1) for an MSD exponent."""
    lo, hi = ci if ci is not None else (alpha, alpha)
    if lo > 1:
        return "superdiffusive"
    if hi < 1:
        return "subdiffusive"
    return "consistent with normal diffusion" if ci is not None else "close to normal diffusion"


# The two-regime fields of :func:`exponent_summary`: None unless two regimes are supported.
TWO_REGIME_FIELDS = (
    "alpha_short",
    "alpha_short_ci",
    "alpha_long",
    "alpha_long_ci",
    "tau0",
    "tau0_ci",
    "tau0_steps",
    "tau0_ci_steps",
)


def _fmt_ci(ci) -> str:
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci is not None else " (no interval)"


def exponent_summary(single, two, lag_steps=None, unit: str = "records") -> dict:
    """The numbers of one window's MSD fits as reported: the single power law always (unless
    undetermined), the two-regime values only when two regimes are supported, each fit's lag
    range, goodness of fit, a verdict in words, the paper's ranges and ``undetermined`` reasons.

    ``single``/``two``: ``exponents.PowerLawFit`` / ``TwoRegimeFit`` (or None); ``lag_steps``:
    (lags in records, lags in optimizer steps) to convert τ0; ``unit``: what the fits' lags
    count, "records" or "steps" (records not equally spaced: the MSD is indexed by step lag)."""
    d: dict = dict.fromkeys(
        ("alpha", "alpha_ci", "alpha_lag_range", "alpha_residual_rms", "alpha_noise_ratio")
    )
    und: dict[str, str] = {}

    def in_steps(lags):  # fitted lags (records, or steps) -> optimizer steps; None: not known
        if lag_steps is None:
            return None
        import numpy as np

        return [float(v) for v in np.interp(lags, *lag_steps)]

    if single is None:
        und["alpha"] = "no power-law fit (non-finite weights or too few usable lags)"
    else:
        reason = range_reason("α", single.alpha, single.alpha_ci, 0.0, 2.0, closed=True)
        d["alpha"] = None if reason else single.alpha
        d["alpha_ci"] = None if reason or single.alpha_ci is None else list(single.alpha_ci)
        if reason:
            und["alpha"] = reason
        elif single.alpha_ci is None:
            und["alpha_ci"] = single.ci_method
        d["alpha_lag_range"] = list(single.lag_range)
        d["alpha_lag_range_steps"] = in_steps(single.lag_range)
        d["alpha_residual_rms"] = single.residual_rms
        d["alpha_noise_ratio"] = single.noise_ratio
    d.update(dict.fromkeys(TWO_REGIME_FIELDS))
    d["regimes"] = None
    if two is not None:
        d["two_regime_fit"] = two.to_dict()
        if unit != "records":  # the fit knows only lags; its τ0 is in this unit
            fit = d["two_regime_fit"]
            fit["verdict"] = fit["verdict"].replace(" records (", f" {unit} (")
        d["two_regime_lag_range"] = list(two.lag_range)
        d["two_regime_lag_range_steps"] = in_steps(two.lag_range)
        d["two_regime_residual_rms"] = two.residual_rms
        d["regimes"] = {True: "two", False: "one", None: "untested"}[two.supported]
        if two.supported:
            reasons = {
                "alpha_short": range_reason(
                    "α_short", two.alpha_short, two.alpha_short_ci, 0.0, 2.0, closed=True
                ),
                "alpha_long": range_reason(
                    "α_long", two.alpha_long, two.alpha_long_ci, 0.0, 2.0, closed=True
                ),
            }
            for k, r in reasons.items():
                if r:
                    und[k] = r
                else:
                    d[k] = getattr(two, k)
                    d[k + "_ci"] = list(getattr(two, k + "_ci"))
            d["tau0"] = two.tau0
            d["tau0_ci"] = list(two.tau0_ci)
            if lag_steps is not None:
                d["tau0_steps"] = in_steps([two.tau0])[0]
                d["tau0_ci_steps"] = in_steps(two.tau0_ci)
        else:
            if two.supported is False:
                ci = two.slope_change_ci
                why = (
                    f"one power law suffices: the change of slope {two.alpha_long - two.alpha_short:+.2f} "
                    f"(95 % interval [{ci[0]:+.2f}, {ci[1]:+.2f}]) is not significant or below 0.1"
                )
            else:
                why = "two regimes not tested: " + two.ci_method
            for k in ("alpha_short", "alpha_long", "tau0"):
                und[k] = why
    d["verdict"] = window_verdict(d, single, two, unit)
    d["paper"] = {k: paper_check(k, d.get(k)) for k in PAPER}
    d["undetermined"] = und
    return d


def window_verdict(d: dict, single, two, unit: str = "records") -> str:
    """One sentence on the diffusion regime of a window."""
    if d.get("regimes") == "two":
        s = diffusion_kind(d["alpha_short"], d["alpha_short_ci"]) if d["alpha_short"] is not None else "?"
        lo = diffusion_kind(d["alpha_long"], d["alpha_long_ci"]) if d["alpha_long"] is not None else "?"
        tau = d.get("tau0_steps") or d["tau0"]
        tau_unit = "steps" if d.get("tau0_steps") else unit
        return (
            f"two regimes: {s} at short lags (α_short = {two.alpha_short:.2f}{_fmt_ci(two.alpha_short_ci)}), "
            f"{lo} at long lags (α_long = {two.alpha_long:.2f}{_fmt_ci(two.alpha_long_ci)}), "
            f"crossover τ0 ≈ {tau:.3g} {tau_unit}"
        )
    if single is None or d.get("alpha") is None:
        return "undetermined: no usable power-law fit"
    r = single.lag_range
    if d.get("alpha_lag_range_steps"):  # the lags in optimizer steps, whatever the records' stride
        r, unit = d["alpha_lag_range_steps"], "steps"
    kind = diffusion_kind(single.alpha, single.alpha_ci)
    fit = ""
    if single.noise_ratio is not None and single.noise_ratio > 3:
        fit = (
            f"; the curve bends (residuals {single.noise_ratio:.0f}× the sampling noise) "
            "but no two-regime break is supported"
        )
    elif two is not None and two.supported is None:
        fit = "; two regimes not tested (no resampling)"
    a = f"α = {single.alpha:.2f}{_fmt_ci(single.alpha_ci)}"
    return f"one regime: {kind}, {a} over lags {r[0]:.3g}–{r[1]:.3g} {unit}{fit}"
