"""Provenance of a PyTorch run: model, optimizer, seed, framework, device."""

from __future__ import annotations

import numbers

import torch

from trajstore.provenance import code_revision, host_provenance

_MAX_REPR = 20000


def _jsonable(value):
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Number):
        return float(value) if not isinstance(value, numbers.Integral) else int(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return repr(value)


def optimizer_provenance(optimizer: torch.optim.Optimizer) -> dict:
    return {
        "optimizer_class": f"{type(optimizer).__module__}.{type(optimizer).__qualname__}",
        "optimizer": [
            {k: _jsonable(v) for k, v in group.items() if k != "params"} for group in optimizer.param_groups
        ],
    }


def run_provenance(model: torch.nn.Module | None, device: torch.device, script: str | None = None) -> dict:
    prov = host_provenance()
    prov.update(
        {
            "seed": int(torch.initial_seed()),
            "framework": {"torch": torch.__version__, "cuda": torch.version.cuda},
            "device": str(device)
            + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "code_revision": code_revision(script),
        }
    )
    if model is not None:
        prov["model_class"] = f"{type(model).__module__}.{type(model).__qualname__}"
        prov["model_repr"] = repr(model)[:_MAX_REPR]
    if script:
        prov["script"] = script
    return prov
