"""The source DICOM slice behind each slice k of a CT read by imaging.read_ct.

New DICOM objects must reference the very instances they were derived from, in the order
of the CT's own grid. The readers sort slices by position (and pick one series of a folder),
so each k is matched to the file whose ImagePositionPatient is the centre of slice k's first
voxel: whatever the storage order (head or feet first) or file names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from ..errors import InputError

_POSITION_TOLERANCE_MM = 0.05  # positions are written with 4 decimals or more


def is_dicom_input(ct_path: str | Path) -> bool:
    """Whether a CT path is DICOM: a folder (of a series) or a file with a DICOM preamble."""
    path = Path(ct_path)
    if path.is_dir():
        return True
    try:
        pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except (InvalidDicomError, OSError):
        return False
    return True


def require_dicom_input(ct_path: str | Path) -> None:
    if not is_dicom_input(ct_path):
        raise InputError(f"{ct_path} is not DICOM: DICOM results (SEG and SR) need the CT as "
                         "a DICOM series folder or DICOM file, whose patient and study they "
                         "join. Give the DICOM CT, or leave out DICOM output.")


def source_slices(ct_path: str | Path, ct: sitk.Image) -> list[pydicom.Dataset]:
    """The header (no pixels) of the DICOM file of each slice k of ``ct``, in k order."""
    require_dicom_input(ct_path)
    path = Path(ct_path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    by_series: dict[str, list[pydicom.Dataset]] = {}
    for file in files:
        try:
            header = pydicom.dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError):
            continue
        if "ImagePositionPatient" in header and "SeriesInstanceUID" in header:
            by_series.setdefault(header.SeriesInstanceUID, []).append(header)
    for along_normal_only in (False, True):
        for headers in by_series.values():
            matched = _match_slices(headers, ct, along_normal_only)
            if matched is not None:
                return matched
    raise InputError(f"{ct_path}: no DICOM series lies on the grid of the CT that was read, "
                     "so the results cannot reference their source slices. Give the folder "
                     "of one CT series.")


def _match_slices(headers: list[pydicom.Dataset], ct: sitk.Image,
                  along_normal_only: bool) -> list[pydicom.Dataset] | None:
    """Slice k's file: the one at its first voxel's centre, or, for a gantry tilt (whose
    sheared slices the reader stacks at their true spacing along the normal), the one at its
    distance along the slice normal."""
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    normal = np.array(ct.GetDirection()).reshape(3, 3)[:, 2]
    matched = []
    for k in range(ct.GetSize()[2]):
        corner = np.array(ct.TransformIndexToPhysicalPoint((0, 0, k)))
        offsets = positions - corner
        distances = (np.abs(offsets @ normal) if along_normal_only
                     else np.linalg.norm(offsets, axis=1))
        nearest = int(np.argmin(distances))
        if distances[nearest] > _POSITION_TOLERANCE_MM:
            return None
        matched.append(headers[nearest])
    if len({h.SOPInstanceUID for h in matched}) < len(matched):
        return None
    return matched
