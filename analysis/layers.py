"""Per-layer diffusion exponents: each tensor's own MSD, and the MSD of each layer type.

Which layer a tensor belongs to ("conv", "norm", "linear", "embedding", "other") and its role
("weight", "bias", or the parameter's own name) come from the store's (1.2) ``tensor_modules``
attribute (the class of the module that owns each tensor, written by trajstore's recorder) when
present, otherwise from the tensor's name and shape (:func:`classify`); ``source`` says which.

Intervals follow the whole-vector rules (exponents.py, verdicts.py):

* a tensor: bootstrap over the contiguous blocks that cut it (``windows.tensor_group_offsets``,
  up to 32 per tensor); with fewer than ``exponents.MIN_GROUPS`` blocks (a tensor of fewer than
  16 coordinates) there is no interval and the reason is given;
* a layer type (the sum of its tensors' MSDs): a *stratified* bootstrap, every tensor's blocks
  resampled among themselves (tensors differ in size and scale, so their blocks are not
  exchangeable), widened by the small-sample factor of the smallest stratum. A tensor with too
  few blocks to resample is held fixed when it carries less than ``FIXED_SHARE`` of the type's
  MSD (said in ``ci_method``); otherwise the type has no interval.

Coverage of both on exact fBm with a different α per tensor: tests/test_layers.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from . import verdicts
from .exponents import (
    MIN_GROUPS,
    N_BOOT,
    PER_DECADE,
    _power_law,
    _Prepared,
    _select,
    _two_regime,
    bootstrap_curves,
    log_bins,
)

KINDS = ("conv", "norm", "linear", "embedding", "attention", "other")
NO_BLOCKS = (
    "no interval: the per-tensor blocks were not kept (they did not fit a quarter of the memory "
    "limit; raise --memory-limit)"
)
NO_BLOCKS_UNEVEN = (
    "no interval: per-tensor blocks are not summed for records that are not equally spaced in "
    "steps (their pair sums keep the whole vector's blocks only)"
)
# Per-tensor intervals need this many coordinates: with 16–32 single-coordinate blocks they
# under-cover (0.87–0.90 at α = 1.5, 1000 records; 48 and 64 coordinates: 0.97, 0.95).
MIN_TENSOR_COORDS = 64
FIXED_SHARE = 0.01  # a tensor too small to resample may be held fixed below this share of the MSD
SMALL_SHARE = 0.25  # tensors of 2 … 15 blocks are resampled in a type only below this share
# Module classes (torch.nn and common libraries) → layer kind; matched on the class name.
_MODULE_KINDS = (
    (re.compile(r"^Conv1D$"), "linear"),  # transformers' GPT-2 "Conv1D" is a linear layer
    (re.compile(r"Conv|conv"), "conv"),
    (re.compile(r"Norm|norm"), "norm"),
    (re.compile(r"Embedding|embedding"), "embedding"),
    (re.compile(r"Attention|attention"), "attention"),
    (re.compile(r"Linear|linear|Dense|Bilinear"), "linear"),
)
_NORM_NAME = re.compile(
    r"(^|[._])(bn|batchnorm|norm|ln|gn|layernorm|groupnorm|ln_\w+|norm\d*|bn\d*)($|[._\d])"
)
_EMBED_NAME = re.compile(r"(^|[._])(embed\w*|emb|wte|wpe|tok\w*|pos\w*|cls_token)($|[._])")


@dataclass(frozen=True)
class LayerKind:
    """The layer a tensor belongs to: ``kind`` (one of ``KINDS``), ``role`` ("weight", "bias" or
    the parameter's own name), ``module`` (the recorded module class, or None) and ``source``
    ("recorded module" or "name and shape")."""

    kind: str
    role: str
    module: str | None
    source: str
    n_params: int = 0

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "role": self.role,
            "module": self.module,
            "source": self.source,
            "n_params": self.n_params,
        }


def kind_of_module(module_class: str) -> str:
    """Layer kind of a module class name (``Conv2d`` → conv, ``BatchNorm2d`` → norm, …)."""
    for pattern, kind in _MODULE_KINDS:
        if pattern.search(module_class):
            return kind
    return "other"


def classify(
    names: list[str], shapes: list[tuple[int, ...]], modules: list | None = None
) -> dict[str, LayerKind]:
    """Layer kind and role of every tensor (``names``/``shapes`` in layout order).

    ``modules``: the recorded module class of each tensor (None entries: unknown). Without it,
    name and shape decide: a tensor's module is its name up to the last dot; the module's
    ``weight`` (or, without one, its largest tensor) decides the kind: 3-D to 5-D → conv,
    1-D → norm (BatchNorm, LayerNorm, GroupNorm hold 1-D weights), 2-D → embedding when the name
    says so (embed, wte, tok…), else linear; names like ``bn1``, ``norm``, ``ln_f`` → norm.
    """
    by_module: dict[str, dict[str, tuple[int, ...]]] = {}
    for n, s in zip(names, shapes, strict=True):
        prefix, _, leaf = n.rpartition(".")
        by_module.setdefault(prefix, {})[leaf] = tuple(s)
    out: dict[str, LayerKind] = {}
    for i, n in enumerate(names):
        prefix, _, leaf = n.rpartition(".")
        role = leaf if leaf in ("weight", "bias") else (leaf or n)
        recorded = modules[i] if modules is not None and i < len(modules) else None
        size = int(np.prod(shapes[i])) if len(shapes[i]) else 1
        if isinstance(recorded, str) and recorded:
            out[n] = LayerKind(kind_of_module(recorded), role, recorded, "recorded module", size)
            continue
        kind = _kind_from_shape(n, prefix, by_module[prefix])
        out[n] = LayerKind(kind, role, None, "name and shape", size)
    return out


def _kind_from_shape(name: str, prefix: str, siblings: dict[str, tuple[int, ...]]) -> str:
    lowered = name.lower()
    if _EMBED_NAME.search(lowered):
        return "embedding"
    if _NORM_NAME.search(prefix.lower()):
        return "norm"
    ref = siblings.get("weight")
    if ref is None:
        ref = max(siblings.values(), key=lambda s: int(np.prod(s)) if s else 1)
    if 3 <= len(ref) <= 5:
        return "conv"
    if len(ref) == 2:
        return "linear"
    if len(ref) == 1 and "weight" in siblings:
        return "norm"
    return "other"


def store_kinds(traj) -> dict[str, LayerKind]:
    """:func:`classify` for a store (or a selection of one): the (1.2) ``tensor_modules``
    attribute when it is a list of the layout's length, else names and shapes."""
    base = getattr(traj, "base", traj)
    if not {t.name for t in traj.layout} <= {t.name for t in base.layout}:
        base = traj  # a view with tensors of its own (a sketch): classified by itself
    modules = (getattr(base, "attrs", None) or {}).get("tensor_modules")
    full = base.layout
    if not (isinstance(modules, list) and len(modules) == len(full)):
        modules = None
    kinds = classify([t.name for t in full], [t.shape for t in full], modules)
    return {t.name: kinds[t.name] for t in traj.layout}


def kinds_summary(kinds: dict[str, LayerKind]) -> dict:
    """What summary.json says about the classification: its source and each tensor's kind."""
    sources = sorted({k.source for k in kinds.values()})
    return {
        "source": sources[0] if len(sources) == 1 else "mixed: " + ", ".join(sources),
        "tensors": {n: k.to_dict() for n, k in kinds.items()},
    }


# --- fits -------------------------------------------------------------------------------------


def stratified_curves(
    strata: list[np.ndarray], n_boot: int = N_BOOT, seed: int = 0, sizes: list[int] | None = None
) -> tuple[np.ndarray | None, str, int]:
    """Resampled sums (n_boot, L) of several strata of partial curves (each (G_s, L)): every
    stratum's blocks are drawn with replacement among themselves. ``sizes``: each stratum's
    number of coordinates. A *small* stratum (fewer than ``MIN_TENSOR_COORDS`` coordinates; without
    ``sizes``, fewer than ``MIN_GROUPS`` blocks) is held fixed when it carries less than
    ``FIXED_SHARE`` of the total, else resampled among its own blocks (its block count, if the
    smallest, sets the small-sample widening) as long as small strata carry less than
    ``SMALL_SHARE`` together; otherwise there is no interval. One stratum: no interval when it is
    small, else ``exponents.bootstrap_curves``. Returns (curves or None, method in words, the
    smallest resampled stratum's block count)."""
    small_flags = [
        (sz < MIN_TENSOR_COORDS) if sizes is not None else (s.shape[0] < MIN_GROUPS)
        for s, sz in zip(strata, sizes or [0] * len(strata), strict=True)
    ]
    if len(strata) == 1:  # one tensor: the whole vector's rule, for tensors whose coverage was checked
        if sizes is not None and small_flags[0]:
            return (
                None,
                (
                    f"no interval: the tensor has {sizes[0]} coordinates, fewer than the {MIN_TENSOR_COORDS} "
                    "for which the interval's coverage was checked (docs/analysis.md)"
                ),
                0,
            )
        curves, method = bootstrap_curves(strata[0], n_boot, seed)
        return curves, method, strata[0].shape[0]
    total = sum(float(np.sum(s)) for s in strata)
    shares = [float(np.sum(s)) / total if total > 0 else 1.0 for s in strata]
    small = sum(sh for sh, f in zip(shares, small_flags, strict=True) if f and sh >= FIXED_SHARE)
    what = f"{MIN_TENSOR_COORDS} coordinates" if sizes is not None else f"{MIN_GROUPS} blocks"
    if small >= SMALL_SHARE:
        return (
            None,
            (
                f"no interval: tensors of fewer than {what} carry {small:.0%} of the MSD "
                f"(at most {SMALL_SHARE:.0%} can be resampled with their few coordinates)"
            ),
            0,
        )
    rng = np.random.default_rng(seed)
    curves = np.zeros((n_boot, strata[0].shape[1]))
    fixed, g_min = 0, None
    for s, share, is_small in zip(strata, shares, small_flags, strict=True):
        g = s.shape[0]
        if is_small and share < FIXED_SHARE:  # negligible: held fixed
            curves += s.sum(axis=0)
            fixed += 1
            continue
        if g < 2:
            return None, f"no interval: a tensor of one block carries {share:.1%} of the MSD", 0
        draws = rng.integers(0, g, size=(n_boot, g)) + g * np.arange(n_boot)[:, None]
        counts = np.bincount(draws.ravel(), minlength=n_boot * g).reshape(n_boot, g)
        curves += counts.astype(float) @ s
        g_min = g if g_min is None else min(g_min, g)
    if g_min is None:
        return None, "no interval: no tensor of the type has enough blocks to resample", 0
    ok = np.all(curves > 0, axis=1) & np.all(np.isfinite(curves), axis=1)
    held = f"; {fixed} small tensor(s) held fixed (< {FIXED_SHARE:.0%} of the MSD)" if fixed else ""
    method = (
        f"stratified bootstrap over the blocks of {len(strata) - fixed} tensor(s) (at least {g_min} "
        f"blocks each), {int(ok.sum())} resamples, percentile{held}"
    )
    return curves[ok], method, g_min


def _prepare_strata(lags, msd, strata, n_boot, seed, sizes=None) -> _Prepared:
    """exponents._prepare with a stratified resampling of the blocks of several tensors."""
    lags = np.asarray(lags, dtype=float)
    lags_sel, msd_sel, _, (lo, hi) = _select(lags, msd, None, None)
    if len(lags_sel) < 3:
        raise ValueError(f"too few lags in {lo}..{hi} for a power-law fit (need 3 log bins)")
    sel = np.isin(lags, lags_sel)
    bins = log_bins(lags_sel, PER_DECADE)
    curves, method, g = stratified_curves([s[:, sel] for s in strata], n_boot, seed, sizes)
    boot = None
    if curves is not None and len(curves) >= n_boot // 2:
        boot = bins.apply(curves)
    elif curves is not None:
        method = f"no interval: only {len(curves)} usable resamples"
    return _Prepared(bins, bins.apply(msd_sel), boot, method, g, (lo, hi))


_KEEP = (
    "alpha",
    "alpha_ci",
    "alpha_lag_range",
    "alpha_lag_range_steps",
    "alpha_noise_ratio",
    "regimes",
    *verdicts.TWO_REGIME_FIELDS,
    "verdict",
    "undetermined",
)


def _undetermined(alpha_reason: str, why: str) -> dict:
    """The fields of :func:`fit_strata` when no exponent can be fitted: all None, α undetermined
    for ``alpha_reason``, the verdict ``undetermined: {why}``."""
    d: dict = dict.fromkeys(_KEEP)
    d["undetermined"] = {"alpha": alpha_reason}
    d["verdict"] = f"undetermined: {why}"
    d["ci_method"] = ""
    return d


def fit_strata(
    lags: np.ndarray,
    msd: np.ndarray,
    strata: list[np.ndarray] | None,
    lag_steps: np.ndarray | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    two_regime: bool = True,
    sizes: list[int] | None = None,
    unit: str = "records",
) -> dict:
    """The reported exponents (``verdicts.exponent_summary``: α with its interval, the
    two-regime values only where supported, verdict, ``undetermined`` reasons) of one MSD curve
    ``msd`` at record ``lags``, with intervals from a (stratified) bootstrap over ``strata``
    (each (G_s, len(lags)), summing to ``msd``; None: no interval). ``lag_steps`` (lags, steps)
    converts τ0 to optimizer steps; ``sizes``: each stratum's number of coordinates (the small
    tensor rules of :func:`stratified_curves`); ``unit``: what ``lags`` count ("records", or
    "steps" for records not equally spaced); ``two_regime=False`` skips the two-regime fit (coverage
    studies of α). Adds ``ci_method``."""
    msd = np.asarray(msd, dtype=float)
    if not np.any(msd > 0):
        return _undetermined("the tensor did not move in this window (frozen or zero updates)", "no motion")
    try:
        if strata is None:  # no blocks: the fit without an interval, the reason in ci_method
            prep = _prepare_strata(lags, msd, [msd[None, :]], n_boot, seed)
            prep.method = NO_BLOCKS_UNEVEN if unit == "steps" else NO_BLOCKS
        else:
            prep = _prepare_strata(lags, msd, strata, n_boot, seed, sizes)
        single = _power_law(prep)
    except ValueError as exc:
        return _undetermined(f"no power-law fit ({exc})", "no usable power-law fit")
    try:
        two = _two_regime(prep, 3) if two_regime else None
    except ValueError:
        two = None
    s = verdicts.exponent_summary(single, two, lag_steps, unit=unit)
    d = {k: s.get(k) for k in _KEEP}
    d["ci_method"] = single.ci_method
    if d["alpha"] is not None and d["alpha_ci"] is None:  # no interval: no claim of a regime either
        r, unit = (
            (s["alpha_lag_range_steps"], "steps")
            if s.get("alpha_lag_range_steps")
            else (single.lag_range, unit)
        )
        d["verdict"] = (
            f"α = {single.alpha:.2f} over lags {r[0]:.3g}–{r[1]:.3g} {unit}, without an interval: "
            "neither the diffusion regime nor two regimes can be tested"
        )
    return d


def window_layers(wm, kinds: dict[str, LayerKind], *, n_boot: int = N_BOOT) -> dict:
    """Per-layer results of one window (``msd.WindowMSD``): ``{"layers": {tensor: …},
    "layer_types": {type: …}}``, each entry the fields of :func:`fit_strata` plus its kind,
    role and size. Types: one per layer kind present ("conv", "norm", …) and one per role
    ("weight", "bias") over all kinds. Empty when the window's weights are not finite."""
    if not wm.finite:
        return {"layers": {}, "layer_types": {}}
    idx = wm.usable()  # indices of the fitted lags: record lags, or step lags (not equally spaced)
    lags = wm.lags[idx]
    lag_steps = (wm.lags, np.nan_to_num(wm.lag_steps, nan=0.0))
    unit = wm.lag_unit
    blocks = wm.msd_tensor_groups or {}
    layers: dict[str, dict] = {}
    for i, (name, m) in enumerate(wm.msd_tensor.items()):
        g = blocks.get(name)
        strata = [g[:, idx]] if g is not None else None
        k = kinds.get(name)
        sizes = [k.n_params] if k and k.n_params else None
        entry = fit_strata(
            lags, m[idx], strata, lag_steps, n_boot=n_boot, seed=_seed(wm.index, i), sizes=sizes, unit=unit
        )
        layers[name] = {
            "kind": k.kind if k else "other",
            "role": k.role if k else name,
            "n_params": k.n_params if k else None,
            "n_blocks": int(g.shape[0]) if g is not None else 0,
            **entry,
        }
    types: dict[str, list[str]] = {}
    for name in wm.msd_tensor:
        k = kinds.get(name)
        types.setdefault(k.kind if k else "other", []).append(name)
        if k and k.role in ("weight", "bias"):
            types.setdefault(k.role, []).append(name)
    layer_types: dict[str, dict] = {}
    for j, (tname, members) in enumerate(sorted(types.items())):
        curve = sum(wm.msd_tensor[m][idx] for m in members)
        strata = [blocks[m][:, idx] for m in members if m in blocks]
        if len(strata) != len(members):
            strata = None
        sizes = [kinds[m].n_params if m in kinds else 0 for m in members]
        sizes = sizes if all(sizes) else None
        seed = _seed(wm.index, 10_000 + j)
        entry = fit_strata(lags, curve, strata, lag_steps, n_boot=n_boot, seed=seed, sizes=sizes, unit=unit)
        layer_types[tname] = {
            "by": "role" if tname in ("weight", "bias") else "kind",
            "tensors": members,
            **entry,
        }
    return {"layers": layers, "layer_types": layer_types}


def _seed(window: int, item: int) -> int:
    return int(window) * 1_000_003 + int(item)


def layers_by_window(summary: dict, key: str = "layer_types") -> tuple[list[int], dict[str, list[dict]]]:
    """From a summary.json: the windows' t_w and, per layer (``key`` = "layers") or layer type
    ("layer_types"), its entry in each window (None where absent)."""
    ws = summary.get("windows") or []
    t_w = [w["t_w"] for w in ws]
    names: list[str] = []
    for w in ws:
        for n in w.get(key) or {}:
            if n not in names:
                names.append(n)
    return t_w, {n: [(w.get(key) or {}).get(n) for w in ws] for n in names}


def interval_of(entry: dict | None) -> tuple[float | None, tuple[float, float] | None]:
    """α and its interval of one layer entry (None where undetermined or absent)."""
    if not entry:
        return None, None
    ci = entry.get("alpha_ci")
    return entry.get("alpha"), (tuple(ci) if ci else None)


__all__ = [
    "KINDS",
    "LayerKind",
    "classify",
    "fit_strata",
    "interval_of",
    "kind_of_module",
    "kinds_summary",
    "layers_by_window",
    "store_kinds",
    "stratified_curves",
    "window_layers",
]

LAYER_DEFINITIONS = {
    "layers": "per tensor of the window: its own MSD's exponents, with the whole vector's rules "
    "(alpha with a 95 % bootstrap interval over up to 32 blocks of the tensor's coordinates; "
    "two-regime values only where supported; null with the reason in undetermined, e.g. a tensor "
    "of fewer than 16 coordinates has no interval), its layer kind and role, n_blocks, ci_method",
    "layer_types": "per layer kind (conv, norm, linear, embedding, attention, other) and role "
    "(weight, bias): the exponents of the summed MSD of its tensors, with a stratified bootstrap "
    "(each tensor's blocks resampled among themselves)",
    "layer_kinds": "how each tensor's layer kind was known: 'recorded module' (the store's "
    "tensor_modules attribute, format 1.2) or 'name and shape' (heuristics, docs/analysis.md)",
}
