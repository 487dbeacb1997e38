"""Evaluation: scoring of known perturbations of the truth, and the evaluate command.

The scoring tests use a cylinder of soft tissue in air: every axial slice has the same body
area, so a C3 section shifted by N slices overlaps the true one on exactly 11 - N of its 11
slices, and the figures have closed forms.
"""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from C3SarcopeniaLib import imaging
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.evaluation import CaseTruth, cohort_metrics, score_case
from C3SarcopeniaLib.measures import ClinicalInfo
from C3SarcopeniaLib.pipeline import SectionResult

SPACING = (1.5, 1.5, 3.0)
TRUE_K = 15
PIXEL_AREA_CM2 = SPACING[0] * SPACING[1] / 100
CLINICAL = ClinicalInfo(age_years=60, sex="M", height_cm=170, weight_kg=70)
SECTION_SLICES = 11  # |z - z_C3| <= 16.5 mm at 3 mm: the C3 slice and 5 on each side


@pytest.fixture(scope="module")
def cylinder_ct() -> sitk.Image:
    k, j, i = np.mgrid[0:30, 0:48, 0:48]
    hu = np.where((j - 24) ** 2 + (i - 24) ** 2 <= 18 ** 2, 40, -1000).astype(np.float32)
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing(SPACING)
    ct.SetOrigin((-36.0, -36.0, -45.0))
    return ct


def rectangle(rows: int, columns: int) -> np.ndarray:
    mask = np.zeros((48, 48), dtype=np.uint8)
    mask[20:20 + rows, 14:14 + columns] = 1
    return mask


def truth(ct: sitk.Image, muscle: np.ndarray) -> CaseTruth:
    return CaseTruth("cylinder", CLINICAL, TRUE_K, muscle, imaging.c3_section_mask(ct, TRUE_K))


def shifted_section(ct: sitk.Image, shift: int) -> SectionResult:
    """What a stage 1 that is off by ``shift`` slices would return."""
    k = TRUE_K + shift
    return SectionResult(imaging.c3_section_mask(ct, k), k, imaging.slice_z_mm(ct, k), [k])


def test_the_section_slab_has_the_closed_form_size(cylinder_ct):
    section = imaging.c3_section_mask(cylinder_ct, TRUE_K)
    assert np.flatnonzero(section.any(axis=(1, 2))).tolist() == list(range(10, 21))
    assert len(np.unique(section.sum(axis=(1, 2))[10:21])) == 1  # same body area per slice


@pytest.mark.parametrize("shift", [0, 1, 2, -3])
def test_shifted_section_gives_slice_error_and_dsc_of_the_shift(cylinder_ct, shift):
    muscle = rectangle(10, 8)
    case = score_case(cylinder_ct, truth(cylinder_ct, muscle), muscle,
                      shifted_section(cylinder_ct, shift), muscle)
    assert case.auto_slice_k == TRUE_K + shift
    assert case.slice_error_mm == pytest.approx(abs(shift) * SPACING[2], abs=1e-6)
    expected_dsc = 1 - abs(shift) * SPACING[2] / 33.0  # = (11 - |N|) / 11 here
    assert case.section_dsc == pytest.approx(expected_dsc, abs=1e-9)
    assert case.section_dsc == pytest.approx((SECTION_SLICES - abs(shift)) / SECTION_SLICES)


def test_eroded_muscle_gives_the_expected_dsc_csa_and_smi(cylinder_ct):
    muscle = rectangle(10, 8)  # 80 pixels; one pixel of erosion leaves 8 x 6 = 48
    eroded = ndimage.binary_erosion(muscle).astype(np.uint8)
    case = score_case(cylinder_ct, truth(cylinder_ct, muscle), eroded,
                      shifted_section(cylinder_ct, 0), eroded)
    assert case.muscle_dsc == pytest.approx(2 * 48 / (80 + 48))
    assert case.csa_true_cm2 == pytest.approx(80 * PIXEL_AREA_CM2)
    assert case.csa_pred_gt_cm2 == pytest.approx(48 * PIXEL_AREA_CM2)
    assert case.csa_pred_c3_cm2 == pytest.approx(48 * PIXEL_AREA_CM2)
    # SMI is linear in C3 CSA (Swartz 1.363 cm^2 per cm^2) over height squared.
    expected_smi_drop = 1.363 * (80 - 48) * PIXEL_AREA_CM2 / 1.70 ** 2
    assert case.smi_true - case.smi_pred_gt == pytest.approx(expected_smi_drop)


def test_pred_c3_measures_the_muscle_predicted_on_the_chosen_slice(cylinder_ct):
    muscle = rectangle(10, 8)
    case = score_case(cylinder_ct, truth(cylinder_ct, muscle), muscle,
                      shifted_section(cylinder_ct, 2), rectangle(5, 8))
    assert case.csa_pred_gt_cm2 == pytest.approx(case.csa_true_cm2)
    assert case.csa_pred_c3_cm2 == pytest.approx(40 * PIXEL_AREA_CM2)


def test_empty_prediction_and_missing_section_leave_figures_empty(cylinder_ct):
    muscle = rectangle(10, 8)
    case = score_case(cylinder_ct, truth(cylinder_ct, muscle), np.zeros_like(muscle))
    assert case.muscle_dsc == 0.0
    assert case.csa_pred_gt_cm2 is None and case.smi_pred_gt is None
    assert case.auto_slice_k is None and case.slice_error_mm is None and case.section_dsc is None


def test_cohort_metrics_of_known_shifts(cylinder_ct):
    muscle = rectangle(10, 8)
    cases = [score_case(cylinder_ct, truth(cylinder_ct, muscle), muscle,
                        shifted_section(cylinder_ct, shift), muscle) for shift in (0, 1, 2)]
    metrics = cohort_metrics(cases)
    assert metrics["n_cases"] == 3 and metrics["n_failed"] == 0
    assert metrics["slice_error_mm_median"] == pytest.approx(3.0)
    assert metrics["slice_error_mm_max"] == pytest.approx(6.0)
    assert metrics["section_dsc_mean"] == pytest.approx((11 + 10 + 9) / 33)
    assert metrics["muscle_dsc_mean"] == pytest.approx(1.0)


def test_evaluate_command_reports_metrics_and_records_a_failing_case(
        tmp_path, phantom_cohort, tiny_models, capsys):
    from C3SarcopeniaLib.training import read_manifest

    rows = read_manifest(phantom_cohort)[:2]
    rows.append({**rows[0], "case_id": "lost", "ct": str(tmp_path / "missing.nii.gz")})
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "evaluation"
    status = main(["evaluate", "--manifest", str(manifest), "--out", str(out),
                   "--models", str(tiny_models), "--device", "cpu", "--folds", "1"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "2 evaluated, 1 failed" in printed and "Section DSC" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n_cases"], metrics["n_failed"]) == (2, 1)
    assert 0.0 <= metrics["section_dsc_mean"] <= 1.0
    with (out / "cases.csv").open() as handle:
        cases = {row["case_id"]: row for row in csv.DictReader(handle)}
    assert "does not exist" in cases["lost"]["error"]
    assert all(cases[row["case_id"]]["error"] == "" for row in rows[:2])
    assert len(cases[rows[0]["case_id"]]["section_dsc_folds"].split()) == 1
    for figure in ("dsc_boxplots", "slice_error_histogram", "csa_scatter"):
        assert (out / f"{figure}.png").is_file()
