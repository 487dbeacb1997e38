"""C3 level annotations: the CSV a reader fills by eye (or Slicer writes), its checks, and the
stage-1 training labels made from it.

One row per case: the first and last slice of the C3 vertebral body (``c3_top_z_index``,
``c3_bottom_z_index``) and its middle slice (``c3_mid_z_index``), as indices along the stored
CT's third voxel axis (SimpleITK's k), with a confidence (high, medium or low) and free notes.
Optional: ``annotator``, and ``ct``, the CT's path relative to the CSV's folder. The middle may
be blank (then the slice nearest the middle of top and bottom), and top and bottom may be blank
when the middle is given (a slice accepted in Slicer).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from .. import imaging
from ..errors import InputError
from ..fileio import read_csv_rows, write_csv_atomic, write_image_atomic
from ..phantoms.phantom import MANIFEST_COLUMNS

REQUIRED_COLUMNS = ("case", "c3_top_z_index", "c3_bottom_z_index", "c3_mid_z_index",
                    "confidence", "notes")
COLUMNS = (*REQUIRED_COLUMNS, "annotator", "ct")
CONFIDENCES = ("high", "medium", "low")
BODY_HEIGHT_MM = (8.0, 30.0)  # C3 body, first to last slice; adult necks lie well inside
DEFAULT_CT_PATTERN = "{case}_ct.nii.gz"
LEVEL_MANIFEST_COLUMNS = (*MANIFEST_COLUMNS, "c3_top_k", "c3_bottom_k", "confidence")


@dataclass(frozen=True)
class C3Level:
    """One row of a levels CSV. Slice indices count from 0 along the CT's third axis."""

    case: str
    top_k: int | None
    bottom_k: int | None
    mid_k: int | None           # as written; see ``middle_k``
    confidence: str
    notes: str = ""
    annotator: str = ""
    ct: Path | None = None      # resolved against the CSV's folder
    line: int = 0               # where the row ends in the CSV, for messages

    @property
    def middle_k(self) -> int:
        """The middle slice: as written, else nearest the middle of top and bottom. Slices are
        evenly spaced, so that is the index midpoint; a tie goes to the higher index, as in the
        shared by-eye file."""
        return self.mid_k if self.mid_k is not None else (self.top_k + self.bottom_k + 1) // 2

    @property
    def has_body(self) -> bool:
        return self.top_k is not None and self.bottom_k is not None


