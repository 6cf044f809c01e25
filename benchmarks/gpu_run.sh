#!/usr/bin/env bash
# Train the shipped-model candidates side by side on one lent GPU (device tool), in PyTorch.
# Each run is launch-bound (small model, small images), so three share the GPU well.
# Needs the pack from gpu_pack.py carried in .devdata/gpu; results go to $OUT.
#   BUDGET=420 bash benchmarks/gpu_run.sh
#   STAGE=3 BUDGET=430 bash benchmarks/gpu_run.sh   # after keras_to_npz.py wrote .devdata/gpu/shipped.npz
#   STAGE=4 BUDGET=450 EPOCHS=70 bash benchmarks/gpu_run.sh   # width 1.4 vs 1.0 from scratch
#   STAGE=6 BUDGET=500 EPOCHS=70 bash benchmarks/gpu_run.sh   # distillation from shipped.npz (+ gender/race heads) vs control
set -u
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
B=${BUDGET:-420}
W=${WORK:-/tmp/tt}
OUT=${OUT:-/tmp/tt-out}
rm -rf "$W"; mkdir -p "$W" "$OUT"  # a warm machine keeps /tmp: start clean
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
elif [ "${STAGE}" = 2 ]; then  # three seeds continuing stage 1's best (C96m) at 112 px, for a weight soup
  for s in 10 11 12; do
    run D112s$s --size 112 --seed $s --mixup 0.2 --erase 0.25 --init .devdata/gpu/C96m.best.npz \
      --lr 1e-3 --warmup 1 --ema 0.999 ${EXTRA:-}
  done
elif [ "${STAGE}" = 3 ]; then  # three seeds continuing the shipped model (keras_to_npz.py -> shipped.npz)
  for s in 20 21 22; do
    run E112s$s --size 112 --seed $s --mixup 0.2 --erase 0.25 --init .devdata/gpu/shipped.npz \
      --lr 5e-4 --warmup 1 --ema 0.999 ${EXTRA:-}
  done
elif [ "${STAGE}" = 5 ]; then  # three seeds continuing stage 4's F112a14 (copied to .devdata/gpu), for a soup
  for s in 30 31 32; do
    run G112s$s --size 112 --alpha 1.4 --seed $s --mixup 0.2 --erase 0.25 --init .devdata/gpu/F112a14.best.npz \
      --lr 5e-4 --warmup 1 --ema 0.999 --half ${EXTRA:-}
  done
elif [ "${STAGE}" = 6 ]; then  # born-again distillation from the shipped model (keras_to_npz.py -> shipped.npz)
  # and auxiliary gender/race heads (training only, not exported), from scratch at 112 px width 1.0 with
  # stage 1's C96m recipe, one seed for all three (same init and batches): control, KD, KD + multitask.
  # The teacher's forward pass slows the KD runs: BUDGET must let all three reach EPOCHS (check "epochs"
  # in summaries.json), else the comparison is confounded. Exports are ~9.7 MB in float32: no --half.
  E=${EPOCHS:-70}
  C="--size 112 --seed 4 --mixup 0.2 --erase 0.25 --max-epochs $E"
  run H112ctl $C ${EXTRA:-}
  run H112kd $C --teacher .devdata/gpu/shipped.npz --kd-weight 0.5 ${EXTRA:-}
  run H112kdmt $C --teacher .devdata/gpu/shipped.npz --kd-weight 0.5 --aux-weight 0.2 ${EXTRA:-}
else  # stage 4, capacity (fit_gap.py: the shipped model fits its own training photos at 0.870 only):
  # width 1.4 against 1.0 from scratch with stage 1's C96m recipe and the same epoch cap, and 1.4 at the
  # shipped 112 px. --half keeps each width-1.4 export (18 MB in float32) under the 16 MB a file may be.
  # Convert with torch_to_keras.py --alpha 1.4 --size 96|112.
  E=${EPOCHS:-70}
  run F96a10 --size 96 --seed 2 --mixup 0.2 --erase 0.25 --max-epochs "$E" --half ${EXTRA:-}
  run F96a14 --size 96 --seed 2 --mixup 0.2 --erase 0.25 --alpha 1.4 --max-epochs "$E" --half ${EXTRA:-}
  run F112a14 --size 112 --seed 3 --mixup 0.2 --erase 0.25 --alpha 1.4 --max-epochs "$E" --half ${EXTRA:-}
fi
wait
for f in "$W"/*.log; do echo "== $f"; cat "$f"; done | tee "$OUT/logs.txt" | grep -v '"epoch"' || true
case "${STAGE:-1}" in
  1) cp "$W"/*.best.npz "$W"/*.json "$OUT"/ 2>/dev/null ;;
  2) cp "$W"/*.final.npz "$W"/*.json "$OUT"/ 2>/dev/null ;;
  *) cp "$W"/*.best.npz "$W"/*.final.npz "$OUT"/ 2>/dev/null  # 8 files at most come back (3 runs: 6 npz + logs + summaries)
     $PY -c "import glob, json, sys; json.dump([json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + '/*.json'))], open(sys.argv[2], 'w'), indent=1)" "$W" "$OUT/summaries.json" ;;
esac
ls -la "$OUT"
