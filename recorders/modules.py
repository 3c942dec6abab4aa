"""The class of the module that owns each recorded parameter (format 1.2 ``tensor_modules``),
so that analyses know a tensor's layer type without guessing from its name."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .discovery import _live, unwrap


def module_classes(params: Iterable[torch.Tensor], model: torch.nn.Module | None = None) -> list[str | None]:
    """For each parameter, the class name of the module that holds it directly (``Conv2d``,
    ``BatchNorm2d``, ``Linear``, …), or None when no module does. ``model``: the module tree to
    search (every live module when None, as :func:`discovery.discover_model` does)."""
    roots = [model] if model is not None else _live(torch.nn.Module)
    owner: dict[int, str] = {}
    for root in roots:
        for m in unwrap(root).modules():
            for p in m.parameters(recurse=False):
                owner.setdefault(id(p), type(unwrap(m)).__name__)
    return [owner.get(id(p)) for p in params]
