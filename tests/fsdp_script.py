"""An unmodified training script for ``trajstore record``: FSDP2 on gloo when started with a
torchrun-style environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), plain otherwise; the
same batches on every rank, so both record the same weights."""

import os

import torch
import torch.distributed as dist
from fsdp_model import batches, make_model

sharded = "RANK" in os.environ
torch.set_num_threads(1)
model = make_model()
if sharded:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for x, y in batches():
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
if sharded:
    dist.destroy_process_group()
