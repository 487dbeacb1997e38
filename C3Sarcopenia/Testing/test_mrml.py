"""The scene glue (C3SarcopeniaLib.mrml) on real MRML nodes from slicer-core, without the
Slicer application: geometry, segments, the results table, files and DICOM prefill."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")
import vtk  # noqa: E402  (installed with slicer-core)

from C3SarcopeniaLib import mrml  # noqa: E402
from C3SarcopeniaLib.errors import InputError  # noqa: E402
from C3SarcopeniaLib.measures import ClinicalInfo, muscle_csa_cm2  # noqa: E402

SPACING = (0.8, 0.7, 2.5)
SIZE = (40, 32, 12)  # i, j, k
CLINICAL = ClinicalInfo(age_years=60, sex="M", height_cm=175, weight_kg=70)
MUSCLE_HU = 45.0


def neck_like_ct() -> sitk.Image:
    """A small LPS-stored CT: air around a soft-tissue block holding a muscle-like slab."""
    hu = np.full(SIZE[::-1], -1000.0, np.float32)
    hu[:, 6:26, 8:32] = 10.0
    hu[:, 10:16, 12:20] = MUSCLE_HU
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(SPACING)
    image.SetOrigin((-15.0, -12.0, -40.0))
    return image


def stored_ras(image: sitk.Image) -> sitk.Image:
    """The same patient voxels stored the other way round in-plane (RAS, as many NIfTI
    files): i runs to the patient's right, j to the front."""
    array = sitk.GetArrayFromImage(image)[:, ::-1, ::-1]
    ras = sitk.GetImageFromArray(np.ascontiguousarray(array))
    ras.SetSpacing(image.GetSpacing())
    ras.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    ras.SetOrigin(image.TransformIndexToPhysicalPoint((SIZE[0] - 1, SIZE[1] - 1, 0)))
    return ras


def stored_feet_first(image: sitk.Image) -> sitk.Image:
    """The same voxels with slice 0 at the head end."""
    array = sitk.GetArrayFromImage(image)[::-1]
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(array))
    flipped.SetSpacing(image.GetSpacing())
    flipped.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    flipped.SetOrigin(image.TransformIndexToPhysicalPoint((0, 0, SIZE[2] - 1)))
    return flipped


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture(params=["LPS", "RAS"])
def ct_node(request, scene):
    image = neck_like_ct() if request.param == "LPS" else stored_ras(neck_like_ct())
    return mrml.add_volume_node(scene, image, f"ct_{request.param}")


def ras_centroid(volume_node, mask: np.ndarray) -> np.ndarray:
    kji = np.argwhere(mask)
    ijk1 = np.c_[kji[:, ::-1], np.ones(len(kji))]
    return (mrml.volume_ijk_to_ras(volume_node) @ ijk1.T)[:3].mean(axis=1)


def test_volume_node_round_trip_keeps_lps_geometry(ct_node):
    original = neck_like_ct() if ct_node.GetName().endswith("LPS") else stored_ras(neck_like_ct())
    image = mrml.ct_from_volume_node(ct_node)
    assert image.GetSize() == original.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), original.GetSpacing())
    np.testing.assert_allclose(image.GetOrigin(), original.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(image.GetDirection(), original.GetDirection(), atol=1e-12)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image),
                                  sitk.GetArrayViewFromImage(original))


def test_lps_origin_is_mirrored_into_ras(scene):
    node = mrml.add_volume_node(scene, neck_like_ct(), "ct")
    np.testing.assert_allclose(node.GetOrigin(), (15.0, 12.0, -40.0))
    np.testing.assert_allclose(node.GetSpacing(), SPACING)


