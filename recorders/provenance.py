"""Provenance of a PyTorch run: model, optimizers, seed, framework, device, and the user's code."""

from __future__ import annotations

import hashlib
import numbers
import os
import subprocess
import sys

import torch

from trajstore.provenance import code_revision, host_provenance

_MAX_REPR = 20000
MAX_SCRIPT_BYTES = 64 * 1024  # a copy of the training script, kept small; never executed


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


def optimizers_provenance(optimizers: list[torch.optim.Optimizer], names: list[str]) -> dict:
    """``optimizers`` (1.1): every optimizer with its name, in the order of the iteration; the 1.0
    keys ``optimizer_class`` / ``optimizer`` too when there is exactly one."""
    entries = [{"name": n, **optimizer_provenance(o)} for o, n in zip(optimizers, names, strict=True)]
    prov: dict = {"optimizers": entries}
    if len(optimizers) == 1:
        prov.update(optimizer_provenance(optimizers[0]))
    return prov


def training_script() -> str | None:
    """The path of the script being run as ``__main__``, if it is a file."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return os.path.abspath(path) if path and os.path.isfile(path) else None


def script_provenance(script: str | None) -> dict:
    """The training script: path, commit of the repository that holds it (``-dirty`` when that
    repository has changes or the script itself is not committed), and a copy of its text
    (at most 64 KiB; stored as text, never executed)."""
    if not script or not os.path.isfile(script):
        return {"code_revision": code_revision(None)}
    script = os.path.abspath(script)
    prov: dict = {"script": script, "code_revision": code_revision(script)}
    rev = prov["code_revision"]
    if rev and not rev.endswith("-dirty") and not _tracked_unchanged(script):
        prov["code_revision"] = rev + "-dirty"
    with open(script, "rb") as f:
        whole = f.read()
    data = whole[: MAX_SCRIPT_BYTES + 1]
    prov["script_sha256"] = hashlib.sha256(whole).hexdigest()
    prov["script_text"] = data[:MAX_SCRIPT_BYTES].decode("utf-8", errors="replace")
    prov["script_text_truncated"] = len(data) > MAX_SCRIPT_BYTES
    return prov


def _tracked_unchanged(path: str) -> bool:
    """Whether git tracks ``path`` (untracked files are not in the commit)."""
    try:
        p = subprocess.run(
            ["git", "ls-files", "--error-unmatch", os.path.basename(path)],
            cwd=os.path.dirname(path),
            capture_output=True,
            timeout=5,
        )
        return p.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_provenance(model: torch.nn.Module | None, device: torch.device, script: str | None = None) -> dict:
    prov = host_provenance()
    prov.update(
        {
            "seed": int(torch.initial_seed()),
            "framework": {"torch": torch.__version__, "cuda": torch.version.cuda},
            "device": str(device)
            + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        }
    )
    prov.update(script_provenance(script or training_script()))
    if model is not None:
        prov["model_class"] = f"{type(model).__module__}.{type(model).__qualname__}"
        prov["model_repr"] = repr(model)[:_MAX_REPR]
    return prov
