"""Is the model's region pick (muscle-pick) a better outline than its pixels? On phantoms,
whose muscle label is exact, compare both with the truth (README, "How good are the shipped
models?"). Usage: .venv/bin/python scripts/region_pick_on_phantoms.py PHANTOM_FOLDER
where the folder is written by: c3sarcopenia phantom --n 20 --seed 7000 --in-plane-mm 0.4 4.7
--c3-slab-mm 20 --out PHANTOM_FOLDER (a seed no model was trained or tested on)."""

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from C3SarcopeniaLib.annotate.model_reading import pick_from_labels
from C3SarcopeniaLib.annotate.readings import slice_labels
from C3SarcopeniaLib.annotate.regions import RegionSheet, numbered_regions, slice_view
from C3SarcopeniaLib.measures import dice
from C3SarcopeniaLib.models import default_models_dir, load_ensemble
from C3SarcopeniaLib.pipeline import segment_muscle
from C3SarcopeniaLib.training import read_manifest

folder = Path(sys.argv[1])
models = load_ensemble(default_models_dir() / "muscle", "cpu")
pixels, picks = [], []
for row in read_manifest(folder / "manifest.csv"):
    ct, k = sitk.ReadImage(row["ct"]), int(row["c3_slice_k"])
    truth = sitk.GetArrayFromImage(sitk.ReadImage(row["muscle_mask"]))[k] > 0
    outline = segment_muscle(ct, k, models)
    view = slice_view(ct, k)
    sheet = RegionSheet(row["case_id"], row["ct"], view, numbered_regions(view))
    picked = slice_labels(sheet, pick_from_labels(sheet, outline)) > 0
    pixels.append(dice(outline > 0, truth))
    picks.append(dice(picked, truth))
    print(f"{row['case_id']}: pixels {pixels[-1]:.3f}, pick {picks[-1]:.3f}", flush=True)
print(f"{len(pixels)} phantoms: muscle DSC of the pixel outline {np.mean(pixels):.3f}, "
      f"of the region pick {np.mean(picks):.3f}")
