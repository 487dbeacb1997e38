"""Batch cases on a Dask ``distributed`` cluster: a local one of N worker processes
(``batch --workers N``) or one already running (``batch --scheduler ADDRESS``: a SLURM
allocation through dask-jobqueue, a GPU node through dask-cuda...).

Each worker process loads the models once and measures one case at a time with its share of
the cores; the rows come back to the client, which alone writes the table (batch.run_batch).
A worker process that dies (out of memory, a crash in a native library) takes its case with
it: the scheduler gives the case to another worker once more, and a second death makes it a
failed row. Imported only when a batch asks for a cluster: distributed is slow to import.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import uuid
from contextlib import contextmanager
from typing import Iterator

import dask
from distributed import Client, KilledWorker, LocalCluster, WorkerPlugin, as_completed

from ..errors import InputError
from .batch import BatchCase, BatchJob, Outcome, Task, error_line, stage_models

ALLOWED_WORKER_DEATHS = 1  # a case's worker may die once: it is tried on another
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
LOST_CASE = ("the worker process measuring this case died each time it was tried (twice on "
             "the cluster batch starts, as often as the cluster allows on one of your own): "
             "too little memory for this CT, or a crash in a library; see the "
             "worker's log, or measure the case alone with 'c3sarcopenia predict'.")


def available_cores() -> int:
    """The cores this process may use (a SLURM or container limit included)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class WorkerSetup(WorkerPlugin):
    """Each worker process's share of the cores for torch and SimpleITK: the cores over the
    local workers, or on a cluster the worker's cores over its threads (the cases it runs at
    once); without it N workers would fight over every core. And glibc's memory thresholds
    (generous_malloc)."""

    name = "c3sarcopenia-worker-setup"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def setup(self, worker) -> None:
        import SimpleITK as sitk
        import torch

        threads = self.threads or max(1, available_cores() // worker.state.nthreads)
        torch.set_num_threads(threads)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        generous_malloc()


def generous_malloc() -> None:
    """glibc: keep arrays up to 32 MB off mmap and the heap untrimmed up to 64 MB. Dask's
    workers set MALLOC_TRIM_THRESHOLD_, which freezes glibc's thresholds at their small
    defaults: each large array of a case was then mapped and unmapped afresh, and a case
    took twice as long as in a plain process."""
    if not sys.platform.startswith("linux"):
        return
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # absent from musl
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        mallopt(_M_TRIM_THRESHOLD, 64 << 20)


class TerminalInterruptIgnored(WorkerPlugin):
    """Ctrl-C in the terminal reaches the local worker processes too, which would die with
    pages of tracebacks; they ignore it, and the batch stops them as it closes the cluster."""

    name = "c3sarcopenia-terminal-interrupt-ignored"

    def setup(self, worker) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # setup runs in the main thread


def _load_models(job: BatchJob) -> None:
    stage_models(job)  # kept in the worker's process; nothing is sent back


class DaskRunner:
    """The cases as tasks of a Dask client's cluster, yielded as they finish."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def prepare(self, job: BatchJob) -> None:
        """Each worker loads the models now (a worker started later does so on its first
        case): a refusal such as a missing GPU comes once, before any case."""
        self.client.run(_load_models, job)

    def outcomes(self, task: Task, work: list[tuple[BatchCase, str]]) -> Iterator[Outcome]:
        """The cases as tasks, no more at a time than the workers run at once: a worker then
        holds only the case it runs, and a worker's death is blamed on that case alone (the
        scheduler would otherwise send a worker the next case too)."""
        waiting = list(reversed(work))
        futures: dict = {}
        finished = as_completed()

        def submit_more() -> None:
            while waiting and len(futures) < max(1, sum(self.client.nthreads().values())):
                case, case_key = waiting.pop()
                future = self.client.submit(
                    task, case, case_key, pure=False,
                    key=f"c3sarcopenia-{case.case_id}-{uuid.uuid4().hex[:8]}")
                futures[future] = case
                finished.add(future)

        submit_more()
        try:
            for future in finished:
                yield futures.pop(future), _outcome(future)
                future.release()
                submit_more()
        finally:  # interrupted: the cases not yet back are given up, to be run again
            self.client.cancel(list(futures))


def _outcome(future) -> dict | str:
    """The case's row, or why there is none."""
    try:
        return future.result()
    except KilledWorker:
        return LOST_CASE
    except Exception as error:  # noqa: BLE001 - the task catches its own; this is Dask's
        return error_line(error)


def local_threads(workers: int) -> int:
    """Each local worker's share of the cores."""
    return max(1, available_cores() // workers)


def scheduler_settings(workers: int) -> dict:
    """The settings of a cluster this command starts (a running cluster has its own): a case
    whose worker died is tried once more, and each worker's native libraries take its share
    of the cores (Dask's default: one)."""
    threads = local_threads(workers)
    return {"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS,
            **{f"distributed.nanny.pre-spawn-environ.{name}": threads
               for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}


@contextmanager
def local_cluster(workers: int) -> Iterator[LocalCluster]:
    """N worker processes on this machine, one case at a time each (the scheduler's web
    pages on a free port)."""
    with dask.config.set(scheduler_settings(workers)):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
    try:
        yield cluster
    finally:
        cluster.close()


@contextmanager
def dask_runner(workers: int | None = None,
                scheduler: str | None = None) -> Iterator[DaskRunner]:
    """A runner on a new local cluster of ``workers`` processes, or on the cluster whose
    scheduler listens at ``scheduler`` (its own allowed-failures setting applies there)."""
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, ValueError) as error:
            raise InputError(f"no Dask scheduler answers at {scheduler} ({error}): start the "
                             "cluster first, or check the address (tcp://HOST:8786).") from None
        with client:
            client.register_plugin(WorkerSetup())
            yield DaskRunner(client)
        return
    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.register_plugin(WorkerSetup(local_threads(workers)))
        client.register_plugin(TerminalInterruptIgnored())
        yield DaskRunner(client)
