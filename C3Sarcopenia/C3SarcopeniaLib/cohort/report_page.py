"""The review report of a batch run: ``NAME_report.html`` beside the batch CSV ``NAME.csv``.

One self-contained page (its script, style and thumbnails inside it), opened from the disk
with no server: one row per case with the C3 slice zoomed on the neck, the figures, the
warnings and the review priority (review_priority.py), sortable and filterable, and a
reviewer's accept / needs-correction marks, saved to a CSV (review_marks.py) and kept by the
browser between visits. Built from the CSV and the result folders alone, so that it can be
rebuilt at any time (``c3sarcopenia batch-report``).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from ..fileio import write_text_atomic
from ..measures import MUSCLE_FOLD_DISAGREEMENT_WARN, PLAUSIBLE_C3_CSA_CM2
from ..report import OVERLAY_FILE, THUMBNAIL_FILE
from .report_assets import page_html
from .review_marks import REVIEW_VALUES, ReviewMark
from .review_priority import (MIN_CASES_FOR_RANGE, ROBUST_RANGE_MADS, TIERS, CaseReview,
                              CsaRange, csa_range_for, prioritised, read_batch_csv)

REPORT_SUFFIX = "_report.html"  # one page per CSV: two batches in one folder keep theirs
OVERLAY_THUMBNAIL_PX = 480  # an older result folder without thumbnail.jpg: its overlay, shrunk


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    n_cases: int
    n_thumbnails: int
    n_marks: int
    unknown_marks: list[str]  # marked case ids that are not in the batch CSV


def report_path(batch_csv: str | Path) -> Path:
    batch_csv = Path(batch_csv)
    return batch_csv.with_name(batch_csv.stem + REPORT_SUFFIX)


def write_report(batch_csv: str | Path, save_dir: str | Path | None = None,
                 marks: dict[str, ReviewMark] | None = None,
                 out: str | Path | None = None) -> ReportSummary:
    """Write the report of a batch CSV (default: NAME_report.html beside it); ``save_dir`` is the
    batch's --save-dir (thumbnails), ``marks`` earlier marks to resume from."""
    batch_csv = Path(batch_csv)
    out = Path(out) if out is not None else report_path(batch_csv)
    cases, ranges = prioritised(read_batch_csv(batch_csv))
    marks = marks or {}
    known = {case.case_id for case in cases}
    rows = []
    for order, case in enumerate(cases):
        thumbnail = _thumbnail(Path(save_dir) / case.case_id) if save_dir else None
        rows.append(_case_data(case, order, thumbnail, csa_range_for(case, ranges)))
    data = {
        "title": f"C3 review: {batch_csv.name}",
        "source": str(batch_csv.resolve()),
        "storage_key": "c3sarcopenia-review-marks:" + str(batch_csv.resolve()),
        "tiers": [{"rank": t.rank, "key": t.key, "label": t.label} for t in TIERS],
        "reviews": list(REVIEW_VALUES),
        "rules": _rules(ranges),
        "cases": rows,
        "marks": {case_id: mark.as_row() for case_id, mark in marks.items()
                  if case_id in known},
    }
    write_text_atomic(out, page_html(data))
    return ReportSummary(out, len(rows), sum(1 for r in rows if r["thumbnail"]),
                         len(data["marks"]), sorted(set(marks) - known))


def _case_data(case: CaseReview, order: int, thumbnail: str | None,
               usual: CsaRange | None) -> dict:
    return {"case_id": case.case_id, "order": order, "slice_k": case.c3_slice_k,
            "csa_cm2": case.csa_cm2, "smi_cm2_m2": case.smi_cm2_m2, "status": case.status,
            "sex": case.sex, "warnings": case.warnings, "error": case.error,
            "muscle_disagreement": case.muscle_disagreement,
            "tier": case.tier.key, "rank": case.tier.rank, "flags": case.flags,
            "csa_range": None if usual is None else
            f"{usual.low_cm2:.1f}-{usual.high_cm2:.1f} ({usual.sex})",
            "thumbnail": thumbnail}


def _rules(ranges: dict[str, CsaRange]) -> list[str]:
    """What the priorities mean for this cohort, shown above the table."""
    described = [f"{'men' if r.sex == 'M' else 'women' if r.sex == 'F' else 'whole cohort'}: "
                 f"{r.low_cm2:.1f}-{r.high_cm2:.1f} cm² ({r.n_cases} cases)"
                 for r in ranges.values()]
    low, high = PLAUSIBLE_C3_CSA_CM2
    return [f"C3 CSA outliers: outside {low:g}-{high:g} cm² (adult necks), or outside the "
            f"cohort's median ± {ROBUST_RANGE_MADS:g} scaled MADs of the case's sex (the whole "
            f"cohort's when the sex has fewer than {MIN_CASES_FOR_RANGE} measured cases): "
            + ("; ".join(described) or f"no range yet (under {MIN_CASES_FOR_RANGE} measured "
                                       "cases)") + ".",
            f"Muscle disagreement: 1 - DSC between the muscle folds' union and intersection, "
            f"flagged above {MUSCLE_FOLD_DISAGREEMENT_WARN:g} (when the batch CSV has it)."]


def _thumbnail(result_folder: Path) -> str | None:
    """The case's thumbnail as a JPEG data URI (its overlay, shrunk, for an older result
    folder without one); None when the folder has neither."""
    thumbnail = result_folder / THUMBNAIL_FILE
    if thumbnail.is_file():
        return _data_uri(thumbnail.read_bytes())
    overlay = result_folder / OVERLAY_FILE
    if not overlay.is_file():
        return None
    from PIL import Image

    from ..thumbnail import thumbnail_jpeg

    try:
        with Image.open(overlay) as picture:
            picture.thumbnail((OVERLAY_THUMBNAIL_PX, OVERLAY_THUMBNAIL_PX))
            buffer = io.BytesIO()
            thumbnail_jpeg(picture, buffer)
    except OSError:  # a damaged picture: the row goes without one
        return None
    return _data_uri(buffer.getvalue())


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
