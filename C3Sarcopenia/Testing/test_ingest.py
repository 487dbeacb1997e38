"""Ingesting an archive export: phantoms written as DICOM series + segmented slice + tag.

The truth is known voxel for voxel, so the ingested C3 slice, CT and muscle must equal the
phantom's exactly. The archive holds the usual variants (a label image instead of a tag, the
slice copied into the series folder under the series' own UID) and the usual faults (a slice
whose pixels are not the series', no tag, no clinical row), which are reported, not fatal.
"""

import csv
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from C3SarcopeniaLib import imaging
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.dicomio import write_dicom_cohort, write_dicom_series
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.cohort.ingest import match_slice
from C3SarcopeniaLib.training import read_manifest

TIME, EVENT = "Survival  (months)", "Overall Survival Censor"
OUTCOMES = {"P0": ("12.5", "1"), "P1": ("40", "0"), "P2": ("7.25", "Dead"),
            "P3": ("30", "0"), "P4": ("22", "1")}


@pytest.fixture(scope="module")
def phantoms(small_phantom_options):
    from C3SarcopeniaLib.phantoms.phantom import make_phantom

    return {f"P{seed}": make_phantom(seed, f"P{seed}", small_phantom_options)
            for seed in range(5)}


@pytest.fixture(scope="module")
def archive(tmp_path_factory, phantoms):
    """P0 as written; P1 with a label image instead of the tag; P2 with the slice copied into
    the series folder under the series' UID; P3 with altered pixels; P4 without its tag; a
    'stray' patient missing from the clinical table."""
    root = tmp_path_factory.mktemp("archive")
    table = write_dicom_cohort(phantoms.values(), root)
    _label_image_instead_of_tag(root / "P1", phantoms["P1"])
    _slice_inside_series_folder(root / "P2")
    _alter_single_slice(root / "P3", phantoms["P3"])
    next((root / "P4").rglob("*.tag")).unlink()
    shutil.copytree(root / "P0", root / "stray")
    _add_outcome_columns(table)
    return root, table


def _single_slice(patient):
    tag = next(patient.rglob("*.dcm.tag"))
    return tag.with_name(tag.name[:-len(".tag")]), tag


def _label_image_instead_of_tag(patient, phantom):
    single, tag = _single_slice(patient)
    k = phantom.c3_slice_k
    label = phantom.muscle_mask[:, :, k:k + 1] != 0
    sitk.WriteImage(sitk.Cast(label, sitk.sitkUInt8), str(single.with_suffix(".nii.gz")))
    tag.unlink()


def _slice_inside_series_folder(patient):
    single, tag = _single_slice(patient)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(next((patient / "CT").iterdir())))
    reader.ReadImageInformation()
    series_uid = reader.GetMetaData("0020|000e")
    ct = sitk.ReadImage(str(single))
    copy, = write_dicom_series(ct, patient / "tmp", series_uid=series_uid, slices=[0])
    copy.rename(patient / "CT" / "c3_copy.dcm")
    tag.rename(patient / "CT" / "c3_copy.dcm.tag")
    shutil.rmtree(patient / "C3")
    shutil.rmtree(patient / "tmp")


def _alter_single_slice(patient, phantom):
    """The slice at the right position, but with 200 HU added to a block of pixels."""
    single, _ = _single_slice(patient)
    hu = sitk.GetArrayFromImage(phantom.ct)
    hu[phantom.c3_slice_k, 10:30, 10:30] += 200
    altered = sitk.GetImageFromArray(hu)
    altered.CopyInformation(phantom.ct)
    written, = write_dicom_series(altered, single.parent, phantom.clinical,
                                  slices=[phantom.c3_slice_k])
    assert written == single


def _add_outcome_columns(table):
    with table.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    rows[0] += [TIME, EVENT]
    for row in rows[1:]:
        row += OUTCOMES[row[0]]
    with table.open("w", newline="", encoding="utf-8-sig") as handle:
        csv.writer(handle).writerows(rows)


