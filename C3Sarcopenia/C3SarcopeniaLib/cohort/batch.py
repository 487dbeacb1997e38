"""Measuring a whole cohort: one CSV row per CT, written as each case finishes.

A cohort run takes hours and some scans are always unusable, so a failing case is recorded
with its reason and the run goes on, and a rerun of the same command skips the cases already
measured: an interrupted run loses at most the case it was on.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import imaging
from ..errors import InputError
from .evaluation import clinical_from_row
from ..fileio import write_text_atomic
from ..measures import ClinicalInfo
from .ingest import SURVIVAL_COLUMNS
from ..dicomout import dicom_results_writer
from ..models import Ensemble
from ..pipeline import Prediction, predict
from ..report import write_prediction

MEASURE_COLUMNS = ("c3_slice_k", "c3_slice_z_mm", "muscle_csa_cm2", "muscle_mean_hu",
                   "l3_csa_cm2", "smi_cm2_m2", "muscle_status", "paravertebral_csa_cm2",
                   "scm_right_csa_cm2", "scm_left_csa_cm2")
CLINICAL_COLUMNS = ("age", "sex", "height_cm", "weight_kg")
_HIDDEN = (".", "__")


@dataclass(frozen=True)
class BatchCase:
    """One CT to measure; ``row`` is its manifest row (clinical fields), None for a folder
    case (clinical fields then come from the DICOM tags, where there are any)."""

    case_id: str
    path: Path
    row: dict | None = None


def find_cases(source: str | Path) -> list[BatchCase]:
    """The cases of a manifest CSV, or of a folder: each CT file (NIfTI, NRRD, MHA) and each
    sub-folder (a DICOM series) is a case, named after it."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        from ..training import read_manifest

        return [BatchCase(row["case_id"], Path(row["ct"]), row) for row in read_manifest(source)]
    if not source.is_dir():
        raise InputError(f"{source} is neither a folder of CTs nor a manifest .csv: check the "
                         "path.")
    cases = [BatchCase(_case_name(path), path) for path in sorted(source.iterdir())
             if not path.name.startswith(_HIDDEN)
             and (path.is_dir() or path.name.lower().endswith(imaging.VOLUME_SUFFIXES))]
    if not cases:
        raise InputError(f"{source} holds no CT: put one NIfTI/NRRD/MHA file or one DICOM "
                         "series folder per patient in it.")
    names = [case.case_id for case in cases]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"several CTs are named {', '.join(repeated)} (apart from the file "
                         "type): rename them so that each case has its own name.")
    return cases


def _case_name(path: Path) -> str:
    lower = path.name.lower()
    suffix = next((s for s in imaging.VOLUME_SUFFIXES if lower.endswith(s)), "")
    return path.name[:len(path.name) - len(suffix)]


def batch_columns(cases: list[BatchCase]) -> tuple[str, ...]:
    """The CSV's columns; the manifest's survival columns are carried along so that the
    batch CSV feeds 'c3sarcopenia survival --smi smi_cm2_m2' directly."""
    carried = tuple(c for c in SURVIVAL_COLUMNS if cases[0].row and c in cases[0].row)
    return ("case_id", "path", *MEASURE_COLUMNS, *CLINICAL_COLUMNS, *carried,
            "warnings", "error", "seconds")


def done_cases(out_csv: Path, columns: tuple[str, ...]) -> set[str]:
    """Cases already measured without error; the CSV keeps only those, so that failed and
    half-written cases are retried and each case has one row."""
    if not out_csv.is_file() or out_csv.stat().st_size == 0:
        write_text_atomic(out_csv, ",".join(columns) + "\n")
        return set()
    with out_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != columns:
            raise InputError(f"{out_csv} holds another table (columns "
                             f"{', '.join(reader.fieldnames or ())}): give a new --out file, "
                             "or the one an earlier run of this input wrote.")
        rows = list(reader)
    kept = [row for row in rows if not row["error"] and row["seconds"]]
    if len(kept) < len(rows):
        write_text_atomic(out_csv, _csv_text(columns, kept, header=True))
    return {row["case_id"] for row in kept}


def _csv_text(columns: tuple[str, ...], rows: list[dict], header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def append_row(out_csv: Path, columns: tuple[str, ...], row: dict) -> None:
    """One write of one whole line, flushed to disk before the next case starts."""
    with out_csv.open("a", newline="", encoding="utf-8") as handle:
        handle.write(_csv_text(columns, [row]))
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class CaseResult:
    prediction: Prediction
    clinical: ClinicalInfo  # the fields the L3 estimate used


def measure_case(case: BatchCase, section_models: Ensemble, muscle_models: Ensemble,
                 save_dir: Path | None = None, dicom_out: bool = False) -> CaseResult:
    ct = imaging.read_ct(case.path)
    dicom_writer = dicom_results_writer(case.path, ct) if dicom_out else None
    clinical = (clinical_from_row(case.row) if case.row is not None
                else imaging.read_clinical_tags(case.path))
    # a manifest may name an SCM engulfed by nodes (column scm_nodal: right or left)
    scm_nodal = (case.row or {}).get("scm_nodal", "").strip().lower() or None
    prediction = predict(ct, clinical, muscle_models, section_models, scm_nodal=scm_nodal)
    if save_dir is not None:
        write_prediction(save_dir / case.case_id, ct, prediction, dicom_writer)
    return CaseResult(prediction, clinical)


def result_row(case: BatchCase, columns: tuple[str, ...], result: CaseResult | None,
               error: str, seconds: float) -> dict:
    row = {"case_id": case.case_id, "path": str(case.path), "error": error,
           "seconds": f"{seconds:.1f}"}
    row.update({c: case.row.get(c, "") for c in SURVIVAL_COLUMNS if c in columns})
    if result is not None:
        values = result.prediction.as_dict()
        row.update({c: _cell(values[c]) for c in MEASURE_COLUMNS})
        row["warnings"] = " | ".join(result.prediction.warnings)
        clinical = result.clinical
        row.update(age=_cell(clinical.age_years), sex=_cell(clinical.sex),
                   height_cm=_cell(clinical.height_cm), weight_kg=_cell(clinical.weight_kg))
    return row


def _cell(value) -> str:
    if value is None:
        return ""
    return str(round(value, 3)) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class BatchSummary:
    measured: int
    failed: int
    skipped: int  # already in the CSV from an earlier run


def run_batch(cases: list[BatchCase], out_csv: str | Path, section_models: Ensemble,
              muscle_models: Ensemble, save_dir: str | Path | None = None,
              progress: Callable[[int, int, str, dict], None] | None = None,
              dicom_out: bool = False) -> BatchSummary:
    """Measure each case not yet in the CSV and append its row; a case whose input is
    unusable (InputError) gets its error in the row and the batch goes on. ``dicom_out``
    adds each case's DICOM SEG and SR to its folder in ``save_dir``."""
    out_csv = Path(out_csv)
    columns = batch_columns(cases)
    done = done_cases(out_csv, columns)
    measured = failed = 0
    for i, case in enumerate(cases):
        if case.case_id in done:
            continue
        started = time.monotonic()
        result, error = None, ""
        try:
            result = measure_case(case, section_models, muscle_models,
                                      Path(save_dir) if save_dir else None, dicom_out)
            measured += 1
        except InputError as problem:
            error = str(problem)
            failed += 1
        row = result_row(case, columns, result, error, time.monotonic() - started)
        append_row(out_csv, columns, row)
        if progress:
            progress(i, len(cases), case.case_id, row)
    return BatchSummary(measured, failed, len(done & {c.case_id for c in cases}))