def _index(text: str, column: str, where: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise InputError(f"{where}: {column} {text!r} is not a slice number; give the index "
                         "along the CT's third axis (0, 1, 2 ...).")
    return int(value)


def read_levels(path: str | Path) -> list[C3Level]:
    """The rows of a levels CSV. Unreadable rows (no case, an index that is no number, only one
    of top and bottom, no slice at all) are refused together, each with its line."""
    path = Path(path)
    levels, errors = [], []
    for line, row in read_csv_rows(path, REQUIRED_COLUMNS, "a C3 levels CSV"):
        try:
            levels.append(_parse_row(row, line, path))
        except InputError as error:
            errors.append(str(error))
    if errors:
        raise InputError(f"{path.name} has {len(errors)} unreadable row(s): " + "; ".join(errors))
    if not levels:
        raise InputError(f"{path.name} lists no cases.")
    return levels


def _parse_row(row: dict, line: int, path: Path) -> C3Level:
    case = (row.get("case") or "").strip()
    where = f"line {line}" + (f" (case {case})" if case else "")
    if not case:
        raise InputError(f"{where}: the case is blank")
    top, bottom, mid = (_index(row.get(f"c3_{name}_z_index"), f"c3_{name}_z_index", where)
                        for name in ("top", "bottom", "mid"))
    if (top is None) != (bottom is None):
        raise InputError(f"{where}: give both c3_top_z_index and c3_bottom_z_index, or neither")
    if top is None and mid is None:
        raise InputError(f"{where}: no slice given; fill c3_top_z_index and c3_bottom_z_index "
                         "or c3_mid_z_index")
    ct = (row.get("ct") or "").strip()
    return C3Level(case, top, bottom, mid, (row.get("confidence") or "").strip().lower(),
                   row.get("notes") or "", (row.get("annotator") or "").strip(),
                   path.parent / ct if ct else None, line)


@dataclass(frozen=True)
class CtLocator:
    """Where a case's CT is: its ``ct`` cell, else ``ct_dir`` / ``pattern`` with {case}."""

    ct_dir: Path | None = None
    pattern: str = DEFAULT_CT_PATTERN

    def __post_init__(self) -> None:
        try:
            self.pattern.format(case="x")
        except (KeyError, IndexError, ValueError):
            raise InputError(f"--ct-pattern {self.pattern!r} may only name {{case}}, as in "
                             f"{DEFAULT_CT_PATTERN!r}.") from None

    def __call__(self, level: C3Level) -> Path:
        if level.ct is not None:
            return level.ct
        if self.ct_dir is None:
            raise InputError("no CT given: fill the ct column, or give --ct-dir (and "
                             "--ct-pattern if the files are not named <case>_ct.nii.gz)")
        return Path(self.ct_dir) / self.pattern.format(case=level.case)


def _level_problems(level: C3Level, ct: sitk.Image) -> list[str]:
    """What is wrong with one row on its CT: indices outside it, a middle outside the body,
    top below bottom, a body height no C3 has."""
    problems = []
    n = ct.GetSize()[2]
    indices = {"c3_top_z_index": level.top_k, "c3_bottom_z_index": level.bottom_k,
               "c3_mid_z_index": level.mid_k}
    outside = [f"{column} {k}" for column, k in indices.items() if k is not None and not 0 <= k < n]
    if outside:
        problems.append(f"{', '.join(outside)} outside the CT, which has slices 0 to {n - 1}: "
                        "indices count from 0 along the CT's third axis")
        return problems
    if not level.has_body:
        return problems
    low, high = sorted((level.top_k, level.bottom_k))
    if level.mid_k is not None and not low <= level.mid_k <= high:
        problems.append(f"the middle slice {level.mid_k} lies outside the body's slices {low} to "
                        f"{high}: check c3_mid_z_index")
    z_top, z_bottom = (imaging.slice_z_mm(ct, k) for k in (level.top_k, level.bottom_k))
    if z_top < z_bottom:
        problems.append(f"the top slice {level.top_k} lies below (towards the feet of) the bottom "
                        f"slice {level.bottom_k}: are top and bottom swapped?")
    slice_mm = ct.GetSpacing()[2]
    height = abs(z_top - z_bottom) + slice_mm
    if not BODY_HEIGHT_MM[0] <= height <= BODY_HEIGHT_MM[1]:
        problems.append(f"the C3 body would be {height:.1f} mm tall (slices {low} to {high}: "
                        f"{high - low + 1} slices of {slice_mm:.1f} mm), but a C3 body is about "
                        f"{BODY_HEIGHT_MM[0]:.0f}-{BODY_HEIGHT_MM[1]:.0f} mm: check the top and "
                        "bottom slices")
    return problems


def check_levels(levels: list[C3Level],
                 ct_for_case: Callable[[C3Level], Path]) -> dict[str, list[str]]:
    """Problems by case (cases without problems are left out), each readable by a clinician."""
    problems: dict[str, list[str]] = {}
    counts = Counter(level.case for level in levels)
    for level in levels:
        found = problems.setdefault(level.case, [])
        if counts[level.case] > 1:
            lines = [str(other.line) for other in levels if other.case == level.case]
            message = f"listed {counts[level.case]} times (lines {', '.join(lines)}): keep one row"
            if message not in found:
                found.append(message)
        if level.confidence not in CONFIDENCES:
            found.append(f"confidence {level.confidence!r} is not one of {', '.join(CONFIDENCES)}"
                         if level.confidence else f"confidence is blank: give "
                         f"{', '.join(CONFIDENCES[:-1])} or {CONFIDENCES[-1]}")
        try:
            ct = imaging.read_ct(ct_for_case(level))
        except InputError as error:
            found.append(f"CT: {error}".rstrip("."))
            continue
        found.extend(_level_problems(level, ct))
    return {case: found for case, found in problems.items() if found}


def problem_lines(problems: dict[str, list[str]]) -> list[str]:
    return [f"{case}: {problem}" for case, found in problems.items() for problem in found]


def summary(levels: list[C3Level]) -> str:
    """One line: how many cases, by confidence, and how many give the whole body."""
    confidence = Counter(level.confidence for level in levels)
    bodies = sum(level.has_body for level in levels)
    return (f"{len(levels)} cases ({', '.join(f'{c} {confidence[c]}' for c in CONFIDENCES)}; "
            f"{bodies} with top and bottom, {len(levels) - bodies} with the middle slice only)")


# --- writing --------------------------------------------------------------------------------


def _level_row(level: C3Level, folder: Path) -> dict[str, str]:
    def cell(k: int | None) -> str:
        return "" if k is None else str(k)

    ct = ""
    if level.ct is not None:
        ct_path = Path(os.path.abspath(level.ct))
        inside = ct_path.is_relative_to(Path(os.path.abspath(folder)))
        ct = os.path.relpath(ct_path, os.path.abspath(folder)) if inside else str(ct_path)
    return {"case": level.case, "c3_top_z_index": cell(level.top_k),
            "c3_bottom_z_index": cell(level.bottom_k), "c3_mid_z_index": cell(level.mid_k),
            "confidence": level.confidence, "notes": level.notes, "annotator": level.annotator,
            "ct": ct}


def write_level_row(path: str | Path, level: C3Level) -> Path:
    """Add the case's row to a levels CSV, or replace its row: one row per case. The other
    rows are kept as they are; the file is replaced atomically."""
    path = Path(path)
    header, rows = list(COLUMNS), []
    if path.is_file():
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            existing = list(reader.fieldnames or [])
            if not set(REQUIRED_COLUMNS) <= set(existing):
                raise InputError(f"{path} is not a C3 levels CSV (its first line is not "
                                 f"{','.join(REQUIRED_COLUMNS)}...): choose another file.")
            header = existing + [c for c in COLUMNS if c not in existing]
            rows = [row for row in reader if (row.get("case") or "").strip() != level.case]
    rows.append(_level_row(level, path.parent))
    write_csv_atomic(path, header, rows)
    return path


class LevelProblems(InputError):
    """The levels do not validate; ``problems`` holds them by case."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        n = sum(len(found) for found in problems.values())
        super().__init__(f"{n} problem(s) in {len(problems)} case(s); nothing was written: fix "
                         "them (c3sarcopenia check-levels lists them) or drop those rows.")


def exclude_cases(levels: list[C3Level], exclude: list[str | Path]) -> list[C3Level]:
    """The levels whose case no CSV of ``exclude`` lists (keep the test set out of training)."""
    dropped = {level.case for path in exclude for level in read_levels(path)}
    return [level for level in levels if level.case not in dropped]


def ingest_levels(levels: list[C3Level], ct_for_case: Callable[[C3Level], Path],
                  out_dir: str | Path,
                  progress: Callable[[int, int, str], None] | None = None) -> Path:
    """Check every level, then write per case ``<case>_section.nii.gz`` (the 33 mm C3 section
    inside the body, centred on the body's middle slice, uint8 on the CT grid) and
    ``manifest.csv`` for ``train`` and ``evaluate``. A ``<case>_muscle.nii.gz`` beside the CT
    (what Slicer's "Save as ground truth" writes) enters as the case's muscle mask, so the
    same manifest trains stage 2 too."""
    if not levels:
        raise InputError("no cases left to ingest: every case was excluded.")
    problems = check_levels(levels, ct_for_case)
    if problems:
        raise LevelProblems(problems)
    out_dir = Path(out_dir)
    rows = []
    for i, level in enumerate(levels):
        if progress:
            progress(i, len(levels), level.case)
        ct_path = Path(os.path.abspath(ct_for_case(level)))
        ct = imaging.read_ct(ct_path)
        section = imaging.c3_section_mask(ct, level.middle_k)
        label = f"{level.case}_section.nii.gz"
        write_image_atomic(imaging.mask_image(section, ct), out_dir / label)
        muscle = ct_path.parent / f"{level.case}_muscle.nii.gz"
        rows.append({"case_id": level.case, "ct": str(ct_path), "section_mask": label,
                     "muscle_mask": str(muscle) if muscle.is_file() else "",
                     "c3_slice_k": str(level.middle_k),
                     "c3_top_k": "" if level.top_k is None else str(level.top_k),
                     "c3_bottom_k": "" if level.bottom_k is None else str(level.bottom_k),
                     "confidence": level.confidence})
    write_csv_atomic(out_dir / "manifest.csv", LEVEL_MANIFEST_COLUMNS, rows)
    return out_dir / "manifest.csv"
