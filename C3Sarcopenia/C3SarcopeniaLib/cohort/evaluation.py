"""The validation of Naser et al. 2022 on any manifest with true labels.

Per case: section DSC (ensemble and each fold), C3 slice error in mm, muscle DSC on the true
slice (Pred_GT), and CSA / SMI on the true slice and on the automatically chosen slice
(Pred_C3). Per cohort: means and SDs, Pearson r, two-sided Wilcoxon signed-rank tests.

Rows with a C3 level but no muscle mask (``ingest-levels``) run stage 1 only: is the chosen
slice inside the C3 body (``c3_top_k`` .. ``c3_bottom_k``), how far is it from the body's middle
(``c3_slice_k``), and the section DSC when a section label is given. A CT on which stage 1
refuses (C3 outside the field of view) counts as not inside.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import stats

from .. import imaging
from ..errors import InputError
from .evaluation_figures import FIGURES, write_figures
from ..fileio import staged_outputs, write_csv_atomic, write_text_atomic
from ..image_files import read_image
from ..measures import ClinicalInfo, dice, measure_slice, parse_sex
from ..models import Ensemble
from ..pipeline import (SectionResult, find_c3_section, fold_masks, section_network_input,
                       segment_muscle)
from .review_marks import leave_out_needs_correction
from ..training import read_manifest

MANIFEST_COLUMNS = ("case_id", "ct", "c3_slice_k")
# What evaluate writes, metrics.json (the sign of a finished evaluation) first.
OUTPUT_FILES = ("metrics.json", "cases.csv", *FIGURES)


@dataclass
class CaseEvaluation:
    case_id: str
    sex: str | None
    true_slice_k: int
    auto_slice_k: int | None = None
    slice_error_mm: float | None = None
    section_dsc: float | None = None
    section_dsc_folds: list[float] = field(default_factory=list)
    muscle_dsc: float | None = None          # on the true slice
    paravertebral_dsc: float | None = None   # per group, when the truth has groups
    scm_dsc: float | None = None             # both SCMs, each on its own side
    csa_true_cm2: float | None = None
    csa_pred_gt_cm2: float | None = None     # predicted muscle on the true slice
    csa_pred_c3_cm2: float | None = None     # predicted muscle on the chosen slice
    smi_true: float | None = None
    smi_pred_gt: float | None = None
    smi_pred_c3: float | None = None
    level_only: bool = False                 # truth is a C3 level, no muscle
    c3_top_k: int | None = None
    c3_bottom_k: int | None = None
    inside_c3_body: bool | None = None       # chosen slice within top..bottom (level rows)
    refused: str | None = None               # why stage 1 gave no slice (level rows)
    error: str | None = None


def clinical_from_row(row: dict) -> ClinicalInfo:
    """The clinical fields of a manifest row (age, sex, height_cm, weight_kg; blank unknown)."""
    def number(key):
        value = row.get(key, "")
        return float(value) if value not in ("", None) else None

    return ClinicalInfo(number("age"), parse_sex(row.get("sex")), number("height_cm"),
                        number("weight_kg"))


@dataclass
class CaseTruth:
    """A case's manual labels on its CT grid."""

    case_id: str
    clinical: ClinicalInfo
    c3_slice_k: int                   # the measurement slice (the C3 body's middle)
    muscle: np.ndarray | None         # (j, i) true muscle on the true slice; None: level only
    section_mask: np.ndarray | None   # (k, j, i) true C3 section; None when not labelled
    c3_top_k: int | None = None       # the C3 body's first and last slice, when known
    c3_bottom_k: int | None = None


def read_truth(row: dict, ct: sitk.Image) -> CaseTruth:
    def index(key: str) -> int | None:
        return int(row[key]) if row.get(key) not in ("", None) else None

    true_k = int(row["c3_slice_k"])
    section = imaging.read_mask(row["section_mask"], ct) if row.get("section_mask") else None
    muscle = imaging.read_mask(row["muscle_mask"], ct)[true_k] if row.get("muscle_mask") else None
    return CaseTruth(row["case_id"], clinical_from_row(row), true_k, muscle, section,
                     index("c3_top_k"), index("c3_bottom_k"))


def evaluate_case(row: dict, section_models: Ensemble, muscle_models: Ensemble) -> CaseEvaluation:
    """Run both stages (stage 1 only for a level row) and score them against its labels."""
    ct = imaging.read_ct(row["ct"])
    truth = read_truth(row, ct)
    if truth.muscle is None:
        try:
            section = find_c3_section(ct, section_models)
        except InputError as refusal:
            return score_level_case(ct, truth, None, str(refusal))
        return score_level_case(ct, truth, section)
    muscle_on_true = segment_muscle(ct, truth.c3_slice_k, muscle_models)
    if truth.section_mask is None:
        return score_case(ct, truth, muscle_on_true)
    section = find_c3_section(ct, section_models)
    muscle_on_auto = (muscle_on_true if section.c3_slice_k == truth.c3_slice_k
                      else segment_muscle(ct, section.c3_slice_k, muscle_models))
    return score_case(ct, truth, muscle_on_true, section, muscle_on_auto,
                      _fold_dscs(ct, section_models, row["section_mask"]))


def score_case(ct: sitk.Image, truth: CaseTruth, muscle_on_true: np.ndarray,
               section: SectionResult | None = None, muscle_on_auto: np.ndarray | None = None,
               section_dsc_folds: list[float] | None = None) -> CaseEvaluation:
    """Score given predictions against the truth: apart from inference, so that known
    perturbations of the truth can check the figures (slice error, DSC, CSA, SMI)."""
    result = CaseEvaluation(truth.case_id, truth.clinical.sex, truth.c3_slice_k,
                            section_dsc_folds=list(section_dsc_folds or []))
    hu = sitk.GetArrayViewFromImage(ct)
    true_k = truth.c3_slice_k
    measured = measure_slice(hu[true_k], truth.muscle, imaging.pixel_spacing_mm(ct),
                             truth.clinical)
    result.csa_true_cm2, result.smi_true = measured.muscle_csa_cm2, measured.smi_cm2_m2
    result.muscle_dsc = dice(muscle_on_true, truth.muscle)
    if truth.muscle.max() > 1 and muscle_on_true.max() > 1:
        result.paravertebral_dsc = dice(muscle_on_true == 1, truth.muscle == 1)
        result.scm_dsc = _scm_dice(muscle_on_true, truth.muscle)
    result.csa_pred_gt_cm2, result.smi_pred_gt = _csa_smi(ct, true_k, muscle_on_true,
                                                          truth.clinical)
    if section is not None and truth.section_mask is not None:
        _score_section(ct, truth, section, result)
        if muscle_on_auto is not None:
            result.csa_pred_c3_cm2, result.smi_pred_c3 = _csa_smi(
                ct, section.c3_slice_k, muscle_on_auto, truth.clinical)
    return result


def _scm_dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """DSC of both SCMs together, a pixel agreeing only when it is on the same side."""
    overlap = int((np.isin(truth, (2, 3)) & (predicted == truth)).sum())
    total = int(np.isin(predicted, (2, 3)).sum() + np.isin(truth, (2, 3)).sum())
    return 1.0 if total == 0 else 2.0 * overlap / total


def bland_altman(pairs: np.ndarray) -> dict:
    """Mean difference (predicted - true) and its 95 % limits of agreement."""
    if len(pairs) < 2:
        return {"bias": None, "loa_low": None, "loa_high": None}
    diff = pairs[:, 1] - pairs[:, 0]
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    return {"bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def score_level_case(ct: sitk.Image, truth: CaseTruth, section: SectionResult | None,
                     refused: str | None = None) -> CaseEvaluation:
    """Score stage 1 against a C3 level; ``section`` is None when stage 1 refused."""
    result = CaseEvaluation(truth.case_id, truth.clinical.sex, truth.c3_slice_k,
                            level_only=True, c3_top_k=truth.c3_top_k,
                            c3_bottom_k=truth.c3_bottom_k, refused=refused)
    has_body = truth.c3_top_k is not None and truth.c3_bottom_k is not None
    if section is None:
        result.inside_c3_body = False if has_body else None
        return result
    _score_section(ct, truth, section, result)
    if has_body:
        low, high = sorted((truth.c3_top_k, truth.c3_bottom_k))
        result.inside_c3_body = low <= section.c3_slice_k <= high
    return result


def _score_section(ct: sitk.Image, truth: CaseTruth, section: SectionResult,
                   result: CaseEvaluation) -> None:
    """The chosen slice's distance to the true slice, and the section DSC when labelled."""
    result.auto_slice_k = section.c3_slice_k
    result.slice_error_mm = abs(section.c3_slice_z_mm - imaging.slice_z_mm(ct, truth.c3_slice_k))
    if truth.section_mask is not None:
        result.section_dsc = dice(section.section_mask, truth.section_mask)


def _csa_smi(ct: sitk.Image, slice_k: int, muscle: np.ndarray,
             clinical: ClinicalInfo) -> tuple[float | None, float | None]:
    """CSA and SMI of a predicted mask; both None when the prediction is empty."""
    if not muscle.any():
        return None, None
    measured = measure_slice(sitk.GetArrayViewFromImage(ct)[slice_k], muscle,
                             imaging.pixel_spacing_mm(ct), clinical)
    return measured.muscle_csa_cm2, measured.smi_cm2_m2


def _fold_dscs(ct: sitk.Image, models: Ensemble, section_path: str) -> list[float]:
    """Each fold's section DSC on the network grid, for the per-fold box plots."""
    net_input = section_network_input(ct, models.card.spacing_mm)
    label = read_image(section_path, "section mask", sitk.sitkUInt8)
    label = sitk.GetArrayFromImage(imaging.resample_like(label, net_input.grid))
    return [dice(m & net_input.body, label) for m in fold_masks(models, net_input.image)]


def _paired(cases: list[CaseEvaluation], a: str, b: str, sex: str | None = None):
    pairs = [(getattr(c, a), getattr(c, b)) for c in cases
             if getattr(c, a) is not None and getattr(c, b) is not None
             and (sex is None or c.sex == sex)]
    return np.array(pairs, dtype=float).reshape(-1, 2)


def _pearson(pairs: np.ndarray) -> tuple[float | None, float | None]:
    if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return None, None
    r, p = stats.pearsonr(pairs[:, 0], pairs[:, 1])
    return float(r), float(p)


def _wilcoxon(pairs: np.ndarray) -> float | None:
    if len(pairs) < 3 or np.allclose(pairs[:, 0], pairs[:, 1]):
        return None
    return float(stats.wilcoxon(pairs[:, 0], pairs[:, 1]).pvalue)


def _mean_sd(values: list) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def cohort_metrics(cases: list[CaseEvaluation]) -> dict:
    ok = [c for c in cases if c.error is None]
    metrics: dict = {"n_cases": len(ok), "n_failed": len(cases) - len(ok)}
    for name in ("section_dsc", "muscle_dsc", "paravertebral_dsc", "scm_dsc", "slice_error_mm"):
        metrics[f"{name}_mean"], metrics[f"{name}_sd"] = _mean_sd([getattr(c, name) for c in ok])
    errors = [c.slice_error_mm for c in ok if c.slice_error_mm is not None]
    metrics["slice_error_mm_median"] = float(np.median(errors)) if errors else None
    metrics["slice_error_mm_max"] = float(np.max(errors)) if errors else None
    metrics.update(level_metrics([c for c in ok if c.level_only]))
    for label, column in (("gt", "csa_pred_gt_cm2"), ("auto", "csa_pred_c3_cm2")):
        pairs = _paired(ok, "csa_true_cm2", column)
        metrics[f"csa_pearson_r_{label}"], metrics[f"csa_pearson_p_{label}"] = _pearson(pairs)
        metrics[f"csa_wilcoxon_p_{label}"] = _wilcoxon(pairs)
        diff = 100 * np.abs(pairs[:, 1] - pairs[:, 0]) / pairs[:, 0] if len(pairs) else []
        metrics[f"csa_abs_diff_percent_median_{label}"] = (float(np.median(diff))
                                                           if len(diff) else None)
        metrics[f"csa_bland_altman_cm2_{label}"] = bland_altman(pairs)
    for label, column in (("gt", "smi_pred_gt"), ("auto", "smi_pred_c3")):
        metrics[f"smi_pearson_r_{label}"] = _pearson(_paired(ok, "smi_true", column))[0]
        for sex, word in (("M", "male"), ("F", "female")):
            metrics[f"smi_wilcoxon_p_{label}_{word}"] = _wilcoxon(
                _paired(ok, "smi_true", column, sex))
            metrics[f"csa_wilcoxon_p_{label}_{word}"] = _wilcoxon(
                _paired(ok, "csa_true_cm2", "csa_pred_gt_cm2" if label == "gt"
                        else "csa_pred_c3_cm2", sex))
    return metrics


def inter_reader_metrics(rows: list[dict]) -> dict:
    """The readers' own agreement on the same cases (from muscle-consensus): the ceiling a
    model can be judged against. Empty when the manifest does not carry it."""
    dscs = [float(r["reader_dsc"]) for r in rows if r.get("reader_dsc")]
    diffs = [float(r["reader_csa_diff_percent"]) for r in rows if r.get("reader_csa_diff_percent")]
    if not dscs:
        return {}
    return {"inter_reader_dsc_mean": float(np.mean(dscs)),
            "inter_reader_dsc_median": float(np.median(dscs)),
            "inter_reader_csa_diff_percent_median": float(np.median(diffs)) if diffs else None}


def level_metrics(cases: list[CaseEvaluation]) -> dict:
    """Stage 1 against C3 levels: fraction of chosen slices inside the C3 body (refusals
    count as outside), error to the body's middle, and how often stage 1 refused."""
    inside = [c.inside_c3_body for c in cases if c.inside_c3_body is not None]
    errors = [c.slice_error_mm for c in cases if c.slice_error_mm is not None]
    return {"n_level_cases": len(cases), "n_refused": sum(c.refused is not None for c in cases),
            "inside_c3_body_fraction": float(np.mean(inside)) if inside else None,
            "level_error_mm_median": float(np.median(errors)) if errors else None,
            "level_error_mm_mean": float(np.mean(errors)) if errors else None,
            "level_error_mm_max": float(np.max(errors)) if errors else None}


def write_cases_csv(cases: list[CaseEvaluation], path: Path) -> None:
    rows = [asdict(c) for c in cases]
    for row in rows:
        row["section_dsc_folds"] = " ".join(f"{v:.4f}" for v in row["section_dsc_folds"])
    write_csv_atomic(path, rows[0], rows)


def evaluate(manifest: str | Path, out_dir: str | Path, section_models: Ensemble,
             muscle_models: Ensemble,
             progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Evaluate every case (a failing case is recorded, the rest go on); write the report
    into a staging folder switched into ``out_dir`` at the end (fileio.staged_outputs)."""
    rows, left_out = leave_out_needs_correction(read_manifest(manifest, MANIFEST_COLUMNS),
                                                Path(manifest).name)
    if not rows:
        raise InputError(f"every case of {Path(manifest).name} is marked needs_correction: "
                         "there is nothing to evaluate.")
    _check_slice_numbers(manifest, rows)
    cases = []
    for i, row in enumerate(rows):
        if progress:
            progress(i, len(rows), row["case_id"])
        try:
            cases.append(evaluate_case(row, section_models, muscle_models))
        except InputError as error:
            cases.append(CaseEvaluation(row["case_id"], None, int(row["c3_slice_k"]),
                                        level_only=not row.get("muscle_mask"),
                                        error=str(error)))
    metrics = cohort_metrics(cases)
    metrics.update(inter_reader_metrics(rows))
    metrics["left_out_needs_correction"] = left_out
    metrics["models"] = {"section": str(section_models.folder),
                         "muscle": str(muscle_models.folder)}
    with staged_outputs(out_dir, OUTPUT_FILES) as staging:
        write_figures(cases, staging)
        write_cases_csv(cases, staging / "cases.csv")
        write_text_atomic(staging / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _check_slice_numbers(manifest: str | Path, rows: list[dict]) -> None:
    """Every case needs its true C3 slice: refused up front, naming the case, not mid-run."""
    for row in rows:
        if not (row["c3_slice_k"] or "").strip().isdigit():
            raise InputError(f"{Path(manifest).name}: case {row['case_id']} has c3_slice_k "
                             f"{row['c3_slice_k']!r}, not a slice number: evaluate needs the "
                             "true C3 slice of every case.")
