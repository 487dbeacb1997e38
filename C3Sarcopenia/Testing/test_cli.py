"""The command line end to end on phantoms: predict, measure, every bad input of the issue."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from C3SarcopeniaLib import imaging, models, pipeline
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.measures import muscle_csa_cm2
from C3SarcopeniaLib.phantoms.phantom import PhantomOptions, make_phantom
from C3SarcopeniaLib.training import read_manifest
from conftest import SHARED

CLINICAL = ["--age", "60", "--sex", "M", "--height-cm", "176", "--weight-kg", "80"]


@pytest.fixture(scope="module")
def case(phantom_cohort):
    return read_manifest(phantom_cohort)[0]


def run(argv, capsys):
    status = main([str(a) for a in argv])
    return status, capsys.readouterr()


def test_predict_end_to_end_writes_every_output(tmp_path, case, tiny_models, capsys):
    status, out = run(["predict", case["ct"], "--out", tmp_path, "--models", tiny_models,
                       *CLINICAL], capsys)
    assert status == 0, out.err
    result = json.loads((tmp_path / "result.json").read_text())
    assert set(result) == {"c3_slice_k", "c3_slice_z_mm", "muscle_csa_cm2", "muscle_mean_hu",
                           "l3_csa_cm2", "smi_cm2_m2", "muscle_status", "warnings",
                           "paravertebral_csa_cm2", "scm_right_csa_cm2", "scm_left_csa_cm2",
                           "muscle_fold_disagreement"}
    assert 0 <= result["muscle_fold_disagreement"] <= 1  # the test models have 2 folds
    ct = imaging.read_ct(case["ct"])
    assert result["c3_slice_z_mm"] == pytest.approx(imaging.slice_z_mm(ct, result["c3_slice_k"]))
    muscle = sitk.ReadImage(str(tmp_path / "muscle.nii.gz"))
    imaging.check_same_grid(muscle, ct)
    on_slice = sitk.GetArrayFromImage(muscle)[result["c3_slice_k"]]
    assert result["muscle_csa_cm2"] == pytest.approx(
        muscle_csa_cm2(on_slice > 0, imaging.pixel_spacing_mm(ct)))
    assert (tmp_path / "c3_section.nii.gz").is_file()
    assert (tmp_path / "overlay.png").stat().st_size > 10_000
    assert any("synthetic phantoms" in w for w in result["warnings"])
    assert "Muscle CSA" in out.out and "overlay.png" in out.out


def test_measure_of_the_true_mask_gives_its_csa(tmp_path, case, capsys):
    k = int(case["c3_slice_k"])
    status, out = run(["measure", "--ct", case["ct"], "--mask", case["muscle_mask"],
                       "--slice-k", k, "--out", tmp_path, *CLINICAL], capsys)
    assert status == 0, out.err
    ct = imaging.read_ct(case["ct"])
    truth = imaging.read_mask(case["muscle_mask"], ct)[k]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["muscle_csa_cm2"] == pytest.approx(
        muscle_csa_cm2(truth, imaging.pixel_spacing_mm(ct)))
    assert result["muscle_status"] in ("depleted", "normal")
    assert not (tmp_path / "c3_section.nii.gz").exists()


def test_same_phantom_in_lps_and_ras_storage_gives_the_same_level_and_csa(tmp_path, capsys):
    phantom = make_phantom(7, options=PhantomOptions(in_plane_mm=(1.6, 1.6), slice_mm=(3, 3)))
    hu = sitk.GetArrayFromImage(phantom.ct)
    mask = sitk.GetArrayFromImage(phantom.muscle_mask)
    flipped_ct = sitk.GetImageFromArray(hu[::-1, ::-1, ::-1].copy())
    flipped_mask = sitk.GetImageFromArray(mask[::-1, ::-1, ::-1].copy())
    for image in (flipped_ct, flipped_mask):  # the same voxels stored right-anterior-superior
        image.SetSpacing(phantom.ct.GetSpacing())
        image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, -1))
        image.SetOrigin(phantom.ct.TransformIndexToPhysicalPoint(
            [n - 1 for n in phantom.ct.GetSize()]))
    results = []
    for name, ct, muscle, k in (
            ("lps", phantom.ct, phantom.muscle_mask, phantom.c3_slice_k),
            ("ras", flipped_ct, flipped_mask, phantom.ct.GetSize()[2] - 1 - phantom.c3_slice_k)):
        sitk.WriteImage(ct, str(tmp_path / f"{name}_ct.nii.gz"))
        sitk.WriteImage(muscle, str(tmp_path / f"{name}_muscle.nii.gz"))
        status, out = run(["measure", "--ct", tmp_path / f"{name}_ct.nii.gz", "--mask",
                           tmp_path / f"{name}_muscle.nii.gz", "--slice-k", k,
                           "--out", tmp_path / name], capsys)
        assert status == 0, out.err
        results.append(json.loads((tmp_path / name / "result.json").read_text()))
    assert results[0]["c3_slice_z_mm"] == pytest.approx(results[1]["c3_slice_z_mm"], abs=1e-3)
    assert results[0]["muscle_csa_cm2"] == pytest.approx(results[1]["muscle_csa_cm2"])
    assert results[0]["muscle_mean_hu"] == pytest.approx(results[1]["muscle_mean_hu"])


def _assert_refused(argv, out_dir, capsys, words):
    status, out = run(argv, capsys)
    assert status == 2
    lines = [line for line in out.err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("c3sarcopenia: error:")
    assert all(word in lines[0] for word in words), lines[0]
    assert not (out_dir / "result.json").exists()


def test_bad_inputs_give_one_line_exit_2_and_no_result(tmp_path, case, tiny_models, capsys):
    out = tmp_path / "out"
    models = ["--models", tiny_models]
    _assert_refused(["predict", tmp_path / "missing.nii.gz", "--out", out, *models], out,
                    capsys, ["does not exist"])
    unreadable = tmp_path / "broken.nrrd"
    unreadable.write_text("NRRD0004\nnonsense\n")
    _assert_refused(["predict", unreadable, "--out", out, *models], out, capsys,
                    ["could not be read"])
    ct = imaging.read_ct(case["ct"])
    single = ct[:, :, int(case["c3_slice_k"])]
    sitk.WriteImage(single, str(tmp_path / "slice.nii.gz"))
    _assert_refused(["predict", tmp_path / "slice.nii.gz", "--out", out, *models], out, capsys,
                    ["single slice", "--slice-k"])
    nan_ct = sitk.GetArrayFromImage(ct)
    nan_ct[2, 3, 4] = np.nan
    nan_image = sitk.GetImageFromArray(nan_ct)
    nan_image.CopyInformation(ct)
    sitk.WriteImage(nan_image, str(tmp_path / "nan.nrrd"))
    _assert_refused(["predict", tmp_path / "nan.nrrd", "--out", out, *models], out, capsys,
                    ["NaN"])
    _assert_refused(["measure", "--ct", case["ct"], "--mask", case["muscle_mask"],
                     "--out", out], out, capsys, ["--slice-k"])
    empty = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(ct)
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    _assert_refused(["measure", "--ct", case["ct"], "--mask", tmp_path / "empty.nii.gz",
                     "--out", out], out, capsys, ["empty"])
    shifted = sitk.ReadImage(case["muscle_mask"])
    shifted.SetOrigin([o + 5 for o in shifted.GetOrigin()])
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    _assert_refused(["measure", "--ct", case["ct"], "--mask", tmp_path / "shifted.nii.gz",
                     "--slice-k", 3, "--out", out], out, capsys, ["grid", "origin"])
    _assert_refused(["measure", "--ct", case["ct"], "--mask", case["muscle_mask"],
                     "--slice-k", 3, "--height-cm", "1.76", "--out", out], out, capsys,
                    ["height"])


class NeverFindsSection(torch.nn.Module):
    """Background everywhere: what a sound section model answers above C3."""

    def forward(self, x):
        return torch.cat([torch.ones_like(x), -torch.ones_like(x)], dim=1)


def test_field_of_view_without_c3_is_refused(tmp_path, tiny_models):
    """A section model that finds nothing must stop the prediction with a clear reason,
    not fall back to some level. (Accuracy on such scans belongs to the trained models.)"""
    phantom = make_phantom(11, options=PhantomOptions(in_plane_mm=(1.6, 1.6),
                                                      slice_mm=(3, 3), covers_c3=False))
    assert phantom.c3_slice_k is None
    ensemble = models.load_ensemble(tiny_models / "section")
    ensemble.nets = [NeverFindsSection() for _ in ensemble.nets]
    with pytest.raises(InputError, match="C3 was not found"):
        pipeline.find_c3_section(phantom.ct, ensemble)


def test_demo_runs_the_shipped_models_on_the_shipped_sample(tmp_path, capsys):
    status, out = run(["demo", "--out", tmp_path], capsys)
    assert status == 0, out.err
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["muscle_status"] in ("depleted", "normal")  # the sample's fields are known
    # both shipped stages saw real necks: no synthetic-only warning
    assert not any("synthetic phantoms" in w for w in result["warnings"])
    assert result["paravertebral_csa_cm2"] > result["scm_right_csa_cm2"] > 0
    assert "true C3 slice is k=" in out.out and (tmp_path / "overlay.png").is_file()


OPENKBP = SHARED / "openkbp"


@pytest.mark.skipif(not OPENKBP.is_dir(), reason="shared OpenKBP data not present")
@pytest.mark.parametrize("case, first_k, last_k, pad", [
    ("train-pats_pt_38", 0, None, False),    # the scan starts in the lower neck: no C1, C2
    ("test-pats_pt_329", 0, None, False),    # 18 slices of neck in air padding: no C1, C2
    ("train-pats_pt_133", 0, 40, False),     # cut above C3 (its C3 body is slices 46-51)
    ("train-pats_pt_133", 0, 40, True),      # the same, the rest air instead of cut away
    ("train-pats_pt_133", 56, None, False),  # cut below C3
])
def test_predict_refuses_a_real_ct_whose_field_of_view_misses_c3(tmp_path, capsys, case,
                                                                  first_k, last_k, pad):
    """A clinician's scan without C3 gets exit 2 and a reason, never a wrong level."""
    ct = imaging.read_ct(OPENKBP / f"{case}_ct.nii.gz")
    path = tmp_path / "ct.nii.gz"
    if pad:  # keep the grid, blank the slices outside the field of view
        hu = sitk.GetArrayFromImage(ct)
        hu[:first_k] = imaging.AIR_HU
        hu[last_k:] = imaging.AIR_HU
        padded = sitk.GetImageFromArray(hu)
        padded.CopyInformation(ct)
        ct, first_k, last_k = padded, 0, None
    sitk.WriteImage(ct[:, :, first_k:last_k], str(path))
    status, out = run(["predict", path, "--out", tmp_path / "out"], capsys)
    assert status == 2 and "C3" in out.err and "field of view" in out.err
    assert not (tmp_path / "out" / "result.json").exists()
