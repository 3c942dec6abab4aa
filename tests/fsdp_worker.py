"""Worker of the sharded-model tests (run as a script, one process per rank, gloo on CPU).

argv: rank world port out_dir. Trains a small MLP sharded with FSDP2 (``fully_shard``) on the
same batches on every rank (so each update equals the unsharded one bit for bit) and records it
with the Recorder, once per case of ``CASES`` into out_dir/<case>.zarr; writes
out_dir/<case>.rank<r>.json (the columns this rank owned, the values it held locally). Then a
DTensor placed Shard(1) must be refused in one line: out_dir/refused.rank<r>.txt.
"""

import json
import sys

import torch
import torch.distributed as dist
from fsdp_model import CASES, make_model, train
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Shard, distribute_tensor
from trajstore.recorders import Recorder

rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
torch.set_num_threads(1)
mesh = init_device_mesh("cpu", (world,))

for case, options in CASES.items():
    model = make_model()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with Recorder(model, f"{out}/{case}.zarr", store_options=options) as rec:
        rec.attach(opt)
        train(model, opt, rec)
        plan = rec._writer.plan
    with open(f"{out}/{case}.rank{rank}.json", "w") as fh:
        json.dump({"owned": plan.owned, "n_local": plan.n_local}, fh)

model = torch.nn.Linear(4, 6)
model.weight = torch.nn.Parameter(distribute_tensor(model.weight.detach(), mesh, [Shard(1)]))
try:
    Recorder(model, f"{out}/refused.zarr").bind()
except Exception as exc:  # noqa: BLE001 - the test reads the message
    with open(f"{out}/refused.rank{rank}.txt", "w") as fh:
        fh.write(f"{type(exc).__name__}: {exc}")
dist.destroy_process_group()
