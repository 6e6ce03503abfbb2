#!/usr/bin/env bash
# The measurements that need a GPU, in one run (a few minutes on one recent GPU):
#   1. the CUDA-only tests (pytest -m gpu; they need only what the script needs);
#   2. evaluation speed, the official per-sample loop against srvp.evaluate
#      (smmnist preset, 16 videos x 100 samples; the target is 3x);
#   3. training throughput of the smmnist preset (batch 128) in float32, bf16 and
#      fp16 with its gradient scaler, each with and without torch.compile, against
#      the authors' ~6 it/s on a Titan V.
# It needs only torch, numpy, tqdm and pytest: the package is used from this
# checkout (PYTHONPATH), nothing is installed.
#
# Usage: SRVP_MNIST_DIR=MNIST_DIR bash benchmarks/gpu_checks.sh [OUT_DIR]
# Each step's output also goes to OUT_DIR/<step>.txt (default gpu_checks/).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
out="${1:-gpu_checks}"
mnist="${SRVP_MNIST_DIR:?set SRVP_MNIST_DIR to a folder with the MNIST IDX files}"
mkdir -p "$out"
status=0

step() {  # step NAME COMMAND...: run, tee to OUT/NAME.txt, remember a failure
  local name="$1"; shift
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt"
  local rc="${PIPESTATUS[0]}"
  [ "$rc" -eq 0 ] || { echo "=== $name FAILED (exit $rc)"; status=1; }
}

step device "$py" -c "import torch; print('torch', torch.__version__, '|',
torch.cuda.get_device_name(), '|', torch.cuda.get_device_properties(0).total_memory
// 2**30, 'GiB')"
step tests "$py" -m pytest -q -m gpu tests/test_fvd.py -p no:cacheprovider
step evaluate "$py" benchmarks/bench_evaluate.py --device cuda --videos 16 --samples 100
step train "$py" benchmarks/bench_train.py --data-dir "$mnist" --device cuda \
  --preset smmnist --compile --warmup 20 --steps 200
exit "$status"
