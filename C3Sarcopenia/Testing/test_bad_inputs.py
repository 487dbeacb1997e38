"""Inputs that must never pass as a measurement (docs/reliability.md, "Inputs"): corrupt
files, data that is not HU or not a mask, DICOM series with gaps, tags beside the wrong
slice, an upside-down neck, a gantry tilt, out-of-range folds. Every input is made here.
A refusal is one line on stderr (read at the file descriptor, so ITK's own output would
show), exit 2 and no result.json; a doubt is a named warning in result.json."""

import csv
import json
import os
import re

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from C3SarcopeniaLib import dicomio, image_files, imaging, input_checks, pipeline
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.phantoms.phantom import PhantomOptions, make_phantom
from C3SarcopeniaLib.report import DICOM_SEG_FILE
from C3SarcopeniaLib.tagfile import read_tag, tag_mask_for_image, write_tag
from C3SarcopeniaLib.training import read_manifest
from conftest import SHARED
from test_imaging import small_ct


@pytest.fixture(scope="module")
def case(phantom_cohort):
    return read_manifest(phantom_cohort)[0]


def run(argv, capfd):
    status = main([str(a) for a in argv])
    return status, capfd.readouterr()


PROGRESS = re.compile(r"\[\s*\d+(%|/\d+)\] ")  # "[ 40%] ...", "[2/5] ...": ours, not ITK's "[nrrd]"


def assert_refused(argv, capfd, words, out):
    status, captured = run(argv, capfd)
    lines = [line for line in captured.err.splitlines() if line and not PROGRESS.match(line)]
    assert status == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("c3sarcopenia: error:"), captured.err
    assert all(word in lines[0] for word in words), lines[0]
    assert not (out / "result.json").exists()
    return lines[0]


def measure_result(argv, capfd):
    status, captured = run(["measure", *argv], capfd)
    assert status == 0, captured.err
    out = argv[argv.index("--out") + 1]
    return json.loads((out / "result.json").read_text())


def phantom_hu(case):
    ct = imaging.read_ct(case["ct"])
    return ct, sitk.GetArrayFromImage(ct)


def write_like(array, ct, path):
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(path))
    return path


# 1. Corrupt CTs

@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_truncated_nifti_is_refused_as_truncated(tmp_path, case, tiny_models, capfd, suffix):
    ct, _ = phantom_hu(case)
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(imaging.int16_hu(ct), str(path))
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * 0.7)])
    out = tmp_path / "out"
    # the slice lies in the missing part: ITK would have measured zero-filled voxels
    assert_refused(["predict", path, "--slice-k", ct.GetSize()[2] - 2, "--models", tiny_models,
                    "--out", out], capfd, ["truncated"], out)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_voxels_are_refused_in_every_format(tmp_path, case, capfd, suffix, bad):
    ct, hu = phantom_hu(case)
    hu[3, 10:20, 10:20] = bad
    path = write_like(hu.astype(np.float32), ct, tmp_path / f"ct{suffix}")
    out = tmp_path / "out"
    assert_refused(["measure", "--ct", path, "--mask", case["muscle_mask"], "--slice-k",
                    case["c3_slice_k"], "--out", out], capfd, ["NaN or infinite"], out)


def only_line_on_stderr(captured):
    """The whole of stderr as written to file descriptor 2: exactly one line, ours."""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("c3sarcopenia: error:"), captured.err
    return lines[0]


# (file name, compressed, which file is cut: the data file of a detached header)
@pytest.mark.parametrize("name, compressed, cut", [
    ("ct.nrrd", False, "ct.nrrd"), ("ct.nrrd", True, "ct.nrrd"),
    ("ct.mha", False, "ct.mha"), ("ct.mha", True, "ct.mha"),
    ("ct.nhdr", True, "ct.raw.gz"), ("ct.mhd", False, "ct.raw")])
