#!/usr/bin/env bash
# Train the shipped-model candidates side by side on one lent GPU (device tool), in PyTorch.
# Each run is launch-bound (small model, small images), so three share the GPU well.
# Needs the pack from gpu_pack.py carried in .devdata/gpu; results go to $OUT.
#   BUDGET=420 bash benchmarks/gpu_run.sh
set -u
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
B=${BUDGET:-420}
W=${WORK:-/tmp/tt}
OUT=${OUT:-/tmp/tt-out}
mkdir -p "$W" "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY -c "import torch, numpy, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)"
run() {  # name, then torch_train.py options
  local name=$1; shift
  $PY benchmarks/torch_train.py .devdata/gpu/utk.npz "$W" --name "$name" --budget "$B" "$@" >"$W/$name.log" 2>&1 &
}
run A96 --size 96 --seed 0 ${EXTRA:-}
run B112 --size 112 --seed 1 ${EXTRA:-}
run C96m --size 96 --seed 2 --mixup 0.2 --erase 0.25 ${EXTRA:-}
wait
for f in "$W"/*.log; do echo "== $f"; cat "$f"; done | tee "$OUT/logs.txt" | grep -v '"epoch"' || true
cp "$W"/*.best.npz "$W"/*.json "$OUT"/ 2>/dev/null
ls -la "$OUT"