def test_lps_and_ras_storage_give_the_same_patient_geometry(scene):
    lps = mrml.add_volume_node(scene, neck_like_ct(), "lps")
    ras = mrml.add_volume_node(scene, stored_ras(neck_like_ct()), "ras")
    muscle = {node: mrml.voxels(node) == MUSCLE_HU for node in (lps, ras)}
    np.testing.assert_allclose(ras_centroid(lps, muscle[lps]), ras_centroid(ras, muscle[ras]))
    for k in (0, 5, SIZE[2] - 1):
        assert mrml.slice_offset_mm(lps, k) == pytest.approx(mrml.slice_offset_mm(ras, k))
    segmentation = {}
    for node in (lps, ras):
        segmentation[node] = mrml.new_segmentation_node(scene, node, f"seg_{node.GetName()}")
        mrml.set_segment_mask(segmentation[node], node, mrml.MUSCLE_SEGMENT, muscle[node],
                              mrml.MUSCLE_COLOR)
    placed = {node: mrml.segment_mask(segmentation[node], node, mrml.MUSCLE_SEGMENT)
              for node in (lps, ras)}
    np.testing.assert_allclose(ras_centroid(lps, placed[lps]), ras_centroid(ras, placed[ras]))


def test_ct_from_volume_node_matches_imaging_slice_positions(ct_node):
    image = mrml.ct_from_volume_node(ct_node)
    from C3SarcopeniaLib import imaging

    for k in range(SIZE[2]):
        assert mrml.slice_offset_mm(ct_node, k) == pytest.approx(imaging.slice_z_mm(image, k))


def test_mask_imported_as_segment_reads_back_identical(scene, ct_node):
    rng = np.random.default_rng(3)
    mask = (rng.random(SIZE[::-1]) > 0.7).astype(np.uint8)
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    mrml.set_segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT, mask, mrml.SECTION_COLOR)
    np.testing.assert_array_equal(
        mrml.segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT), mask)
    np.testing.assert_array_equal(
        mrml.segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT, 4, 2), mask[4:6])


def test_muscle_on_a_new_slice_replaces_the_old_one(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    muscle = mrml.voxels(ct_node)[5] == MUSCLE_HU
    mrml.set_muscle_slice_mask(segmentation, ct_node, 5, muscle)
    mrml.set_muscle_slice_mask(segmentation, ct_node, 7, muscle)
    whole = mrml.segment_mask(segmentation, ct_node, mrml.MUSCLE_SEGMENT)
    assert whole[5].sum() == 0
    np.testing.assert_array_equal(whole[7], muscle)
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1


def test_section_and_muscle_stay_separate_when_sharing_a_layer(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    section = np.zeros(SIZE[::-1], np.uint8)
    section[3:9, 4:28, 4:36] = 1
    muscle = (mrml.voxels(ct_node)[6] == MUSCLE_HU).astype(np.uint8)
    mrml.set_segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT, section, mrml.SECTION_COLOR)
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, muscle)
    segmentation.GetSegmentation().CollapseBinaryLabelmaps(False)  # as the Segment Editor may
    np.testing.assert_array_equal(mrml.muscle_slice_mask(segmentation, ct_node, 6), muscle)
    mrml.set_muscle_slice_mask(segmentation, ct_node, 7, muscle)
    np.testing.assert_array_equal(
        mrml.segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT), section)
    assert mrml.segment_mask(segmentation, ct_node, mrml.MUSCLE_SEGMENT)[6].sum() == 0


def test_csa_from_segment_equals_csa_from_numpy_mask(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    muscle = mrml.voxels(ct_node)[6] == MUSCLE_HU
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, muscle)
    measures = mrml.measure_muscle_segment(segmentation, ct_node, 6, CLINICAL)
    assert measures.muscle_csa_cm2 == pytest.approx(muscle_csa_cm2(muscle, SPACING[:2]))
    assert measures.muscle_csa_cm2 == pytest.approx(6 * 8 * 0.8 * 0.7 / 100)
    assert measures.muscle_mean_hu == pytest.approx(MUSCLE_HU)


def test_empty_muscle_segment_is_reported_to_the_user(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, np.zeros(SIZE[1::-1], np.uint8))
    with pytest.raises(InputError, match="empty"):
        mrml.measure_muscle_segment(segmentation, ct_node, 6, CLINICAL)
    with pytest.raises(InputError, match="no 'C3 section' segment"):
        mrml.segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT)


