"""Shared by the framework-callback tests: the optional-group switch and store checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch


# Lightning and transformers are in the `dev` extra (docs/integrations.md gives the cost); where
# they are missing the tests say how to get them instead of failing.
def require(module: str, extra: str):
    try:
        reason = f"{module} is not installed: pip install 'trajstore[{extra}]'"
        return pytest.importorskip(module, reason=reason)
    except pytest.skip.Exception:
        if os.environ.get("TRAJSTORE_REQUIRE_INTEGRATIONS"):
            raise AssertionError(f"TRAJSTORE_REQUIRE_INTEGRATIONS is set but {module} is missing") from None
        raise


def flat(params) -> np.ndarray:
    """All ``params`` (tensors) as one float32 vector, copied."""
    return torch.cat([p.detach().reshape(-1).float().cpu() for p in params]).numpy().copy()
