"""The shipped model's pixel outline (what is measured) beside each blind reader of a split,
as muscle-agreement sets its region pick beside them (README, "How good are the shipped
models?"). Usage: .venv/bin/python scripts/pixel_outline_versus_readers.py validation
(the test split's pixel figures are evaluate's one report, not made again here)."""

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from C3SarcopeniaLib.annotate.model_reading import compare_mask
from C3SarcopeniaLib.annotate.readings import read_readings
from C3SarcopeniaLib.annotate.regions import load_sheets
from C3SarcopeniaLib.models import default_models_dir, load_ensemble
from C3SarcopeniaLib.pipeline import segment_muscle

DATA = Path("data/openkbp_c3_muscle")
with open(DATA / f"cases_{sys.argv[1]}.csv", newline="") as handle:
    cases = {row["case"] for row in csv.DictReader(handle)}
sheets = load_sheets(DATA / "regions", cases)
readings = defaultdict(list)
for path in sorted((DATA / "readings").glob("*.csv")):
    for reading in read_readings(path):
        if reading.case in cases and reading.readable:
            readings[reading.case].append(reading)
models = load_ensemble(default_models_dir() / "muscle", "cpu")
comparisons = []
for case, sheet in sorted(sheets.items()):
    outline = segment_muscle(sitk.ReadImage(sheet.ct), sheet.view.slice_k, models) > 0
    comparisons.append(compare_mask(outline, sheet, readings[case]))
mine = np.mean([c.reader_dsc for c in comparisons])
theirs = np.mean([c.others_dsc for c in comparisons])
print(f"{len(comparisons)} cases: pixel outline with each reader {mine:.3f}; readers with each "
      f"other {theirs:.3f}; difference {mine - theirs:+.3f}")
