#!/bin/bash
# The matcher runs made on a GPU machine (one call of the device tool; ~8 min on an H200):
#   python bench/evaluate_train_matcher.py prepare                      # once, here: data.json, e5-slim
#   python bench/evaluate_train_matcher.py prepare-hard --n-train 20000 --work W   # look-alike negatives
#   python bench/evaluate_train_matcher.py pack --work W --pack-to .gpu && cp -r ~/.cache/endcloud/matcher/e5-lora .gpu/init
#   bash bench/evaluate_train_matcher_gpu.sh          # there, with .gpu carried; results in $OUT
# 1. e5-lora continued on look-alike negatives with the full recipe (all 12 layers, batch 64);
# 2. the cross-encoder e5-cross from the zero-shot weights;
# 3. select: the (matcher, query window) with the best R10@1 on JDDC 2019 validation with
#    look-alike negatives, among the old e5-lora and the two new ones - and only that pick is
#    scored on the test sets (ECD sample test, JDDC 2018 / 2019 test).
# Wall-time caps (minutes) keep it inside one call; a linear schedule ends when its cap does.
set -o pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
W=${W:-.gpu} O=${OUT:-/tmp/matcher-gpu} DEV=${DEV:-cuda}
HARD_MIN=${HARD_MIN:-1.5} CROSS_MIN=${CROSS_MIN:-4} HARD_STEPS=${HARD_STEPS:-3000} CROSS_STEPS=${CROSS_STEPS:-20000}
B=bench/evaluate_train_matcher.py
mkdir -p "$O"
command -v nvidia-smi >/dev/null && nvidia-smi -L
python3 $B train-hard --work "$W" --device "$DEV" --init "$W/init" --steps "$HARD_STEPS" --batch-size "${HARD_BATCH:-64}" \
    --hard-negatives 3 --train-layers 0 --max-len 128 --lr 1e-4 --scheduler linear \
    --max-minutes "$HARD_MIN" --save "$O/e5-lora-hardgpu" 2>&1 | tee "$O/train_hard.log" || exit 1
python3 $B train-cross --work "$W" --device "$DEV" --steps "$CROSS_STEPS" --batch-size "${CROSS_BATCH:-32}" \
    --hard-negatives 3 --pair-negatives 7 --max-len 192 --lr 3e-4 --scheduler linear \
    --max-minutes "$CROSS_MIN" --save "$O/e5-cross" 2>&1 | tee "$O/train_cross.log" || exit 1
python3 $B select --work "$W" --device "$DEV" --candidates "$W/init,$O/e5-lora-hardgpu,$O/e5-cross" \
    --select-json "$O/select.json" 2>&1 | tee "$O/select.log"
