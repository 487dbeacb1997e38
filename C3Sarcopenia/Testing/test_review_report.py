"""The review report of a batch: priorities, the marks CSV, and the page in a real browser.

The batch CSV is written here directly (its real columns, warnings made by the pipeline's own
functions) with small result folders, so the page is tested on 30 cases in seconds; one test
runs the real batch on two phantoms. The page is driven in Debian's Chromium by Playwright,
as a reviewer would use it: from file://, no server.
"""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.cohort.batch import BatchCase, batch_columns
from C3SarcopeniaLib.cohort.review_marks import (NEEDS_CORRECTION, leave_out_needs_correction,
                                                 read_review_marks)
from C3SarcopeniaLib.cohort.review_priority import prioritised, read_batch_csv
from C3SarcopeniaLib.errors import SYNTHETIC_MODELS_WARNING, InputError
from C3SarcopeniaLib.measures import SarcopeniaMeasures, implausibility_warnings
from C3SarcopeniaLib.pipeline import _section_warnings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# Marked in the browser, then read by batch and ingest: named as the phantom cohort's cases.
ACCEPTED, REJECTED = "phantom_123_000", "phantom_123_001"
NOTE = 'SCM cut, "left"; redo'
FLAGGED = {  # case -> (tier it must land in, csa, sex, warnings, error, muscle disagreement)
    "c01_failed": ("failed", "", "M", [], "C3 could not be placed: the scan ends.", ""),
    "c02_level": ("level_disagreement", "41.0", "M",
                  _section_warnings(33.0, [0.0, 14.0, 2.0], 3, False), "", ""),
    "c03_thin": ("thin_section", "40.5", "F", _section_warnings(15.0, [0.0, 1.0], 2, False),
                 "", ""),
    "c04_edge": ("thin_section", "39.0", "F", _section_warnings(33.0, [0.0, 1.0], 2, True),
                 "", ""),
    "c05_muscle": ("muscle_disagreement", "44.0", "M", [], "", "0.35"),
    "c06_big_man": ("csa_outlier", "75.0", "M", [], "", "0.05"),
    "c07_tiny": ("csa_outlier", "8.0", "F", implausibility_warnings(
        SarcopeniaMeasures(8.0, 40.0, None, None, None)), "", ""),
    "c08_synthetic": ("other_warning", "43.0", "M", [SYNTHETIC_MODELS_WARNING], "", ""),
}


def _columns() -> list[str]:
    columns = list(batch_columns([BatchCase("x", Path("x.nii.gz"))]))
    if "muscle_fold_disagreement" not in columns:  # an optional column of newer batches
        columns.insert(columns.index("warnings"), "muscle_fold_disagreement")
    return columns


def _row(case_id, csa, sex, warnings=(), error="", disagreement="", slice_k="40") -> dict:
    smi = "" if not csa else f"{float(csa) * 0.9:.1f}"
    return {"case_id": case_id, "path": f"/archive/{case_id}.nii.gz",
            "c3_slice_k": "" if error else slice_k, "muscle_csa_cm2": csa, "smi_cm2_m2": smi,
            "muscle_status": "" if error else ("depleted" if csa and float(csa) < 40 else "normal"),
            "sex": sex, "warnings": " | ".join(warnings), "error": error, "seconds": "2.0",
            "muscle_fold_disagreement": disagreement}


def write_batch_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_columns())
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_cohort_results(folder: Path) -> tuple[Path, Path]:
    """A batch CSV of 30 cases (8 flagged, 22 ordinary men and women) and its --save-dir:
    thumbnails, one older folder with an overlay only, one case without a folder."""
    rows = [_row(case, *values[1:]) for case, values in FLAGGED.items()]
    rng = np.random.default_rng(0)
    for i in range(11):
        rows.append(_row(f"m{i:02d}", f"{45 + rng.normal(0, 2):.1f}", "M", slice_k=str(30 + i)))
        rows.append(_row(f"f{i:02d}", f"{34 + rng.normal(0, 2):.1f}", "F", slice_k=str(30 + i)))
    rows[-2]["case_id"], rows[-1]["case_id"] = ACCEPTED, REJECTED
    out = write_batch_csv(folder / "results.csv", rows)
    save_dir = folder / "cases"
    for i, row in enumerate(rows[:-1]):  # the last case has no result folder
        (save_dir / row["case_id"]).mkdir(parents=True)
        picture = Image.new("RGB", (40, 30), (i * 8, 100, 200))
        name = "overlay.png" if i == 1 else "thumbnail.jpg"
        picture.save(save_dir / row["case_id"] / name)
    return out, save_dir


