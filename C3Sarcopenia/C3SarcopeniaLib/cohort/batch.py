"""Measuring a whole cohort: one CSV row per CT, written as each case finishes.

A cohort run takes hours and some scans are always unusable, so a failing case is recorded
with its reason and the run goes on, and a rerun of the same command skips the cases already
measured: an interrupted run loses at most the cases it was on. The cases run in this process
one after another (InProcessRunner) or on the worker processes of a Dask cluster
(cluster.DaskRunner); either way the same task measures a case and only this process writes
the table (batch_table).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol, Tuple, Union

from .. import imaging
from ..errors import InputError
from ..fileio import os_error_line, remove_if_empty, sole_writer
from ..report import remove_result
from .batch_table import (MEASURE_COLUMNS, WARNING_SEPARATOR, append_row, batch_columns, cell,
                          input_key, resume_table)
from .ingest import SURVIVAL_COLUMNS

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
    sub-folder (a DICOM series) is a case, named after it. Paths are made absolute: the
    worker processes of a cluster may run in another folder."""
    source = Path(source).absolute()
    if source.is_file() and source.suffix.lower() == ".csv":
        from ..training import read_manifest

        return [BatchCase(row["case_id"], Path(row["ct"]).absolute(), row)
                for row in read_manifest(source)]
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


@dataclass(frozen=True)
class BatchJob:
    """What every case of a batch shares. It travels to the worker processes, so it names
    the models instead of holding them: each process loads them once (stage_models)."""

    models_dir: Path
    device: str = "auto"
    folds: int | None = None
    save_dir: Path | None = None
    dicom_out: bool = False


@functools.lru_cache(maxsize=2)
def _loaded_models(models_dir: str, device: str, folds: int | None):
    from ..models import load_ensemble

    return (load_ensemble(Path(models_dir) / "section", device, folds),
            load_ensemble(Path(models_dir) / "muscle", device, folds))


_LOADING = threading.Lock()  # a worker's threads start their first cases together


def stage_models(job: BatchJob):
    """The (section, muscle) ensembles of the job, loaded once per process."""
    with _LOADING:
        return _loaded_models(str(job.models_dir), job.device, job.folds)


def measure_case(case: BatchCase, job: BatchJob):
    """The prediction and the clinical fields it used; the case's result folder in
    ``job.save_dir`` when there is one."""
    from ..dicomout import dicom_results_writer
    from ..pipeline import predict
    from ..report import write_prediction
    from .evaluation import clinical_from_row

    section_models, muscle_models = stage_models(job)
    ct = imaging.read_ct(case.path)
    dicom_writer = dicom_results_writer(case.path, ct) if job.dicom_out else None
    clinical = (clinical_from_row(case.row) if case.row is not None
                else imaging.read_clinical_tags(case.path))
    # a manifest may name an SCM engulfed by nodes (column scm_nodal: right or left)
    scm_nodal = (case.row or {}).get("scm_nodal", "").strip().lower() or None
    prediction = predict(ct, clinical, muscle_models, section_models, scm_nodal=scm_nodal)
    if job.save_dir is not None:
        write_prediction(job.save_dir / case.case_id, ct, prediction, dicom_writer)
    return prediction, clinical


def case_row(job: BatchJob, columns: tuple[str, ...], case: BatchCase, key: str) -> dict:
    """The task each case is: its CSV row, measured or with the error that stopped it,
    whatever the exception (a bug or a library's error is one row too, not the end of the
    run). The case's result folder holds this run's result or nothing."""
    started = time.monotonic()
    folder = job.save_dir / case.case_id if job.save_dir is not None else None
    if folder is not None:
        remove_result(folder)
    try:
        prediction, clinical = measure_case(case, job)
    except Exception as error:  # noqa: BLE001 - every failure is the case's row
        if folder is not None:
            remove_result(folder)
            remove_if_empty(folder)
        return failed_row(case, columns, key, error_line(error), time.monotonic() - started)
    row = _row_start(case, columns, key, time.monotonic() - started)
    values = prediction.as_dict()
    row.update({c: cell(values[c]) for c in MEASURE_COLUMNS})
    row["warnings"] = WARNING_SEPARATOR.join(prediction.warnings)
    row.update(age=cell(clinical.age_years), sex=cell(clinical.sex),
               height_cm=cell(clinical.height_cm), weight_kg=cell(clinical.weight_kg))
    return row


