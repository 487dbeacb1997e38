#!/usr/bin/env bash
# How the shipped models/ were made (about 45 minutes on a 2-core CPU). The model cards record
# the same commands. Phantoms go to runs/ (not kept in git); the same seeds give the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
C=.venv/bin/c3sarcopenia
DATA="40 synthetic neck CT phantoms (c3sarcopenia phantom --n 40 --seed 1000)"
$C phantom --n 40 --seed 1000 --out runs/train_phantoms
$C phantom --n 20 --seed 2000 --out runs/test_phantoms
$C train --manifest runs/train_phantoms/manifest.csv --stage muscle --preset paper \
    --out models/muscle --iterations 600 --seed 0 --device cpu --synthetic --trained-on "$DATA"
OMP_NUM_THREADS=1 $C train --manifest runs/train_phantoms/manifest.csv --stage section \
    --preset fast --out models/section --iterations 300 --seed 0 --device cpu --synthetic \
    --trained-on "$DATA"
$C evaluate --manifest runs/test_phantoms/manifest.csv --out runs/evaluation_test_phantoms \
    --models models
