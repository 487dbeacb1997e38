"""Evaluation: scoring of known perturbations of the truth, and the evaluate command.

The scoring tests use a cylinder of soft tissue in air: every axial slice has the same body
area, so a C3 section shifted by N slices overlaps the true one on exactly 11 - N of its 11
slices, and the figures have closed forms.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from C3SarcopeniaLib import imaging
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.cohort.evaluation import CaseTruth, cohort_metrics, score_case, score_level_case
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


def _write_manifest(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_evaluate_command_reports_metrics_and_records_a_failing_case(
        tmp_path, phantom_cohort, tiny_models, capsys):
    from C3SarcopeniaLib.training import read_manifest

    rows = read_manifest(phantom_cohort)[:2]
    rows.append({**rows[0], "case_id": "lost", "ct": str(tmp_path / "missing.nii.gz")})
    manifest = _write_manifest(tmp_path / "manifest.csv", rows, list(rows[0]))
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


# --- truth that is a C3 level only (ingest-levels) --------------------------------------------

BODY = (TRUE_K + 2, TRUE_K - 2)  # top, bottom: k grows towards the head in this CT


def level_truth(ct: sitk.Image) -> CaseTruth:
    return CaseTruth("level", ClinicalInfo(), TRUE_K, None, imaging.c3_section_mask(ct, TRUE_K),
                     *BODY)


@pytest.mark.parametrize("shift", [0, 1, 2, 3, -3])
def test_level_truth_scores_inside_the_body_and_error_of_the_shift(cylinder_ct, shift):
    case = score_level_case(cylinder_ct, level_truth(cylinder_ct),
                            shifted_section(cylinder_ct, shift))
    assert case.level_only and case.auto_slice_k == TRUE_K + shift
    assert case.inside_c3_body == (abs(shift) <= 2)
    assert case.slice_error_mm == pytest.approx(abs(shift) * SPACING[2], abs=1e-6)
    assert case.section_dsc == pytest.approx((SECTION_SLICES - abs(shift)) / SECTION_SLICES)
    assert case.muscle_dsc is None and case.csa_true_cm2 is None


def test_truth_as_prediction_is_all_inside_with_no_error_and_refusals_count_outside(
        cylinder_ct):
    truth = level_truth(cylinder_ct)
    perfect = [score_level_case(cylinder_ct, truth, shifted_section(cylinder_ct, 0))
               for _ in range(3)]
    metrics = cohort_metrics(perfect)
    assert metrics["n_level_cases"] == 3 and metrics["n_refused"] == 0
    assert metrics["inside_c3_body_fraction"] == 1.0
    assert metrics["level_error_mm_median"] == metrics["level_error_mm_max"] == 0.0
    assert metrics["section_dsc_mean"] == pytest.approx(1.0)
    refused = score_level_case(cylinder_ct, truth, None, "C3 was not found in this CT")
    assert refused.inside_c3_body is False and refused.slice_error_mm is None
    shifted = score_level_case(cylinder_ct, truth, shifted_section(cylinder_ct, -3))
    metrics = cohort_metrics([*perfect, refused, shifted])
    assert (metrics["n_level_cases"], metrics["n_refused"]) == (5, 1)
    assert metrics["inside_c3_body_fraction"] == pytest.approx(3 / 5)
    assert metrics["level_error_mm_mean"] == pytest.approx(9.0 / 4)
    assert metrics["level_error_mm_max"] == pytest.approx(9.0)
    middle_only = CaseTruth("mid", ClinicalInfo(), TRUE_K, None, None)
    case = score_level_case(cylinder_ct, middle_only, shifted_section(cylinder_ct, 1))
    assert case.inside_c3_body is None and case.slice_error_mm == pytest.approx(3.0)


def test_evaluate_command_scores_level_rows_with_stage_1_only(
        tmp_path, phantom_cohort, tiny_models, capsys):
    """Phantom rows (full truth) and level rows made by ingest-levels in one manifest, plus a
    one-slice CT on which stage 1 refuses."""
    from C3SarcopeniaLib.training import read_manifest

    phantoms = read_manifest(phantom_cohort)
    levels = tmp_path / "levels.csv"
    lines = ["case,c3_top_z_index,c3_bottom_z_index,c3_mid_z_index,confidence,notes,ct"]
    for row in phantoms[:2]:
        ct = imaging.read_ct(row["ct"])
        k = int(row["c3_slice_k"])
        top, bottom = sorted((k - 2, k + 2), key=lambda i: -imaging.slice_z_mm(ct, i))
        lines.append(f"{row['case_id']}_level,{top},{bottom},{k},high,,{row['ct']}")
    levels.write_text("\n".join(lines) + "\n")
    assert main(["ingest-levels", str(levels), "--out", str(tmp_path / "levels")]) == 0
    level_rows = read_manifest(tmp_path / "levels" / "manifest.csv")
    one_slice = tmp_path / "one_slice.nii.gz"
    sitk.WriteImage(imaging.read_ct(phantoms[0]["ct"])[:, :, 5:6], str(one_slice))
    refused = {**level_rows[0], "case_id": "one_slice", "ct": str(one_slice),
               "section_mask": "", "c3_slice_k": "0", "c3_top_k": "0", "c3_bottom_k": "0"}
    rows = [{**phantoms[2], "c3_top_k": "", "c3_bottom_k": "", "confidence": ""},
            *level_rows, refused]
    manifest = _write_manifest(tmp_path / "manifest.csv", rows, list(level_rows[0]))
    out = tmp_path / "evaluation"
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(out),
                 "--models", str(tiny_models), "--device", "cpu", "--folds", "1"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    with (out / "cases.csv").open() as handle:
        cases = {row["case_id"]: row for row in csv.DictReader(handle)}
    n_refused = sum(case["refused"] != "" for case in cases.values())
    assert "C3 level        3 cases" in printed and f"stage 1 refused {n_refused}" in printed
    assert "Muscle DSC" in printed
    assert (metrics["n_cases"], metrics["n_level_cases"], metrics["n_refused"]) == \
        (4, 3, n_refused)
    assert cases["one_slice"]["inside_c3_body"] == "False"
    assert "single slice" in cases["one_slice"]["refused"]
    inside = [cases[row["case_id"]]["inside_c3_body"] == "True" for row in level_rows]
    assert metrics["inside_c3_body_fraction"] == pytest.approx(sum(inside) / 3)
    for row in level_rows:  # tiny models may refuse a phantom too: then it is not inside
        case = cases[row["case_id"]]
        assert case["level_only"] == "True" and case["muscle_dsc"] == ""
        if case["refused"]:
            assert case["inside_c3_body"] == "False" and case["auto_slice_k"] == ""
            continue
        assert 0.0 <= float(case["section_dsc"]) <= 1.0
        assert float(case["slice_error_mm"]) == pytest.approx(
            abs(imaging.slice_z_mm(imaging.read_ct(row["ct"]), int(case["auto_slice_k"]))
                - imaging.slice_z_mm(imaging.read_ct(row["ct"]), int(row["c3_slice_k"]))))
    assert cases[phantoms[2]["case_id"]]["level_only"] == "False"
    assert (out / "csa_scatter.png").is_file()


def test_evaluate_records_its_metrics_in_both_model_cards(tmp_path, phantom_cohort, tiny_models):
    import shutil

    from C3SarcopeniaLib.models import ModelCard

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    out = tmp_path / "evaluation"
    common = ["evaluate", "--manifest", str(phantom_cohort), "--out", str(out), "--models",
              str(models), "--device", "cpu", "--folds", "1", "--record-in-cards", "held_out"]
    assert main(common) == 2  # no --data: the card would not say what was evaluated
    assert not out.exists()
    assert main(common + ["--data", "5 test phantoms"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for stage in ("section", "muscle"):
        recorded = ModelCard.load(models / stage).metrics["held_out"]
        assert recorded["data"] == "5 test phantoms"
        assert recorded["n_cases"] == metrics["n_cases"] == 5
        assert recorded["section_dsc_mean"] == metrics["section_dsc_mean"]
        assert "held_out" in (models / stage / "MODEL_CARD.md").read_text()
