"""batch on a Dask cluster, and what a batch must survive: a case that raises anything, a
worker process that dies, an interrupted run, a second run on the same table, a replaced CT.

One local cluster of two worker processes (made by the same function as 'batch --workers')
serves the module: CI has two cores, and each cluster costs seconds to start.
"""

import csv
import os
import shutil
from functools import partial

import pytest

from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.cohort import batch
from C3SarcopeniaLib.cohort.batch import BatchJob, case_row, find_cases, run_batch
from C3SarcopeniaLib.cohort.batch_table import MEASURE_COLUMNS
from C3SarcopeniaLib.fileio import sole_writer
from C3SarcopeniaLib.training import read_manifest

distributed = pytest.importorskip("distributed", reason="distributed is a dependency of "
                                                        "c3sarcopenia: pip install -e .")
from C3SarcopeniaLib.cohort.cluster import LOST_CASE, dask_runner, local_cluster  # noqa: E402


@pytest.fixture(scope="module")
def scheduler():
    with local_cluster(2) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def ct_folder(tmp_path, phantom_cohort):
    """Three small phantom CTs named after their cases (three the two-fold test models
    measure: they refuse phantom 1's level)."""
    folder = tmp_path / "cts"
    folder.mkdir()
    rows = read_manifest(phantom_cohort)
    for name, row in zip(("alpha", "beta", "gamma"), (rows[0], rows[2], rows[3])):
        shutil.copy(row["ct"], folder / f"{name}.nii.gz")
    return folder


def read_rows(path) -> dict:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_case = {row["case_id"]: row for row in rows}
    assert len(by_case) == len(rows), "a case has two rows"
    return by_case


def cli(source, out, models, *extra) -> int:
    return main(["batch", str(source), "--out", str(out), "--models", str(models),
                 "--device", "cpu", "--folds", "2", *map(str, extra)])


def test_a_two_worker_cluster_gives_the_single_process_results(tmp_path, ct_folder,
                                                                tiny_models, scheduler):
    alone, clustered = tmp_path / "alone.csv", tmp_path / "cluster.csv"
    assert cli(ct_folder, alone, tiny_models) == 0
    assert cli(ct_folder, clustered, tiny_models, "--scheduler", scheduler,
               "--save-dir", tmp_path / "cases") == 0
    expected, got = read_rows(alone), read_rows(clustered)
    assert sorted(got) == ["alpha", "beta", "gamma"]
    for case, row in got.items():
        assert row["error"] == "" and float(row["muscle_csa_cm2"]) > 0
        for column in ("input_key", *MEASURE_COLUMNS, "warnings"):
            assert row[column] == expected[case][column], (case, column)
        assert (tmp_path / "cases" / case / "result.json").is_file()  # written by the worker