def cell(table_node, measure: str) -> str:
    return next(row[1] for row in mrml.table_rows(table_node) if row[0] == measure)


def test_editing_the_muscle_segment_updates_the_table(scene, ct_node):
    """A Segment Editor stroke ends in SetBinaryLabelmapToSegment, as here; the watcher
    recomputes, and the CSA and SMI change by the removed area."""
    k = 6
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "results")
    muscle = (mrml.voxels(ct_node)[k] == MUSCLE_HU).astype(np.uint8)
    mrml.set_muscle_slice_mask(segmentation, ct_node, k, muscle)
    mrml.set_review_warnings(segmentation, ["review the level", "review the level"])
    before = mrml.update_results(table, segmentation, ct_node, k, CLINICAL)
    stop = mrml.watch_segment(segmentation, mrml.MUSCLE_SEGMENT,
                              lambda: mrml.update_results(table, segmentation, ct_node, k,
                                                          CLINICAL))
    edited = muscle.copy()
    edited[np.flatnonzero(muscle.any(axis=1))[:2]] = 0  # two rows of the muscle: 2 x 8 pixels
    removed_cm2 = 16 * SPACING[0] * SPACING[1] / 100
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    labelmap = mrml.labelmap_on_grid(ct_node, edited[None], k)
    logic.SetBinaryLabelmapToSegment(labelmap, segmentation,
                                     mrml.segment_id(segmentation, mrml.MUSCLE_SEGMENT),
                                     logic.MODE_REPLACE)
    assert float(cell(table, "C3 muscle CSA")) == pytest.approx(
        before.muscle_csa_cm2 - removed_cm2, abs=0.005)
    smi_drop = 1.363 * removed_cm2 / 1.75 ** 2
    assert float(cell(table, "SMI")) == pytest.approx(before.smi_cm2_m2 - smi_drop, abs=0.005)
    assert [row[3] for row in mrml.table_rows(table) if row[0] == "Warning"] == \
        ["review the level"]
    stop()
    mrml.set_muscle_slice_mask(segmentation, ct_node, k, muscle)
    assert float(cell(table, "C3 muscle CSA")) == pytest.approx(
        before.muscle_csa_cm2 - removed_cm2, abs=0.005)


def test_undo_in_the_segment_editor_updates_the_table(scene, ct_node):
    """The Segment Editor's undo restores the segment from its history, which fires
    SegmentModified only: the table must follow it too."""
    k = 6
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "results")
    muscle = (mrml.voxels(ct_node)[k] == MUSCLE_HU).astype(np.uint8)
    mrml.set_muscle_slice_mask(segmentation, ct_node, k, muscle)
    before = mrml.update_results(table, segmentation, ct_node, k, CLINICAL)
    mrml.watch_segment(segmentation, mrml.MUSCLE_SEGMENT,
                       lambda: mrml.update_results(table, segmentation, ct_node, k, CLINICAL))
    history = slicer.vtkSegmentationHistory()
    history.SetSegmentation(segmentation.GetSegmentation())
    history.SaveState()
    edited = muscle.copy()
    edited[np.flatnonzero(muscle.any(axis=1))[:2]] = 0
    mrml.set_muscle_slice_mask(segmentation, ct_node, k, edited)
    assert float(cell(table, "C3 muscle CSA")) < before.muscle_csa_cm2 - 0.05
    history.RestorePreviousState()
    assert float(cell(table, "C3 muscle CSA")) == pytest.approx(before.muscle_csa_cm2, abs=0.005)


def test_editing_the_section_does_not_recompute(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, mrml.voxels(ct_node)[6] == MUSCLE_HU)
    calls = []
    mrml.watch_segment(segmentation, mrml.MUSCLE_SEGMENT, lambda: calls.append(1))
    mrml.set_segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT,
                          np.ones(SIZE[::-1], np.uint8), mrml.SECTION_COLOR)
    assert not calls


