"""Everything that touches the MRML scene: CT volumes, segments, slice views, the results table.

Each function takes the scene or the node it works on, so the same code runs in the Slicer
application and, through slicer-core, in plain pytest. Slicer stores geometry as IJK-to-RAS;
the rest of C3SarcopeniaLib works in SimpleITK's LPS space, so the conversion lives here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from . import imaging
from .errors import InputError
from .fileio import write_image_atomic
from .cohort.levels import C3Level, write_level_row
from .terminology import set_slicer_terminology
from .measures import (SMI_CUTOFF_CM2_M2, ClinicalInfo, SarcopeniaMeasures, chargi_warning,
                       measure_slice)

SECTION_SEGMENT = "C3 section"
MUSCLE_SEGMENT = "Skeletal muscle"  # a muscle mask without groups (one label)
SECTION_COLOR = (0.95, 0.8, 0.25)
MUSCLE_COLOR = (0.85, 0.2, 0.2)
# label value -> segment name and colour of a grouped muscle mask; their sum is C3 muscle
MUSCLE_GROUP_SEGMENTS = {1: ("Paravertebral muscles", (0.85, 0.2, 0.2)),
                         2: ("SCM right", (0.2, 0.75, 0.3)), 3: ("SCM left", (0.25, 0.5, 1.0))}
_SEGMENT_LABELS = {MUSCLE_SEGMENT: 1,
                   **{name: value for value, (name, _) in MUSCLE_GROUP_SEGMENTS.items()}}
MUSCLE_SEGMENTS = tuple(_SEGMENT_LABELS)
RESULT_COLUMNS = ("Measure", "Value", "Unit", "Note")
WARNING_MEASURE = "Warning"
GROUND_TRUTH_CSV = "c3_levels.csv"  # the levels CSV "Save as ground truth" keeps up to date
_WARNINGS_ATTRIBUTE = "C3Sarcopenia.ReviewWarnings"
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])  # its own inverse: also RAS from LPS


def register_segmentation_converters() -> None:
    """Let segmentations turn labelmaps into 3D surfaces, and back.

    The Slicer application registers these rules at startup; a bare scene (slicer-core in
    tests or scripts) has none. A segmentation copies the rules when it is created, so this
    must run before the segmentation node is made. Rules already present are not added twice.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    present = {rule.GetName() for rule in factory.GetConverterRules()}
    for rule_class in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                       slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        rule = rule_class()
        if rule.GetName() not in present:
            factory.RegisterConverterRule(rule)


# --- geometry: RAS (Slicer) <-> LPS (SimpleITK) ------------------------------------------


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix of a SimpleITK image (whose geometry is LPS)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = _LPS_FROM_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = _LPS_FROM_RAS @ np.array(image.GetOrigin())
    return matrix


def volume_ijk_to_ras(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return _numpy_matrix(matrix)


def _numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def voxels(volume_node) -> np.ndarray:
    """The volume's voxels as a (k, j, i) array: a view, so do not modify it."""
    image_data = volume_node.GetImageData() if volume_node is not None else None
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise InputError("no CT volume is selected, or it holds no image: load a CT first.")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(f"'{volume_node.GetName()}' is a colour or vector image, not a CT: "
                         "select a greyscale CT volume.")
    dims = image_data.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
    return scalars.reshape(dims[2], dims[1], dims[0])


def ct_from_volume_node(volume_node) -> sitk.Image:
    """The CT of a volume node as the float32 LPS image the pipeline expects.

    A volume under a transform is refused: the networks would see it untransformed while
    the user sees it moved, and the chosen slice would not be where it appears.
    """
    hu = voxels(volume_node)
    if volume_node.GetParentTransformNode() is not None:
        raise InputError(f"'{volume_node.GetName()}' is under a transform: harden the "
                         "transform (Data module, right-click the volume) or remove it first.")
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    matrix = volume_ijk_to_ras(volume_node)
    axes_lps = _LPS_FROM_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(axes_lps, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((axes_lps / spacing).ravel().tolist())
    image.SetOrigin((_LPS_FROM_RAS @ matrix[:3, 3]).tolist())
    imaging.check_axial(image, f"'{volume_node.GetName()}'")
    return image


def set_volume_from_image(volume_node, image: sitk.Image) -> None:
    """Put a SimpleITK image (voxels and geometry) into a scalar volume node."""
    array = sitk.GetArrayFromImage(image)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(image.GetSize())
    vtk_array = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    image_data.GetPointData().SetScalars(vtk_array)
    volume_node.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras(image)))
    volume_node.SetAndObserveImageData(image_data)


