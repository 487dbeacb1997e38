"""Files from the scene: the segmentation, the results table, ground truth; and the clinical
fields of a CT loaded from the DICOM database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import slicer

from .. import imaging
from ..cohort.levels import C3Level, write_level_row
from ..errors import InputError
from ..fileio import write_image_atomic
from ..measures import ClinicalInfo
from .geometry import ct_from_volume_node, slice_count, voxels
from .segments import muscle_slice_mask, register_segmentation_converters

GROUND_TRUTH_CSV = "c3_levels.csv"  # the levels CSV "Save as ground truth" keeps up to date


def save_segmentation(segmentation_node, path: str | Path) -> Path:
    """Write the segmentation as .seg.nrrd, the format Slicer reopens with its segment names."""
    path = Path(path)
    if not path.name.endswith(".seg.nrrd"):
        raise InputError(f"{path.name}: a segmentation is saved as a .seg.nrrd file.")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(segmentation_node):
        raise InputError(f"could not write {path}: check the folder exists and is writable.")
    return path


def load_segmentation(scene, path: str | Path):
    """Read a .seg.nrrd into a new segmentation node of the scene."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: check the path to the segmentation.")
    register_segmentation_converters()
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                path.name.removesuffix(".seg.nrrd"))
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    segmentation_node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(segmentation_node):
        raise InputError(f"{path} could not be read as a segmentation.")
    return segmentation_node


def save_table_csv(table_node, path: str | Path) -> Path:
    """Write the results table as CSV (a spreadsheet opens it)."""
    path = Path(path)
    storage = slicer.vtkMRMLTableStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(table_node):
        raise InputError(f"could not write {path}: check the folder exists and is writable.")
    return path


def export_results(table_node, segmentation_node, folder: str | Path, stem: str) -> list[Path]:
    """The results table (CSV) and the segmentation (.seg.nrrd) of one CT, side by side;
    ``stem`` (usually the CT's name) is made safe as a file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder: choose an existing folder to export to.")
    stem = _safe_file_stem(stem)
    return [save_table_csv(table_node, folder / f"{stem}_c3_results.csv"),
            save_segmentation(segmentation_node, folder / f"{stem}_c3_segmentation.seg.nrrd")]


def _safe_file_stem(name: str) -> str:
    """A node name made safe as the start of a file name."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "ct"


def save_ground_truth(volume_node, segmentation_node, c3_slice_k: int, folder: str | Path,
                      annotator: str, confidence: str = "high") -> list[Path]:
    """Keep a reviewed case as training truth in ``folder``: ``<case>_ct.nii.gz`` (HU),
    ``<case>_muscle.nii.gz`` (the muscle segment on slice k, on the CT grid) and the case's
    row of ``c3_levels.csv`` (middle slice k, top and bottom blank), replacing an earlier
    row of the same case. ``<case>`` is the volume's name. ``c3sarcopenia ingest-levels``
    reads the folder's CSV."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder: choose an existing ground-truth folder.")
    if not annotator.strip():
        raise InputError("the annotator is empty: enter your name or initials, so the ground "
                         "truth says who accepted it.")
    if not 0 <= c3_slice_k < slice_count(volume_node):
        raise InputError("no C3 slice is chosen: choose and check the slice first.")
    ct = ct_from_volume_node(volume_node)
    muscle = np.zeros(voxels(volume_node).shape, np.uint8)
    muscle[c3_slice_k] = muscle_slice_mask(segmentation_node, volume_node, c3_slice_k)
    if not muscle.any():
        raise InputError(f"the muscle segment is empty on slice {c3_slice_k}: segment and "
                         "check the muscle on the C3 slice first.")
    case = _safe_file_stem(volume_node.GetName())
    ct_path, muscle_path = folder / f"{case}_ct.nii.gz", folder / f"{case}_muscle.nii.gz"
    write_image_atomic(imaging.int16_hu(ct), ct_path)
    write_image_atomic(imaging.mask_image(muscle, ct), muscle_path)
    level = C3Level(case, None, None, c3_slice_k, confidence,
                    f"slice accepted in 3D Slicer; muscle in {muscle_path.name}",
                    annotator.strip(), ct_path)
    return [write_level_row(folder / GROUND_TRUTH_CSV, level), ct_path, muscle_path]


def clinical_from_dicom(volume_node,
                        file_for_instance: Callable[[str], str]) -> ClinicalInfo | None:
    """Age, sex, height and weight from the DICOM file a volume was loaded from.

    ``file_for_instance`` maps a SOP instance UID to its file (the DICOM database's
    ``fileForInstance`` in Slicer). None when the volume did not come from the database.
    """
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    files = [file_for_instance(uid) for uid in uids[:1]]
    if not files or not files[0]:
        return None
    return imaging.read_clinical_tags(files[0])
