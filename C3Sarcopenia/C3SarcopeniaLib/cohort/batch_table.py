"""The batch results table: its columns, what a rerun keeps of it, and one row per case.

Only the process that runs the batch (the client of a cluster) writes the table, under an OS
lock, one whole line at a time; a rerun keeps the rows measured without error from an input
that has not changed since, and measures the rest again.

Columns, in order (README "Cohorts" and docs/cohort.md; other tools, such as a review
report, read them by name): case_id, path, input_key, the MEASURE_COLUMNS, the
CLINICAL_COLUMNS, the manifest's survival columns when it has them, warnings (joined by
" | "), error (empty when measured), seconds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..fileio import csv_text, write_text_atomic
from .ingest import SURVIVAL_COLUMNS

if TYPE_CHECKING:
    from .batch import BatchCase

MEASURE_COLUMNS = ("c3_slice_k", "c3_slice_z_mm", "muscle_csa_cm2", "muscle_mean_hu",
                   "l3_csa_cm2", "smi_cm2_m2", "muscle_status", "paravertebral_csa_cm2",
                   "scm_right_csa_cm2", "scm_left_csa_cm2", "muscle_fold_disagreement")
CLINICAL_COLUMNS = ("age", "sex", "height_cm", "weight_kg")
WARNING_SEPARATOR = " | "  # joins a case's warnings into one cell
# The manifest fields a measurement uses besides the CT: a change in them makes a row stale.
MEASURED_ROW_FIELDS = (*CLINICAL_COLUMNS, "scm_nodal")


def batch_columns(cases: list[BatchCase]) -> tuple[str, ...]:
    """The CSV's columns; the manifest's survival columns are carried along so that the
    batch CSV feeds 'c3sarcopenia survival --smi smi_cm2_m2' directly."""
    carried = tuple(c for c in SURVIVAL_COLUMNS if cases[0].row and c in cases[0].row)
    return ("case_id", "path", "input_key", *MEASURE_COLUMNS, *CLINICAL_COLUMNS, *carried,
            "warnings", "error", "seconds")


def input_key(case: BatchCase) -> str:
    """What a row was measured from: the size and modification time of each file of the CT
    (every file under a DICOM series folder) and the manifest fields the measurement uses.
    A CT replaced since, or a corrected height, gives another key; reading the files' content
    instead would cost a whole read of the archive at each resume."""
    digest = hashlib.sha1()
    path = Path(case.path)
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            name = file.relative_to(path) if path.is_dir() else file.name
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    except OSError:
        return "missing"  # the case fails on reading, and is tried again at the next run
    if case.row is not None:
        fields = {name: case.row.get(name, "") for name in MEASURED_ROW_FIELDS}
        digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class KeptRows:
    """What a rerun keeps: the cases measured from their current input."""

    done: set[str]
    stale: int  # rows dropped because their case's input changed since


def resume_table(out_csv: Path, columns: tuple[str, ...], keys: dict[str, str]) -> KeptRows:
    """Start the table, or keep of it the rows measured without error from the input the case
    has now (``keys``: case id to input_key), one per case; failed, half-written, stale and
    repeated rows go, so that those cases are measured again and each has one row. Rows of
    cases no longer in the input are kept."""
    if not out_csv.is_file() or out_csv.stat().st_size == 0:
        write_text_atomic(out_csv, ",".join(columns) + "\n")
        return KeptRows(set(), 0)
    with out_csv.open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if tuple(reader.fieldnames or ()) != columns:
        raise InputError(f"{out_csv} holds another table (columns "
                         f"{', '.join(reader.fieldnames or ())}): give a new --out file, "
                         "or the one an earlier run of this input wrote.")
    rows = list(reader)
    kept, seen, stale = [], set(), 0
    for row in rows:
        if row["error"] or not row["seconds"] or row["case_id"] in seen:
            continue
        if row["case_id"] in keys and row["input_key"] != keys[row["case_id"]]:
            stale += 1
            continue
        kept.append(row)
        seen.add(row["case_id"])
    if len(kept) < len(rows) or not text.endswith("\n"):  # a line cut short: end it
        write_text_atomic(out_csv, csv_text(columns, kept))
    return KeptRows(seen, stale)


def append_row(out_csv: Path, columns: tuple[str, ...], row: dict) -> None:
    """One write of one whole line, flushed to disk before the next case is recorded."""
    with out_csv.open("a", newline="", encoding="utf-8") as handle:
        handle.write(csv_text(columns, [row], header=False))
        handle.flush()
        os.fsync(handle.fileno())


def cell(value) -> str:
    if value is None:
        return ""
    return str(round(value, 3)) if isinstance(value, float) else str(value)