def add_volume_node(scene, image: sitk.Image, name: str):
    """A new scalar volume node in the scene holding the image."""
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    set_volume_from_image(volume_node, image)
    volume_node.CreateDefaultDisplayNodes()
    return volume_node


# --- slices --------------------------------------------------------------------------------


def slice_centre_ras(volume_node, slice_k: int) -> np.ndarray:
    """RAS position of the centre of slice k."""
    dims = volume_node.GetImageData().GetDimensions()
    centre = np.array([0.5 * (dims[0] - 1), 0.5 * (dims[1] - 1), float(slice_k), 1.0])
    return (volume_ijk_to_ras(volume_node) @ centre)[:3]


def slice_offset_mm(volume_node, slice_k: int) -> float:
    """Head-feet position (S, mm) of slice k: the axial view's slice offset, the same number
    as ``imaging.slice_z_mm`` (LPS and RAS share the S axis)."""
    return float(slice_centre_ras(volume_node, slice_k)[2])


def slice_count(volume_node) -> int:
    return int(volume_node.GetImageData().GetDimensions()[2])


def neighbour_slice_k(volume_node, slice_k: int, towards_head: bool) -> int:
    """The next slice towards the head (or the feet), whichever way the CT stores its slices;
    slice k itself at the end of the scan."""
    last = slice_count(volume_node) - 1
    head_step = 1 if slice_offset_mm(volume_node, last) > slice_offset_mm(volume_node, 0) else -1
    return int(np.clip(slice_k + (head_step if towards_head else -head_step), 0, last))


def show_slice(slice_node, volume_node, slice_k: int) -> None:
    """Move a slice view (usually the axial, Red) through the centre of slice k."""
    slice_node.JumpSliceByOffsetting(*slice_centre_ras(volume_node, slice_k))


def slice_k_shown(slice_node, volume_node) -> int:
    """The CT slice nearest the plane a slice view shows."""
    slice_to_ras = _numpy_matrix(slice_node.GetSliceToRAS())
    normal, point = slice_to_ras[:3, 2], slice_to_ras[:3, 3]
    distances = [abs(float(normal @ (slice_centre_ras(volume_node, k) - point)))
                 for k in range(slice_count(volume_node))]
    return int(np.argmin(distances))


# --- segments ------------------------------------------------------------------------------


def new_segmentation_node(scene, volume_node, name: str):
    """A segmentation on the CT's voxel grid, binary labelmap as its source representation."""
    register_segmentation_converters()
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation_node.CreateDefaultDisplayNodes()
    _use_volume_grid(segmentation_node, volume_node)
    return segmentation_node


def _use_volume_grid(segmentation_node, volume_node) -> None:
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segmentation_node.GetSegmentation().SetSourceRepresentationName(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())


def segment_id(segmentation_node, name: str) -> str | None:
    found = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(name)
    return found or None


def _labelmap_on_grid(volume_node, mask: np.ndarray,
                      first_slice_k: int) -> slicer.vtkOrientedImageData:
    """A labelmap with the volume's geometry covering slices first_slice_k onwards."""
    n_k, n_j, n_i = mask.shape
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetExtent(0, n_i - 1, 0, n_j - 1, first_slice_k, first_slice_k + n_k - 1)
    labelmap.SetImageToWorldMatrix(_vtk_matrix(volume_ijk_to_ras(volume_node)))
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = \
        (np.asarray(mask) != 0).astype(np.uint8).ravel()
    return labelmap


