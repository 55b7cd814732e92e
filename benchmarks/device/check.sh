#!/usr/bin/env bash
# The GPU checks of issue 5 as one run on the lent GPU machine (H100/H200), within a deadline.
#
# Here, once:   bash benchmarks/device/fetch_wheels.sh
# Then, in one device call, carrying .whl:   bash benchmarks/device/check.sh
#
# Steps, most wanted first; each gets at most its own limit and what is left of DEADLINE seconds
# (default 480), and a step that would get under 30 s is skipped:
#   1. the GPU tests (tests/test_gpu.py)
#   2. tl.bgformer in memory, 300,000 cells, batches of 16,384, 4 epochs (training, inference and
#      tl pass speed; the data are kept on the GPU by default)
#   3. the same file backed, 8 workers, shuffled blocks of 64 cells (target: >= 50% of step 2)
#   4. tl.scrcl in mini-batches, 100,000 cells, one epoch
#   5. where a scRCL step spends its time at 100,000 cells (benchmarks/scrcl_step_profile.py)
# Logs (the profile's report is its log), scaling.json (the committed rows plus the new ones) and
# scaling.md go to $OUT; copy both over benchmarks/results/ here (scaling.md is written from the json).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/atlasclust-device}
DEADLINE=${DEADLINE:-480}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=agg

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing .whl failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD/src
fi
{
  nvidia-smi -L
  python3 -c "import torch; from importlib.metadata import version as v; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), *(f'{p} {v(p)}' for p in ('scvi-tools', 'scanpy', 'anndata')))"
} 2>&1 | tee "$OUT/check.log"

# run a step in its own process group, so that the benchmark's worker processes stop with it
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  ((limit > left)) && limit=$left
  if ((limit < 30)); then
    echo "$name: skipped, ${left}s left" | tee -a "$OUT/check.log"
    return
  fi
  local start=$SECONDS
  setsid bash -c "$*" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  (sleep "$limit" && kill -TERM -- "-$pid" 2>/dev/null) &
  local watcher=$!
  wait "$pid"
  local rc=$?
  kill "$watcher" 2>/dev/null
  echo "$name: rc=$rc after $((SECONDS - start))s (limit ${limit}s)" | tee -a "$OUT/check.log"
}

scaling="python3 benchmarks/scaling.py --method"
step gpu_tests 150 python3 -m pytest -p no:cacheprovider -o addopts=--import-mode=importlib -m gpu -q tests/test_gpu.py
step bgformer_memory 150 $scaling bgformer --sizes 300000 --max-epochs 4 --batch-size 16384
step bgformer_backed 120 $scaling bgformer --backed --sizes 300000 --max-epochs 4 --batch-size 16384 \
  --num-workers 8 --shuffle-block-size 64
step scrcl_minibatch 150 $scaling scrcl --sizes 100000 --max-epochs 1
step scrcl_profile 150 python3 benchmarks/scrcl_step_profile.py benchmarks/data/simulated_100000.h5ad \
  --batch-sizes 2048,16384
cp benchmarks/results/scaling.json benchmarks/results/scaling.md "$OUT"/ 2>/dev/null
echo "done after ${SECONDS}s" | tee -a "$OUT/check.log"
