"""A reviewer's marks on a cohort's results: each case accepted or needing correction.

The review report (report_page.py) saves them as a CSV with the columns

    case_id,review,note,reviewed_at

``review`` is ``accept`` or ``needs_correction`` ("needs correction" and any capitals are
read too), ``note`` free text, ``reviewed_at`` when the mark was made (ISO 8601, as the page
writes it; may be empty). A row with an empty ``review`` is an unmarked case. ``batch
--review-marks`` pre-fills the report with them; ``ingest --review-marks`` copies each mark
into the manifest's ``review`` column, and train and evaluate leave out the cases marked
needs_correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import InputError
from ..fileio import read_csv_rows

MARKS_COLUMNS = ("case_id", "review", "note", "reviewed_at")
ACCEPT = "accept"
NEEDS_CORRECTION = "needs_correction"
REVIEW_VALUES = (ACCEPT, NEEDS_CORRECTION)
_DESCRIBED_AS = "a review marks CSV (as the review report saves it)"


@dataclass(frozen=True)
class ReviewMark:
    case_id: str
    review: str  # one of REVIEW_VALUES
    note: str = ""
    reviewed_at: str = ""  # ISO 8601, or empty

    def as_row(self) -> dict[str, str]:
        return {"case_id": self.case_id, "review": self.review, "note": self.note,
                "reviewed_at": self.reviewed_at}


def review_value(text: str | None, where: str) -> str:
    """``accept`` or ``needs_correction`` from the ways a person writes them; '' for none."""
    value = (text or "").strip().lower().replace(" ", "_").replace("-", "_")
    if value and value not in REVIEW_VALUES:
        raise InputError(f"{where}: review {text.strip()!r} is neither 'accept' nor "
                         "'needs_correction': correct the cell or leave it empty.")
    return value


def read_review_marks(path: str | Path) -> dict[str, ReviewMark]:
    """The marks of a marks CSV by case id; every bad row is refused, naming its line."""
    path = Path(path)
    marks: dict[str, ReviewMark] = {}
    lines: dict[str, int] = {}
    for line, row in read_csv_rows(path, MARKS_COLUMNS[:2], _DESCRIBED_AS):
        where = f"{path.name} line {line}"
        case_id = (row["case_id"] or "").strip()
        review = review_value(row["review"], where)
        if not case_id:
            if review or (row.get("note") or "").strip():
                raise InputError(f"{where}: a mark without a case_id: fill in the case or "
                                 "delete the row.")
            continue
        if case_id in lines:
            raise InputError(f"{where}: case {case_id} is marked again (first on line "
                             f"{lines[case_id]}): keep one mark per case.")
        lines[case_id] = line
        if review:
            marks[case_id] = ReviewMark(case_id, review, (row.get("note") or "").strip(),
                                        _timestamp(row.get("reviewed_at"), where))
    return marks


def _timestamp(text: str | None, where: str) -> str:
    text = (text or "").strip()
    if text:
        try:  # Python 3.9's fromisoformat does not read the 'Z' that browsers write
            datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise InputError(f"{where}: reviewed_at {text!r} is not a date and time (ISO "
                             "8601, such as 2024-05-31T14:02:00Z): correct it or leave it "
                             "empty.") from None
    return text


def leave_out_needs_correction(rows: list[dict], source: str) -> tuple[list[dict], list[str]]:
    """A manifest's rows without those whose ``review`` column says needs_correction, and
    the case ids left out: a result a reviewer rejected must not train or judge a model."""
    kept, left_out = [], []
    for row in rows:
        review = review_value(row.get("review"), f"{source}, case {row.get('case_id')}")
        (left_out if review == NEEDS_CORRECTION else kept).append(row)
    return kept, [row["case_id"] for row in left_out]
