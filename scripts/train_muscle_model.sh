#!/usr/bin/env bash
# How the shipped stage 2 (models/muscle) was made, on the 2-core CPU, from real C3 slices
# read by blind readers (data/openkbp_c3_muscle) plus phantoms that teach what is not C3
# muscle. The model card records the same commands. Choices (iterations, which step ships)
# were made on the validation cases only; the 30 test cases were evaluated once, at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
C=.venv/bin/c3sarcopenia
DATA=data/openkbp_c3_muscle
STEP=${STEP:-all}

consensus() {  # the readers' majority for one split
    $C muscle-consensus $DATA/readings/*.csv --sheets $DATA/regions \
        --cases-from "$DATA/cases_$1.csv" --out "runs/muscle_real_$1"
}

train_folds() {  # the folds in parallel processes (one thread each), then the card
    for fold in 0 1 2 3 4; do
        OMP_NUM_THREADS=1 $C train "$@" --fold $fold > "runs/train_muscle_fold$fold.log" 2>&1 &
    done
    wait
    $C train "$@"
}

candidate() {  # a models folder: the shipped stage 1 with a stage 2 to judge
    mkdir -p "runs/candidate_$1"
    ln -sfn ../../models/section "runs/candidate_$1/section"
    ln -sfn "../$1" "runs/candidate_$1/muscle"
}

if [[ $STEP == all || $STEP == data ]]; then
    consensus train; consensus validation; consensus test
    $C phantom --n 60 --seed 5000 --in-plane-mm 0.4 4.7 --c3-slab-mm 20 \
        --out runs/muscle_phantoms
fi
if [[ $STEP == all || $STEP == train ]]; then
    train_folds --manifest runs/muscle_real_train/manifest.csv runs/muscle_phantoms/manifest.csv \
        --stage muscle --preset paper --out runs/muscle_step1 --iterations 2400 --seed 0 \
        --device cpu --trained-on "130 real OpenKBP C3 slices (blind readers' consensus, \
data/openkbp_c3_muscle) + 60 phantoms (phantom --n 60 --seed 5000 --in-plane-mm 0.4 4.7 \
--c3-slab-mm 20)"
    candidate muscle_step1
    $C evaluate --manifest runs/muscle_real_validation/manifest.csv \
        --models runs/candidate_muscle_step1 --out runs/validation_muscle_step1
fi
