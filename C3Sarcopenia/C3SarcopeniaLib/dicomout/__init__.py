"""DICOM results a hospital system can take: the segmentation (SEG) and the measures (SR) of
a CT that was read from DICOM, in the patient's study, with new UIDs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from ..pipeline import Prediction
from ..report import DICOM_SEG_FILE as SEG_FILE
from ..report import DICOM_SR_FILE as SR_FILE
from .source import require_dicom_input


def dicom_results_writer(ct_path: str | Path, ct: sitk.Image,
                         automatic: bool = True) -> Callable[[Path, Prediction], list[Path]]:
    """What writes DIR/c3_segmentation.seg.dcm and DIR/c3_measures.sr.dcm for a prediction
    on this CT; refuses a CT that is not DICOM at once, before any work is done.
    ``automatic`` is False for a muscle mask given by the user (SEG algorithm type MANUAL)."""
    require_dicom_input(ct_path)

    def write(out_dir: Path, prediction: Prediction) -> list[Path]:
        from .seg import build_segmentation, write_segmentation
        from .source import source_slices
        from .sr import build_report, write_report

        source = source_slices(ct_path, ct)
        segmentation = build_segmentation(source, prediction, automatic)
        report = build_report(prediction.measures, source[prediction.c3_slice_k], segmentation)
        return [write_segmentation(segmentation, Path(out_dir) / SEG_FILE),
                write_report(report, Path(out_dir) / SR_FILE)]

    return write
