#!/usr/bin/env bash
# Issue 4's check of the fast stage-1 preset against the paper preset: both trained the same
# way on the same 40 phantoms, both judged on the same 20 held-out phantoms. Resumable: run it
# again after an interruption and every fold continues from its checkpoint.
# On the 2-core build CPU a paper-preset iteration takes about 2.4 s and a fast one 0.4 s
# (2 threads), so the paper side needs about 4 hours; on a GPU, minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
C=.venv/bin/c3sarcopenia
ITERATIONS=${ITERATIONS:-1200}
[ -f runs/train_phantoms/manifest.csv ] || $C phantom --n 40 --seed 1000 --out runs/train_phantoms
[ -f runs/test_phantoms/manifest.csv ] || $C phantom --n 20 --seed 2000 --out runs/test_phantoms
for preset in paper fast; do
    out=runs/compare_presets/$preset
    mkdir -p "$out"
    ln -sfn "$PWD/models/muscle" "$out/muscle"  # stage 2 as shipped: only stage 1 differs
    SECTION=(--manifest runs/train_phantoms/manifest.csv --stage section --preset $preset
             --out "$out/section" --iterations "$ITERATIONS" --seed 0 --synthetic
             --trained-on "40 synthetic neck CT phantoms (seed 1000)")
    for fold in 0 1 2 3 4; do  # the folds in parallel, one thread each
        OMP_NUM_THREADS=1 $C train "${SECTION[@]}" --fold $fold \
            > "runs/compare_presets/${preset}_fold$fold.log" 2>&1 &
    done
    wait
    $C train "${SECTION[@]}"
    $C evaluate --manifest runs/test_phantoms/manifest.csv --models "$out" \
        --out "runs/compare_presets/evaluation_$preset"
done
python3 - <<'PY'
import json
for preset in ("paper", "fast"):
    m = json.load(open(f"runs/compare_presets/evaluation_{preset}/metrics.json"))
    print(f"{preset}: section DSC {m['section_dsc_mean']:.3f}, slice error median "
          f"{m['slice_error_mm_median']:.1f} mm, max {m['slice_error_mm_max']:.1f} mm")
PY
