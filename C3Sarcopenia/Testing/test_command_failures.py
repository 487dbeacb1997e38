"""evaluate, ingest, survival, train and review: a missing or unreadable input is one line and
exit 2; an interrupted run is one line, exit 130, and leaves nothing half-written, nor the
previous run's result (issue 18). Unusable output folders are in test_outputs.py."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from C3SarcopeniaLib import training
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.cohort import evaluation, ingest, review, survival
from C3SarcopeniaLib.dicomio import write_dicom_cohort
from C3SarcopeniaLib.phantoms.phantom import make_phantom


def refused(argv, capsys, *words) -> None:
    assert main([str(a) for a in argv]) == 2
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("c3sarcopenia: error:"), lines
    assert all(word in lines[0] for word in words), lines[0]


def cancelled(argv, capsys) -> None:
    assert main([str(a) for a in argv]) == 130
    lines = [line for line in capsys.readouterr().err.strip().splitlines()
             if line and "|" not in line]  # progress bars aside
    assert lines[-1].startswith("c3sarcopenia: cancelled"), lines


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def half_written(folder) -> list[str]:
    """Temporary files and staging folders anywhere below ``folder``."""
    return sorted(str(p) for p in folder.rglob("*")
                  if p.name.startswith((".tmp-", ".partial-")))


def previous_run(out, names) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        (out / name).write_text("from the previous run")


@pytest.fixture()
def binary_file(tmp_path):
    path = tmp_path / "table.csv"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def two_case_manifest(phantom_cohort, path):
    with open(phantom_cohort, newline="") as handle:
        rows = list(csv.DictReader(handle))[:2]
    for row in rows:  # absolute, as the copy lives elsewhere
        for key in ("ct", "section_mask", "muscle_mask"):
            row[key] = str(phantom_cohort.parent / row[key])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- evaluate --------------------------------------------------------------------------------

def test_evaluate_refuses_missing_and_unreadable_manifests(tmp_path, binary_file,
                                                          phantom_cohort, tiny_models, capsys):
    common = ["--out", tmp_path / "out", "--models", tiny_models, "--folds", "1"]
    refused(["evaluate", "--manifest", tmp_path / "missing.csv", *common], capsys,
            "does not exist")
    refused(["evaluate", "--manifest", binary_file, *common], capsys, "not a CSV")
    rows = list(csv.DictReader(open(phantom_cohort)))
    no_case_id = tmp_path / "no_case_id.csv"
    no_case_id.write_text("ct,c3_slice_k\n" + "".join(f"{r['ct']},{r['c3_slice_k']}\n"
                                                       for r in rows))
    refused(["evaluate", "--manifest", no_case_id, *common], capsys, "case_id")
    no_slice = tmp_path / "no_slice.csv"
    no_slice.write_text(f"case_id,ct,c3_slice_k\nlost,{rows[0]['ct']},\n")
    refused(["evaluate", "--manifest", no_slice, *common], capsys, "lost", "c3_slice_k")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_evaluate_leaves_no_report(tmp_path, phantom_cohort, tiny_models,
                                                 capsys, monkeypatch):
    """The figures are drawn (into the staging folder) when the run is interrupted."""
    def scored(row, section_models, muscle_models):
        k = int(row["c3_slice_k"])
        return evaluation.CaseEvaluation(
            row["case_id"], "M", k, auto_slice_k=k, slice_error_mm=1.5, section_dsc=0.9,
            section_dsc_folds=[0.9], muscle_dsc=0.8, csa_true_cm2=40.0, csa_pred_gt_cm2=38.0,
            csa_pred_c3_cm2=38.0, smi_true=45.0, smi_pred_gt=44.0, smi_pred_c3=44.0)

    out = tmp_path / "out"
    previous_run(out, evaluation.OUTPUT_FILES)
    manifest = two_case_manifest(phantom_cohort, tmp_path / "manifest.csv")
    monkeypatch.setattr(evaluation, "evaluate_case", scored)
    drawn = []
    real_write_figures = evaluation.write_figures
    monkeypatch.setattr(evaluation, "write_figures",
                        lambda cases, folder: (real_write_figures(cases, folder),
                                               drawn.extend(folder.glob("*.png"))))
    monkeypatch.setattr(evaluation, "write_cases_csv", interrupt)
    cancelled(["evaluate", "--manifest", manifest, "--out", out, "--models", tiny_models],
              capsys)
    assert len(drawn) >= 3
    assert list(out.iterdir()) == []


# --- ingest ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def archive(tmp_path_factory, small_phantom_options):
    root = tmp_path_factory.mktemp("archive")
    table = write_dicom_cohort([make_phantom(seed, f"P{seed}", small_phantom_options)
                                for seed in (0, 1)], root)
    return root, table


def test_ingest_refuses_missing_and_unreadable_inputs(tmp_path, archive, binary_file, capsys):
    root, table = archive
    out = tmp_path / "out"
    refused(["ingest", tmp_path / "missing", "--clinical", table, "--out", out], capsys,
            "no patient folders")
    refused(["ingest", root, "--clinical", tmp_path / "missing.csv", "--out", out], capsys,
            "does not exist")
    refused(["ingest", root, "--clinical", binary_file, "--out", out], capsys, "table.csv")
    assert not (out / "manifest.csv").exists()


def test_an_interrupted_ingest_leaves_no_manifest_and_whole_files(tmp_path, archive, capsys,
                                                                 monkeypatch):
    root, table = archive
    out = tmp_path / "cohort"
    previous_run(out, ("manifest.csv", "ingest_report.csv"))
    real_ingest_patient, calls = ingest.ingest_patient, []

    def second_interrupted(*args):
        calls.append(args[0].name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_ingest_patient(*args)

    monkeypatch.setattr(ingest, "ingest_patient", second_interrupted)
    cancelled(["ingest", root, "--clinical", table, "--out", out], capsys)
    assert calls == ["P0", "P1"]
    assert not (out / "manifest.csv").exists() and not (out / "ingest_report.csv").exists()
    assert half_written(out) == []
    written = sitk.ReadImage(str(out / "P0" / "ct.nii.gz"))  # the finished patient is whole
    assert written.GetSize()[2] > 1


# --- survival --------------------------------------------------------------------------------

@pytest.fixture()
def outcome_table(tmp_path):
    rng = np.random.default_rng(3)
    lines = ["id,months,dead,sex,status"]
    for i in range(40):
        sex, depleted = "MF"[i % 2], "depleted" if i % 3 == 0 else "normal"
        lines.append(f"p{i},{rng.uniform(2, 60):.1f},{int(rng.uniform() < 0.6)},{sex},"
                     f"{depleted}")
    path = tmp_path / "outcomes.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


SURVIVAL_COLUMNS = ["--time", "months", "--event", "dead", "--sex", "sex", "--status", "status"]


def test_survival_refuses_missing_and_unreadable_tables(tmp_path, binary_file, capsys):
    out = tmp_path / "out"
    refused(["survival", tmp_path / "missing.csv", *SURVIVAL_COLUMNS, "--out", out], capsys,
            "does not exist")
    refused(["survival", binary_file, *SURVIVAL_COLUMNS, "--out", out], capsys, "table.csv")
    refused(["survival", tmp_path, *SURVIVAL_COLUMNS, "--out", out], capsys, "is a folder")
    assert not out.exists()


def test_an_interrupted_survival_leaves_no_curves_and_no_result(tmp_path, outcome_table,
                                                              capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["survival", str(outcome_table), *SURVIVAL_COLUMNS, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(survival.OUTPUT_FILES)
    capsys.readouterr()
    monkeypatch.setattr(survival, "write_text_atomic", interrupt)  # after both curves
    cancelled(["survival", outcome_table, *SURVIVAL_COLUMNS, "--out", out], capsys)
    assert list(out.iterdir()) == []


# --- train -----------------------------------------------------------------------------------

def test_train_refuses_missing_and_unreadable_manifests(tmp_path, binary_file, capsys):
    out = tmp_path / "model"
    common = ["--stage", "muscle", "--out", out, "--iterations", "2", "--folds", "2"]
    refused(["train", "--manifest", tmp_path / "missing.csv", *common], capsys,
            "does not exist")
    refused(["train", "--manifest", binary_file, *common], capsys, "not a CSV")
    no_ct = tmp_path / "no_ct.csv"
    no_ct.write_text("case_id,muscle_mask\na,a.nii.gz\n")
    refused(["train", "--manifest", no_ct, *common], capsys, "ct")
    assert not out.exists()


def test_an_interrupted_train_leaves_whole_files_to_resume_from(tmp_path, phantom_cohort,
                                                               capsys, monkeypatch):
    """Interrupted after fold 0's weights were saved, before its validation."""
    out = tmp_path / "model"
    monkeypatch.setattr(training, "validate_fold", interrupt)
    cancelled(["train", "--manifest", two_case_manifest(phantom_cohort, tmp_path / "m.csv"),
               "--stage", "muscle", "--out", out, "--iterations", "2", "--folds", "2",
               "--device", "cpu"], capsys)
    assert half_written(out) == []
    card = json.loads((out / "model_card.json").read_text())
    assert card["stage"] == "muscle" and "cross_validation" not in card["metrics"]
    weights = torch.load(out / "fold0.pt", weights_only=True)
    assert weights and not (out / "fold1.pt").exists()