def set_segment_mask(segmentation_node, volume_node, name: str, mask: np.ndarray,
                     color: tuple[float, float, float], first_slice_k: int = 0) -> str:
    """Replace the named segment (made if missing) by a mask on the volume's grid.

    ``mask`` is (k, j, i) in SimpleITK array order, starting at slice ``first_slice_k``;
    nothing of an earlier result stays on other slices.
    """
    _check_mask_grid(volume_node, mask, first_slice_k)
    _use_volume_grid(segmentation_node, volume_node)
    labelmap = _labelmap_on_grid(volume_node, mask, first_slice_k)
    existing = segment_id(segmentation_node, name)
    if existing is None:
        created = segmentation_node.AddSegmentFromBinaryLabelmapRepresentation(labelmap, name,
                                                                               list(color))
        set_slicer_terminology(segmentation_node.GetSegmentation().GetSegment(created), name)
        return created
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    # MODE_REPLACE without an extent replaces the whole segment, other slices included.
    if not logic.SetBinaryLabelmapToSegment(labelmap, segmentation_node, existing,
                                            logic.MODE_REPLACE):
        raise RuntimeError(f"could not write the '{name}' segment")
    return existing


def _check_mask_grid(volume_node, mask: np.ndarray, first_slice_k: int) -> None:
    shape = voxels(volume_node).shape
    if mask.ndim != 3 or mask.shape[1:] != shape[1:] or \
            not 0 <= first_slice_k <= first_slice_k + mask.shape[0] <= shape[0]:
        raise InputError(f"the mask ({mask.shape} from slice {first_slice_k}) does not lie on "
                         f"the CT's grid {shape}: make it on this CT.")


def segment_mask(segmentation_node, volume_node, name: str, first_slice_k: int = 0,
                 n_slices: int | None = None) -> np.ndarray:
    """The named segment on the volume's grid as a (k, j, i) uint8 mask.

    Only slices first_slice_k .. first_slice_k + n_slices - 1 when asked: reading one slice
    after each Segment Editor stroke stays cheap on a 500-slice CT.
    """
    found = segment_id(segmentation_node, name)
    if found is None:
        raise InputError(f"'{segmentation_node.GetName()}' has no '{name}' segment: run the "
                         "step that makes it first.")
    n_slices = slice_count(volume_node) - first_slice_k if n_slices is None else n_slices
    n_j, n_i = voxels(volume_node).shape[1:]
    reference = _labelmap_on_grid(volume_node, np.zeros((n_slices, n_j, n_i), np.uint8),
                                  first_slice_k)
    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(found, labelmap)
    if labelmap.IsEmpty():
        return np.zeros((n_slices, n_j, n_i), np.uint8)
    on_grid = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, on_grid)
    array = numpy_support.vtk_to_numpy(on_grid.GetPointData().GetScalars())
    return (array.reshape(n_slices, n_j, n_i) != 0).astype(np.uint8)


def set_muscle_slice_mask(segmentation_node, volume_node, c3_slice_k: int,
                          muscle_mask: np.ndarray) -> list[str]:
    """The 2D (j, i) muscle mask of slice k as segments: one per group for a grouped mask
    (1 paravertebral, 2 SCM right, 3 SCM left), else one 'Skeletal muscle' segment. The
    segments of the other form are removed, so the muscle is never counted twice."""
    labels = np.asarray(muscle_mask).astype(np.uint8)
    grouped = labels.max() > 1
    wanted = MUSCLE_GROUP_SEGMENTS if grouped else {1: (MUSCLE_SEGMENT, MUSCLE_COLOR)}
    if not grouped:
        labels = (labels > 0).astype(np.uint8)
    kept = {name for name, _ in wanted.values()}
    for name in MUSCLE_SEGMENTS:
        if name not in kept and segment_id(segmentation_node, name) is not None:
            segmentation_node.GetSegmentation().RemoveSegment(segment_id(segmentation_node, name))
    return [set_segment_mask(segmentation_node, volume_node, name, (labels == value)[None],
                             colour, c3_slice_k) for value, (name, colour) in wanted.items()]


def muscle_segment_ids(segmentation_node) -> list[str]:
    """The muscle segments present: the groups, or the one ungrouped segment."""
    found = (segment_id(segmentation_node, name) for name in MUSCLE_SEGMENTS)
    return [segment for segment in found if segment is not None]


