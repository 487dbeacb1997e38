"""Segments on the CT's grid: the C3 section and the muscle groups, as masks in and out."""

from __future__ import annotations

from typing import Callable

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..errors import InputError
from ..terminology import set_slicer_terminology
from .geometry import slice_count, volume_ijk_to_ras, voxels, vtk_matrix

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


def labelmap_on_grid(volume_node, mask: np.ndarray,
                      first_slice_k: int) -> slicer.vtkOrientedImageData:
    """A labelmap with the volume's geometry covering slices first_slice_k onwards."""
    n_k, n_j, n_i = mask.shape
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetExtent(0, n_i - 1, 0, n_j - 1, first_slice_k, first_slice_k + n_k - 1)
    labelmap.SetImageToWorldMatrix(vtk_matrix(volume_ijk_to_ras(volume_node)))
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
    labelmap = labelmap_on_grid(volume_node, mask, first_slice_k)
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
    reference = labelmap_on_grid(volume_node, np.zeros((n_slices, n_j, n_i), np.uint8),
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

    A stroke fires RepresentationModified, an undo only SegmentModified (the history copies
    the old segment back), an undo of a new segment SegmentRemoved; each carries the
    segment's ID, so changes of other segments (the section) are ignored.
    """
    names = (names,) if isinstance(names, str) else names

    def watched_ids() -> set[str]:
        return {segment_id(segmentation_node, name) for name in names} - {None}

    known = [watched_ids()]  # a removed segment's ID is looked up here

    def changed(caller, event, changed_segment_id: str | None = None) -> None:
        before, known[0] = known[0], watched_ids()
        if changed_segment_id is None or changed_segment_id in before | known[0]:
            on_change()

    changed.CallDataType = vtk.VTK_STRING
    segmentation = slicer.vtkSegmentation
    tags = [segmentation_node.AddObserver(event, changed) for event in (
        segmentation.RepresentationModified, segmentation.SegmentModified,
        segmentation.SegmentAdded, segmentation.SegmentRemoved)]

    def stop() -> None:
        for tag in tags:
            segmentation_node.RemoveObserver(tag)

    return stop
