#!/usr/bin/env bash
# Train three candidate recipes side by side on one lent GPU (Keras 3, JAX backend).
# Needs .devdata/utk64.npz (benchmarks/pack_utkface.py) and .whl/ (keras, namex, optree).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 1
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
python3 -c "import keras, jax; keras.ops.ones(2); print(jax.devices())" || export KERAS_BACKEND=torch
nvidia-smi -L
BUDGET=${BUDGET:-360}
W=/tmp/work; mkdir -p $W
python3 benchmarks/train_shipped.py .devdata/utk64.npz $W --name A --alpha 1.0 --size 128 --budget $BUDGET --mixed --batch 256 > $W/A.log 2>&1 &
python3 benchmarks/train_shipped.py .devdata/utk64.npz $W --name B --alpha 0.75 --size 128 --budget $BUDGET --mixed --batch 256 > $W/B.log 2>&1 &
python3 benchmarks/train_shipped.py .devdata/utk64.npz $W --name C --alpha 1.0 --size 128 --budget $BUDGET --mixed --batch 256 --lr 3e-3 --age-weight 1.0 --sigma 3 --dropout 0.3 --seed 1 > $W/C.log 2>&1 &
wait
cat $W/*.log | grep -v -i warning > $OUT/logs.txt
cat $W/*.result.json > $OUT/results.json 2>/dev/null
cp $W/A.split.json $OUT/split.json 2>/dev/null
for n in A B C; do cp $W/$n.keras $OUT/ 2>/dev/null; done
grep -h '^{' $OUT/logs.txt; tail -3 $W/*.log