def muscle_slice_mask(segmentation_node, volume_node, c3_slice_k: int) -> np.ndarray:
    """The muscle segments on slice k as a (j, i) uint8 label mask (groups 1-3, or 1)."""
    if not muscle_segment_ids(segmentation_node):
        raise InputError(f"'{segmentation_node.GetName()}' has no muscle segment: segment the "
                         "muscle first.")
    labels = None
    for name, value in _SEGMENT_LABELS.items():
        if segment_id(segmentation_node, name) is None:
            continue
        mask = segment_mask(segmentation_node, volume_node, name, c3_slice_k, 1)[0]
        labels = np.zeros_like(mask) if labels is None else labels
        labels[(mask > 0) & (labels == 0)] = value
    return labels


def show_segments(segmentation_node, section_opacity: float) -> None:
    """Section see-through, muscle solid, both in the slice views and in 3D."""
    if segmentation_node.GetDisplayNode() is None:
        segmentation_node.CreateDefaultDisplayNodes()
    set_section_opacity(segmentation_node, section_opacity)
    for muscle in muscle_segment_ids(segmentation_node):
        segmentation_node.GetDisplayNode().SetSegmentOpacity2DFill(muscle, 0.6)
    segmentation_node.CreateClosedSurfaceRepresentation()


def set_section_opacity(segmentation_node, opacity: float) -> None:
    section = segment_id(segmentation_node, SECTION_SEGMENT)
    display = segmentation_node.GetDisplayNode()
    if section is not None and display is not None:
        display.SetSegmentOpacity2DFill(section, opacity)
        display.SetSegmentOpacity3D(section, opacity)


def watch_segment(segmentation_node, names: str | tuple[str, ...],
                  on_change: Callable[[], None]) -> Callable[[], None]:
    """Call ``on_change`` whenever a named segment's content changes (a Segment Editor
    stroke, an undo, a new result); returns the function that stops watching.

    vtkSegmentation::RepresentationModified carries the changed segment's ID, so edits of
    other segments (the section) are ignored.
    """
    names = (names,) if isinstance(names, str) else names

    def changed(caller, event, changed_segment_id: str | None = None) -> None:
        watched = {segment_id(segmentation_node, name) for name in names} - {None}
        if watched and (changed_segment_id is None or changed_segment_id in watched):
            on_change()

    changed.CallDataType = vtk.VTK_STRING
    tag = segmentation_node.AddObserver(slicer.vtkSegmentation.RepresentationModified, changed)
    return lambda: segmentation_node.RemoveObserver(tag)


# --- measures and the results table -------------------------------------------------------


def measure_muscle_segment(segmentation_node, volume_node, c3_slice_k: int,
                           clinical: ClinicalInfo,
                           scm_nodal: str | None = None) -> SarcopeniaMeasures:
    """The measures of the muscle segments as they are now on slice k: what the table shows
    after each edit. The pixel area comes from the CT's own spacing; ``scm_nodal`` applies
    the Chargi rule."""
    hu = voxels(volume_node)[c3_slice_k]
    muscle = muscle_slice_mask(segmentation_node, volume_node, c3_slice_k)
    return measure_slice(hu, muscle, tuple(volume_node.GetSpacing()[:2]), clinical, scm_nodal)


def _slice_row(volume_node, c3_slice_k: int) -> tuple[str, str, str, str]:
    return ("C3 slice", str(c3_slice_k), "index",
            f"z = {slice_offset_mm(volume_node, c3_slice_k):.1f} mm")


def measure_rows(measures: SarcopeniaMeasures) -> list[tuple[str, str, str, str]]:
    """The measures as (measure, value, unit, note) rows; unknown values stay empty with a
    note saying which clinical field is missing. Warnings and problems also go in the note
    column, so the value column stays narrow. Plain ASCII, so a spreadsheet opens the CSV
    right whatever encoding it assumes."""
    cutoffs = f"Prado cut-offs: men {SMI_CUTOFF_CM2_M2['M']}, women {SMI_CUTOFF_CM2_M2['F']}"
    l3_missing = "enter age, sex and weight"
    smi_missing = "enter age, sex, weight and height"
    return [
        ("C3 muscle CSA", f"{measures.muscle_csa_cm2:.2f}", "cm^2",
         "skeletal muscle area on the C3 slice"),
        *_group_rows(measures),
        ("C3 muscle mean", _fmt(measures.muscle_mean_hu, 1), "HU",
         "muscle density; lower means more fat in the muscle"),
        ("L3 CSA (estimated)", _fmt(measures.l3_csa_cm2, 2), "cm^2",
         "Swartz et al. 2016 regression" if measures.l3_csa_cm2 is not None else l3_missing),
        ("SMI", _fmt(measures.smi_cm2_m2, 2), "cm^2/m^2",
         "L3 CSA / height^2" if measures.smi_cm2_m2 is not None else smi_missing),
        ("Muscle status", measures.muscle_status or "", "",
         cutoffs if measures.muscle_status is not None else smi_missing),
    ]


