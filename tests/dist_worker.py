"""Worker of test_distributed_only_rank0_writes (run as a script, one process per rank)."""

import sys

import torch
import torch.distributed as dist
from trajstore.recorders import Recorder

rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
with Recorder(model, f"{out}/rank{rank}.zarr") as rec:
    rec.attach(opt)
    for _ in range(4):
        opt.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        opt.step()
dist.barrier()
dist.destroy_process_group()