def test_a_truncated_nrrd_or_mha_is_refused_as_truncated(tmp_path, case, capfd, name,
                                                        compressed, cut):
    ct, _ = phantom_hu(case)
    sitk.WriteImage(imaging.int16_hu(ct), str(tmp_path / name), compressed)
    data = tmp_path / cut
    data.write_bytes(data.read_bytes()[:int(data.stat().st_size * 0.7)])
    out = tmp_path / "out"
    status, captured = run(["measure", "--ct", tmp_path / name, "--mask", case["muscle_mask"],
                            "--slice-k", ct.GetSize()[2] - 2, "--out", out], capfd)
    line = only_line_on_stderr(captured)  # neither a traceback nor ITK's or MetaIO's text
    assert status == 2 and "is truncated" in line and "bytes" in line, line
    assert "header announces" in line or "compressed voxels end before" in line, line
    assert not out.exists()


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz", "v.nrrd", "v.nhdr", "v.mha", "v.mhd"])
@pytest.mark.parametrize("compressed", [False, True])
def test_whole_files_of_every_format_and_voxel_type_pass_the_stored_byte_check(tmp_path, name,
                                                                              compressed):
    """No false refusal: the byte count each header promises is what ITK writes."""
    values = np.random.default_rng(1).normal(0, 100, (5, 6, 7))
    for dtype in (np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64):
        path = tmp_path / dtype.__name__ / name
        path.parent.mkdir()
        sitk.WriteImage(sitk.GetImageFromArray(values.astype(dtype)), str(path), compressed)
        image_files.check_stored_voxels(path)
        assert np.array_equal(sitk.GetArrayFromImage(image_files.read_image(path)),
                              values.astype(dtype))
        if not compressed:  # and one voxel byte less is seen: the header was understood
            data = path.with_suffix(".raw") if path.suffix in (".nhdr", ".mhd") else path
            data.write_bytes(data.read_bytes()[:-1])
            with pytest.raises(InputError, match="is truncated"):
                image_files.check_stored_voxels(path)


def test_a_detached_header_without_its_data_file_is_refused(tmp_path, case, capfd):
    ct, _ = phantom_hu(case)
    sitk.WriteImage(imaging.int16_hu(ct), str(tmp_path / "ct.mhd"))
    (tmp_path / "ct.raw").unlink()
    status, captured = run(["measure", "--ct", tmp_path / "ct.mhd", "--mask",
                            case["muscle_mask"], "--out", tmp_path / "out"], capfd)
    assert status == 2 and "ct.raw, which is missing" in only_line_on_stderr(captured)


def test_a_truncated_mask_is_refused(tmp_path, case, capfd):
    mask = tmp_path / "mask.nii"
    sitk.WriteImage(sitk.ReadImage(case["muscle_mask"]), str(mask))
    mask.write_bytes(mask.read_bytes()[:-500])
    out = tmp_path / "out"
    assert_refused(["measure", "--ct", case["ct"], "--mask", mask, "--slice-k",
                    case["c3_slice_k"], "--out", out], capfd, ["truncated"], out)


# 2. Data that is not HU, or not a mask