def _group_rows(measures: SarcopeniaMeasures) -> list[tuple[str, str, str, str]]:
    """CSA per muscle group, when the muscle has groups."""
    if measures.paravertebral_csa_cm2 is None:
        return []
    return [("  paravertebral", _fmt(measures.paravertebral_csa_cm2, 2), "cm^2",
             "prevertebral, scalenes, levator scapulae, posterior neck"),
            ("  SCM right", _fmt(measures.scm_right_csa_cm2, 2), "cm^2", "sternocleidomastoid"),
            ("  SCM left", _fmt(measures.scm_left_csa_cm2, 2), "cm^2", "sternocleidomastoid")]


def _fmt(value: float | None, decimals: int) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def write_results_table(table_node, rows: list[tuple[str, str, str, str]]) -> None:
    """Replace the table's content by the rows, under the RESULT_COLUMNS headers."""
    table = vtk.vtkTable()
    columns = []
    for name in RESULT_COLUMNS:
        column = vtk.vtkStringArray()
        column.SetName(name)
        table.AddColumn(column)
        columns.append(column)
    for row in rows:
        for column, text in zip(columns, row):
            # Slicer's CSV writer does not escape double quotes inside a cell.
            column.InsertNextValue(text.replace('"', "'"))
    table_node.SetAndObserveTable(table)
    table_node.SetLocked(True)  # the view shows measures; they are not for typing over


def table_rows(table_node) -> list[tuple[str, ...]]:
    table = table_node.GetTable()
    return [tuple(table.GetValue(r, c).ToString() for c in range(table.GetNumberOfColumns()))
            for r in range(table.GetNumberOfRows())]


def set_review_warnings(segmentation_node, warnings: list[str]) -> None:
    """Keep the reasons to review this result (stage-1 doubts, synthetic models) with the
    segmentation, so they survive a saved scene and are repeated after every edit."""
    unique = list(dict.fromkeys(text.replace("\n", " ") for text in warnings))
    segmentation_node.SetAttribute(_WARNINGS_ATTRIBUTE, "\n".join(unique))


def review_warnings(segmentation_node) -> list[str]:
    stored = segmentation_node.GetAttribute(_WARNINGS_ATTRIBUTE) or ""
    return [text for text in stored.split("\n") if text]


def _warning_rows(segmentation_node) -> list[tuple[str, str, str, str]]:
    return [(WARNING_MEASURE, "", "", text) for text in review_warnings(segmentation_node)]


def update_results(table_node, segmentation_node, volume_node, c3_slice_k: int,
                   clinical: ClinicalInfo, scm_nodal: str | None = None) -> SarcopeniaMeasures:
    """Measure the muscle segments on slice k and rewrite the table, warnings included."""
    measures = measure_muscle_segment(segmentation_node, volume_node, c3_slice_k, clinical,
                                      scm_nodal)
    chargi = [(WARNING_MEASURE, "", "", chargi_warning(scm_nodal))] if scm_nodal else []
    write_results_table(table_node, [_slice_row(volume_node, c3_slice_k)]
                        + measure_rows(measures) + chargi + _warning_rows(segmentation_node))
    return measures


def write_unmeasured_results(table_node, segmentation_node, volume_node, c3_slice_k: int,
                             problem: str) -> None:
    """A table that says why nothing is measured (say, the muscle is on another slice),
    rather than the figures of a slice that is no longer the chosen one."""
    rows = [_slice_row(volume_node, c3_slice_k), ("Not measured", "", "", problem)]
    write_results_table(table_node, rows + _warning_rows(segmentation_node))


# --- files ---------------------------------------------------------------------------------


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


# --- DICOM ---------------------------------------------------------------------------------


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
