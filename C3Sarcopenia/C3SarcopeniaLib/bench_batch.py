"""The batch figure of the benchmark: cases per hour of ``batch`` over the same small
phantoms in this process (0 workers) and on local clusters of N worker processes, and the
gain of the most workers over the fewest.

A cluster's start (worker processes, torch, the models loaded in each) is timed apart from
the cases: over a cohort of hundreds it is paid once.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .cohort.batch import BatchJob, InProcessRunner, find_cases, run_batch
from .errors import InputError


@dataclass
class BatchTimes:
    workers: int       # 0: in this process, no cluster
    cases: int
    measured: int
    failed: int
    start_s: float     # cluster start and models loaded, before the first case
    elapsed_s: float   # from then to the last row
    cases_per_hour: float
    phantoms: str


def parse_workers(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2): the worker counts to time (0: in this process)."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 0:
        raise InputError(f"--batch-workers takes worker counts separated by commas, such as "
                         f"1,2 (0: in this process), not {text!r}.")
    return counts


class _ReadyClock:
    """Notes when the runner has loaded the models, so that the start is timed apart."""

    def __init__(self, runner) -> None:
        self.runner, self.ready = runner, None

    def prepare(self, job: BatchJob) -> None:
        self.runner.prepare(job)
        self.ready = time.perf_counter()

    def outcomes(self, task, work):
        return self.runner.outcomes(task, work)


def time_batch(out_dir: Path, cohort: Path, job: BatchJob, workers: int,
               phantoms: str) -> BatchTimes:
    """``batch`` over the cohort from an empty CSV, in this process or on ``workers``."""
    out_csv = Path(out_dir) / "batch" / f"results_{workers}_workers.csv"
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    out_csv.unlink(missing_ok=True)
    clock: list[_ReadyClock] = []

    @contextmanager
    def timed_runner() -> Iterator[_ReadyClock]:
        if workers == 0:
            clock.append(_ReadyClock(InProcessRunner()))
            yield clock[0]
            return
        from .cohort.cluster import dask_runner  # distributed: only for a cluster

        with dask_runner(workers) as runner:
            clock.append(_ReadyClock(runner))
            yield clock[0]

    started = time.perf_counter()
    summary = run_batch(find_cases(cohort), out_csv, job, timed_runner)
    ended = time.perf_counter()
    done = summary.measured + summary.failed
    ready = clock[0].ready
    return BatchTimes(workers, done, summary.measured, summary.failed, ready - started,
                      ended - ready, 3600.0 * done / (ended - ready), phantoms)


def time_batches(out_dir: Path, cohort: Path, job: BatchJob, worker_counts: tuple[int, ...],
                 phantoms: str) -> dict:
    """Each worker count on the same phantoms, and the gain of the last over the first."""
    times = [time_batch(out_dir, cohort, job, n, phantoms) for n in worker_counts]
    ratio = (times[-1].cases_per_hour / times[0].cases_per_hour if len(times) > 1 else None)
    return {"times": times, "ratio": ratio}


def batch_lines(result: dict) -> list[str]:
    """The bench table's lines on the batch."""
    lines = []
    for batch in result["batch_workers"].values():
        where = ("in one process" if batch["workers"] == 0 else
                 f"on {batch['workers']} worker process{'es' if batch['workers'] > 1 else ''}")
        lines.append(f"batch {where}: {batch['cases']} {batch['phantoms']} in "
                     f"{batch['elapsed_s']:.0f} s after a {batch['start_s']:.1f} s start: "
                     f"{batch['cases_per_hour']:.0f} cases per hour")
    counts = list(result["batch_workers"])
    if result.get("batch_workers_ratio") is not None:
        lines.append(f"batch gain, {counts[-1]} workers over {counts[0]}: "
                     f"{result['batch_workers_ratio']:.2f}x")
    return lines
