"""The model read as one more reader, and how any one reader agrees with the others.

Readers pick whole regions, so any two of them share every border; a model's pixel outline
does not, and set beside the readers' agreement its DSC also pays for borders they never had
to place. Turned into a region pick (each region to the label most of its pixels carry in
the model's outline), the model is compared on the readers' footing, as a third reader. The
pick serves that comparison and gives annotators a start to correct; measures always come
from the pixel outline (on phantoms, whose truth is exact, the pick is the less accurate).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .. import imaging
from ..errors import InputError
from ..measures import MUSCLE_FOLD_DISAGREEMENT_WARN, dice
from ..models import Ensemble
from ..pipeline import segment_muscle_folds
from .readings import GROUPS, Reading, slice_labels
from .regions import RegionSheet

# Starts the notes of every pick muscle-pick writes, so that a blind consensus can refuse it.
MODEL_PICK_NOTE = "model's pick (muscle-pick)"


def pick_from_labels(sheet: RegionSheet, labels: np.ndarray) -> dict[str, list[int]]:
    """Each region to the label most of its pixels carry in a label slice of the CT (0
    background, 1 paravertebral, 2/3 SCM right/left); regions mostly background stay out."""
    fine = sheet.view.fine_blocks(labels.astype(np.int64))
    n_labels = len(GROUPS) + 1
    counts = np.bincount((sheet.regions.astype(np.int64) * n_labels + fine).ravel(),
                         minlength=(sheet.n_regions + 1) * n_labels)
    winner = counts.reshape(-1, n_labels)[1:].argmax(axis=1)
    return {group: [int(n) for n in np.flatnonzero(winner == label) + 1]
            for label, group in enumerate(GROUPS, start=1)}


def model_reading(sheet: RegionSheet, models: Ensemble, reader: str) -> Reading:
    """Stage 2 on the sheet's slice, as a reading: confidence low when the folds disagree
    enough to warn, unreadable when the model draws no paravertebral muscle."""
    ct = imaging.read_ct(sheet.ct)
    _check_sheet_matches(sheet, ct)
    labels, disagreement = segment_muscle_folds(ct, sheet.view.slice_k, models)
    pick = pick_from_labels(sheet, labels)
    if not pick["paravertebral"]:
        confidence = "unreadable"
    elif disagreement is not None and disagreement > MUSCLE_FOLD_DISAGREEMENT_WARN:
        confidence = "low"
    else:
        confidence = "high"
    notes = MODEL_PICK_NOTE if disagreement is None else (
        f"{MODEL_PICK_NOTE}, fold disagreement {disagreement:.2f}")
    return Reading(sheet.case, sheet.view.slice_k, pick, confidence, notes, reader)


def _check_sheet_matches(sheet: RegionSheet, ct) -> None:
    """The regions are only valid on the slice they were made from."""
    stored = sheet.view.hu_slice.astype(np.int16)
    k = sheet.view.slice_k
    size = ct.GetSize()
    if (k >= size[2] or stored.shape != (size[1], size[0])
            or not np.array_equal(sitk.GetArrayViewFromImage(ct)[k].astype(np.int16),
                                  stored)):
        raise InputError(f"case {sheet.case}: {sheet.ct} is not the CT its sheet was made "
                         "from (slice differs): make the sheets again with muscle-sheets.")


@dataclass
class ReaderComparison:
    """One case: a reader's DSC with each of the other readers, beside theirs with each
    other (whole C3 muscle on the CT's slice)."""

    case: str
    reader_dsc: float   # mean over the other readers
    others_dsc: float   # mean over pairs of the other readers
    n_others: int

    @property
    def difference(self) -> float:
        return self.reader_dsc - self.others_dsc


def compare_reader(readings: list[Reading], sheets: dict[str, RegionSheet],
                   reader: str) -> list[ReaderComparison]:
    """Every case with a readable reading by ``reader`` and by at least two others."""
    by_case: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        if reading.readable:
            by_case[reading.case].append(reading)
    comparisons = []
    for case, case_readings in sorted(by_case.items()):
        own = [r for r in case_readings if r.reader == reader]
        others = [r for r in case_readings if r.reader != reader]
        if own and len(others) >= 2:
            mask = slice_labels(sheets[case], own[0].regions) > 0
            comparisons.append(compare_mask(mask, sheets[case], others))
    if not comparisons:
        raise InputError(f"no case has a readable reading by {reader!r} and by two other "
                         "readers: check --reader against the readings files' names (a "
                         "reader is named by the file, without .csv).")
    return comparisons


def compare_mask(mask: np.ndarray, sheet: RegionSheet,
                 others: list[Reading]) -> ReaderComparison:
    """A muscle mask on the sheet's CT slice (a reader's pick, or a pixel outline) beside
    two or more readers of that case."""
    theirs = [slice_labels(sheet, r.regions) > 0 for r in others]
    return ReaderComparison(
        sheet.case, float(np.mean([dice(mask, m) for m in theirs])),
        float(np.mean([dice(a, b) for a, b in itertools.combinations(theirs, 2)])),
        len(others))


def comparison_summary(reader: str, comparisons: list[ReaderComparison]) -> str:
    mine = np.mean([c.reader_dsc for c in comparisons])
    others = np.mean([c.others_dsc for c in comparisons])
    return (f"{reader} on {len(comparisons)} cases: DSC with the other readers mean "
            f"{mine:.3f}; they with each other {others:.3f}; difference {mine - others:+.3f} "
            f"(median {np.median([c.difference for c in comparisons]):+.3f})")


COMPARISON_COLUMNS = ("case", "reader_dsc", "others_dsc", "difference", "n_other_readers")


def comparison_rows(comparisons: list[ReaderComparison]) -> list[dict]:
    return [dict(zip(COMPARISON_COLUMNS, (c.case, f"{c.reader_dsc:.4f}", f"{c.others_dsc:.4f}",
                                          f"{c.difference:+.4f}", c.n_others)))
            for c in comparisons]
