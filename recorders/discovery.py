"""Recovering the model and parameter names from optimizers, for recording scripts we did not write.

Naming rule (docs/format.md, "Parameter names", 1.1): a parameter is named by its path in the
model's module tree, as ``named_parameters()`` names it, with the components that only a
wrapper adds removed: ``_orig_mod`` (``torch.compile``) and ``module`` of
``DistributedDataParallel`` / ``DataParallel``. So a compiled or DDP-wrapped model records under
the same names as the bare model, and a store can be loaded back into it.
"""

from __future__ import annotations

import gc
import sys
import types

import torch

from .errors import RecordingRefusedError


class UnsupportedModelError(RecordingRefusedError):
    """The model holds its parameters in a way trajstore cannot record correctly."""


def _wrapper_types() -> tuple[type, ...]:
    kinds: list[type] = [torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel]
    try:
        from torch._dynamo.eval_frame import OptimizedModule

        kinds.append(OptimizedModule)
    except ImportError:  # pragma: no cover - torch without dynamo
        pass
    return tuple(kinds)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module a ``torch.compile`` / DDP / DataParallel wrapper holds (repeatedly), else itself."""
    wrappers = _wrapper_types()
    while isinstance(module, wrappers):
        module = getattr(module, "_orig_mod", None) or module.module
    return module


def _refuse_sharded(module: torch.nn.Module) -> None:
    """FSDP1 flattens parameters into per-rank FlatParameters: refused in one line. FSDP2 and
    DTensor parameters are recorded rank by rank (:mod:`trajstore.recorders.sharded`)."""
    for m in module.modules():
        if type(m).__name__ == "FullyShardedDataParallel" or any(
            type(p).__name__ == "FlatParameter" for p in m.parameters(recurse=False)
        ):
            raise UnsupportedModelError(
                f"{type(m).__name__} (FSDP1) flattens parameters into per-rank FlatParameters, which "
                "trajstore cannot record without gathering them; shard the model with FSDP2 "
                "(torch.distributed.fsdp.fully_shard), which trajstore records rank by rank"
            )


def canonical_named_tensors(
    module: torch.nn.Module,
) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[str, torch.Tensor]]]:
    """(named parameters, named buffers) of ``module`` under the naming rule, every parameter
    (trainable or frozen) once, in ``named_parameters()`` order."""
    _refuse_sharded(module)
    params: list[tuple[str, torch.Tensor]] = []
    buffers: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = set()

    def walk(m: torch.nn.Module, prefix: str) -> None:
        m = unwrap(m)
        for n, p in m.named_parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                params.append((prefix + n, p))
        for n, b in m.named_buffers(recurse=False):
            if id(b) not in seen:
                seen.add(id(b))
                buffers.append((prefix + n, b))
        for n, child in m.named_children():
            walk(child, f"{prefix}{n}.")

    walk(module, "")
    return params, buffers


def _live(cls: type) -> list:
    # type(), not isinstance(): isinstance() looks through weakref proxies, and a proxy whose
    # object died raises ReferenceError (torch.compile leaves such proxies behind).
    return [o for o in gc.get_objects() if issubclass(type(o), cls)]


def live_optimizers() -> list[torch.optim.Optimizer]:
    """Every optimizer alive now (garbage collected first: a discarded one is not training)."""
    gc.collect()
    return _live(torch.optim.Optimizer)


def optimizer_names(optimizers: list[torch.optim.Optimizer]) -> list[str]:
    """A name for each optimizer: the variable that holds it in the innermost frame of the user's
    code (not torch's, not trajstore's) that has one, or else in ``__main__`` (``opt_g``); else
    ``opt<i>`` (its position). Names are unique or all positional."""
    scopes: list[dict] = []
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(("torch", "trajstore")):
            scopes.append(frame.f_locals)
        frame = frame.f_back
    main = sys.modules.get("__main__")
    if main is not None:
        scopes.append(vars(main))
    names = []
    for i, opt in enumerate(optimizers):
        name = f"opt{i}"
        for scope in scopes:
            held = [k for k, v in list(scope.items()) if v is opt and k.isidentifier() and k != "self"]
            held = [k for k in held if not k.startswith("_")]
            if held:
                name = held[0] if len(held) == 1 else name
                break
        names.append(name)
    if len(set(names)) != len(names):
        names = [f"opt{i}" for i in range(len(optimizers))]
    return names


def discover_model(
    optimizers: list[torch.optim.Optimizer],
) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[str, torch.Tensor]], torch.nn.Module | None]:
    """Name every parameter of the models the optimizers train, trainable or frozen.

    Returns (named parameters, named buffers, the single root module or None). The roots are the
    largest live modules holding the optimizers' parameters (so a frozen backbone next to a
    trained head is recorded too), wrappers removed by the naming rule. With several roots
    (a GAN's generator and discriminator), names get a ``<ModuleClass><i>.`` prefix, ``i`` the
    root's position, largest first. A parameter owned by no module is named ``param<j>``.
    """
    wanted: dict[int, torch.Tensor] = {}
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                wanted.setdefault(id(p), p)
    wrappers = _wrapper_types()
    cover = []
    for m in _live(torch.nn.Module):
        ids = {id(p) for p in m.parameters()}
        if ids & wanted.keys():
            # Largest first; a wrapper before the module it wraps (same parameters).
            cover.append((len(ids), isinstance(m, wrappers), m, ids))
    cover.sort(key=lambda c: (c[0], c[1]), reverse=True)
    roots: list[torch.nn.Module] = []
    covered: set[int] = set()
    for _, _, m, ids in cover:
        if (ids & wanted.keys()) - covered:
            roots.append(m)
            covered |= ids
        if wanted.keys() <= covered:
            break
    named: list[tuple[str, torch.Tensor]] = []
    buffers: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = set()
    for i, m in enumerate(roots):
        prefix = "" if len(roots) == 1 else f"{type(unwrap(m)).__name__}{i}."
        ps, bs = canonical_named_tensors(m)
        for n, p in ps:
            if id(p) not in seen:
                named.append((prefix + n, p))
                seen.add(id(p))
        buffers.extend((prefix + n, b) for n, b in bs)
    for j, (pid, p) in enumerate(wanted.items()):
        if pid not in seen:
            named.append((f"param{j}", p))
            seen.add(pid)
    return named, buffers, unwrap(roots[0]) if len(roots) == 1 else None
