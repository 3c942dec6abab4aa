#!/usr/bin/env bash
# GPU check, one prepared command for a lent GPU machine (about 3 minutes on an H100/H200):
#   1. the CUDA tests (tests/test_cuda.py): records equal synchronous copies, bit for bit;
#   2. recording overhead on CUDA, ResNet-20 and ResNet-56 at batch 128, every step (target <= 1.05x);
#   3. snapshot copy time per record and the record rate the background writer sustains.
# The GPU image has torch but not zarr/numcodecs: carry them as wheels in .whl/ (see
# /work/.library/device/README.md), e.g. on the workstation:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 crc32c==2.9.post0 google-crc32c==1.9.0
# and run with carry [".whl"]:  bash bench/gpu_check.sh
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU (a dry run of this script).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
dev="${GPU_CHECK_DEVICE:-cuda}"
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
site=/tmp/gpu_check_site
rm -rf "$site" && mkdir -p "$site"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl || exit 1
fi
rm -rf build  # a build/ left by an earlier call can hold stale copies of the modules
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" . || exit 1
export PYTHONPATH="$site"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, zarr, numpy; print('torch', torch.__version__, 'zarr', zarr.__version__, \
'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
# Tests run from a copy without the source folders, so the installed package is what they import.
rm -rf /tmp/gpu_check_tests && mkdir -p /tmp/gpu_check_tests
cp -r tests examples pyproject.toml /tmp/gpu_check_tests/
(cd /tmp/gpu_check_tests && timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1) \
  | tee "$out/tests.txt"
timeout 240 python3 bench/recording_overhead.py --device "$dev" --cases resnet20,resnet56 --trials 3 \
  --steps "${GPU_CHECK_STEPS:-60}" --no-record 2>&1 | tee "$out/overhead.txt"
timeout 120 python3 bench/snapshot_throughput.py --device "$dev" --model resnet56 \
  --records "${GPU_CHECK_RECORDS:-500}" 2>&1 | tee "$out/snapshot.txt"
