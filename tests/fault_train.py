"""A tiny deterministic training script for the fault-injection tests (run under ``trajstore
record``; ``train`` also runs in-process to give the reference weights).

``--width W`` sets the size: 2 -> W -> 2 MLP, 5W + 2 parameters.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


def make(width: int, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 2))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    return model, x, y


def train(width: int, steps: int, seed: int = 0, after_step=None) -> None:
    """SGD on fixed minibatches (no RNG during training): bit-reproducible on one thread."""
    model, x, y = make(width, seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    if after_step is not None:
        after_step(model)
    for i in range(steps):
        lo = (i * 32) % 256
        opt.zero_grad()
        loss = loss_fn(model(x[lo : lo + 32]), y[lo : lo + 32])
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step(model)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    train(a.width, a.steps, a.seed)