def test_muscle_on_another_slice_shows_why_nothing_is_measured(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "results")
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, mrml.voxels(ct_node)[6] == MUSCLE_HU)
    mrml.set_review_warnings(segmentation, ["models trained on synthetic phantoms"])
    with pytest.raises(InputError) as problem:
        mrml.update_results(table, segmentation, ct_node, 7, CLINICAL)
    mrml.write_unmeasured_results(table, segmentation, ct_node, 7, str(problem.value))
    rows = {row[0]: row for row in mrml.table_rows(table)}
    assert rows["C3 slice"][1] == "7" and "empty" in rows["Not measured"][3]
    assert "C3 muscle CSA" not in rows
    assert rows["Warning"][3] == "models trained on synthetic phantoms"


def test_missing_clinical_fields_leave_empty_cells_with_a_reason(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "results")
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, mrml.voxels(ct_node)[6] == MUSCLE_HU)
    mrml.update_results(table, segmentation, ct_node, 6, ClinicalInfo(age_years=60))
    rows = {row[0]: row for row in mrml.table_rows(table)}
    assert rows["SMI"][1] == "" and "height" in rows["SMI"][3]
    assert rows["L3 CSA (estimated)"][1] == "" and "weight" in rows["L3 CSA (estimated)"][3]
    assert rows["C3 slice"][1] == "6"


def test_saved_and_reloaded_segmentation_keeps_the_segments(scene, ct_node, tmp_path):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    section = np.zeros(SIZE[::-1], np.uint8)
    section[2:10, 5:25, 6:30] = 1
    muscle = (mrml.voxels(ct_node)[6] == MUSCLE_HU).astype(np.uint8)
    mrml.set_segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT, section, mrml.SECTION_COLOR)
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, muscle)
    path = mrml.save_segmentation(segmentation, tmp_path / "case.seg.nrrd")

    other_scene = slicer.vtkMRMLScene()
    reloaded = mrml.load_segmentation(other_scene, path)
    ct_again = mrml.add_volume_node(other_scene, mrml.ct_from_volume_node(ct_node), "ct")
    names = {reloaded.GetSegmentation().GetNthSegment(n).GetName()
             for n in range(reloaded.GetSegmentation().GetNumberOfSegments())}
    assert names == {mrml.SECTION_SEGMENT, mrml.MUSCLE_SEGMENT}
    np.testing.assert_array_equal(mrml.muscle_slice_mask(reloaded, ct_again, 6), muscle)
    np.testing.assert_array_equal(
        mrml.segment_mask(reloaded, ct_again, mrml.SECTION_SEGMENT), section)


def test_export_writes_csv_and_seg_nrrd(scene, ct_node, tmp_path):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "results")
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, mrml.voxels(ct_node)[6] == MUSCLE_HU)
    mrml.set_review_warnings(segmentation, ["models trained on synthetic phantoms"])
    measures = mrml.update_results(table, segmentation, ct_node, 6, CLINICAL)
    csv_path, seg_path = mrml.export_results(table, segmentation, tmp_path, "patient 1/CT")
    assert seg_path.name == "patient_1_CT_c3_segmentation.seg.nrrd" and seg_path.is_file()
    assert csv_path.read_bytes().isascii()
    with csv_path.open(newline="", encoding="ascii") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == mrml.RESULT_COLUMNS
    values = {row[0]: row for row in rows[1:]}
    assert float(values["C3 muscle CSA"][1]) == pytest.approx(measures.muscle_csa_cm2, abs=0.005)
    assert values["Warning"][3] == "models trained on synthetic phantoms"
    with pytest.raises(InputError, match="not a folder"):
        mrml.export_results(table, segmentation, tmp_path / "missing", "patient1")


