"""Reading CTs in every supported form, preprocessing, and the orientation-safe geometry."""

import numpy as np
import pytest
import SimpleITK as sitk

from C3SarcopeniaLib import dicomio, imaging
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.measures import ClinicalInfo
from conftest import SHARED


def small_ct(shape=(12, 40, 50), spacing=(0.8, 0.9, 2.5), seed=0) -> sitk.Image:
    """A body-like blob: soft tissue ellipse with a fat rim, air outside."""
    z, y, x = np.indices(shape)
    r = ((y - shape[1] / 2) / (shape[1] / 2.6)) ** 2 + ((x - shape[2] / 2) / (shape[2] / 2.6)) ** 2
    hu = np.where(r < 1, 40.0, -1000.0) + np.where((r > 0.7) & (r < 1), -140.0, 0.0)
    hu += np.random.default_rng(seed).normal(0, 5, shape)
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, 15.0, -40.0))
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_volume_formats_keep_grid_and_values(tmp_path, suffix):
    ct = small_ct()
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(ct, str(path))
    read = imaging.read_ct(path)
    assert read.GetSize() == ct.GetSize()
    assert np.allclose(read.GetSpacing(), ct.GetSpacing())
    assert np.allclose(read.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(ct))


def test_dicom_folder_takes_the_largest_ct_series_and_reads_patient_tags(tmp_path):
    ct = small_ct()
    clinical = ClinicalInfo(57, "F", 163, 61.5)
    dicomio.write_dicom_series(ct, tmp_path, clinical)
    dicomio.write_dicom_series(small_ct(shape=(3, 40, 50), seed=1), tmp_path / "scout",
                               clinical)
    for path in (tmp_path / "scout").iterdir():  # a smaller second series in the same folder
        path.rename(tmp_path / f"scout_{path.name}")
    dicomio.write_dicom_series(small_ct(shape=(20, 40, 50), seed=2), tmp_path / "mr",
                               modality="MR")
    for path in (tmp_path / "mr").iterdir():  # a larger series, but not CT
        path.rename(tmp_path / f"mr_{path.name}")
    read = imaging.read_ct(tmp_path)
    assert read.GetSize() == ct.GetSize()
    assert np.array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(ct))
    assert imaging.read_clinical_tags(tmp_path) == clinical


def test_single_dicom_slice_reads_as_one_slice_volume(tmp_path):
    ct = small_ct()
    [path] = dicomio.write_dicom_series(ct, tmp_path, slices=[5])
    read = imaging.read_ct(path)
    assert read.GetSize() == (50, 40, 1)
    assert np.array_equal(sitk.GetArrayFromImage(read)[0], sitk.GetArrayFromImage(ct)[5])
    assert imaging.slice_z_mm(read, 0) == pytest.approx(imaging.slice_z_mm(ct, 5), abs=1e-3)


def test_non_ct_modality_is_refused(tmp_path):
    [path] = dicomio.write_dicom_series(small_ct(), tmp_path, modality="MR", slices=[0])
    with pytest.raises(InputError, match="not a CT"):
        imaging.read_ct(path)
    with pytest.raises(InputError, match="no CT DICOM series"):
        imaging.read_ct(tmp_path)


def test_missing_unreadable_nan_and_non_axial_inputs_are_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        imaging.read_ct(tmp_path / "nowhere.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputError, match="could not be read"):
        imaging.read_ct(junk)
    hu = sitk.GetArrayFromImage(small_ct()).astype(np.float32)
    hu[3, 4, 5] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(hu), str(tmp_path / "nan.nrrd"))  # NIfTI drops NaN
    with pytest.raises(InputError, match="NaN"):
        imaging.read_ct(tmp_path / "nan.nrrd")
    sagittal = small_ct()
    sagittal.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))
    sitk.WriteImage(sagittal, str(tmp_path / "sagittal.nii.gz"))
    with pytest.raises(InputError, match="axial"):
        imaging.read_ct(tmp_path / "sagittal.nii.gz")


def test_normalisation_window_and_body_mask():
    assert np.allclose(imaging.normalise_hu(np.array([-1000, -250, 0, 250, 3000])),
                       [-1, -1, 0, 1, 1])
    hu = np.full((3, 30, 30), -1000.0)
    hu[:, 5:25, 5:25] = 40.0
    hu[:, 12:18, 12:18] = -1000.0  # airway: a hole inside the body
    hu[:, 0:2, 0:2] = 40.0  # a speck outside the body (table, cable)
    body = imaging.body_mask(hu)
    assert body[:, 15, 15].all() and not body[:, 0, 0].any()
    assert body.sum() == 3 * 20 * 20