@pytest.fixture(scope="module")
def cohort_results(tmp_path_factory):
    return write_cohort_results(tmp_path_factory.mktemp("batch"))


def test_priority_order_follows_the_flags(cohort_results):
    cases, ranges = prioritised(read_batch_csv(cohort_results[0]))
    assert len(cases) == 30
    tiers = {case.case_id: case.tier.key for case in cases}
    for case_id, (tier, *_) in FLAGGED.items():
        assert tiers[case_id] == tier, case_id
    ranks = [case.tier.rank for case in cases]
    assert ranks == sorted(ranks) and cases[0].case_id == "c01_failed"
    assert [c.case_id for c in cases[2:4]] == ["c03_thin", "c04_edge"]
    assert sum(1 for rank in ranks if rank == 7) == 22
    # 75 cm² is inside 10-100 cm² but far outside this cohort's men: flagged for the sex
    assert ranges["M"].high_cm2 < 75.0 < 100.0 and ranges["F"].high_cm2 < ranges["M"].high_cm2


def test_a_warning_of_a_lower_tier_does_not_hide_a_higher_one(tmp_path):
    both = _row("both", "44.0", "M", FLAGGED["c02_level"][3], disagreement="0.4")
    out = write_batch_csv(tmp_path / "results.csv", [both])  # muscle and level: level first
    assert prioritised(read_batch_csv(out))[0][0].flags == ["level_disagreement",
                                                              "muscle_disagreement"]


def write_marks(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_marks_reader_accepts_the_documented_format(tmp_path):
    marks = read_review_marks(write_marks(tmp_path / "m.csv", (
        "case_id,review,note,reviewed_at\n"
        "A,accept,,2024-05-31T14:02:00.123Z\n"
        'B,Needs correction,"cut, redo",\n'
        "C,,,\n")))  # an unmarked case
    assert sorted(marks) == ["A", "B"]
    assert marks["B"].review == NEEDS_CORRECTION and marks["B"].note == "cut, redo"
    only_required = read_review_marks(write_marks(tmp_path / "n.csv", "case_id,review\nA,accept\n"))
    assert only_required["A"].note == "" and only_required["A"].reviewed_at == ""


@pytest.mark.parametrize("text, words", [
    ("case,mark\nA,accept\n", ["lacks the column", "case_id,review"]),
    ("case_id,review\nA,maybe\n", ["line 2", "'maybe'", "accept", "needs_correction"]),
    ("case_id,review\nA,accept\nA,needs_correction\n", ["line 3", "again", "line 2"]),
    ("case_id,review\n,accept\n", ["line 2", "without a case_id"]),
    ("case_id,review,note,reviewed_at\nA,accept,,yesterday\n", ["line 2", "'yesterday'",
                                                                "ISO 8601"])])
def test_marks_reader_refuses_bad_rows_naming_the_line(tmp_path, text, words):
    with pytest.raises(InputError) as error:
        read_review_marks(write_marks(tmp_path / "m.csv", text))
    assert all(word in str(error.value) for word in words), str(error.value)


def test_bad_marks_are_refused_before_batch_measures_anything(tmp_path, capsys):
    marks = write_marks(tmp_path / "m.csv", "case_id,review\nA,perhaps\n")
    cts = tmp_path / "cts"
    cts.mkdir()
    assert main(["batch", str(cts), "--out", str(tmp_path / "r.csv"),
                 "--review-marks", str(marks)]) == 2
    assert "'perhaps'" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "r_report.html").exists()


def test_bad_marks_are_refused_before_ingest_reads_the_archive(tmp_path, capsys):
    marks = write_marks(tmp_path / "m.csv", "case_id,review\nA,accept\nA,accept\n")
    assert main(["ingest", str(tmp_path / "no archive"), "--clinical", str(tmp_path / "none"),
                 "--out", str(tmp_path / "cohort"), "--review-marks", str(marks)]) == 2
    assert "marked again" in capsys.readouterr().err
    assert not (tmp_path / "cohort" / "manifest.csv").exists()


