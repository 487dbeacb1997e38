"""DICOM out: the SEG and SR that predict, measure and batch write for a DICOM CT, read back
with highdicom and pydicom, on a phantom written as a DICOM series (head or feet first)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr.codedict import codes

from C3SarcopeniaLib import __version__, dicomio, imaging, terminology
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.dicomout import SEG_FILE, SR_FILE, dicom_results_writer
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.measures import MUSCLE_GROUPS
from C3SarcopeniaLib.training import read_manifest

CLINICAL = ["--age", "60", "--sex", "M", "--height-cm", "176", "--weight-kg", "80"]


def feet_first(image: sitk.Image) -> sitk.Image:
    """The same patient with slice 0 at the head: the files then run head to feet."""
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(image)[::-1]))
    flipped.SetSpacing(image.GetSpacing())
    flipped.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    flipped.SetOrigin(image.TransformIndexToPhysicalPoint((0, 0, image.GetSize()[2] - 1)))
    return flipped


@pytest.fixture(scope="module")
def case(phantom_cohort):
    return read_manifest(phantom_cohort)[0]


def dicom_case(case: dict, folder: Path, order: str) -> Path:
    ct = sitk.ReadImage(case["ct"])
    dicomio.write_dicom_series(ct if order == "LPS" else feet_first(ct), folder, None,
                               "PATIENT^ONE")
    return folder


def slice_index_of_files(folder: Path, ct: sitk.Image) -> dict[str, int]:
    """SOP Instance UID -> slice k of the CT as read, from each file's own position."""
    index = {}
    for path in folder.iterdir():
        header = pydicom.dcmread(path, stop_before_pixels=True)
        k = ct.TransformPhysicalPointToIndex([float(v) for v in header.ImagePositionPatient])[2]
        index[header.SOPInstanceUID] = k
    return index


def seg_labels(seg: hd.seg.Segmentation, uid_to_k: dict[str, int], shape: tuple,
               labels: dict[str, int]) -> np.ndarray:
    """The SEG back on the CT grid as one label volume (segment label -> value)."""
    uids = sorted(uid_to_k, key=uid_to_k.get)
    volume = np.zeros(shape, np.uint8)
    for number in seg.segment_numbers:
        value = labels.get(seg.get_segment_description(number).segment_label)
        if value is None:
            continue
        pixels = seg.get_pixels_by_source_instance(
            uids, segment_numbers=[number], assert_missing_frames_are_empty=True)[..., 0]
        volume[pixels > 0] = value
    return volume


def run(argv) -> int:
    return main([str(a) for a in argv])


@pytest.mark.parametrize("command,order", [("predict", "LPS"), ("measure", "feet-first")])
def test_seg_and_sr_round_trip(tmp_path, case, tiny_models, command, order):
    folder = dicom_case(case, tmp_path / "ct", order)
    ct = imaging.read_ct(folder)
    out = tmp_path / "out"
    if command == "predict":
        argv = ["predict", folder, "--models", tiny_models]
    else:  # the reader sorts the slices by position: the phantom's own grid comes back
        argv = ["measure", "--ct", folder, "--mask", case["muscle_mask"],
                "--slice-k", case["c3_slice_k"]]
    assert run([*argv, "--out", out, *CLINICAL]) == 0
    result = json.loads((out / "result.json").read_text())
    source = {uid: pydicom.dcmread(path, stop_before_pixels=True)
              for uid, path in ((pydicom.dcmread(p).SOPInstanceUID, p) for p in folder.iterdir())}
    any_source = next(iter(source.values()))
    uid_to_k = slice_index_of_files(folder, ct)

    seg = hd.seg.segread(out / SEG_FILE)
    raw = pydicom.dcmread(out / SEG_FILE)
    assert raw.Modality == "SEG" and raw.SegmentationType == "BINARY"
    assert raw.PatientID == any_source.PatientID
    assert raw.StudyInstanceUID == any_source.StudyInstanceUID
    assert raw.FrameOfReferenceUID == any_source.FrameOfReferenceUID
    assert raw.SOPInstanceUID not in source
    assert raw.SeriesInstanceUID != any_source.SeriesInstanceUID
    assert raw.ReferencedSeriesSequence[0].SeriesInstanceUID == any_source.SeriesInstanceUID
    assert {sop_uid for _, _, sop_uid in seg.get_source_image_uids()} <= set(source)
    # each frame says which source slice it lies on, and the muscle lies on the C3 slice
    muscle_labels = {terminology.MUSCLE_GROUP_CODES[g].label: v
                     for v, g in enumerate(MUSCLE_GROUPS, start=1)}
    for frame in raw.PerFrameFunctionalGroupsSequence:
        number = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        label = raw.SegmentSequence[number - 1].SegmentLabel
        referenced = frame.DerivationImageSequence[0].SourceImageSequence[0]
        if label in muscle_labels:
            assert uid_to_k[referenced.ReferencedSOPInstanceUID] == result["c3_slice_k"]
    # segment codes are the shared terminology, sides included
    for item in raw.SegmentSequence:
        expected = terminology.SEGMENT_CODES[item.SegmentLabel]
        type_item = item.SegmentedPropertyTypeCodeSequence[0]
        assert (type_item.CodingSchemeDesignator, type_item.CodeValue,
                type_item.CodeMeaning) == expected.type
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == expected.category[1]
        modifier = type_item.get("SegmentedPropertyTypeModifierCodeSequence")
        assert (modifier[0].CodeValue if modifier else None) == \
            (expected.type_modifier[1] if expected.type_modifier else None)
        assert item.SegmentAlgorithmType == ("AUTOMATIC" if command == "predict" else "MANUAL")
    # the masks equal the NIfTI ones on the source grid
    muscle = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "muscle.nii.gz")))
    np.testing.assert_array_equal(seg_labels(seg, uid_to_k, muscle.shape, muscle_labels), muscle)
    if command == "predict":
        section = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "c3_section.nii.gz")))
        np.testing.assert_array_equal(
            seg_labels(seg, uid_to_k, section.shape, {"C3 section": 1}), section)

    check_report(out / SR_FILE, result, raw, uid_to_k, any_source)


