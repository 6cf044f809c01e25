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
if [ "${STAGE:-1}" = 1 ]; then  # three recipes from scratch
  run A96 --size 96 --seed 0 ${EXTRA:-}
  run B112 --size 112 --seed 1 ${EXTRA:-}
  run C96m --size 96 --seed 2 --mixup 0.2 --erase 0.25 ${EXTRA:-}
else  # three seeds continuing stage 1's best (C96m) at 112 px, for a weight soup
  for s in 10 11 12; do
    run D112s$s --size 112 --seed $s --mixup 0.2 --erase 0.25 --init .devdata/gpu/C96m.best.npz \
      --lr 1e-3 --warmup 1 --ema 0.999 ${EXTRA:-}
  done
fi
wait
for f in "$W"/*.log; do echo "== $f"; cat "$f"; done | tee "$OUT/logs.txt" | grep -v '"epoch"' || true
if [ "${STAGE:-1}" = 1 ]; then keep=best; else keep=final; fi
cp "$W"/*.$keep.npz "$W"/*.json "$OUT"/ 2>/dev/null
ls -la "$OUT"
