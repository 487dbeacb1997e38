"""Readers' picks: one CSV per reader, checked against the sheets, turned into label masks.

Columns: ``case, slice_k, paravertebral, scm_right, scm_left, confidence, notes``. The three
group columns list region numbers separated by spaces. ``confidence`` is high, medium or low,
or ``unreadable`` for a slice with no valid C3 muscle (SCMs cut off by the field of view, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fileio import read_csv_rows, write_csv_atomic
from ..measures import MUSCLE_GROUPS as GROUPS
from ..measures import group_csa_cm2, muscle_csa_cm2, muscle_density
from .regions import RegionSheet

GROUP_LABELS = {group: label for label, group in enumerate(GROUPS, start=1)}
READING_COLUMNS = ("case", "slice_k", *GROUPS, "confidence", "notes")
CONFIDENCES = ("high", "medium", "low", "unreadable")


@dataclass
class Reading:
    """One reader's pick on one case."""

    case: str
    slice_k: int
    regions: dict[str, list[int]]
    confidence: str
    notes: str = ""
    reader: str = ""

    @property
    def readable(self) -> bool:
        return self.confidence != "unreadable"


def _numbers(text: str, where: str) -> list[int]:
    try:
        return sorted({int(token) for token in text.replace(",", " ").split()})
    except ValueError:
        raise InputError(f"{where}: region numbers must be whole numbers separated by spaces, "
                         f"not {text!r}.") from None


def read_readings(path: str | Path) -> list[Reading]:
    """A reader's CSV; the reader's name is the file's stem."""
    path = Path(path)
    readings = []
    for line, row in read_csv_rows(path, READING_COLUMNS, "a readings CSV"):
        where = f"{path.name} line {line}"
        try:
            slice_k = int(row["slice_k"])
        except ValueError:
            raise InputError(f"{where}: slice_k {row['slice_k']!r} is not a slice "
                             "index.") from None
        regions = {group: _numbers(row[group] or "", f"{where} {group}") for group in GROUPS}
        readings.append(Reading(row["case"].strip(), slice_k, regions,
                                (row["confidence"] or "").strip().lower(),
                                row["notes"] or "", path.stem))
    return readings


def write_readings(path: str | Path, readings: list[Reading]) -> None:
    """A readings CSV as read_readings takes it back (region numbers space-separated)."""
    write_csv_atomic(Path(path), READING_COLUMNS, [
        {"case": r.case, "slice_k": r.slice_k, "confidence": r.confidence, "notes": r.notes,
         **{group: " ".join(map(str, r.regions[group])) for group in GROUPS}}
        for r in readings])


def reading_problems(reading: Reading, sheet: RegionSheet | None) -> list[str]:
    """What is wrong with one reading on its sheet; empty when it can be used."""
    if sheet is None:
        return [f"case {reading.case!r} has no sheet: was it in muscle-sheets' input?"]
    problems = []
    if reading.confidence not in CONFIDENCES:
        problems.append(f"confidence {reading.confidence!r} is not one of "
                        f"{', '.join(CONFIDENCES)}")
    if reading.slice_k != sheet.view.slice_k:
        problems.append(f"slice_k {reading.slice_k} is not the sheet's slice "
                        f"{sheet.view.slice_k}")
    seen: dict[int, str] = {}
    for group, numbers in reading.regions.items():
        for number in numbers:
            if not 1 <= number <= sheet.n_regions:
                problems.append(f"{group}: region {number} does not exist (1-{sheet.n_regions})")
            elif number in seen:
                problems.append(f"region {number} is in both {seen[number]} and {group}")
            seen.setdefault(number, group)
    if reading.readable and not reading.regions["paravertebral"]:
        problems.append("no paravertebral region picked (mark the case 'unreadable' if the "
                        "slice shows no valid C3 muscle)")
    return problems


def validate(readings: list[Reading], sheets: dict[str, RegionSheet]) -> None:
    """Refuse a readings file with any problem, listing every one of them."""
    lines, cases = [], set()
    for reading in readings:
        if reading.case in cases:
            lines.append(f"{reading.case}: read twice by {reading.reader}")
        cases.add(reading.case)
        lines += [f"{reading.case}: {p}" for p in reading_problems(reading, sheets.get(reading.case))]
    if lines:
        raise InputError("the readings have problems:\n  " + "\n  ".join(lines))


def fine_labels(sheet: RegionSheet, regions: dict[str, list[int]]) -> np.ndarray:
    """Group labels (1 paravertebral, 2 SCM right, 3 SCM left) on the sheet's fine grid."""
    lookup = np.zeros(sheet.n_regions + 1, np.uint8)
    for group, numbers in regions.items():
        lookup[numbers] = GROUP_LABELS[group]
    return lookup[sheet.regions]


def slice_labels(sheet: RegionSheet, regions: dict[str, list[int]]) -> np.ndarray:
    """The pick on the CT's stored slice, kept to muscle density (-29..150 HU) as measured."""
    labels = sheet.view.to_ct_slice(fine_labels(sheet, regions))
    labels[~muscle_density(sheet.view.hu_slice)] = 0
    return labels


def group_and_total_csa_cm2(labels: np.ndarray,
                            pixel_spacing_mm: tuple[float, float]) -> dict[str, float]:
    """CSA of each group and the total, from a label slice."""
    return {**group_csa_cm2(labels, pixel_spacing_mm),
            "total": muscle_csa_cm2(labels > 0, pixel_spacing_mm)}
