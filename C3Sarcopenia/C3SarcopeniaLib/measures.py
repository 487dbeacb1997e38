"""Muscle measures at C3 and the L3 estimate (Swartz et al. 2016) with Prado cut-offs.

Missing clinical fields leave the dependent values as None: a measure is never guessed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import IMPLAUSIBLE_CSA_PHRASE, MUSCLE_DISAGREEMENT_PHRASE, InputError

MUSCLE_HU_RANGE = (-29.0, 150.0)
# Label values of a grouped C3 muscle mask (0 is background); their sum is the C3 muscle.
MUSCLE_GROUPS = ("paravertebral", "scm_right", "scm_left")
SCM_SIDES = {"right": "scm_right", "left": "scm_left"}
# Prado et al. 2008 lumbar SMI cut-offs (cm^2/m^2) for depleted skeletal muscle.
SMI_CUTOFF_CM2_M2 = {"M": 52.4, "F": 38.5}
_SEX_CODE = {"F": 1, "M": 2}  # coding of the L3 regression (female 1, male 2)
# Adult C3 muscle: 15.7-67.6 cm² on 130 real necks read (data/openkbp_c3_muscle); skeletal
# muscle averages 20-60 HU, lower with fat infiltration. Outside these a result is doubtful.
PLAUSIBLE_C3_CSA_CM2 = (10.0, 100.0)
PLAUSIBLE_MUSCLE_MEAN_HU = (0.0, 100.0)
# 1 - DSC(every fold, any fold) of stage 2's five shipped folds on the C3 slice. Measured with
# the previous stage 2: the sample CT 0.13, 8 phantoms 0.12-0.24, 44 real OpenKBP CTs (4 mm
# pixels, whose coarse outlines raise it) median 0.24, 90th centile 0.28, 0.18-0.40. Above 0.3
# (the top tenth of those CTs, the worst with a mean muscle HU of -1) the outline is to be
# reviewed. The stage 2 shipped now: the sample CT 0.12; the 56 real validation and test
# slices median 0.23, 90th centile 0.29, 0.15-0.35 (the previous one on them: 0.23, 0.29,
# 0.16-0.37), so the same threshold holds.
MUSCLE_FOLD_DISAGREEMENT_WARN = 0.3


@dataclass(frozen=True)
class ClinicalInfo:
    """Patient fields the L3 estimate needs; any may be unknown (None)."""

    age_years: float | None = None
    sex: str | None = None  # "M" or "F"
    height_cm: float | None = None
    weight_kg: float | None = None

    def __post_init__(self) -> None:
        _check_range("age", self.age_years, 18, 110, "years")
        _check_range("height", self.height_cm, 100, 230, "cm (give centimetres, not metres)")
        _check_range("weight", self.weight_kg, 25, 300, "kg")
        if self.sex is not None and self.sex not in _SEX_CODE:
            raise InputError(f"sex must be 'M' or 'F', got {self.sex!r}.")


def _check_range(name: str, value: float | None, low: float, high: float, unit: str) -> None:
    if value is None:
        return
    if not np.isfinite(value) or not low <= value <= high:
        raise InputError(f"{name} {value} is implausible: expected {low}-{high} {unit}.")


def parse_sex(text: str | None) -> str | None:
    """'M'/'F' from the spellings found in DICOM tags and clinical tables; None if unknown."""
    if text is None:
        return None
    key = str(text).strip().upper()
    if key in ("M", "MALE", "MAN", "2"):
        return "M"
    if key in ("F", "FEMALE", "WOMAN", "1"):
        return "F"
    if key in ("", "O", "U", "OTHER", "UNKNOWN", "NAN"):
        return None
    raise InputError(f"sex {text!r} not understood: use M or F.")


@dataclass(frozen=True)
class SarcopeniaMeasures:
    """Result of measuring one C3 slice."""

    muscle_csa_cm2: float
    muscle_mean_hu: float | None
    l3_csa_cm2: float | None
    smi_cm2_m2: float | None
    muscle_status: str | None  # "depleted", "normal" or None
    # Per group (None for a mask without groups: a single label).
    paravertebral_csa_cm2: float | None = None
    scm_right_csa_cm2: float | None = None
    scm_left_csa_cm2: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity coefficient; two empty masks agree perfectly."""
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def muscle_csa_cm2(mask: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> float:
    """Area of a 2D mask; the pixel area comes from the CT's own spacing."""
    pixel_area_mm2 = float(pixel_spacing_mm[0]) * float(pixel_spacing_mm[1])
    return float(np.count_nonzero(mask)) * pixel_area_mm2 / 100.0


def l3_csa_cm2(c3_csa_cm2: float, age_years: float, weight_kg: float, sex: str) -> float:
    """L3 muscle area from C3 (Swartz et al. 2016, as used by Naser et al. 2022)."""
    return (27.304 + 1.363 * c3_csa_cm2 - 0.671 * age_years + 0.640 * weight_kg
            + 26.422 * _SEX_CODE[sex])


def smi_cm2_m2(l3_csa: float, height_cm: float) -> float:
    """Lumbar skeletal muscle index: L3 area over height squared."""
    return l3_csa / (height_cm / 100.0) ** 2


def muscle_status(smi: float | None, sex: str | None) -> str | None:
    """'depleted' below the Prado cut-off for the sex, else 'normal'; None if unknown."""
    if smi is None or sex is None:
        return None
    return "depleted" if smi < SMI_CUTOFF_CM2_M2[sex] else "normal"


def muscle_density(hu: np.ndarray) -> np.ndarray:
    """The pixels within the muscle HU window (-29..150), where muscle is counted."""
    low, high = MUSCLE_HU_RANGE
    return (hu >= low) & (hu <= high)


def group_csa_cm2(labels: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> dict[str, float]:
    """CSA of each muscle group of a label mask (1 paravertebral, 2 SCM right, 3 SCM left)."""
    return {group: muscle_csa_cm2(labels == label, pixel_spacing_mm)
            for label, group in enumerate(MUSCLE_GROUPS, start=1)}


def counted_pixels(labels: np.ndarray, scm_nodal: str | None) -> np.ndarray:
    """The pixels measured: all muscle, or without the SCM that a nodal mass engulfs."""
    if scm_nodal is None:
        return labels > 0
    if scm_nodal not in SCM_SIDES:
        raise InputError(f"--scm-nodal must be 'right' or 'left', got {scm_nodal!r}.")
    return (labels > 0) & (labels != MUSCLE_GROUPS.index(SCM_SIDES[scm_nodal]) + 1)


def _other_side(side: str) -> str:
    return "left" if side == "right" else "right"


def chargi_total_cm2(groups: dict[str, float], scm_nodal: str) -> float:
    """Chargi et al.: when nodes make one SCM impossible to delineate, the other SCM's area
    stands in for it: paravertebral + 2 x the other SCM."""
    return groups["paravertebral"] + 2.0 * groups[SCM_SIDES[_other_side(scm_nodal)]]


def chargi_warning(scm_nodal: str) -> str:
    """What a result says when the Chargi rule made its C3 CSA."""
    return (f"the {scm_nodal} SCM was set aside as engulfed by nodes: C3 CSA = paravertebral "
            f"+ 2 x the {_other_side(scm_nodal)} SCM (Chargi et al.).")


def measure_slice(hu_slice: np.ndarray, muscle_mask: np.ndarray,
                  pixel_spacing_mm: tuple[float, float],
                  clinical: ClinicalInfo, scm_nodal: str | None = None) -> SarcopeniaMeasures:
    """All measures from one axial slice (HU) and its muscle mask on the same grid.

    A mask with labels 1-3 (paravertebral, SCM right, SCM left) gives the CSA per group too;
    ``scm_nodal`` ('right' or 'left') applies the Chargi rule for an SCM lost in nodes.
    """
    if hu_slice.shape != muscle_mask.shape:
        raise InputError(f"the muscle mask ({muscle_mask.shape}) does not match the CT slice "
                         f"({hu_slice.shape}): use a mask made on this CT's grid.")
    labels = np.asarray(muscle_mask).astype(np.uint8)
    grouped = labels.max() > 1
    if scm_nodal is not None and not grouped:
        raise InputError("the SCM rule (--scm-nodal) needs a muscle mask with groups (1 "
                         "paravertebral, 2 SCM right, 3 SCM left); this mask has one label.")
    mask = counted_pixels(labels, scm_nodal)
    if not mask.any():
        raise InputError("the muscle mask is empty on the C3 slice: check the slice or the mask.")
    groups = group_csa_cm2(labels, pixel_spacing_mm) if grouped else {}
    csa = (chargi_total_cm2(groups, scm_nodal) if scm_nodal is not None
           else muscle_csa_cm2(mask, pixel_spacing_mm))
    mean_hu = float(hu_slice[mask].mean())
    l3 = None
    if None not in (clinical.age_years, clinical.weight_kg, clinical.sex):
        l3 = l3_csa_cm2(csa, clinical.age_years, clinical.weight_kg, clinical.sex)
    smi = smi_cm2_m2(l3, clinical.height_cm) if l3 is not None and clinical.height_cm else None
    return SarcopeniaMeasures(csa, mean_hu, l3, smi, muscle_status(smi, clinical.sex),
                              *(groups.get(group) for group in MUSCLE_GROUPS))


def implausibility_warnings(measures: SarcopeniaMeasures) -> list[str]:
    """A C3 CSA or mean HU outside what adult necks show: the slice, the mask or the CT's
    units may be wrong, so the figures should not be used before a look."""
    warnings = []
    low, high = PLAUSIBLE_C3_CSA_CM2
    if not low <= measures.muscle_csa_cm2 <= high:
        warnings.append(f"{IMPLAUSIBLE_CSA_PHRASE} {measures.muscle_csa_cm2:.1f} cm^2 is outside "
                        f"the {low:g}-{high:g} cm^2 of adult necks: check the slice, the mask "
                        "and the CT before using it.")
    low, high = PLAUSIBLE_MUSCLE_MEAN_HU
    if measures.muscle_mean_hu is not None and not low <= measures.muscle_mean_hu <= high:
        warnings.append(f"the muscle's mean of {measures.muscle_mean_hu:.0f} HU is outside the "
                        f"{low:g}-{high:g} HU of skeletal muscle: check the mask and the CT "
                        "before using it.")
    return warnings


def fold_disagreement(fold_masks: list[np.ndarray]) -> float | None:
    """How much the folds of an ensemble disagree on the muscle of one slice: 1 - DSC between
    the pixels every fold calls muscle and those any fold does. 0 when all folds draw the same
    muscle; it grows with the pixels only some folds draw, where the vote decides the outline.
    None with a single fold (nothing to compare)."""
    if len(fold_masks) < 2:
        return None
    drawn = np.stack([np.asarray(mask) > 0 for mask in fold_masks])
    every, any_ = int(drawn.all(axis=0).sum()), int(drawn.any(axis=0).sum())
    if any_ == 0:
        return 0.0
    return 1.0 - 2.0 * every / (every + any_)


def fold_disagreement_warning(disagreement: float | None) -> list[str]:
    """A reviewer should look at an outline the folds drew differently (above
    MUSCLE_FOLD_DISAGREEMENT_WARN)."""
    if disagreement is None or disagreement <= MUSCLE_FOLD_DISAGREEMENT_WARN:
        return []
    return [f"{MUSCLE_DISAGREEMENT_PHRASE} outline (fold disagreement {disagreement:.2f}, "
            f"above {MUSCLE_FOLD_DISAGREEMENT_WARN:g}): review the muscle on the overlay."]
