"""Names and units of the observables a recorder writes (docs/format.md, "Observable naming", 1.1).

One rule everywhere (``Recorder`` API, ``trajstore record``): with a single optimizer the
minibatch loss is ``loss``, its learning rate ``lr`` (one parameter group) or
``lr.<optimizer>.<group>`` (several); with several optimizers every series carries the
optimizer's name: ``loss.<optimizer>``, ``lr.<optimizer>.<group>``, ``skipped.<optimizer>``.
A loss is labelled ``nats`` only when its autograd graph ends in a cross-entropy / NLL /
binary cross-entropy (a mean or sum of log-likelihoods); otherwise it carries no unit.
"""

from __future__ import annotations

import torch

# Autograd nodes whose output is a negative log-likelihood in nats.
_NATS_NODES = frozenset(
    {
        "NllLossBackward0",
        "NllLoss2DBackward0",
        "BinaryCrossEntropyBackward0",
        "BinaryCrossEntropyWithLogitsBackward0",
        "CrossEntropyLossBackward0",
    }
)


def loss_unit(loss: torch.Tensor, scaled: bool = False) -> str:
    """``"nats"`` when ``loss`` is computed by a cross-entropy-type loss function, else ``""``.

    ``scaled``: ``loss`` is an AMP GradScaler's ``loss * scale``; the unit is that of ``loss``.
    """
    node = getattr(loss, "grad_fn", None)
    if scaled and node is not None and type(node).__name__ == "MulBackward0" and node.next_functions:
        node = node.next_functions[0][0]
    return "nats" if node is not None and type(node).__name__ in _NATS_NODES else ""


def series_name(base: str, optimizer: str, several: bool) -> str:
    """``loss`` / ``skipped`` for a single optimizer, ``<base>.<optimizer>`` with several."""
    return f"{base}.{optimizer}" if several else base


def lr_name(optimizer: str, group: int, n_groups: int, several: bool) -> str:
    """``lr`` for one optimizer with one parameter group, else ``lr.<optimizer>.<group>``."""
    return "lr" if not several and n_groups == 1 else f"lr.{optimizer}.{group}"
