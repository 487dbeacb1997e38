#!/usr/bin/env bash
# How the shipped models/ were made on a 2-core CPU. The model cards record the same commands.
# Phantoms and ingested labels go to runs/ (not kept in git); the same seeds give the same
# files. The real CTs are the OpenKBP volumes in ../shared/data/openkbp (see
# data/openkbp_c3_levels/README.md); their 30 by-eye levels are the real test set and never
# enter training.
set -euo pipefail
cd "$(dirname "$0")/.."
C=.venv/bin/c3sarcopenia
OPENKBP=../shared/data/openkbp
TEST_LEVELS=$OPENKBP/c3_levels_by_eye.csv
$C phantom --n 40 --seed 1000 --out runs/train_phantoms
$C phantom --n 20 --seed 2000 --out runs/test_phantoms

# Stage 2 (muscle), on real C3 slices read by blind readers plus teaching phantoms, has its
# own script: scripts/train_muscle_model.sh.

# Stage 1 (C3 section), in five steps, the folds in parallel (one thread each).
# 1. Base: phantoms plus the first consensus of real C3 levels (132 cases), 1200 iterations.
# 2. Fine-tuned from 1: phantoms plus the full consensus (219 cases), 1400 iterations.
# 3. Fine-tuned from 2 on the same cases with another seed (new patches), 800 iterations.
# 4. Fine-tuned from 3 with 120 more phantoms (seed 3000), 1000 iterations, seed 2.
# 5. Fine-tuned from 4 on the same cases, 600 iterations, seed 3; copied to models/section.
# (The folders differ from the commands the cards record: steps 1 and 2 were written to
# models/section and moved to runs/ when the next step started from them; step 3 was written
# to runs/section_ft2 and copied to models/section once its test figures were in.)
$C ingest-levels data/openkbp_c3_levels/c3_levels_consensus_first.csv --ct-dir $OPENKBP \
    --exclude "$TEST_LEVELS" --out runs/real_train
python3 data/openkbp_c3_levels/make_consensus.py data/openkbp_c3_levels/readings \
    "$TEST_LEVELS" data/openkbp_c3_levels/c3_levels_consensus.csv
$C ingest-levels data/openkbp_c3_levels/c3_levels_consensus.csv --ct-dir $OPENKBP \
    --exclude "$TEST_LEVELS" --out runs/real_train2
$C ingest-levels "$TEST_LEVELS" --ct-dir $OPENKBP --out runs/real_test
train_section() {  # the folds in parallel processes, then a run that gathers the card
    for fold in 0 1 2 3 4; do
        OMP_NUM_THREADS=1 $C train "$@" --fold $fold > "runs/train_section_fold$fold.log" 2>&1 &
    done
    wait
    $C train "$@"
}
train_section --manifest runs/train_phantoms/manifest.csv runs/real_train/manifest.csv \
    --stage section --preset fast --out runs/section_base --iterations 1200 --seed 0 \
    --device cpu --trained-on "40 synthetic neck CT phantoms (seed 1000) and the real \
OpenKBP head-and-neck CTs listed in data/openkbp_c3_levels/c3_levels_consensus.csv"
REAL2="40 synthetic neck CT phantoms (seed 1000) and the 219 real OpenKBP head-and-neck CTs \
of data/openkbp_c3_levels/c3_levels_consensus.csv"
train_section --manifest runs/train_phantoms/manifest.csv runs/real_train2/manifest.csv \
    --stage section --preset fast --out runs/section_ft1 --iterations 1400 --seed 0 \
    --device cpu --init-from runs/section_base --trained-on "$REAL2"
train_section --manifest runs/train_phantoms/manifest.csv runs/real_train2/manifest.csv \
    --stage section --preset fast --out models/section --iterations 800 --seed 1 \
    --device cpu --init-from runs/section_ft1 --trained-on "$REAL2"
$C phantom --n 120 --seed 3000 --out runs/train_phantoms_more
REAL3="160 synthetic neck CT phantoms (seeds 1000 and 3000) and the 219 real OpenKBP \
head-and-neck CTs of data/openkbp_c3_levels/c3_levels_consensus.csv"
MORE=(--manifest runs/train_phantoms/manifest.csv runs/train_phantoms_more/manifest.csv
      runs/real_train2/manifest.csv --stage section --preset fast --device cpu)
train_section "${MORE[@]}" --out runs/section_ft3 --iterations 1000 --seed 2 \
    --init-from models/section --trained-on "$REAL3"
train_section "${MORE[@]}" --out runs/section_ft4 --iterations 600 --seed 3 \
    --init-from runs/section_ft3 --trained-on "$REAL3"
rm -f models/section/*
cp runs/section_ft4/{fold?.pt,fold?_metrics.json,model_card.json,MODEL_CARD.md,training_curve.png} \
    models/section/

$C evaluate --manifest runs/test_phantoms/manifest.csv --out runs/evaluation_test_phantoms \
    --models models
$C evaluate --manifest runs/real_test/manifest.csv --out runs/evaluation_real_test \
    --models models
FOLDS_COMPARED=1 scripts/compare_presets.sh  # the fast-versus-paper note in the section card
