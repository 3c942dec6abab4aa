"""The model and data of the sharded-model test, shared by the FSDP2 ranks and the unsharded run.

Odd row counts (5, 7) make FSDP2's shards uneven across 2 ranks."""

import torch

STEPS = 9
# Recorder store_options of each case: default chunks (one column) and 16-wide, 4-record chunks
# (7 columns over 2 ranks, 2 full blocks and a partial one).
CASES = {"default": {}, "small_chunks": {"chunk_params": 16, "chunk_records": 4}}


def make_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 7), torch.nn.Tanh(), torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)
    )


def batches():
    g = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        yield torch.randn(8, 6, generator=g), torch.randn(8, 3, generator=g)


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, rec) -> None:
    """The training of every run (sharded or not): one step on the MSE of each of :func:`batches`,
    its loss logged to the Recorder ``rec``."""
    for x, y in batches():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        rec.log_loss(loss)
        opt.step()
