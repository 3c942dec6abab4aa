"""Shared by the framework-callback tests: the optional-group switch and store checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch


# Lightning and transformers are in the `dev` extra (docs/integrations.md gives the cost). Where
# they are missing the tests skip and say how to get them, except in CI (CI=true) or with
# TRAJSTORE_REQUIRE_INTEGRATIONS=1, where a missing framework fails: the tests must not vanish.
def require(module: str, extra: str):
    """``module`` imported, or the test skipped (failed in CI) with the extra to install."""
    try:
        reason = f"{module} is not installed: pip install 'trajstore[{extra}]'"
        return pytest.importorskip(module, reason=reason)
    except pytest.skip.Exception:
        if os.environ.get("TRAJSTORE_REQUIRE_INTEGRATIONS") or os.environ.get("CI"):
            raise AssertionError(
                f"{module} is missing, and CI / TRAJSTORE_REQUIRE_INTEGRATIONS requires the framework "
                f"tests: pip install 'trajstore[{extra}]' (it is in the dev extra)"
            ) from None
        raise


def flat(params) -> np.ndarray:
    """All ``params`` (tensors) as one float32 vector, copied."""
    return torch.cat([p.detach().reshape(-1).float().cpu() for p in params]).numpy().copy()
