"""The speed benchmark on a tiny input, so that it cannot rot: the figures mean nothing here,
their consistency is what is checked."""

import json
from dataclasses import replace

import pytest

from C3SarcopeniaLib.bench import (STEPS, BenchOptions, ConfigurationTimes, StepTimes,
                                   format_table, run_bench, summarise)
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.models import ModelCard
from C3SarcopeniaLib.training import read_manifest


@pytest.fixture(scope="module")
def bench(tmp_path_factory, tiny_models, small_phantom_options, phantom_cohort):
    """Both configurations on a small phantom and a 'real' CT (another phantom), with a
    paper-like stage 1 small enough to run in seconds; three runs of the shipped one, so
    that its medians hold against a busy machine."""
    tiny_paper = replace(ModelCard.from_preset("section", "paper"), spacing_mm=4.0,
                         patch_size=[32, 32, 32], channels=[4, 8], strides=[2])
    out = tmp_path_factory.mktemp("bench")
    options = BenchOptions(out, tiny_models, real_ct=read_manifest(phantom_cohort)[0]["ct"],
                           repeats=3, paper_repeats=1, batch_cases=2, batch_workers=(0, 2),
                           phantom=small_phantom_options, batch_phantom=small_phantom_options,
                           paper_card=tiny_paper)
    return run_bench(options), out


def test_bench_json_holds_consistent_figures(bench):
    result, out = bench
    saved = json.loads((out / "bench.json").read_text())
    assert saved == result
    for key in ("default_predict_s", "paper_predict_s", "speedup", "nudge_s", "peak_rss_mb",
                "batch_cases_per_hour", "machine", "repeats", "paper_repeats"):
        assert saved[key] is not None, key
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["torch"]
    assert saved["command_start"]["help_s"] > 0 and saved["command_start"]["refusal_s"] > 0
    for name in ("default", "paper"):
        configuration = saved["configurations"][name]
        assert configuration["section"]["folds"] == 2
        for label in ("clinical_phantom", "real_ct"):
            times = configuration["inputs"][label]
            assert all(times[step] > 0 for step in STEPS), (name, label, times)
            assert times["runs"] == (3 if name == "default" else 1)
    assert saved["configurations"]["paper"]["section"]["preset"] == "paper"
    default = saved["configurations"]["default"]["inputs"]["clinical_phantom"]
    # predict does all that the nudge does, and reads the CT and finds C3 besides
    assert default["nudge_s"] < default["predict_s"] == saved["default_predict_s"]
    assert saved["speedup"] == pytest.approx(saved["paper_predict_s"] / saved["default_predict_s"])
    assert 0 < saved["peak_rss_mb"] < 100_000
    # the panel's nudge goes through the worker process: slower than in-process, never free
    assert 0 < saved["worker_nudge_s"] and any("worker_nudge_s" in n for n in saved["notes"])


def test_batch_throughput_in_process_and_on_two_workers(bench):
    """The same phantoms in this process and on a local cluster of two worker processes."""
    result, out = bench
    assert list(result["batch_workers"]) == ["0", "2"]
    for workers, batch in result["batch_workers"].items():
        assert batch["workers"] == int(workers)
        assert batch["cases"] == 2 and batch["measured"] + batch["failed"] == 2
        assert batch["cases_per_hour"] == pytest.approx(3600 * 2 / batch["elapsed_s"])
        assert batch["start_s"] > 0
        assert len((out / "batch" / f"results_{workers}_workers.csv").read_text()
                   .splitlines()) == 3
    assert result["batch"] == result["batch_workers"]["0"]
    assert result["batch_cases_per_hour"] == result["batch"]["cases_per_hour"]
    assert result["batch_workers_ratio"] == pytest.approx(
        result["batch_workers"]["2"]["cases_per_hour"] / result["batch_cases_per_hour"])


def test_table_names_every_step_and_the_speedup(bench):
    table = format_table(bench[0])
    assert "speedup (paper / default whole predict" in table and "median of 1 run" in table
    assert "whole predict (read incl.)" in table and "cases per hour" in table
    assert "command start: --help" in table
    assert "nudge through the warm worker" in table
    assert "batch in one process" in table and "batch on 2 worker processes" in table
    assert "batch gain, 2 workers over 0" in table


def test_skipped_paper_configuration_and_batch_leave_their_figures_empty(bench):
    result, out = bench
    default = result["configurations"]["default"]
    times = ConfigurationTimes(**{**default, "inputs": {
        label: StepTimes(**steps) for label, steps in default["inputs"].items()}})
    summary = summarise(BenchOptions(out, paper_repeats=0, batch_cases=0), result["inputs"],
                        times, None, 1.0, None)
    assert summary["paper_predict_s"] is None and summary["speedup"] is None
    assert summary["batch_cases_per_hour"] is None and list(summary["configurations"]) == \
        ["default"]
    assert "speedup" not in format_table(summary)


def test_bench_refuses_bad_arguments(tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path), "--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
    assert main(["bench", "--out", str(tmp_path), "--real-ct", str(tmp_path / "none.nii")]) == 2
    assert "does not exist" in capsys.readouterr().err
    for workers in ("1,-2", "two", ""):
        assert main(["bench", "--out", str(tmp_path), "--batch-workers", workers]) == 2
        assert "--batch-workers takes worker counts" in capsys.readouterr().err