def error_line(error: BaseException) -> str:
    """One line for the error column: the clinician's message of an input error, else the
    exception and where it was raised (for a bug report)."""
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, OSError):
        return os_error_line(error)
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    place = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return " ".join(f"{type(error).__name__}: {error}{place}".split())


def failed_row(case: BatchCase, columns: tuple[str, ...], key: str, error: str,
               seconds: float) -> dict:
    return {**_row_start(case, columns, key, seconds), "error": error}


def _row_start(case: BatchCase, columns: tuple[str, ...], key: str, seconds: float) -> dict:
    row = {"case_id": case.case_id, "path": str(case.path), "input_key": key, "error": "",
           "seconds": f"{seconds:.1f}"}
    row.update({c: case.row.get(c, "") for c in SURVIVAL_COLUMNS if c in columns})
    return row


# A case's task: (case, its input_key) -> its row. A runner yields each case with its row,
# or with the one-line reason it got none (its worker process died).
Task = Callable[[BatchCase, str], dict]
Outcome = Tuple[BatchCase, Union[dict, str]]


class CaseRunner(Protocol):
    """Where the cases run: ``prepare`` loads the models there (a refusal, such as a missing
    GPU, comes before any case), ``outcomes`` yields each case as it finishes."""

    def prepare(self, job: BatchJob) -> None: ...

    def outcomes(self, task: Task, work: list[tuple[BatchCase, str]]) -> Iterator[Outcome]: ...


class InProcessRunner:
    """Each case in this process, one after another: the batch without a cluster."""

    def prepare(self, job: BatchJob) -> None:
        stage_models(job)

    def outcomes(self, task: Task, work: list[tuple[BatchCase, str]]) -> Iterator[Outcome]:
        for case, key in work:
            yield case, task(case, key)


@dataclass(frozen=True)
class BatchSummary:
    measured: int
    failed: int
    skipped: int  # already in the CSV from an earlier run
    stale: int = 0  # rows of an earlier run dropped: their input changed since


def run_batch(cases: list[BatchCase], out_csv: str | Path, job: BatchJob,
              open_runner: Callable[[], ContextManager[CaseRunner]] | None = None,
              progress: Callable[[int, int, str, dict], None] | None = None,
              task: Callable[..., dict] = case_row) -> BatchSummary:
    """Measure each case not yet in the CSV (or measured from an input that has changed) and
    append its row as it comes back. ``open_runner`` gives where the cases run (default:
    this process; cluster.dask_runner for a cluster), opened only once the table is locked
    and there is work to do. ``task`` measures one case (case_row; a test may give another
    function of the same arguments)."""
    out_csv = Path(out_csv)
    columns = batch_columns(cases)
    keys = {case.case_id: input_key(case) for case in cases}
    measured = failed = 0
    with sole_writer(out_csv):
        kept = resume_table(out_csv, columns, keys)
        work = [(case, keys[case.case_id]) for case in cases if case.case_id not in kept.done]
        if work:
            with (open_runner or _in_process)() as runner:
                runner.prepare(job)
                for case, outcome in runner.outcomes(functools.partial(task, job, columns),
                                                     work):
                    row = outcome if isinstance(outcome, dict) else \
                        _lost_case_row(case, job, columns, keys, outcome)
                    append_row(out_csv, columns, row)
                    measured, failed = measured + (not row["error"]), failed + bool(row["error"])
                    if progress:
                        progress(measured + failed - 1, len(work), row["case_id"], row)
    return BatchSummary(measured, failed, len(cases) - len(work), kept.stale)


def _in_process() -> ContextManager[CaseRunner]:
    return contextlib.nullcontext(InProcessRunner())


def _lost_case_row(case: BatchCase, job: BatchJob, columns: tuple[str, ...],
                   keys: dict[str, str], reason: str) -> dict:
    """The row of a case whose worker died before it answered; what it had written goes."""
    if job.save_dir is not None:
        remove_result(job.save_dir / case.case_id)
        remove_if_empty(job.save_dir / case.case_id)
    return failed_row(case, columns, keys[case.case_id], reason, 0.0)