def _items(sequence):
    for item in sequence:
        yield item
        yield from _items(item.get("ContentSequence", []))


def check_report(path: Path, result: dict, seg: pydicom.Dataset, uid_to_k: dict,
                 source: pydicom.Dataset) -> None:
    report = pydicom.dcmread(path)
    assert report.Modality == "SR" and report.PatientID == source.PatientID
    assert report.StudyInstanceUID == source.StudyInstanceUID
    assert report.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    items = list(_items(report.ContentSequence))
    whole = next(i for i in items if i.ValueType == "CONTAINER" and any(
        c.get("TextValue") == "C3 skeletal muscle" for c in i.get("ContentSequence", [])))
    numbers = {i.ConceptNameCodeSequence[0].CodeValue:
               float(i.MeasuredValueSequence[0].NumericValue)
               for i in whole.ContentSequence if i.ValueType == "NUM"}
    assert numbers[codes.SCT.Area.value] == pytest.approx(result["muscle_csa_cm2"], rel=1e-6)
    assert numbers[codes.DCM.MeanAttenuationCoefficient.value] == pytest.approx(
        result["muscle_mean_hu"], rel=1e-6)
    assert numbers["L3CSA"] == pytest.approx(result["l3_csa_cm2"], rel=1e-6)
    assert numbers["SMI"] == pytest.approx(result["smi_cm2_m2"], rel=1e-6)
    status = next(i for i in whole.ContentSequence if i.ValueType == "CODE"
                  and i.ConceptNameCodeSequence[0].CodeValue == "STATUS")
    assert status.ConceptCodeSequence[0].CodeValue == result["muscle_status"].upper()
    # measurements reference the C3 slice's image, the groups the SEG, the algorithm named
    images = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in items
              if i.ValueType == "IMAGE" and i.ReferencedSOPSequence[0].ReferencedSOPClassUID
              == source.SOPClassUID]
    assert images and {uid_to_k[uid] for uid in images} == {result["c3_slice_k"]}
    seg_references = [i for i in items if i.ValueType == "IMAGE" and
                      i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID]
    groups_present = [g for g in MUSCLE_GROUPS if result[f"{g}_csa_cm2"]]
    assert len(seg_references) == len(groups_present) > 0
    assert any(i.ValueType == "TEXT" and i.TextValue == __version__ for i in items)


def test_every_code_is_a_dicom_segmentation_code():
    def in_cid(cid: int, code: tuple[str, str, str]) -> bool:
        return any(getattr(codes.SCT, name).value == code[1]
                   for name in cid_concepts[cid].get("SCT", []))

    for codes_ in terminology.SEGMENT_CODES.values():
        assert in_cid(7150, codes_.category) and in_cid(7151, codes_.type)
        assert codes_.type_modifier is None or in_cid(244, codes_.type_modifier)
    entry = terminology.slicer_terminology_entry("SCM left")
    assert entry.split("~") == [terminology.SLICER_CATEGORY_CONTEXT,
                                "SCT^91723000^Anatomical Structure",
                                "SCT^22823000^Sternocleidomastoid muscle", "SCT^7771000^Left",
                                terminology.SLICER_ANATOMIC_CONTEXT, "SCT^113205007^C3 vertebra",
                                "^^"]
    assert terminology.slicer_terminology_entry("my own segment") is None


def test_dicom_out_needs_dicom_in(tmp_path, case):
    ct = imaging.read_ct(case["ct"])
    with pytest.raises(InputError, match="not DICOM"):
        dicom_results_writer(case["ct"], ct)


def test_batch_dicom_out_writes_seg_and_sr_and_refuses_nifti(tmp_path, case, tiny_models):
    cohort = tmp_path / "cohort"
    dicom_case(case, cohort / "patient_dicom", "LPS")
    sitk.WriteImage(sitk.ReadImage(case["ct"]), str(cohort / "patient_nifti.nii.gz"))
    table = tmp_path / "batch.csv"
    assert run(["batch", cohort, "--out", table, "--save-dir", tmp_path / "cases",
                "--models", tiny_models, "--dicom-out"]) == 1  # the NIfTI case failed
    with table.open(newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert rows["patient_dicom"]["error"] == ""
    assert "not DICOM" in rows["patient_nifti"]["error"]
    for name in (SEG_FILE, SR_FILE):
        assert pydicom.dcmread(tmp_path / "cases" / "patient_dicom" / name).PatientID == \
            "PATIENT^ONE"
    assert not (tmp_path / "cases" / "patient_nifti" / "result.json").exists()