def test_save_as_ground_truth_writes_the_level_row_ct_and_muscle(scene, ct_node, tmp_path):
    from C3SarcopeniaLib import imaging
    from C3SarcopeniaLib.cohort.levels import CtLocator, check_levels, ingest_levels, read_levels

    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    muscle = mrml.voxels(ct_node)[5] == MUSCLE_HU
    mrml.set_muscle_slice_mask(segmentation, ct_node, 5, muscle)
    csv_path, ct_path, muscle_path = mrml.save_ground_truth(ct_node, segmentation, 5, tmp_path,
                                                            " JD ")
    (level,) = read_levels(csv_path)
    assert (level.case, level.top_k, level.bottom_k, level.mid_k, level.annotator,
            level.confidence) == (ct_node.GetName(), None, None, 5, "JD", "high")
    assert level.ct == ct_path == tmp_path / f"{ct_node.GetName()}_ct.nii.gz"
    assert check_levels([level], CtLocator()) == {}
    ct = imaging.read_ct(ct_path)
    imaging.check_same_grid(ct, mrml.ct_from_volume_node(ct_node), "the saved CT")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ct), mrml.voxels(ct_node))
    saved = imaging.read_mask(muscle_path, ct)
    np.testing.assert_array_equal(saved[5], muscle)
    assert saved.sum() == muscle.sum()

    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, mrml.voxels(ct_node)[6] == MUSCLE_HU)
    mrml.save_ground_truth(ct_node, segmentation, 6, tmp_path, "JD")
    levels = read_levels(csv_path)
    assert [(lv.case, lv.mid_k) for lv in levels] == [(ct_node.GetName(), 6)]
    assert imaging.read_mask(muscle_path, ct).any(axis=(1, 2)).nonzero()[0].tolist() == [6]
    manifest = ingest_levels(levels, CtLocator(), tmp_path / "labels")
    assert manifest.is_file() and (tmp_path / "labels" / f"{ct_node.GetName()}_section.nii.gz"
                                   ).is_file()
    # the saved muscle enters the manifest, so stage 2 trains on it as on consensus labels
    from C3SarcopeniaLib.models import ModelCard
    from C3SarcopeniaLib.training import prepare_muscle_case, read_manifest
    [row] = read_manifest(manifest)
    assert Path(row["muscle_mask"]) == muscle_path.resolve()
    case = prepare_muscle_case(row, ModelCard.from_preset("muscle", "fast"))
    assert len(case.labels) == 1 and case.labels[0].any()  # the labelled slice only


def test_save_as_ground_truth_refuses_what_is_not_ready(scene, ct_node, tmp_path):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    mrml.set_muscle_slice_mask(segmentation, ct_node, 5, mrml.voxels(ct_node)[5] == MUSCLE_HU)
    with pytest.raises(InputError, match="enter your name or initials"):
        mrml.save_ground_truth(ct_node, segmentation, 5, tmp_path, "  ")
    with pytest.raises(InputError, match="not a folder"):
        mrml.save_ground_truth(ct_node, segmentation, 5, tmp_path / "missing", "JD")
    with pytest.raises(InputError, match="no C3 slice is chosen"):
        mrml.save_ground_truth(ct_node, segmentation, -1, tmp_path, "JD")
    with pytest.raises(InputError, match="muscle segment is empty on slice 4"):
        mrml.save_ground_truth(ct_node, segmentation, 4, tmp_path, "JD")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("storage", [neck_like_ct, lambda: stored_feet_first(neck_like_ct())])
def test_slice_navigation_follows_the_head_whatever_the_storage(scene, storage):
    node = mrml.add_volume_node(scene, storage(), "ct")
    red = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    for k in (0, 4, SIZE[2] - 1):
        mrml.show_slice(red, node, k)
        assert mrml.slice_k_shown(red, node) == k
        assert red.GetSliceToRAS().GetElement(2, 3) == pytest.approx(mrml.slice_offset_mm(node, k))
    up = mrml.neighbour_slice_k(node, 4, towards_head=True)
    assert mrml.slice_offset_mm(node, up) == pytest.approx(mrml.slice_offset_mm(node, 4) + 2.5)
    down = mrml.neighbour_slice_k(node, 4, towards_head=False)
    assert mrml.slice_offset_mm(node, down) == pytest.approx(mrml.slice_offset_mm(node, 4) - 2.5)
    top = max(range(SIZE[2]), key=lambda k: mrml.slice_offset_mm(node, k))
    assert mrml.neighbour_slice_k(node, top, towards_head=True) == top


