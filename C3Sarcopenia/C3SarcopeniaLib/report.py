"""Writing a result folder: result.json, the masks on the CT grid and overlay.png.

Everything is computed before anything is written, each file is written atomically, and
result.json comes last: its presence means the folder is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import SimpleITK as sitk

from .fileio import write_figure_atomic, write_image_atomic, write_text_atomic
from .imaging import mask_image
from .overlay import overlay_figure
from .pipeline import Prediction


def write_prediction(out_dir: str | Path, ct: sitk.Image, prediction: Prediction,
                     dicom_writer: Callable[[Path, Prediction], list[Path]] | None = None) -> dict:
    """Write the result folder and return what went into result.json; ``dicom_writer``
    (dicomout.dicom_results_writer) adds the DICOM SEG and SR before it."""
    out_dir = Path(out_dir)
    (out_dir / "result.json").unlink(missing_ok=True)  # an old result must not pass for this one
    result = prediction.as_dict()
    muscle = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    muscle[prediction.c3_slice_k] = prediction.muscle_slice_mask
    figure = overlay_figure(ct, prediction.muscle_slice_mask, result, prediction.section_mask)
    try:
        write_figure_atomic(figure, out_dir / "overlay.png")
    finally:
        plt.close(figure)
    write_image_atomic(mask_image(muscle, ct), out_dir / "muscle.nii.gz")
    if prediction.section_mask is not None:
        write_image_atomic(mask_image(prediction.section_mask, ct), out_dir / "c3_section.nii.gz")
    if dicom_writer is not None:
        dicom_writer(out_dir, prediction)
    write_text_atomic(out_dir / "result.json", json.dumps(result, indent=2) + "\n")
    return result
