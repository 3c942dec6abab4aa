"""Recovering parameter names from optimizers, for recording scripts we did not write."""

from __future__ import annotations

import gc
import warnings

import torch


def _live(cls: type) -> list:
    with warnings.catch_warnings():  # isinstance on deprecated torch proxies warns
        warnings.simplefilter("ignore")
        return [o for o in gc.get_objects() if isinstance(o, cls)]


def live_optimizers() -> list[torch.optim.Optimizer]:
    return _live(torch.optim.Optimizer)


def named_trainables(
    optimizers: list[torch.optim.Optimizer],
) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[str, torch.Tensor]], torch.nn.Module | None]:
    """Name every parameter the optimizers update, through the modules that own them.

    Returns (named parameters, named buffers, the single root module or None). The smallest
    set of modules covering the optimizers' parameters is chosen, largest coverage first;
    with several modules, names get a ``<ModuleClass><i>.`` prefix. A parameter owned by no
    module is named ``param<i>``. Parameter order is the owning module's ``named_parameters``
    order, so it matches a hand-written recorder.
    """
    wanted: dict[int, torch.Tensor] = {}
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    wanted.setdefault(id(p), p)
    modules = _live(torch.nn.Module)
    cover = []
    for m in modules:
        ids = {id(p) for p in m.parameters()}
        hit = len(ids & wanted.keys())
        if hit:
            cover.append((hit, -len(ids), m))
    cover.sort(key=lambda c: (c[0], c[1]), reverse=True)
    chosen: list[torch.nn.Module] = []
    covered: set[int] = set()
    for _, _, m in cover:
        ids = {id(p) for p in m.parameters()} & wanted.keys()
        if ids - covered:
            chosen.append(m)
            covered |= ids
        if covered == wanted.keys():
            break
    named: list[tuple[str, torch.Tensor]] = []
    buffers: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = set()
    for i, m in enumerate(chosen):
        prefix = "" if len(chosen) == 1 else f"{type(m).__name__}{i}."
        for n, p in m.named_parameters():
            if p.requires_grad and id(p) not in seen:
                named.append((prefix + n, p))
                seen.add(id(p))
        buffers.extend((prefix + n, b) for n, b in m.named_buffers())
    for j, (pid, p) in enumerate(wanted.items()):
        if pid not in seen:
            named.append((f"param{j}", p))
            seen.add(pid)
    return named, buffers, chosen[0] if len(chosen) == 1 else None