# --- review ----------------------------------------------------------------------------------

def test_review_refuses_missing_and_unreadable_sources(tmp_path, binary_file, capsys):
    out = tmp_path / "out"
    refused(["review", tmp_path / "missing", "--out", out, "--no-predict"], capsys,
            "neither a folder")
    refused(["review", binary_file, "--out", out, "--no-predict"], capsys, "not a CSV")
    assert not out.exists()


def test_an_interrupted_review_leaves_no_sheets_and_no_index(tmp_path, phantom_cohort, capsys,
                                                            monkeypatch):
    out = tmp_path / "sheets"
    previous_run(out, ("index.html",))
    sheets = []
    real_sheet = review.write_review_sheet
    monkeypatch.setattr(review, "write_review_sheet",
                        lambda ct, path, *rest: (real_sheet(ct, path, *rest),
                                                 sheets.append(path.is_file())))
    monkeypatch.setattr(review, "write_index", interrupt)
    cancelled(["review", two_case_manifest(phantom_cohort, tmp_path / "m.csv"), "--out", out,
               "--no-predict"], capsys)
    assert sheets == [True, True]
    assert list(out.iterdir()) == []


# --- the other commands that write a folder --------------------------------------------------

@pytest.mark.parametrize("command, written_last", [
    (["ingest-levels", "{missing}"], ("manifest.csv",)),
    (["muscle-sheets", "{missing}", "--levels", "{missing}"], ("index.html",)),
    (["muscle-consensus", "{missing}", "--sheets", "{missing}"],
     ("manifest.csv", "agreement.csv"))])
def test_a_failed_rerun_leaves_no_previous_index_or_manifest(tmp_path, capsys, command,
                                                             written_last):
    out = tmp_path / "out"
    previous_run(out, written_last)
    argv = [a.format(missing=tmp_path / "missing.csv") for a in command]
    refused([*argv, "--out", out], capsys, "missing")
    assert list(out.iterdir()) == []
