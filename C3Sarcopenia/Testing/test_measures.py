"""Measures against hand-worked values (Swartz L3 equation, SMI, Prado cut-offs)."""

import numpy as np
import pytest

from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.measures import (MUSCLE_FOLD_DISAGREEMENT_WARN, ClinicalInfo,
                                      fold_disagreement, fold_disagreement_warning, l3_csa_cm2,
                                      measure_slice, muscle_csa_cm2, muscle_status, parse_sex,
                                      smi_cm2_m2)


def test_csa_of_a_known_mask_uses_the_true_pixel_spacing():
    mask = np.zeros((100, 100), bool)
    mask[10:30, 20:70] = True  # 20 x 50 = 1000 pixels
    assert muscle_csa_cm2(mask, (0.8, 0.5)) == pytest.approx(1000 * 0.4 / 100)


def test_l3_equation_by_hand():
    # 27.304 + 1.363*40 - 0.671*60 + 0.640*80 + 26.422*2 = 145.608
    assert l3_csa_cm2(40.0, 60.0, 80.0, "M") == pytest.approx(145.608)
    # female: 27.304 + 1.363*30 - 0.671*50 + 0.640*60 + 26.422*1 = 99.466
    assert l3_csa_cm2(30.0, 50.0, 60.0, "F") == pytest.approx(99.466)


def test_smi_and_prado_cutoffs():
    assert smi_cm2_m2(145.608, 180.0) == pytest.approx(145.608 / 3.24)
    assert muscle_status(52.3, "M") == "depleted"
    assert muscle_status(52.4, "M") == "normal"
    assert muscle_status(38.4, "F") == "depleted"
    assert muscle_status(38.5, "F") == "normal"
    assert muscle_status(None, "M") is None
    assert muscle_status(40.0, None) is None


def test_measure_slice_end_to_end_and_missing_fields_stay_empty():
    hu = np.full((50, 50), -100.0)
    hu[10:20, 10:30] = 45.0
    mask = hu > 0
    full = measure_slice(hu, mask, (1.0, 1.0), ClinicalInfo(60, "M", 180, 80))
    assert full.muscle_csa_cm2 == pytest.approx(2.0)
    assert full.muscle_mean_hu == pytest.approx(45.0)
    expected_l3 = 27.304 + 1.363 * 2.0 - 0.671 * 60 + 0.640 * 80 + 26.422 * 2
    assert full.l3_csa_cm2 == pytest.approx(expected_l3)
    assert full.smi_cm2_m2 == pytest.approx(expected_l3 / 1.8 ** 2)
    assert full.muscle_status == "depleted"
    partial = measure_slice(hu, mask, (1.0, 1.0), ClinicalInfo(age_years=60, sex="M"))
    assert partial.muscle_csa_cm2 == pytest.approx(2.0)
    assert (partial.l3_csa_cm2, partial.smi_cm2_m2, partial.muscle_status) == (None, None, None)
    no_height = measure_slice(hu, mask, (1.0, 1.0), ClinicalInfo(60, "M", None, 80))
    assert no_height.l3_csa_cm2 == pytest.approx(expected_l3) and no_height.smi_cm2_m2 is None


@pytest.mark.parametrize("fields, word", [
    (dict(height_cm=1.78), "height"), (dict(height_cm=250), "height"),
    (dict(weight_kg=20), "weight"), (dict(weight_kg=350), "weight"),
    (dict(age_years=12), "age"), (dict(age_years=130), "age"), (dict(sex="X"), "sex"),
    (dict(weight_kg=float("nan")), "weight")])
def test_implausible_clinical_fields_are_refused(fields, word):
    with pytest.raises(InputError, match=word):
        ClinicalInfo(**fields)


def test_empty_or_mismatched_masks_are_refused():
    with pytest.raises(InputError, match="empty"):
        measure_slice(np.zeros((4, 4)), np.zeros((4, 4), bool), (1, 1), ClinicalInfo())
    with pytest.raises(InputError, match="does not match"):
        measure_slice(np.zeros((4, 4)), np.ones((4, 5), bool), (1, 1), ClinicalInfo())


def test_sex_spellings():
    assert [parse_sex(s) for s in ("M", "male", " Female ", "f", None, "")] == \
        ["M", "M", "F", "F", None, None]
    with pytest.raises(InputError):
        parse_sex("yes")


def test_fold_disagreement_by_hand():
    fold = np.zeros((20, 20), np.uint8)
    fold[0:10, 0:10] = 1                       # 100 pixels
    wider = fold.copy()
    wider[10:15, 0:10] = 2                     # the same 100 and 50 more (another group)
    assert fold_disagreement([fold, fold.copy(), fold.copy()]) == 0.0
    # every fold: 100 pixels, any fold: 150; 1 - 2 * 100 / (100 + 150) = 0.2
    assert fold_disagreement([fold, wider]) == pytest.approx(0.2)
    apart = np.zeros_like(fold)
    apart[15:20, 15:20] = 1
    assert fold_disagreement([fold, apart]) == 1.0
    assert fold_disagreement([np.zeros_like(fold)] * 3) == 0.0  # nothing drawn, no dispute
    assert fold_disagreement([fold]) is None


def test_fold_disagreement_warns_only_above_its_threshold():
    assert fold_disagreement_warning(None) == []
    assert fold_disagreement_warning(MUSCLE_FOLD_DISAGREEMENT_WARN) == []
    (warning,) = fold_disagreement_warning(MUSCLE_FOLD_DISAGREEMENT_WARN + 0.01)
    assert "folds disagree on the muscle outline" in warning