def test_resampling_to_lps_grid_undoes_a_flipped_orientation():
    ct = small_ct()
    hu = sitk.GetArrayFromImage(ct)
    flipped = sitk.GetImageFromArray(hu[::-1, ::-1, :].copy())  # stored RAS-like: y and z reversed
    flipped.SetSpacing(ct.GetSpacing())
    flipped.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, -1))
    flipped.SetOrigin(ct.TransformIndexToPhysicalPoint((0, 39, 11)))
    a = imaging.resample_to_lps_grid(ct, 1.0)
    b = imaging.resample_to_lps_grid(flipped, 1.0)
    assert a.GetSize() == b.GetSize()
    assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    # int16 output: a value exactly between two integers may round either way
    assert np.allclose(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b), atol=1)
    assert imaging.nearest_slice_k(flipped, imaging.slice_z_mm(ct, 3)) == 11 - 3


def test_c3_section_mask_is_a_33mm_slab_in_the_body():
    ct = small_ct(shape=(40, 40, 50), spacing=(0.8, 0.9, 1.5))
    section = imaging.c3_section_mask(ct, 20)
    slices = np.flatnonzero(section.any(axis=(1, 2)))
    assert (slices[0], slices[-1]) == (9, 31)  # |dz| <= 16.5 mm at 1.5 mm spacing: 11 each way
    body = imaging.body_mask(sitk.GetArrayFromImage(ct).astype(float))
    assert not (section.astype(bool) & ~body).any()
    assert np.array_equal(section[20].astype(bool), body[20])


def test_mask_on_another_grid_is_refused(tmp_path):
    ct = small_ct()
    mask = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(ct)
    mask.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    with pytest.raises(InputError, match="spacing"):
        imaging.read_mask(tmp_path / "mask.nii.gz", ct)


@pytest.mark.skipif(not (SHARED / "openkbp").is_dir(), reason="shared OpenKBP data not present")
def test_real_openkbp_ct_reads_with_feet_first_axis():
    path = next((SHARED / "openkbp").glob("*_ct.nii.gz"))
    ct = imaging.read_ct(path)
    assert ct.GetSize()[2] > 50
    assert ct.GetDirection()[8] < 0  # array index grows towards the feet
    assert imaging.slice_z_mm(ct, 0) > imaging.slice_z_mm(ct, 10)
    assert imaging.body_mask(sitk.GetArrayFromImage(ct)).mean() > 0.05


@pytest.mark.parametrize("flip", [False, True])
def test_votes_map_to_the_ct_grid_as_a_whole_grid_resampling_does(flip):
    """The vote is interpolated only near its votes; the result must equal interpolating it
    onto the whole CT grid, in either storage orientation."""
    from C3SarcopeniaLib import pipeline

    ct = small_ct(shape=(30, 40, 50), spacing=(0.8, 0.9, 2.5))
    if flip:
        hu = sitk.GetArrayFromImage(ct)
        stored = sitk.GetImageFromArray(hu[::-1, ::-1, :].copy())
        stored.SetSpacing(ct.GetSpacing())
        stored.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, -1))
        stored.SetOrigin(ct.TransformIndexToPhysicalPoint((0, 39, 29)))
        ct = stored
    grid = imaging.resample_to_lps_grid(ct, 3.0)
    fraction = np.zeros(grid.GetSize()[::-1], dtype=np.float32)
    fraction[8:14, 3:9, 4:12] = np.random.default_rng(1).choice([0.4, 0.6, 1.0], (6, 6, 8))
    image = sitk.GetImageFromArray(fraction)
    image.CopyInformation(grid)
    whole = sitk.GetArrayFromImage(imaging.resample_like(image, ct, sitk.sitkLinear)) > 0.5
    assert whole.any() and not whole.all()
    assert np.array_equal(pipeline._to_ct_grid(fraction, grid, ct), whole)
    ct_slice = ct[:, :, 15]
    flat = fraction[10]
    image2d = sitk.GetImageFromArray(flat)
    image2d.CopyInformation(imaging.resample_to_lps_grid(ct_slice, 3.0))
    assert np.array_equal(pipeline._to_ct_grid(flat, image2d, ct_slice),
                          sitk.GetArrayFromImage(
                              imaging.resample_like(image2d, ct_slice, sitk.sitkLinear)) > 0.5)
    assert not pipeline._to_ct_grid(np.zeros_like(fraction), grid, ct).any()
