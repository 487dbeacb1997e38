"""Writing CTs as DICOM: a cohort made of phantoms then looks like an archive export
(a series folder plus the single segmented slice), so the readers are tested on real DICOM."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .measures import ClinicalInfo

_UID_ROOT = "1.2.826.0.1.3680043.8.498."  # the pydicom/SimpleITK example root, for test data


def new_uid(*parts: int) -> str:
    stamp = int(time.time() * 1e6) % 10**12
    return _UID_ROOT + ".".join(str(p) for p in (stamp, *parts))


def _patient_tags(clinical: ClinicalInfo | None) -> dict[str, str]:
    if clinical is None:
        return {}
    tags = {}
    if clinical.age_years is not None:
        tags["0010|1010"] = f"{int(clinical.age_years):03d}Y"
    if clinical.sex is not None:
        tags["0010|0040"] = clinical.sex
    if clinical.height_cm is not None:
        tags["0010|1020"] = f"{clinical.height_cm / 100:.2f}"
    if clinical.weight_kg is not None:
        tags["0010|1030"] = f"{clinical.weight_kg:.1f}"
    return tags


def write_dicom_series(ct: sitk.Image, folder: str | Path, clinical: ClinicalInfo | None = None,
                       patient_id: str = "PHANTOM", modality: str = "CT",
                       series_uid: str | None = None, slices: list[int] | None = None) -> list[Path]:
    """Write a HU volume as one DICOM file per axial slice (int16, rescale slope 1).

    ``slices`` restricts the export to some slices (a single-slice export is ``[k]``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.Cast(ct, sitk.sitkInt16)
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    series_uid = series_uid or new_uid(1)
    common = {"0008|0060": modality, "0010|0020": patient_id, "0010|0010": patient_id,
              "0020|000d": new_uid(0), "0020|000e": series_uid,
              "0020|0037": "\\".join(f"{v:.6f}" for v in direction[:, :2].T.ravel()),
              "0018|0050": f"{ct.GetSpacing()[2]:.4f}", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
              **_patient_tags(clinical)}
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in (range(ct.GetSize()[2]) if slices is None else slices):
        image = volume[:, :, k]
        position = ct.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {**common, "0020|0013": str(k + 1), "0008|0018": new_uid(2, k),
                "0020|0032": "\\".join(f"{v:.4f}" for v in position)}
        for key, value in tags.items():
            image.SetMetaData(key, value)
        path = folder / f"slice_{k:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths
