"""Which cases of a batch a reviewer should look at first, and why.

Read from the batch CSV alone (so that a report can be rebuilt from any earlier run): a case
is put in the first tier that one of its flags reaches:

1. refused or failed (an error in its row);
2. the stage-1 folds disagree on the C3 level (or some found no section);
3. a thin C3 section, or one cut by the edge of the scan;
4. the stage-2 folds disagree on the muscle (the ``muscle_fold_disagreement`` column
   above MUSCLE_FOLD_DISAGREEMENT_WARN, the threshold of its warning, or the warning);
5. a C3 CSA outlier for the sex: outside the cohort's robust range for that sex (median
   ± 3 scaled MADs), or outside the 10-100 cm² of adult necks (measures.PLAUSIBLE_C3_CSA_CM2);
6. any other warning;
7. nothing flagged.

Warnings are recognised by the fixed phrases they are written with (errors.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import median_abs_deviation

from .. import errors
from ..fileio import read_csv_rows
from ..measures import MUSCLE_FOLD_DISAGREEMENT_WARN, PLAUSIBLE_C3_CSA_CM2
from .batch_table import WARNING_SEPARATOR
from .survival import parse_number

ROBUST_RANGE_MADS = 3.0
MIN_CASES_FOR_RANGE = 10  # fewer measured cases of a sex give no range of their own
MIN_SPREAD_CM2 = 1.0  # a floor for the scaled MAD: identical values flag no one


@dataclass(frozen=True)
class Tier:
    rank: int
    key: str
    label: str


TIERS = (Tier(1, "failed", "refused or failed"),
         Tier(2, "level_disagreement", "folds disagree on the C3 level"),
         Tier(3, "thin_section", "thin or cut C3 section"),
         Tier(4, "muscle_disagreement", "folds disagree on the muscle"),
         Tier(5, "csa_outlier", "C3 CSA outlier for the sex"),
         Tier(6, "other_warning", "other warning"),
         Tier(7, "none", "nothing flagged"))
_TIER = {tier.key: tier for tier in TIERS}
# phrase in a warning -> the tier it flags
WARNING_TIERS = ((errors.FOLDS_MISSING_PHRASE, "level_disagreement"),
                 (errors.LEVEL_DISAGREEMENT_PHRASE, "level_disagreement"),
                 (errors.THIN_SECTION_PHRASE, "thin_section"),
                 (errors.SECTION_AT_EDGE_PHRASE, "thin_section"),
                 (errors.MUSCLE_DISAGREEMENT_PHRASE, "muscle_disagreement"),
                 (errors.IMPLAUSIBLE_CSA_PHRASE, "csa_outlier"))
REQUIRED_COLUMNS = ("case_id", "muscle_csa_cm2", "warnings", "error")


def warning_tier(warning: str) -> str:
    """The tier a warning flags; 'other_warning' for one without a known phrase."""
    return next((key for phrase, key in WARNING_TIERS if phrase in warning), "other_warning")


@dataclass(frozen=True)
class CsaRange:
    """The cohort's usual C3 CSA for one sex ('all' for the whole cohort)."""

    sex: str
    low_cm2: float
    high_cm2: float
    n_cases: int


@dataclass
class CaseReview:
    """One row of the report: the batch row's figures and why (and how soon) to look."""

    case_id: str
    c3_slice_k: int | None
    csa_cm2: float | None
    smi_cm2_m2: float | None
    status: str  # depleted, normal, unknown or failed
    sex: str
    warnings: list[str]
    error: str
    muscle_disagreement: float | None
    flags: list[str] = field(default_factory=list)  # tier keys, most urgent first

    @property
    def tier(self) -> Tier:
        return _TIER[self.flags[0]] if self.flags else _TIER["none"]


def read_batch_csv(path: str | Path) -> list[CaseReview]:
    """The cases of a batch CSV (the last row of a case that appears twice)."""
    path = Path(path)
    cases: dict[str, CaseReview] = {}
    for line, row in read_csv_rows(path, REQUIRED_COLUMNS, "the results CSV of a batch run"):
        where = f"{path.name} line {line}"
        error = (row["error"] or "").strip()
        cases[row["case_id"]] = CaseReview(
            case_id=row["case_id"], c3_slice_k=_integer(row.get("c3_slice_k"), where),
            csa_cm2=_number(row["muscle_csa_cm2"], where),
            smi_cm2_m2=_number(row.get("smi_cm2_m2"), where),
            status="failed" if error else (row.get("muscle_status") or "unknown"),
            sex=(row.get("sex") or "").strip().upper(),
            warnings=[w for w in (row["warnings"] or "").split(WARNING_SEPARATOR) if w.strip()],
            error=error, muscle_disagreement=_number(row.get("muscle_fold_disagreement"), where))
    return list(cases.values())


def _number(text: str | None, where: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_number(text, where)  # NaN and infinity refused too: the page needs JSON
    except errors.InputError as error:
        raise errors.InputError(f"{error}: is this the CSV a batch run wrote?") from None


def _integer(text: str | None, where: str) -> int | None:
    value = _number(text, where)
    return None if value is None else int(value)


def cohort_csa_ranges(cases: list[CaseReview]) -> dict[str, CsaRange]:
    """Per sex ('M', 'F') and for the whole cohort ('all'), the median ± 3 scaled MADs of
    the measured CSAs, where at least MIN_CASES_FOR_RANGE cases were measured."""
    ranges = {}
    for sex in ("M", "F", "all"):
        values = np.array([c.csa_cm2 for c in cases if c.csa_cm2 is not None and not c.error
                           and (sex == "all" or c.sex == sex)])
        if values.size >= MIN_CASES_FOR_RANGE:
            median = float(np.median(values))
            spread = max(float(median_abs_deviation(values, scale="normal")), MIN_SPREAD_CM2)
            ranges[sex] = CsaRange(sex, median - ROBUST_RANGE_MADS * spread,
                                   median + ROBUST_RANGE_MADS * spread, int(values.size))
    return ranges


def csa_range_for(case: CaseReview, ranges: dict[str, CsaRange]) -> CsaRange | None:
    """The range of the case's sex, or the whole cohort's when its sex has none."""
    return ranges.get(case.sex) or ranges.get("all")


def is_csa_outlier(case: CaseReview, ranges: dict[str, CsaRange]) -> bool:
    if case.csa_cm2 is None or case.error:
        return False
    usual = csa_range_for(case, ranges)
    low, high = PLAUSIBLE_C3_CSA_CM2
    return (not low <= case.csa_cm2 <= high
            or (usual is not None and not usual.low_cm2 <= case.csa_cm2 <= usual.high_cm2))


def case_flags(case: CaseReview, ranges: dict[str, CsaRange]) -> list[str]:
    """The tiers a case's error, warnings and figures reach, most urgent first."""
    flags = {warning_tier(w) for w in case.warnings}
    if case.error:
        flags.add("failed")
    if case.muscle_disagreement is not None \
            and case.muscle_disagreement > MUSCLE_FOLD_DISAGREEMENT_WARN:
        flags.add("muscle_disagreement")
    if is_csa_outlier(case, ranges):
        flags.add("csa_outlier")
    return sorted(flags, key=lambda key: _TIER[key].rank)


def prioritised(cases: list[CaseReview]) -> tuple[list[CaseReview], dict[str, CsaRange]]:
    """The cases with their flags, in review order: by tier, then (within a tier) the
    larger muscle disagreement first, then by case id; and the CSA ranges used."""
    ranges = cohort_csa_ranges(cases)
    for case in cases:
        case.flags = case_flags(case, ranges)
    ordered = sorted(cases, key=lambda c: (c.tier.rank, -(c.muscle_disagreement or 0.0),
                                           c.case_id))
    return ordered, ranges
