"""Writing CTs as DICOM: a cohort made of phantoms then looks like an archive export
(a series folder plus the single segmented slice), so the readers are tested on real DICOM."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from .fileio import write_atomic
from .measures import ClinicalInfo
from .tagfile import SKELETAL_MUSCLE_TAG, write_tag

if TYPE_CHECKING:
    from .phantoms.phantom import Phantom

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
              "0020|000d": new_uid(0), "0020|000e": series_uid, "0020|0052": new_uid(3),
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


# The clinical table a cohort writer produces, in the TCIA HNSCC table's column names: the
# ``ingest`` defaults, so a written cohort ingests exactly like the real table would.
CLINICAL_CSV_COLUMNS = ("TCIA code", "Sex", "Age", "Height (cm)", "BW Start tx (kg)")
_SEX_WORDS = {"M": "Male", "F": "Female"}


def write_dicom_cohort(phantoms: Iterable["Phantom"], root: str | Path) -> Path:
    """Write phantoms as an archive export; returns the clinical table ``root/clinical.csv``.

    Per patient: ``root/<case_id>/CT/`` the whole series, and ``root/<case_id>/C3/`` the
    single slice that was segmented (its own series, as a sliceOmatic export) with the muscle
    in ``<slice>.dcm.tag`` (label 1). This is the layout ``c3sarcopenia ingest`` reads, so the
    ingestion is tested against truth known voxel for voxel.
    """
    root = Path(root)
    buffer = io.StringIO()
    table = csv.writer(buffer, lineterminator="\r\n")
    table.writerow(CLINICAL_CSV_COLUMNS)
    for phantom in phantoms:
        patient = root / phantom.case_id
        write_dicom_series(phantom.ct, patient / "CT", phantom.clinical, phantom.case_id)
        k = phantom.c3_slice_k
        single, = write_dicom_series(phantom.ct, patient / "C3", phantom.clinical,
                                     phantom.case_id, slices=[k])
        muscle = sitk.GetArrayViewFromImage(phantom.muscle_mask)[k] != 0
        write_tag(single.with_name(single.name + ".tag"),
                  muscle.astype(np.uint8) * SKELETAL_MUSCLE_TAG, phantom.ct[:, :, k:k + 1])
        table.writerow(_csv_cells(phantom.case_id, phantom.clinical))
    path = root / "clinical.csv"
    # Spreadsheet exports carry a byte-order mark; the real HNSCC table does.
    write_atomic(path, lambda tmp: tmp.write_text("\ufeff" + buffer.getvalue(),
                                                  encoding="utf-8", newline=""))
    return path


def _csv_cells(case_id: str, clinical: ClinicalInfo) -> list[str]:
    def number(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    return [case_id, _SEX_WORDS.get(clinical.sex, ""), number(clinical.age_years),
            number(clinical.height_cm), number(clinical.weight_kg)]