def test_section_shows_in_3d_once_converters_are_registered(scene, ct_node):
    mrml.register_segmentation_converters()
    mrml.register_segmentation_converters()
    names = [rule.GetName() for rule in
             slicer.vtkSegmentationConverterFactory.GetInstance().GetConverterRules()]
    assert len(names) == len(set(names))
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    section = np.zeros(SIZE[::-1], np.uint8)
    section[3:9, 6:26, 8:32] = 1
    mrml.set_segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT, section, mrml.SECTION_COLOR)
    mrml.show_segments(segmentation, section_opacity=0.3)
    section_id = mrml.segment_id(segmentation, mrml.SECTION_SEGMENT)
    surface = vtk.vtkPolyData()
    assert segmentation.GetClosedSurfaceRepresentation(section_id, surface)
    assert surface.GetNumberOfPoints() > 0
    assert segmentation.GetDisplayNode().GetSegmentOpacity2DFill(section_id) == pytest.approx(0.3)


def test_volume_under_a_transform_or_not_axial_is_refused(scene):
    node = mrml.add_volume_node(scene, neck_like_ct(), "ct")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match="harden"):
        mrml.ct_from_volume_node(node)
    sagittal = neck_like_ct()
    sagittal.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))
    with pytest.raises(InputError, match="axial"):
        mrml.ct_from_volume_node(mrml.add_volume_node(scene, sagittal, "sagittal"))


def test_clinical_fields_come_from_the_dicom_the_volume_was_loaded_from(scene, tmp_path):
    from C3SarcopeniaLib.dicomio import write_dicom_series

    image = neck_like_ct()
    files = write_dicom_series(image, tmp_path, CLINICAL, slices=[0])
    node = mrml.add_volume_node(scene, image, "ct")
    assert mrml.clinical_from_dicom(node, lambda uid: "") is None
    node.SetAttribute("DICOM.instanceUIDs", "1.2.3 1.2.4")
    found = mrml.clinical_from_dicom(node, {"1.2.3": str(files[0])}.get)
    assert found == CLINICAL


def grouped_muscle() -> np.ndarray:
    """The slab split into paravertebral (label 1) and the two SCMs (2 right, 3 left)."""
    labels = np.zeros(SIZE[1::-1], np.uint8)
    labels[10:16, 12:16] = 1
    labels[10:16, 16:18] = 2
    labels[10:16, 18:20] = 3
    return labels


def test_grouped_muscle_becomes_one_segment_per_group_and_the_table_shows_each(scene, ct_node):
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, mrml.voxels(ct_node)[6] == MUSCLE_HU)
    labels = grouped_muscle()
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, labels)
    names = {segmentation.GetSegmentation().GetNthSegment(n).GetName()
             for n in range(segmentation.GetSegmentation().GetNumberOfSegments())}
    assert names == {"Paravertebral muscles", "SCM right", "SCM left"}  # ungrouped one gone
    np.testing.assert_array_equal(mrml.muscle_slice_mask(segmentation, ct_node, 6), labels)
    measures = mrml.measure_muscle_segment(segmentation, ct_node, 6, CLINICAL)
    pixel_cm2 = SPACING[0] * SPACING[1] / 100
    assert measures.scm_right_csa_cm2 == pytest.approx(12 * pixel_cm2)
    assert measures.muscle_csa_cm2 == pytest.approx(48 * pixel_cm2)
    rows = {row[0].strip(): row[1] for row in mrml.measure_rows(measures)}
    assert float(rows["paravertebral"]) == pytest.approx(24 * pixel_cm2, abs=0.005)
    calls = []
    stop = mrml.watch_segment(segmentation, mrml.MUSCLE_SEGMENTS, lambda: calls.append(1))
    edited = labels.copy()
    edited[10:16, 18:20] = 0
    mrml.set_muscle_slice_mask(segmentation, ct_node, 6, edited)
    stop()
    assert calls  # an edit of an SCM segment re-measures