@pytest.mark.parametrize("kind", ["hu_plus_1024", "scaled_0_1", "mr_like", "uniform_0"])
def test_data_not_in_hounsfield_units_is_refused(tmp_path, case, capfd, kind):
    ct, hu = phantom_hu(case)
    made = {"hu_plus_1024": lambda: (hu + 1024).clip(0, None).astype(np.uint16),
            "scaled_0_1": lambda: ((hu - hu.min()) / np.ptp(hu)).astype(np.float32),
            "mr_like": lambda: np.where(hu > -500, 1500 + 4 * hu, 30).clip(0, 4000)
            .astype(np.int16),
            "uniform_0": lambda: np.zeros_like(hu, dtype=np.int16)}[kind]()
    path = write_like(made, ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    assert_refused(["measure", "--ct", path, "--mask", case["muscle_mask"], "--slice-k",
                    case["c3_slice_k"], "--out", out], capfd, ["Hounsfield", "export the CT"],
                   out)


def test_a_ct_or_a_probability_map_given_as_mask_is_refused(tmp_path, case, capfd):
    out = tmp_path / "out"
    assert_refused(["measure", "--ct", case["ct"], "--mask", case["ct"], "--slice-k",
                    case["c3_slice_k"], "--out", out], capfd, ["not a label mask"], out)
    ct = imaging.read_ct(case["ct"])
    muscle = sitk.GetArrayFromImage(sitk.ReadImage(case["muscle_mask"])) > 0
    probability = write_like(np.where(muscle, 0.4, 0.0).astype(np.float32), ct,
                             tmp_path / "probability.nii.gz")
    assert_refused(["measure", "--ct", case["ct"], "--mask", probability, "--slice-k",
                    case["c3_slice_k"], "--out", out], capfd, ["probability map", "0.4"], out)
    many = write_like((np.arange(muscle.size).reshape(muscle.shape) % 40).astype(np.uint8), ct,
                      tmp_path / "many.nii.gz")
    assert_refused(["measure", "--ct", case["ct"], "--mask", many, "--slice-k",
                    case["c3_slice_k"], "--out", out], capfd, ["39 different labels"], out)


def test_implausible_csa_and_mean_hu_are_named_warnings(tmp_path, case, capfd):
    ct, hu = phantom_hu(case)
    k = int(case["c3_slice_k"])
    tiny = np.zeros(hu.shape, np.uint8)
    tiny[k][np.nonzero(sitk.GetArrayFromImage(sitk.ReadImage(case["muscle_mask"]))[k])] = 1
    tiny[k].ravel()[np.flatnonzero(tiny[k])[20:]] = 0  # 20 pixels of muscle: far too little
    fat = np.zeros(hu.shape, np.uint8)
    fat[k] = (hu[k] > -150) & (hu[k] < -50)
    for name, mask, words in (("tiny", tiny, "cm^2 of adult necks"),
                              ("fat", fat, "HU of skeletal muscle")):
        path = write_like(mask, ct, tmp_path / f"{name}.nii.gz")
        result = measure_result(["--ct", case["ct"], "--mask", path, "--slice-k", k,
                                 "--out", tmp_path / name], capfd)
        assert any(words in warning for warning in result["warnings"]), result["warnings"]
    truth = measure_result(["--ct", case["ct"], "--mask", case["muscle_mask"], "--slice-k", k,
                            "--out", tmp_path / "truth"], capfd)
    assert truth["warnings"] == []


@pytest.mark.skipif(not (SHARED / "openkbp").is_dir(), reason="shared OpenKBP data not present")
def test_real_cts_and_the_sample_pass_the_unit_and_orientation_checks():
    from C3SarcopeniaLib.sample_data import SAMPLE_CT

    paths = sorted((SHARED / "openkbp").glob("*_ct.nii.gz"))[::45] + [SAMPLE_CT]
    assert len(paths) >= 6
    for path in paths:
        ct = imaging.read_ct(path)  # the units are checked on reading
        net_input = pipeline.section_network_input(ct, 3.0)
        input_checks.check_head_up(net_input.body, net_input.grid.GetSpacing())
        assert imaging.reading_warnings(ct) == []


# 6 and 9. DICOM series with gaps, and ITK's own warnings

def _dicom_series(folder):
    ct = small_ct(shape=(12, 40, 50))
    return ct, dicomio.write_dicom_series(ct, folder)


def _edit(path, change):
    dataset = pydicom.dcmread(path)
    change(dataset)
    dataset.save_as(path)


def _drop_position(dataset):
    del dataset.ImagePositionPatient


def _shrink(dataset):
    pixels = dataset.pixel_array[:30, :40].copy()
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.PixelData = pixels.tobytes()


@pytest.mark.parametrize("fault, words", [
    ("missing", ["gap", "no slice between z = -30.0 and -25.0 mm", "1 missing"]),
    ("truncated", ["gap", "unreadable files there: slice_0005.dcm"]),
    ("no_position", ["slice_0005.dcm", "ImagePositionPatient"]),
    ("other_size", ["mixes slice sizes", "slice_0005.dcm is 40x30"]),
    ("duplicate", ["0.00 mm apart"]),
])
def test_dicom_series_faults_are_refused_in_one_line(tmp_path, capfd, fault, words):
    folder = tmp_path / "series"
    _, paths = _dicom_series(folder)
    target = paths[5]
    if fault == "missing":
        target.unlink()
    elif fault == "truncated":
        target.write_bytes(target.read_bytes()[:-1500])
    elif fault == "no_position":
        _edit(target, _drop_position)
    elif fault == "other_size":
        _edit(target, _shrink)
    else:
        dicomio.write_dicom_series(small_ct(shape=(12, 40, 50), seed=3), tmp_path / "copy",
                                   slices=[5], series_uid=pydicom.dcmread(target)
                                   .SeriesInstanceUID)[0].rename(folder / "copy.dcm")
    out = tmp_path / "out"
    assert_refused(["measure", "--ct", folder, "--mask", tmp_path / "mask.nii.gz", "--out",
                    out], capfd, words, out)


def test_a_folder_without_dicom_is_one_line_without_itk_warnings(tmp_path, capfd):
    (tmp_path / "notes.txt").write_text("no images here")
    out = tmp_path / "out"
    assert_refused(["measure", "--ct", tmp_path, "--mask", tmp_path / "notes.txt", "--out",
                    out], capfd, ["holds no CT DICOM series"], out)


def _damaged_nifti_header(path):
    """A NIfTI whose dim[0] says 9 dimensions: the NIfTI library prints an error itself."""
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16)), str(path))
    data = bytearray(path.read_bytes())
    data[40:42] = np.int16(9).tobytes()
    path.write_bytes(bytes(data))
    return path


