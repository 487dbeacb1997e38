"""Writing a result folder: result.json, the masks on the CT grid, overlay.png and the
review report's thumbnail.jpg.

Everything is computed before anything is written; the files are written into a staging
folder and switched in at the end, result.json last: its presence means the folder is
complete, and a run that fails leaves no result, neither its own nor an older one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .fileio import (remove_outputs, staged_outputs, write_figure_atomic, write_image_atomic,
                     write_text_atomic)

if TYPE_CHECKING:
    import SimpleITK as sitk

    from .pipeline import Prediction

# The DICOM results of a DICOM CT (dicomout): the segmentation and the measures.
DICOM_SEG_FILE = "c3_segmentation.seg.dcm"
DICOM_SR_FILE = "c3_measures.sr.dcm"
# Every file of a result folder, result.json (the sign of a finished run) first.
OVERLAY_FILE = "overlay.png"
THUMBNAIL_FILE = "thumbnail.jpg"  # the C3 slice zoomed on the neck, for the review report
RESULT_FILES = ("result.json", "muscle.nii.gz", "c3_section.nii.gz", OVERLAY_FILE,
                THUMBNAIL_FILE, DICOM_SEG_FILE, DICOM_SR_FILE)


def remove_result(out_dir: str | Path) -> None:
    """Called before a run's work starts, so that a run that fails leaves no older result
    that would read as this CT's."""
    remove_outputs(out_dir, RESULT_FILES)


def write_prediction(out_dir: str | Path, ct: sitk.Image, prediction: Prediction,
                     dicom_writer: Callable[[Path, Prediction], list[Path]] | None = None) -> dict:
    """Write the result folder and return what went into result.json; ``dicom_writer``
    (dicomout.dicom_results_writer) adds the DICOM SEG and SR before it."""
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    from .imaging import mask_image
    from .overlay import overlay_figure
    from .thumbnail import neck_thumbnail, write_thumbnail

    result = prediction.as_dict()
    muscle = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    muscle[prediction.c3_slice_k] = prediction.muscle_slice_mask
    figure = overlay_figure(ct, prediction.muscle_slice_mask, result, prediction.section_mask)
    thumbnail = neck_thumbnail(ct, prediction.c3_slice_k, prediction.muscle_slice_mask)
    try:
        with staged_outputs(out_dir, RESULT_FILES) as staging:
            write_image_atomic(mask_image(muscle, ct), staging / "muscle.nii.gz")
            if prediction.section_mask is not None:
                write_image_atomic(mask_image(prediction.section_mask, ct),
                                   staging / "c3_section.nii.gz")
            write_figure_atomic(figure, staging / OVERLAY_FILE)
            write_thumbnail(thumbnail, staging / THUMBNAIL_FILE)
            if dicom_writer is not None:
                dicom_writer(staging, prediction)
            write_text_atomic(staging / "result.json", json.dumps(result, indent=2) + "\n")
    finally:
        plt.close(figure)
    return result
