#!/usr/bin/env bash
# GPU check, one prepared command for a lent GPU machine (fits in 8 minutes on an H100/H200):
#   1. recording overhead on CUDA, ResNet-20 and ResNet-56 at batch 128, every step (target <= 1.05x);
#   2. pinned device-to-host snapshot copy time per record;
#   3. sustained records/s the background writer holds for ResNet-56.
# The GPU image has torch but not zarr/numcodecs: carry them as wheels in .whl/ (see
# /work/.library/device/README.md), e.g. on the workstation:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 crc32c==2.9.post0 google-crc32c==1.9.0 \
#     typing-extensions
# and run with carry [".whl"]:  bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/ts . 2>/dev/null \
  || python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/ts .
export PYTHONPATH="/tmp/ts:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
out="${OUT:-/tmp}"
timeout 300 python3 bench/recording_overhead.py --device cuda --cases resnet20,resnet56 --trials 3 --steps 60 \
  --no-record | tee "$out/overhead.txt"
timeout 150 python3 - <<'PY' | tee "$out/snapshot.txt"
import shutil, tempfile, time, importlib.util, torch
from trajstore.recorders.snapshot import SnapshotPool
from trajstore.recorders import Recorder
spec = importlib.util.spec_from_file_location("c", "examples/train_cifar.py"); c = importlib.util.module_from_spec(spec)
spec.loader.exec_module(c)
dev = torch.device("cuda")
model = c.build_model("resnet56").to(dev)
params = [p for p in model.parameters()]
n = sum(p.numel() for p in params)
pool = SnapshotPool(n, dev, size=4)
flat = SnapshotPool.flat_views(params)
for _ in range(10):
    s = pool.snapshot(flat); s.ready(); s.release()
torch.cuda.synchronize(); t0 = time.perf_counter()
for _ in range(200):
    s = pool.snapshot(flat); s.ready(); s.release()
dt = (time.perf_counter() - t0) / 200
print(f"resnet56 ({n} params, {n*4/1e6:.1f} MB): snapshot + pinned D2H copy {dt*1e3:.3f} ms "
      f"({n*4/dt/1e9:.1f} GB/s)")
tmp = tempfile.mkdtemp()
opt = torch.optim.SGD(model.parameters(), lr=0.0)
with Recorder(model, f"{tmp}/w.zarr", progress=False) as rec:
    rec.attach(opt)
    t0 = time.perf_counter()
    for _ in range(500):
        opt.step()  # no compute: the writer is the bottleneck
    t_submit = time.perf_counter() - t0
t_total = time.perf_counter() - t0
print(f"writer sustained {500/t_total:.0f} records/s ({500*n*4/t_total/1e6:.0f} MB/s raw) for resnet56; "
      f"submission alone {500/t_submit:.0f} records/s")
shutil.rmtree(tmp)
PY