def test_the_local_cluster_of_the_command_shares_the_cores(tmp_path, ct_folder, tiny_models,
                                                           monkeypatch, capsys):
    """--workers 2: its own cluster, each worker with its half of the cores for torch."""
    import torch

    from C3SarcopeniaLib.cohort.cluster import DaskRunner, available_cores

    threads = {}
    prepare = DaskRunner.prepare

    def prepare_and_look(self, job):
        prepare(self, job)
        threads.update(self.client.run(torch.get_num_threads))

    monkeypatch.setattr(DaskRunner, "prepare", prepare_and_look)
    assert cli(ct_folder, tmp_path / "r.csv", tiny_models, "--workers", "2") == 0
    assert "Measured 3, failed 0" in capsys.readouterr().out
    assert len(read_rows(tmp_path / "r.csv")) == 3
    assert list(threads.values()) == [max(1, available_cores() // 2)] * 2


def _kill_beta(attempts, job, columns, case, key):
    """A case that kills its worker process, as a crash in a native library would."""
    if case.case_id == "beta":
        with open(attempts, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        os._exit(1)
    return case_row(job, columns, case, key)


def test_a_case_that_kills_its_worker_is_tried_twice_then_failed(tmp_path, ct_folder,
                                                                 tiny_models, scheduler):
    attempts, out, saved = tmp_path / "attempts.txt", tmp_path / "r.csv", tmp_path / "cases"
    (saved / "beta").mkdir(parents=True)
    (saved / "beta" / "result.json").write_text("{}")  # an earlier run's result
    job = BatchJob(tiny_models, "cpu", 2, saved)
    summary = run_batch(find_cases(ct_folder), out, job, partial(dask_runner, None, scheduler),
                        task=partial(_kill_beta, attempts))
    assert (summary.measured, summary.failed) == (2, 1)
    pids = attempts.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # once more, on a fresh worker process
    rows = read_rows(out)
    assert rows["beta"]["error"] == LOST_CASE and rows["beta"]["muscle_csa_cm2"] == ""
    assert rows["alpha"]["error"] == rows["gamma"]["error"] == ""
    assert not (saved / "beta").exists()


def test_an_interrupted_cluster_run_resumes_without_losing_or_repeating_rows(
        tmp_path, ct_folder, tiny_models, scheduler):
    out, cases = tmp_path / "r.csv", find_cases(ct_folder)
    job = BatchJob(tiny_models, "cpu", 2)
    runner = partial(dask_runner, None, scheduler)

    def interrupt(i, n, case_id, row):
        raise KeyboardInterrupt  # Ctrl-C once the first row is written

    with pytest.raises(KeyboardInterrupt):
        run_batch(cases, out, job, runner, interrupt)
    first = read_rows(out)
    assert len(first) == 1 and out.read_text().endswith("\n")
    summary = run_batch(cases, out, job, runner)
    assert (summary.measured, summary.skipped) == (2, 1)
    rows = read_rows(out)
    assert sorted(rows) == ["alpha", "beta", "gamma"]
    (done,) = first
    assert rows[done] == first[done]  # kept, not measured again


def test_a_case_raising_any_exception_is_an_error_row_and_exit_1(tmp_path, ct_folder,
                                                                 tiny_models, monkeypatch,
                                                                 capsys):
    read_ct = batch.imaging.read_ct

    def crashing_reader(path):
        if "beta" in str(path):
            raise ValueError("a library's bug")
        return read_ct(path)

    saved = tmp_path / "cases"
    (saved / "beta").mkdir(parents=True)
    (saved / "beta" / "result.json").write_text("{}")  # an earlier run's result
    monkeypatch.setattr(batch.imaging, "read_ct", crashing_reader)
    out = tmp_path / "r.csv"
    assert cli(ct_folder, out, tiny_models, "--save-dir", saved) == 1
    assert "1 case(s) failed" in capsys.readouterr().err
    rows = read_rows(out)
    assert rows["beta"]["error"].startswith("ValueError: a library's bug (at test_batch_cluster")
    assert rows["alpha"]["error"] == rows["gamma"]["error"] == ""
    assert not (saved / "beta").exists() and (saved / "gamma" / "result.json").is_file()


def test_a_second_run_on_the_same_table_is_refused(tmp_path, ct_folder, tiny_models, capsys):
    out = tmp_path / "r.csv"
    out.write_text("kept as it is\n")
    with sole_writer(out):  # another batch is writing it
        assert cli(ct_folder, out, tiny_models) == 2
    error = capsys.readouterr().err.strip()
    assert "is being written by another run (process" in error and len(error.splitlines()) == 1
    assert out.read_text() == "kept as it is\n"


def test_a_replaced_ct_is_measured_again_and_its_stale_row_replaced(tmp_path, ct_folder,
                                                                    tiny_models, capsys):
    out = tmp_path / "r.csv"
    assert cli(ct_folder, out, tiny_models) == 0
    before = read_rows(out)
    shutil.copy(ct_folder / "gamma.nii.gz", ct_folder / "alpha.nii.gz")  # a corrected CT
    capsys.readouterr()
    assert cli(ct_folder, out, tiny_models) == 0
    printed = capsys.readouterr().out
    assert "Measured 1, failed 0" in printed and "measured again 1 whose CT" in printed
    after = read_rows(out)
    assert sorted(after) == ["alpha", "beta", "gamma"]
    assert after["alpha"]["input_key"] != before["alpha"]["input_key"]
    assert after["alpha"]["muscle_csa_cm2"] == after["gamma"]["muscle_csa_cm2"]
    assert after["beta"] == before["beta"]