@pytest.fixture(scope="module")
def ingested(archive, tmp_path_factory):
    root, table = archive
    out = tmp_path_factory.mktemp("cohort")
    # Column names as a user types them: spacing and case need not match the table's.
    status = main(["ingest", str(root), "--clinical", str(table), "--out", str(out),
                   "--time-column", "survival (months)", "--event-column", EVENT])
    assert status == 0
    with (out / "ingest_report.csv").open() as handle:
        report = {row["case_id"]: row for row in csv.DictReader(handle)}
    return {row["case_id"]: row for row in read_manifest(out / "manifest.csv")}, report


def test_clean_cases_recover_the_true_slice_ct_and_muscle(ingested, phantoms):
    manifest, report = ingested
    assert sorted(manifest) == ["P0", "P1", "P2"]
    for case_id, row in manifest.items():
        phantom = phantoms[case_id]
        k = phantom.c3_slice_k
        assert int(row["c3_slice_k"]) == k, case_id
        ct = sitk.ReadImage(row["ct"])
        assert np.allclose(ct.GetSpacing(), phantom.ct.GetSpacing(), atol=1e-3)
        assert np.allclose(ct.GetOrigin(), phantom.ct.GetOrigin(), atol=1e-3)
        assert np.array_equal(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(phantom.ct))
        muscle = imaging.read_mask(row["muscle_mask"], ct)
        assert np.flatnonzero(muscle.any(axis=(1, 2))).tolist() == [k]
        assert np.array_equal(muscle[k], sitk.GetArrayViewFromImage(phantom.muscle_mask)[k] != 0)
        section = imaging.read_mask(row["section_mask"], ct)
        assert np.array_equal(section, imaging.c3_section_mask(phantom.ct, k).astype(bool))
        assert report[case_id]["outcome"] == "ingested"
        assert int(report[case_id]["c3_slice_k"]) == k


def test_clinical_and_survival_columns_come_from_the_table(ingested, phantoms):
    manifest, _ = ingested
    for case_id, row in manifest.items():
        clinical = phantoms[case_id].clinical
        assert float(row["age"]) == pytest.approx(clinical.age_years)
        assert row["sex"] == clinical.sex
        assert float(row["height_cm"]) == pytest.approx(clinical.height_cm)
        assert float(row["weight_kg"]) == pytest.approx(clinical.weight_kg)
    assert [(manifest[c]["survival_time"], manifest[c]["event"]) for c in ("P0", "P1", "P2")] \
        == [("12.5", "1"), ("40", "0"), ("7.25", "1")]


def test_faulty_cases_are_reported_with_their_reason(ingested):
    _, report = ingested
    assert report["P3"]["outcome"] == "left out"
    assert "pixels differ by up to 200 HU" in report["P3"]["reason"]
    assert "no segmentation" in report["P4"]["reason"]
    assert "no rows for patient stray" in report["stray"]["reason"]
    assert report["P2"]["single_slice"] == "P2/CT/c3_copy.dcm"


def test_a_slice_between_series_slices_is_refused_with_a_hint(phantoms):
    series = sitk.Cast(phantoms["P0"].ct, sitk.sitkFloat32)
    k = phantoms["P0"].c3_slice_k
    single = series[:, :, k:k + 1]
    assert match_slice(series, single).slice_k == k
    origin = list(single.GetOrigin())
    origin[2] += 0.5 * series.GetSpacing()[2]
    single.SetOrigin(origin)
    with pytest.raises(InputError, match=f"no slice of the series.*equal series slice {k}"):
        match_slice(series, single)


def test_nothing_ingestable_exits_2_with_the_report(tmp_path, archive, capsys):
    _, table = archive
    (tmp_path / "root" / "P0").mkdir(parents=True)
    status = main(["ingest", str(tmp_path / "root"), "--clinical", str(table),
                   "--out", str(tmp_path / "out")])
    assert status == 2
    assert "none of the 1 patient folders" in capsys.readouterr().err
    assert "no segmentation" in (tmp_path / "out" / "ingest_report.csv").read_text()
    assert not (tmp_path / "out" / "manifest.csv").exists()