@pytest.mark.parametrize("make, words", [
    (lambda folder: folder / "missing.csv", ["does not exist", "the results CSV of a batch"]),
    (lambda folder: write_marks(folder / "other.csv", "patient,smi\nA,40\n"),
     ["lacks the column", "case_id,muscle_csa_cm2,warnings,error"]),
    (lambda folder: write_marks(folder / "bad.csv", "case_id,muscle_csa_cm2,warnings,error\n"
                                                    "A,forty,,\n"), ["line 2", "'forty'"]),
    (lambda folder: write_marks(folder / "inf.csv", "case_id,muscle_csa_cm2,warnings,error\n"
                                                    "A,inf,,\n"), ["line 2", "'inf'"]),
    (lambda folder: write_marks(folder / "nan.csv", "case_id,muscle_csa_cm2,warnings,error\n"
                                                    "A,40,,\nB,nan,,\n"), ["line 3", "'nan'"])])
def test_batch_report_refuses_what_is_no_batch_csv(tmp_path, capsys, make, words):
    assert main(["batch-report", str(make(tmp_path))]) == 2
    line = capsys.readouterr().err
    assert all(word in line for word in words), line
    assert not list(tmp_path.glob("*_report.html"))


def test_manifest_rows_marked_needs_correction_are_left_out():
    rows = [{"case_id": "A", "review": "accept"}, {"case_id": "B", "review": "needs correction"},
            {"case_id": "C"}]
    kept, left_out = leave_out_needs_correction(rows, "manifest.csv")
    assert [r["case_id"] for r in kept] == ["A", "C"] and left_out == ["B"]
    with pytest.raises(InputError, match="case D"):
        leave_out_needs_correction([{"case_id": "D", "review": "ok"}], "manifest.csv")


# --- the page in a headless browser -----------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True)  # its own, empty localStorage
    opened = context.new_page()
    errors = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == []  # the page's script ran without an error


@pytest.fixture(scope="module")
def report(cohort_results):
    out, save_dir = cohort_results
    assert main(["batch-report", str(out), "--save-dir", str(save_dir)]) == 0
    return out.with_name(out.stem + "_report.html")


def shown_cases(page) -> list[str]:
    return page.locator("#cases tbody tr td.case").all_inner_texts()


def test_the_page_loads_from_disk_and_shows_every_case_by_priority(page, report):
    page.goto(report.as_uri())
    assert len(shown_cases(page)) == 30
    assert shown_cases(page)[0] == "c01_failed"
    assert "30 cases, 30 shown, 0 reviewed" in page.inner_text("#counts")
    ranks = [int(text.split()[0]) for text in page.locator("td.priority").all_inner_texts()]
    assert ranks == sorted(ranks) and ranks[0] == 1
    # sort by case, then back by priority: failed first again
    page.click("th[data-sort=case_id]")
    assert shown_cases(page) == sorted(shown_cases(page), key=str.lower)
    page.click("th[data-sort=priority]")
    assert shown_cases(page)[:2] == ["c01_failed", "c02_level"]
    # thumbnails: 29 folders (one an older one, with its overlay only), all loaded as images
    pictures = page.locator("img.thumb")
    assert pictures.count() == 29
    pictures.last.scroll_into_view_if_needed()
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    row = page.locator("tr[data-case=c02_level]")
    assert "folds disagree on the C3 level" in row.locator("td.warnings").inner_text()
    assert row.locator("td.slice").inner_text() == "40"


def test_filters_narrow_the_table(page, report):
    page.goto(report.as_uri())
    page.select_option("#filter-priority", "thin_section")
    assert sorted(shown_cases(page)) == ["c03_thin", "c04_edge"]
    page.select_option("#filter-priority", "")
    page.select_option("#filter-status", "failed")
    assert shown_cases(page) == ["c01_failed"]
    page.select_option("#filter-status", "")
    page.fill("#filter-text", "synthetic phantoms")
    assert shown_cases(page) == ["c08_synthetic"]
    assert "30 cases, 1 shown" in page.inner_text("#counts")


