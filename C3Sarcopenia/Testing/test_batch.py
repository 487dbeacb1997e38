"""The batch command: one row per case as it finishes, failures recorded, reruns resume.

Accuracy is irrelevant here (the models are trained for a few steps): what is checked is
which cases run, what their rows say, and that an interrupted or repeated run neither loses
nor repeats a case.
"""

import csv
import json
import shutil

import pytest

from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.training import read_manifest


@pytest.fixture(scope="module")
def cohort_rows(phantom_cohort):
    return read_manifest(phantom_cohort)[:2]


@pytest.fixture
def ct_folder(tmp_path, cohort_rows):
    """Two CTs named after their cases and one file that is not an image."""
    folder = tmp_path / "cts"
    folder.mkdir()
    for name, row in zip(("alpha", "beta"), cohort_rows):
        shutil.copy(row["ct"], folder / f"{name}.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"this is not a CT")
    (folder / "notes.txt").write_text("not a case")
    return folder


def run_batch(source, out, models, *extra) -> int:
    return main(["batch", str(source), "--out", str(out), "--models", str(models),
                 "--device", "cpu", "--folds", "1", *extra])


def read_rows(path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_failures_are_recorded_and_a_rerun_measures_only_what_is_missing(
        tmp_path, ct_folder, tiny_models, cohort_rows, capsys):
    out = tmp_path / "results.csv"
    assert run_batch(ct_folder, out, tiny_models) == 1  # a case failed: not a clean run
    printed = capsys.readouterr()
    assert "Measured 2, failed 1" in printed.out and "1 case(s) failed" in printed.err
    rows = {row["case_id"]: row for row in read_rows(out)}
    assert sorted(rows) == ["alpha", "beta", "broken"]  # notes.txt is no case
    assert "could not be read as an image" in rows["broken"]["error"]
    assert rows["broken"]["c3_slice_k"] == ""
    for name in ("alpha", "beta"):
        assert rows[name]["error"] == ""
        assert int(rows[name]["c3_slice_k"]) >= 0 and float(rows[name]["muscle_csa_cm2"]) > 0
        assert "synthetic phantoms" in rows[name]["warnings"]
        assert float(rows[name]["seconds"]) > 0

    lines = out.read_text().splitlines(keepends=True)
    alpha = next(line for line in lines if line.startswith("alpha,"))
    beta = next(line for line in lines if line.startswith("beta,"))
    # A crash while beta's row was being written: half a line, no newline.
    out.write_text("".join(line for line in lines if line is not beta) + beta[:12])
    shutil.copy(cohort_rows[0]["ct"], ct_folder / "broken.nii.gz")  # the user fixed it
    assert run_batch(ct_folder, out, tiny_models) == 0
    assert "Measured 2, failed 0" in capsys.readouterr().out
    rows = read_rows(out)
    assert sorted(row["case_id"] for row in rows) == ["alpha", "beta", "broken"]
    assert all(row["error"] == "" for row in rows)
    assert alpha in out.read_text()  # kept as it was, not measured again

    assert run_batch(ct_folder, out, tiny_models) == 0
    assert "Measured 0, failed 0 (see the error column), skipped 3" in capsys.readouterr().out
    assert len(read_rows(out)) == 3


def test_manifest_input_uses_its_clinical_and_survival_columns(tmp_path, cohort_rows,
                                                               tiny_models):
    manifest = tmp_path / "manifest.csv"
    columns = list(cohort_rows[0]) + ["survival_time", "event"]
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row, (time, event) in zip(cohort_rows, (("14.5", "1"), ("60", "0"))):
            writer.writerow({**row, "survival_time": time, "event": event})
    out, saved = tmp_path / "results.csv", tmp_path / "cases"
    assert run_batch(manifest, out, tiny_models, "--save-dir", str(saved)) == 0
    rows = read_rows(out)
    assert [row["case_id"] for row in rows] == [row["case_id"] for row in cohort_rows]
    assert [(row["survival_time"], row["event"]) for row in rows] == [("14.5", "1"), ("60", "0")]
    for row, truth in zip(rows, cohort_rows):
        assert row["sex"] == truth["sex"] and float(row["age"]) == pytest.approx(
            float(truth["age"]))
        assert row["smi_cm2_m2"] != "" and row["muscle_status"] in ("depleted", "normal")
        result = json.loads((saved / row["case_id"] / "result.json").read_text())
        assert result["c3_slice_k"] == int(row["c3_slice_k"])
        assert float(row["muscle_csa_cm2"]) == pytest.approx(result["muscle_csa_cm2"], abs=5e-4)


def test_a_csv_of_another_table_is_not_overwritten(tmp_path, ct_folder, tiny_models, capsys):
    out = tmp_path / "results.csv"
    out.write_text("patient,smi\nA,40\n")
    assert run_batch(ct_folder, out, tiny_models) == 2
    assert "holds another table" in capsys.readouterr().err
    assert out.read_text() == "patient,smi\nA,40\n"