def test_itk_output_on_file_descriptor_2_is_silenced_while_reading(tmp_path, capfd):
    """MetaIO and the NIfTI library write to the process's stderr whatever ITK's warning
    switch says: shown first without the silence, so that the test can fail."""
    damaged = _damaged_nifti_header(tmp_path / "damaged.nii")
    with pytest.raises(RuntimeError):
        sitk.ReadImage(str(damaged))
    assert "nifti" in capfd.readouterr().err  # what ITK's own reading prints
    with image_files.quiet_itk():
        with image_files.quiet_itk():  # nested, as a series inside a folder
            with pytest.raises(RuntimeError):
                sitk.ReadImage(str(damaged))
        os.write(2, b"still silent\n")
    os.write(2, b"stderr is back\n")
    assert capfd.readouterr().err == "stderr is back\n"
    assert sitk.ProcessObject.GetGlobalWarningDisplay()


@pytest.mark.parametrize("role", ["--ct", "--mask"])
def test_a_damaged_header_is_one_line_without_itk_text(tmp_path, case, capfd, role):
    damaged = _damaged_nifti_header(tmp_path / "damaged.nii")
    inputs = {"--ct": case["ct"], "--mask": case["muscle_mask"], role: damaged}
    status, captured = run(["measure", "--ct", inputs["--ct"], "--mask", inputs["--mask"],
                            "--slice-k", case["c3_slice_k"], "--out", tmp_path / "out"], capfd)
    assert status == 2 and "could not be read as an image" in only_line_on_stderr(captured)


def _tilt(degrees, spacing_mm):
    def change(dataset):
        k = int(dataset.InstanceNumber) - 1
        position = [float(v) for v in dataset.ImagePositionPatient]
        position[1] += k * spacing_mm * np.tan(np.radians(degrees))  # sheared slices
        dataset.ImagePositionPatient = position
        dataset.GantryDetectorTilt = degrees
    return change


def test_a_gantry_tilt_keeps_true_slice_positions_and_is_a_warning(tmp_path, capfd):
    ct, paths = _dicom_series(tmp_path / "series")
    for path in paths:
        _edit(path, _tilt(20.0, ct.GetSpacing()[2]))
    read = imaging.read_ct(tmp_path / "series")
    assert read.GetSpacing()[2] == pytest.approx(ct.GetSpacing()[2])
    assert imaging.slice_z_mm(read, 7) == pytest.approx(imaging.slice_z_mm(ct, 7), abs=1e-3)
    mask = np.zeros(read.GetSize()[::-1], np.uint8)
    mask[7] = sitk.GetArrayFromImage(read)[7] > 0
    path = write_like(mask, read, tmp_path / "mask.nii.gz")
    result = measure_result(["--ct", tmp_path / "series", "--mask", path, "--out",
                             tmp_path / "out"], capfd)
    assert any("gantry tilt of 20 degrees" in w for w in result["warnings"]), result["warnings"]
    assert result["c3_slice_z_mm"] == pytest.approx(imaging.slice_z_mm(ct, 7), abs=1e-3)
    # the DICOM results reference the tilted series' own slices
    assert (tmp_path / "out" / DICOM_SEG_FILE).is_file()


# 10. Implausible DICOM tags, folds out of range, damaged or misplaced tags

def test_implausible_dicom_patient_tags_are_named_not_dropped(tmp_path, capfd):
    ct, paths = _dicom_series(tmp_path / "series")

    def change(dataset):
        dataset.PatientAge, dataset.PatientSex = "045M", "F"
        dataset.PatientSize, dataset.PatientWeight = "17.5", "71"
    for path in paths:
        _edit(path, change)
    clinical = imaging.read_clinical_tags(tmp_path / "series")
    assert (clinical.age_years, clinical.sex, clinical.height_cm, clinical.weight_kg) == \
        (None, "F", None, 71.0)
    mask = np.zeros(ct.GetSize()[::-1], np.uint8)
    mask[4] = sitk.GetArrayFromImage(ct)[4] > 0
    path = write_like(mask, imaging.read_ct(tmp_path / "series"), tmp_path / "mask.nii.gz")
    result = measure_result(["--ct", tmp_path / "series", "--mask", path, "--out",
                             tmp_path / "out"], capfd)
    named = [w for w in result["warnings"] if w.startswith("the DICOM tag")]
    assert len(named) == 2, result["warnings"]
    assert "PatientAge = '045M'" in named[0] and "PatientSize = '17.5'" in named[1]
    assert "expected 100-230 cm" in named[1]