@pytest.fixture(scope="module")
def saved_marks(browser, report, tmp_path_factory):
    """Marks made in the page and saved through its download; kept over a reload."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(report.as_uri())
    page.select_option(f"tr[data-case={ACCEPTED}] select.review-choice", "accept")
    rejected = page.locator(f"tr[data-case={REJECTED}]")
    rejected.locator("input.note").fill(NOTE)
    rejected.locator("select.review-choice").select_option("needs_correction")
    page.reload()  # the browser keeps the marks
    assert page.locator(f"tr[data-case={REJECTED}] select.review-choice").input_value() == \
        "needs_correction"
    assert page.locator(f"tr[data-case={REJECTED}] input.note").input_value() == NOTE
    page.select_option("#filter-review", "needs_correction")
    assert shown_cases(page) == [REJECTED]
    with page.expect_download() as download:
        page.click("#save-marks")
    path = tmp_path_factory.mktemp("marks") / "review_marks.csv"
    download.value.save_as(path)
    assert download.value.suggested_filename == "review_marks.csv"
    context.close()
    return path


def test_saved_marks_are_the_documented_csv(saved_marks):
    with saved_marks.open(newline="") as handle:
        assert next(csv.reader(handle)) == ["case_id", "review", "note", "reviewed_at"]
    marks = read_review_marks(saved_marks)
    assert sorted(marks) == [ACCEPTED, REJECTED]
    assert marks[ACCEPTED].review == "accept" and marks[REJECTED].review == NEEDS_CORRECTION
    assert marks[REJECTED].note == NOTE and marks[REJECTED].reviewed_at.endswith("Z")


def test_a_rebuilt_report_resumes_from_saved_marks(page, cohort_results, saved_marks, tmp_path,
                                                   capsys):
    out, save_dir = cohort_results
    extra = write_marks(tmp_path / "more.csv", saved_marks.read_text() + "gone,accept,,\n")
    resumed = tmp_path / "resumed.html"
    assert main(["batch-report", str(out), "--save-dir", str(save_dir), "--review-marks",
                 str(extra), "--out", str(resumed)]) == 0
    said = capsys.readouterr().out
    assert "1 review mark(s) name no case of the batch and were not used: gone" in said
    assert "30 cases, 29 thumbnails, 2 marked" in said
    page.goto(resumed.as_uri())  # a fresh browser profile: the marks come from the page
    assert page.locator(f"tr[data-case={ACCEPTED}] select.review-choice").input_value() == "accept"
    assert page.locator(f"tr[data-case={REJECTED}] input.note").input_value() == NOTE
    assert "2 reviewed" in page.inner_text("#counts")


def test_batch_writes_the_report_with_thumbnails_and_earlier_marks(
        page, tmp_path, phantom_cohort, tiny_models, saved_marks, capsys):
    with phantom_cohort.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows[:2]:
            writer.writerow({**row, **{key: str(phantom_cohort.parent / row[key])
                                       for key in ("ct", "section_mask", "muscle_mask")}})
    out, saved = tmp_path / "results.csv", tmp_path / "cases"
    argv = ["batch", str(manifest), "--out", str(out), "--save-dir", str(saved), "--models",
            str(tiny_models), "--device", "cpu", "--folds", "1", "--review-marks",
            str(saved_marks)]
    assert main(argv) == 0
    assert f"Review   {tmp_path / 'results_report.html'} (2 cases, 2 thumbnails, 2 marked)" in \
        capsys.readouterr().out
    for case_id in (ACCEPTED, REJECTED):
        with Image.open(saved / case_id / "thumbnail.jpg") as thumbnail:
            assert max(thumbnail.size) == 200 and thumbnail.format == "JPEG"
    (tmp_path / "results_report.html").unlink()
    assert main(argv) == 0  # everything already measured: the report is written again
    assert "skipped 2" in capsys.readouterr().out
    page.goto((tmp_path / "results_report.html").as_uri())
    assert sorted(shown_cases(page)) == [ACCEPTED, REJECTED]
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(f"tr[data-case={REJECTED}] select.review-choice").input_value() == \
        "needs_correction"


def test_ingest_carries_the_marks_and_evaluate_leaves_out_needs_correction(
        tmp_path, small_phantom_options, saved_marks, tiny_models, capsys):
    from C3SarcopeniaLib.dicomio import write_dicom_cohort
    from C3SarcopeniaLib.phantoms.phantom import make_phantom
    from C3SarcopeniaLib.training import read_manifest

    archive, cohort = tmp_path / "archive", tmp_path / "cohort"
    table = write_dicom_cohort([make_phantom(seed, case_id, small_phantom_options)
                                for seed, case_id in enumerate((ACCEPTED, REJECTED, "p3"))],
                               archive)
    assert main(["ingest", str(archive), "--clinical", str(table), "--out", str(cohort),
                 "--review-marks", str(saved_marks)]) == 0
    rows = {row["case_id"]: row["review"] for row in read_manifest(cohort / "manifest.csv")}
    assert rows == {ACCEPTED: "accept", REJECTED: NEEDS_CORRECTION, "p3": ""}
    capsys.readouterr()
    assert main(["evaluate", "--manifest", str(cohort / "manifest.csv"), "--out",
                 str(tmp_path / "evaluation"), "--models", str(tiny_models), "--device", "cpu",
                 "--folds", "1"]) == 0
    assert f"Left out        {REJECTED} (marked needs_correction)" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["n_cases"] == 2 and metrics["left_out_needs_correction"] == [REJECTED]
    with (tmp_path / "evaluation" / "cases.csv").open(newline="") as handle:
        assert sorted(row["case_id"] for row in csv.DictReader(handle)) == sorted([ACCEPTED, "p3"])


def test_train_leaves_out_cases_marked_needs_correction(tmp_path, phantom_cohort):
    from C3SarcopeniaLib.training import train

    text = phantom_cohort.read_text().splitlines()
    marked = [text[0] + ",review"] + [line + ("," if i == 0 else ",needs_correction")
                                      for i, line in enumerate(text[1:])]
    manifest = write_marks(phantom_cohort.parent / "marked_manifest.csv", "\n".join(marked))
    said = []
    with pytest.raises(InputError, match=re.escape("1 case")):
        train([manifest], "section", tmp_path / "model", "fast", folds=2, iterations=1, seed=0,
              device="cpu", command="test", trained_on="test", synthetic=True, log=said.append)
    assert said[0].startswith("Left out 4 case(s) a reviewer marked needs_correction: ")
    everything = write_marks(phantom_cohort.parent / "all_marked.csv", "\n".join(
        [text[0] + ",review"] + [line + ",needs_correction" for line in text[1:]]))
    with pytest.raises(InputError, match="every case is marked needs_correction"):
        train([everything], "section", tmp_path / "none", "fast", folds=2, iterations=1, seed=0,
              device="cpu", command="test", trained_on="test", synthetic=True, log=said.append)
    assert not (tmp_path / "none").exists(), "a model card for a model never trained"


def test_case_text_that_looks_like_html_is_shown_as_text(page, tmp_path):
    hostile = "</script><script>document.title='taken'</script><b>bold</b>"
    rows = [_row("<img src=x onerror=alert(1)>", "40.0", "M", [hostile]), _row("plain", "41", "F")]
    assert main(["batch-report", str(write_batch_csv(tmp_path / "results.csv", rows))]) == 0
    page.goto((tmp_path / "results_report.html").as_uri())
    assert sorted(shown_cases(page)) == sorted(["<img src=x onerror=alert(1)>", "plain"])
    assert hostile in page.locator("td.warnings").first.inner_text()
    assert page.title() == "C3 review: results.csv" and page.locator("#cases b").count() == 0


def test_evaluate_refuses_a_manifest_whose_every_case_needs_correction(tmp_path):
    from C3SarcopeniaLib.cohort.evaluation import evaluate

    manifest = write_marks(tmp_path / "manifest.csv", "case_id,ct,c3_slice_k,review\n"
                                                      "A,a.nii.gz,3,needs_correction\n")
    with pytest.raises(InputError, match="nothing to evaluate"):
        evaluate(manifest, tmp_path / "out", None, None)


def test_two_batch_tables_in_one_folder_keep_a_report_each(tmp_path):
    first = write_batch_csv(tmp_path / "men.csv", [_row("m1", "40.0", "M")])
    second = write_batch_csv(tmp_path / "women.csv", [_row("w1", "30.0", "F")])
    assert main(["batch-report", str(first)]) == 0 and main(["batch-report", str(second)]) == 0
    assert sorted(path.name for path in tmp_path.glob("*.html")) == ["men_report.html",
                                                                     "women_report.html"]
    assert '"m1"' in (tmp_path / "men_report.html").read_text(encoding="utf-8")
    assert '"m1"' not in (tmp_path / "women_report.html").read_text(encoding="utf-8")
