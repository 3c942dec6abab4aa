"""Heavy tails: Clauset–Shalizi–Newman power-law fits, α-stable fits, the Mohammadi estimator."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special, stats

COARSE_CANDIDATES = 1000  # x_min candidates scanned before local refinement
EXHAUSTIVE_LIMIT = 3000  # up to this many distinct values, every one is a candidate
REFINE_AROUND = 8  # best coarse candidates whose neighbourhoods are searched exhaustively
COARSE_KS_POINTS = 4000  # tail points at which the coarse scan evaluates the KS distance
CI_BATCHES = 10  # consecutive batches of the series for the dependence-robust interval of α
CI_MIN_TAIL = 50  # fewer tail points than this: no interval (too few per batch to estimate a variance)
CI_METHOD = (
    f"batch means: the score of the maximum-likelihood α summed over {CI_BATCHES} consecutive "
    f"batches of the series (in time order), Student t with {CI_BATCHES - 1} degrees of freedom; "
    "robust to serial dependence shorter than a batch, conditional on x_min"
)


@dataclass(frozen=True)
class LikelihoodRatio:
    """Vuong test of the power law against ``alternative``: R > 0 favours the power law."""

    alternative: str
    R: float
    normalized_R: float
    p: float


@dataclass(frozen=True)
class TailFit:
    """p(x) ∝ x^(−α) for x ≥ x_min (continuous or discrete); ``sigma`` the standard error of α
    for independent samples; ``alpha_ci`` its 95 % interval robust to serial dependence (see
    ``CI_METHOD``), None with ``ci_undetermined`` giving the reason when it cannot be had."""

    alpha: float
    sigma: float
    xmin: float
    n_tail: int
    n: int
    ks: float
    discrete: bool
    tests: tuple[LikelihoodRatio, ...]
    alpha_ci: tuple[float, float] | None = None
    ci_undetermined: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tests"] = {t.alternative: {"R": t.R, "normalized_R": t.normalized_R, "p": t.p} for t in self.tests}
        return d


def fit_power_law_tail(x, *, discrete: bool = False, xmin: float | None = None) -> TailFit:
    """Clauset–Shalizi–Newman fit: x_min minimising the KS distance, α by maximum likelihood.

    Continuous: α̂ = 1 + n / Σ ln(x_i/x_min), σ = (α̂ − 1)/√n. Discrete (integer data): α̂
    maximises −n ln ζ(α, x_min) − α Σ ln x_i (Hurwitz ζ), σ from the Fisher information.
    KS distance: D = max_i |F̂(x_i) − i/n_tail| over the sorted tail (the convention of the
    ``powerlaw`` package). With more than ``EXHAUSTIVE_LIMIT`` distinct values, x_min is
    scanned on ``COARSE_CANDIDATES`` quantiles and then every distinct value around the best
    ones. Tests against exponential and lognormal tails (lognormal: continuous data only).
    """
    data = np.asarray(x, dtype=float)
    in_order = data[np.isfinite(data) & (data > 0)]  # time order, for the interval
    data = np.sort(in_order)
    if len(data) < 10:
        raise ValueError(f"a tail fit needs at least 10 positive finite values, got {len(data)}")
    if discrete and not np.all(data == np.round(data)):
        raise ValueError("discrete=True needs integer data")
    fit_one = _discrete_fit if discrete else _continuous_fit
    if xmin is None:
        uniq = np.unique(data)[:-1]
        if len(uniq) == 0:
            raise ValueError("all values are equal: no tail to fit")
        if len(uniq) <= EXHAUSTIVE_LIMIT:
            cands = uniq
        else:
            coarse = uniq[np.unique(np.linspace(0, len(uniq) - 1, COARSE_CANDIDATES).astype(int))]
            # Coarse ranking with the KS distance on a thinned tail (exact values follow).
            ks = np.array([fit_one(data, c, thin=COARSE_KS_POINTS)[2] for c in coarse])
            best = np.argsort(ks)[:REFINE_AROUND]
            pos = np.searchsorted(uniq, coarse)
            pieces = [uniq[pos[max(b - 1, 0)] : pos[min(b + 1, len(pos) - 1)] + 1] for b in best]
            cands = np.unique(np.concatenate(pieces))
        results = [fit_one(data, c) for c in cands]
        i = int(np.argmin([r[2] for r in results]))
        xmin = float(cands[i])
        alpha, sigma, ks = results[i]
    else:
        alpha, sigma, ks = fit_one(data, float(xmin))
    tail = data[data >= xmin]
    tests = [_lr_test(tail, xmin, alpha, "exponential", discrete)]
    if not discrete:
        tests.append(_lr_test(tail, xmin, alpha, "lognormal", discrete))
    ci, why = batch_means_interval(in_order, float(xmin), float(alpha), float(sigma), discrete)
    return TailFit(
        float(alpha),
        float(sigma),
        float(xmin),
        len(tail),
        len(data),
        float(ks),
        discrete,
        tuple(tests),
        ci,
        why,
    )


def _dlogzeta(alpha: float, xmin: float) -> float:
    """∂/∂α ln ζ(α, x_min) (central difference)."""
    h = 1e-5 * alpha
    return float((np.log(special.zeta(alpha + h, xmin)) - np.log(special.zeta(alpha - h, xmin))) / (2 * h))


def batch_means_interval(
    series: np.ndarray, xmin: float, alpha: float, sigma: float, discrete: bool, batches: int = CI_BATCHES
) -> tuple[tuple[float, float] | None, str | None]:
    """95 % interval of the maximum-likelihood α that stays honest when the values are serially
    dependent (step lengths of SGD are: their scale drifts and clusters).

    ``series``: the positive finite values in time order, (n,). The estimate is linearised
    through its score s_i (1/(α−1) − ln(x_i/x_min) for a continuous tail, −∂_α ln ζ(α, x_min) −
    ln x_i for a discrete one; 0 below x_min): α̂ − α ≈ σ² Σ s_i, with σ² = 1 / Fisher information.
    The variance of Σ s_i is estimated from its sums over ``batches`` consecutive batches, and the
    interval uses Student's t with batches − 1 degrees of freedom (Batch means; coverage on
    dependent series with known α: tests/test_tail_intervals.py). Returns (interval, None) or
    (None, reason)."""
    x = np.asarray(series, dtype=float)
    in_tail = x >= xmin
    m = int(in_tail.sum())
    if not (np.isfinite(alpha) and np.isfinite(sigma)) or sigma <= 0:
        return None, "the fit has no standard error"
    if m < CI_MIN_TAIL:
        return None, f"only {m} values in the tail (an interval robust to dependence needs {CI_MIN_TAIL})"
    logs = np.log(np.where(in_tail, x, xmin))
    if discrete:
        score = np.where(in_tail, -_dlogzeta(alpha, xmin) - logs, 0.0)
    else:
        score = np.where(in_tail, 1.0 / (alpha - 1.0) - (logs - np.log(xmin)), 0.0)
    edges = np.linspace(0, len(x), batches + 1).astype(int)
    sums = np.add.reduceat(score, edges[:-1])
    sums -= sums.mean()  # the total score is 0 at the estimate (up to the optimiser's tolerance)
    se = sigma**2 * np.sqrt(batches / (batches - 1) * np.sum(sums**2))
    t = stats.t.ppf(0.975, batches - 1)
    lo, hi = alpha - t * se, alpha + t * se
    if lo <= 1.0:
        return (
            None,
            f"the interval reaches α ≤ 1 ([{lo:.3g}, {hi:.3g}]), where no power-law tail is normalisable",
        )
    return (float(lo), float(hi)), None


def _continuous_fit(data: np.ndarray, xmin: float, thin: int | None = None) -> tuple[float, float, float]:
    j = int(np.searchsorted(data, xmin, side="left"))
    tail = data[j:]
    m = len(tail)
    logs = np.log(tail / xmin)
    s = logs.sum()
    if m < 2 or s <= 0:
        return np.nan, np.nan, np.inf
    alpha = 1.0 + m / s
    idx = np.arange(m) if thin is None or m <= thin else np.linspace(0, m - 1, thin).astype(np.int64)
    model = 1.0 - np.exp((1.0 - alpha) * logs[idx])
    ks = float(np.max(np.abs(model - idx / m)))
    return alpha, (alpha - 1.0) / np.sqrt(m), ks


def _discrete_fit(data: np.ndarray, xmin: float, thin: int | None = None) -> tuple[float, float, float]:
    tail = data[data >= xmin]
    m = len(tail)
    if m < 2:
        return np.nan, np.nan, np.inf
    slog = np.log(tail).sum()

    def nll(a: float) -> float:
        return m * np.log(special.zeta(a, xmin)) + a * slog

    res = optimize.minimize_scalar(nll, bounds=(1.0001, 20.0), method="bounded", options={"xatol": 1e-10})
    alpha = float(res.x)
    h = 1e-4 * alpha
    curv = (nll(alpha + h) - 2 * nll(alpha) + nll(alpha - h)) / h**2
    sigma = 1.0 / np.sqrt(curv) if curv > 0 else np.nan
    vals, counts = np.unique(tail, return_counts=True)
    emp = np.cumsum(counts) / m
    model = 1.0 - special.zeta(alpha, vals + 1) / special.zeta(alpha, xmin)
    return alpha, sigma, float(np.max(np.abs(emp - model)))


def _loglik_power(tail, xmin, alpha, discrete):
    if discrete:
        return -alpha * np.log(tail) - np.log(special.zeta(alpha, xmin))
    return np.log(alpha - 1) - np.log(xmin) - alpha * np.log(tail / xmin)


def _lr_test(tail, xmin, alpha, alternative, discrete) -> LikelihoodRatio:
    lp = _loglik_power(tail, xmin, alpha, discrete)
    if alternative == "exponential":
        mean_excess = max(np.mean(tail - xmin), 1e-300)
        if discrete:
            lam = np.log1p(1.0 / mean_excess)
            la = np.log1p(-np.exp(-lam)) - lam * (tail - xmin)
        else:
            lam = 1.0 / mean_excess
            la = np.log(lam) - lam * (tail - xmin)
    else:
        la = _lognormal_loglik(tail, xmin)
    diff = lp - la
    n = len(diff)
    R = float(diff.sum())
    sd = float(diff.std())
    if sd == 0:
        return LikelihoodRatio(alternative, R, 0.0, 1.0)
    p = float(special.erfc(abs(R) / (np.sqrt(2 * n) * sd)))
    return LikelihoodRatio(alternative, R, float(R / (np.sqrt(n) * sd)), p)


def _lognormal_loglik(tail, xmin) -> np.ndarray:
    """Per-point log-likelihood of the maximum-likelihood lognormal truncated at x_min.

    The likelihood depends on the data through n, Σ ln x and Σ (ln x)² only, so each
    optimiser step costs O(1); the per-point values are computed once at the optimum.
    """
    lx = np.log(tail)
    lmin = np.log(xmin)
    n, s1, s2 = len(lx), float(lx.sum()), float((lx * lx).sum())
    half_log_2pi = 0.5 * np.log(2 * np.pi)

    def total(params) -> float:
        mu, log_s = params
        s = np.exp(log_s)
        sq = (s2 - 2 * mu * s1 + n * mu * mu) / (s * s)
        return float(-0.5 * sq - n * (log_s + half_log_2pi) - s1 - n * special.log_ndtr((mu - lmin) / s))

    start = (s1 / n, float(np.log(max(lx.std(), 1e-3))))
    res = optimize.minimize(
        lambda p: -total(p),
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10000},
    )
    mu, log_s = res.x
    z = (lx - mu) / np.exp(log_s)
    return -0.5 * z * z - log_s - half_log_2pi - lx - special.log_ndtr((mu - lmin) / np.exp(log_s))


@dataclass(frozen=True)
class StableFit:
    """α-stable parameters (S1 parameterisation of scipy.stats.levy_stable)."""

    alpha: float
    beta: float
    loc: float
    scale: float
    n: int
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def fit_stable(x, max_samples: int = 100_000, seed: int = 0) -> StableFit:
    """α-stable fit by McCulloch's quantile method as implemented in scipy's ``levy_stable``
    (its fit's starting estimate; the full maximum-likelihood fit is far too slow for 10^5+
    samples). Consistent for 0.6 ≤ α ≤ 2."""
    data = np.asarray(x, dtype=float)
    data = data[np.isfinite(data)]
    if len(data) < 50:
        raise ValueError(f"an α-stable fit needs at least 50 finite values, got {len(data)}")
    if np.ptp(data) == 0:
        raise ValueError("all values are equal: no distribution to fit")
    if len(data) > max_samples:
        data = np.random.default_rng(seed).choice(data, max_samples, replace=False)
    q = np.percentile(data, [5, 25, 75, 95])
    if q[2] == q[1] or q[3] == q[0]:
        raise ValueError(
            "the interquartile range of the sample is 0 (mostly one repeated value): no α-stable fit"
        )
    try:
        alpha, beta, loc, scale = stats.levy_stable._fitstart(data)
    except (KeyError, IndexError, ValueError) as exc:  # McCulloch's tables: outside their range
        raise ValueError(f"McCulloch's quantile method failed on this sample ({exc!r})") from None
    if not np.isfinite(alpha):
        raise ValueError("McCulloch's quantile method gave no finite α for this sample")
    return StableFit(float(alpha), float(beta), float(loc), float(scale), len(data), "mcculloch-quantiles")


def mohammadi_alpha(x, block: int | None = None, seed: int | None = 0) -> float:
    """Mohammadi et al.'s block estimator of the stable tail index of i.i.d. increments ``x``:
    with K blocks of m samples, 1/α̂ = (mean ln|Y_k| − mean ln|X_i|) / ln m, Y_k the block sums.
    Default m ≈ √n. Returns α̂ (clipped to (0, 2]).

    The samples are put in random order (``seed``; None keeps their order) before they are cut
    into blocks: the estimator assumes independent samples, and block sums of consecutive values
    of a differenced series telescope (the sum of m values of diff(L) is L(t+m) − L(t)), which
    drives α̂ to 2 whatever the tail. Pass the increments themselves (update components, ΔL),
    never the differences of a series that is already an increment."""
    data = np.asarray(x, dtype=float)
    data = data[np.isfinite(data)]
    n = len(data)
    m = block or int(np.sqrt(n))
    if m < 2 or n // m < 2:
        raise ValueError(f"the Mohammadi estimator needs at least 2 blocks of 2 samples (n = {n})")
    if seed is not None:
        data = np.random.default_rng(seed).permutation(data)
    k = n // m
    data = data[: k * m] - np.median(data)
    y = data.reshape(k, m).sum(axis=1)
    with np.errstate(divide="ignore"):
        inv = (np.mean(np.log(np.abs(y[y != 0]))) - np.mean(np.log(np.abs(data[data != 0])))) / np.log(m)
    return float(np.clip(1.0 / inv, 1e-6, 2.0)) if inv > 0 else 2.0
