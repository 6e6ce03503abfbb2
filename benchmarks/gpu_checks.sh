#!/usr/bin/env bash
# The measurements that need a GPU, in one run (four minutes on one H200):
#   1. the CUDA-only tests (pytest -m gpu: tests/test_gpu.py, tests/test_fvd.py);
#   2. our training step and best-of-100 test loop against the official code's
#      own (bench_official.py --device cuda; needs SRVP_OFFICIAL, an export of
#      github.com/edouardelasalles/srvp; without it, the re-statement of the
#      official loop in bench_evaluate.py);
#   3. training throughput of the smmnist preset (batch 128) in float32, bf16 and
#      fp16, then bf16 with torch.compile, against the authors' ~6 it/s on a
#      Titan V.
# It needs only torch, numpy, tqdm and pytest: the package is used from this
# checkout (PYTHONPATH), nothing is installed. Each step has a time limit, so one
# slow step cannot take the others' time.
#
# Usage: SRVP_MNIST_DIR=MNIST_DIR [SRVP_OFFICIAL=PATH] bash benchmarks/gpu_checks.sh [OUT_DIR]
# Each step's output also goes to OUT_DIR/<step>.txt (default gpu_checks/).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
out="${1:-gpu_checks}"
mnist="${SRVP_MNIST_DIR:?set SRVP_MNIST_DIR to a folder with the MNIST IDX files}"
mkdir -p "$out"
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, tee to OUT/NAME.txt
  local name="$1" limit="$2"; shift 2
  echo "=== $name (at most ${limit} s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  local rc="${PIPESTATUS[0]}"
  echo "=== $name: exit $rc after $((SECONDS - start)) s"
  [ "$rc" -eq 0 ] || status=1
}

step device 60 "$py" -c "import torch; print('torch', torch.__version__, '|',
torch.cuda.get_device_name(), '|', torch.cuda.get_device_properties(0).total_memory
// 2**30, 'GiB | CUDA', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version())"
step tests 90 "$py" -m pytest -q -m gpu tests/test_gpu.py tests/test_fvd.py \
  -p no:cacheprovider
if [ -n "${SRVP_OFFICIAL:-}" ]; then
  step official 170 "$py" benchmarks/bench_official.py --device cuda \
    --data-dir "$mnist" --only train test --presets smmnist kth --batch 128 100 \
    --samples 100 --reps 3
else
  echo "=== official: skipped (set SRVP_OFFICIAL to an export of the official code)"
  step evaluate 200 "$py" benchmarks/bench_evaluate.py --device cuda --videos 16 \
    --samples 100
fi
step train 100 "$py" benchmarks/bench_train.py --data-dir "$mnist" --device cuda \
  --preset smmnist --amp off bf16 fp16 --warmup 20 --steps 150
step compile 180 "$py" benchmarks/bench_train.py --data-dir "$mnist" --device cuda \
  --preset smmnist --amp bf16 --compile yes --warmup 30 --steps 150
exit "$status"