@pytest.mark.parametrize("folds", [0, -1, 99])
def test_folds_out_of_range_are_refused_with_the_valid_range(tmp_path, case, tiny_models,
                                                             capfd, folds):
    out = tmp_path / "out"
    assert_refused(["predict", case["ct"], "--slice-k", case["c3_slice_k"], "--models",
                    tiny_models, "--folds", folds, "--out", out], capfd,
                   [f"{folds} folds cannot be used", "give --folds 1 to 2"], out)


def test_a_tag_with_extra_labels_or_beside_another_slice_is_refused(tmp_path):
    ct = small_ct()
    single = ct[:, :, 5:6]
    labels = np.zeros((1, 40, 50), np.uint8)
    labels[0, 10:20, 10:30] = 1
    write_tag(tmp_path / "c3.tag", labels, single)
    assert tag_mask_for_image(tmp_path / "c3.tag", single).sum() == 200
    tag = tmp_path / "c3.tag"
    (tmp_path / "extra.tag").write_bytes(tag.read_bytes() + bytes([1, 1, 0, 1]))
    with pytest.raises(InputError, match="2004 bytes of labels but its header announces"):
        read_tag(tmp_path / "extra.tag")
    write_tag(tmp_path / "other_z.tag", labels, ct[:, :, 9:10])  # drawn on slice 9
    with pytest.raises(InputError, match="not a slice of this CT"):
        tag_mask_for_image(tmp_path / "other_z.tag", single)


# 7. Ingest: a tag beside a copy of another slice; a clinical row without a folder

def test_ingest_refuses_a_tag_of_another_slice_and_reports_rows_without_folder(
        tmp_path, small_phantom_options):
    phantoms = [make_phantom(seed, f"P{seed}", small_phantom_options) for seed in (0, 1)]
    table = dicomio.write_dicom_cohort(phantoms, tmp_path / "archive")
    tag = next((tmp_path / "archive" / "P1").rglob("*.dcm.tag"))
    _, labels = read_tag(tag)
    k = phantoms[1].c3_slice_k
    write_tag(tag, labels, phantoms[1].ct[:, :, k + 4:k + 5])  # drawn on slice k + 4
    with table.open("a", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\r\n").writerow(["P7", "Male", "60", "175", "80"])
    status = main(["ingest", str(tmp_path / "archive"), "--clinical", str(table),
                   "--out", str(tmp_path / "cohort")])
    assert status == 0
    with (tmp_path / "cohort" / "ingest_report.csv").open() as handle:
        report = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert report["P0"]["outcome"] == "ingested"
    assert report["P1"]["outcome"] == "left out"
    assert "not a slice of this CT" in report["P1"]["reason"]
    assert report["P7"]["outcome"] == "left out" and "no folder" in report["P7"]["reason"]
    assert [row["case_id"] for row in read_manifest(tmp_path / "cohort" / "manifest.csv")] \
        == ["P0"]


# 8. Orientation

def test_an_upside_down_neck_is_refused_from_its_anatomy(tmp_path, tiny_models, capfd):
    phantom = make_phantom(0, options=PhantomOptions(in_plane_mm=(3, 3), slice_mm=(3, 3),
                                                     fov_mm=480, scan_length_mm=260))
    ct = sitk.Cast(phantom.ct, sitk.sitkFloat32)
    upright = pipeline.section_network_input(ct, 3.0)
    input_checks.check_head_up(upright.body, upright.grid.GetSpacing())  # the right way up
    reversed_hu = sitk.GetArrayFromImage(phantom.ct)[::-1].copy()  # header unchanged
    path = write_like(reversed_hu, phantom.ct, tmp_path / "upside_down.nii.gz")
    out = tmp_path / "out"
    assert_refused(["predict", path, "--models", tiny_models, "--out", out], capfd,
                   ["upside down", "shoulders"], out)
