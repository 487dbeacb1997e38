"""C3 level annotations: reading and checking the CSV, writing rows, and ingest-levels (stage-1
labels and a manifest that train and evaluate accept), on small synthetic CTs stored like the
shared OpenKBP ones (slice index growing towards the feet) and on the shared by-eye levels."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SHARED
from C3SarcopeniaLib import imaging
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.cohort.levels import (C3Level, CtLocator, check_levels, read_levels,
                                    write_level_row)
from C3SarcopeniaLib.training import read_manifest

SLICE_MM = 3.0
N_SLICES = 30
HEADER = "case,c3_top_z_index,c3_bottom_z_index,c3_mid_z_index,confidence,notes"
OPENKBP = SHARED / "openkbp"
BY_EYE = OPENKBP / "c3_levels_by_eye.csv"


def write_ct(path: Path, n_slices: int = N_SLICES) -> Path:
    """A soft-tissue cylinder in air; slice k grows towards the feet, as in OpenKBP."""
    k, j, i = np.mgrid[0:n_slices, 0:32, 0:32]
    hu = np.where((j - 16) ** 2 + (i - 16) ** 2 <= 12 ** 2, 40, -1000).astype(np.int16)
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((2.0, 2.0, SLICE_MM))
    ct.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    ct.SetOrigin((-32.0, -32.0, 0.0))
    sitk.WriteImage(ct, str(path))
    return path


@pytest.fixture
def ct_dir(tmp_path) -> Path:
    folder = tmp_path / "cts"
    folder.mkdir()
    for case in ("a", "b", "c"):
        write_ct(folder / f"{case}_ct.nii.gz")
    return folder


def write_csv(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def problems_of(tmp_path, ct_dir, *rows: str) -> dict[str, list[str]]:
    levels = read_levels(write_csv(tmp_path / "levels.csv", *rows))
    return check_levels(levels, CtLocator(ct_dir))


def test_rows_read_with_a_blank_middle_or_blank_body(tmp_path):
    levels = read_levels(write_csv(
        tmp_path / "levels.csv", 'a,10,15,,High,"C2-C3 disc ~9, hyoid z15"', "b,,,12,low,",
        header=HEADER + ",annotator,ct"))
    a, b = levels
    assert (a.top_k, a.bottom_k, a.mid_k, a.confidence) == (10, 15, None, "high")
    assert a.notes == "C2-C3 disc ~9, hyoid z15" and a.has_body
    assert a.middle_k == 13  # 12.5: a tie goes to the higher index, as in the shared file
    assert (b.top_k, b.bottom_k, b.middle_k, b.has_body) == (None, None, 12, False)


@pytest.mark.parametrize("row, message", [
    ("a,ten,15,12,high,", r"line 2 \(case a\): c3_top_z_index 'ten' is not a slice number"),
    ("a,10,,12,high,", "give both c3_top_z_index and c3_bottom_z_index"),
    ("a,,,,high,", "no slice given"),
    (",10,15,12,high,", "line 2: the case is blank"),
])
def test_unreadable_rows_are_refused_with_their_line(tmp_path, row, message):
    with pytest.raises(InputError, match=message):
        read_levels(write_csv(tmp_path / "levels.csv", row))


def test_a_file_without_the_level_columns_is_refused(tmp_path):
    with pytest.raises(InputError, match="lacks the column.*c3_mid_z_index"):
        read_levels(write_csv(tmp_path / "levels.csv", "a,10,15,high,",
                              header="case,c3_top_z_index,c3_bottom_z_index,confidence,notes"))


def test_valid_levels_have_no_problems(tmp_path, ct_dir):
    assert problems_of(tmp_path, ct_dir, "a,10,14,12,high,", "b,10,14,,medium,",
                       "c,,,20,low,") == {}


@pytest.mark.parametrize("row, expected", [
    ("a,10,14,16,high,", "the middle slice 16 lies outside the body's slices 10 to 14"),
    ("a,10,31,12,high,", "c3_bottom_z_index 31 outside the CT, which has slices 0 to 29"),
    ("a,,,-1,high,", "c3_mid_z_index -1 outside the CT"),
    ("a,10,11,11,high,", "would be 6.0 mm tall (slices 10 to 11: 2 slices of 3.0 mm)"),
    ("a,5,16,10,high,", "would be 36.0 mm tall (slices 5 to 16: 12 slices of 3.0 mm)"),
    ("a,14,10,12,high,", "the top slice 14 lies below (towards the feet of) the bottom slice 10"),
    ("a,10,14,12,sure,", "confidence 'sure' is not one of high, medium, low"),
    ("z,10,14,12,high,", "z_ct.nii.gz does not exist: check the path to the CT"),
])
def test_each_problem_is_named_for_its_case(tmp_path, ct_dir, row, expected):
    problems = problems_of(tmp_path, ct_dir, row, "b,10,14,12,high,")
    case = row.split(",")[0]
    assert list(problems) == [case] and len(problems[case]) == 1
    assert expected in problems[case][0]


def test_an_unreadable_ct_and_a_duplicated_case_are_problems(tmp_path, ct_dir):
    (ct_dir / "c_ct.nii.gz").write_text("not an image")
    problems = problems_of(tmp_path, ct_dir, "a,10,14,12,high,", "b,10,14,12,high,",
                           "a,11,15,13,high,", "c,10,14,12,high,")
    assert problems["a"] == ["listed 2 times (lines 2, 4): keep one row"]
    assert "could not be read as an image" in problems["c"][0]
    assert "b" not in problems


def test_ct_column_is_relative_to_the_csv_and_wins_over_ct_dir(tmp_path, ct_dir):
    other = tmp_path / "elsewhere"
    other.mkdir()
    write_ct(other / "scan.nrrd")
    levels = read_levels(write_csv(tmp_path / "levels.csv",
                                   "a,10,14,12,high,,JD,elsewhere/scan.nrrd",
                                   "b,10,14,12,high,,,", header=HEADER + ",annotator,ct"))
    locate = CtLocator(ct_dir, "{case}_ct.nii.gz")
    assert locate(levels[0]) == tmp_path / "elsewhere" / "scan.nrrd"
    assert locate(levels[1]) == ct_dir / "b_ct.nii.gz"
    assert check_levels(levels, locate) == {}
    assert "fill the ct column, or give --ct-dir" in check_levels(levels, CtLocator())["b"][0]
    with pytest.raises(InputError, match="may only name {case}"):
        CtLocator(ct_dir, "{patient}.nii.gz")


def test_write_level_row_adds_and_replaces_one_row_per_case(tmp_path):
    path = write_csv(tmp_path / "levels.csv", "a,10,14,12,high,by eye,,,x",
                     header=HEADER + ",annotator,ct,site")
    write_level_row(path, C3Level("b", None, None, 20, "high", "slicer", "JD",
                                  tmp_path / "b_ct.nii.gz"))
    write_level_row(path, C3Level("b", None, None, 21, "high", "slicer", "JD",
                                  tmp_path / "b_ct.nii.gz"))
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case"] for row in rows] == ["a", "b"]
    assert rows[0]["site"] == "x" and rows[0]["notes"] == "by eye"
    assert (rows[1]["c3_mid_z_index"], rows[1]["c3_top_z_index"], rows[1]["ct"]) == \
        ("21", "", "b_ct.nii.gz")
    assert read_levels(path)[1].ct == tmp_path / "b_ct.nii.gz"
    with pytest.raises(InputError, match="not a C3 levels CSV"):
        write_level_row(write_csv(tmp_path / "other.csv", "1,2", header="x,y"),
                        read_levels(path)[0])


def test_check_levels_command_lists_problems_and_exits_2(tmp_path, ct_dir, capsys):
    bad = write_csv(tmp_path / "bad.csv", "a,10,14,16,high,", "b,10,14,12,high,")
    assert main(["check-levels", str(bad), "--ct-dir", str(ct_dir)]) == 2
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("a: the middle slice 16") and "problems in 1 of 2" in printed[-1]
    good = write_csv(tmp_path / "good.csv", "a,10,14,12,high,", "b,,,12,low,")
    assert main(["check-levels", str(good), "--ct-dir", str(ct_dir)]) == 0
    assert capsys.readouterr().out.strip().endswith(
        "2 cases (high 1, medium 0, low 1; 1 with top and bottom, 1 with the middle slice "
        "only), all valid")


def label_slices(path: Path) -> np.ndarray:
    return np.flatnonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).any(axis=(1, 2)))


def test_ingest_levels_writes_33_mm_sections_centred_on_the_middle(tmp_path, ct_dir, capsys):
    levels = write_csv(tmp_path / "levels.csv", "a,10,15,,high,", "b,9,13,12,medium,",
                       "c,,,20,low,")
    out = tmp_path / "labels"
    assert main(["ingest-levels", str(levels), "--ct-dir", str(ct_dir), "--out", str(out)]) == 0
    rows = {row["case_id"]: row for row in read_manifest(out / "manifest.csv")}
    assert {case: int(row["c3_slice_k"]) for case, row in rows.items()} == \
        {"a": 13, "b": 12, "c": 20}
    assert (rows["a"]["c3_top_k"], rows["a"]["c3_bottom_k"], rows["a"]["confidence"]) == \
        ("10", "15", "high")
    assert rows["c"]["c3_top_k"] == "" and rows["a"]["muscle_mask"] == ""
    for case, row in rows.items():
        ct = imaging.read_ct(row["ct"])
        label = sitk.ReadImage(row["section_mask"])
        imaging.check_same_grid(label, ct)
        assert label.GetPixelID() == sitk.sitkUInt8
        slices = label_slices(Path(row["section_mask"]))
        middle = int(row["c3_slice_k"])
        half = int(16.5 // SLICE_MM)  # 5 slices each side: 11 x 3 mm = 33 mm
        assert slices.tolist() == list(range(middle - half, middle + half + 1))
        body = imaging.body_mask(sitk.GetArrayFromImage(ct))
        array = sitk.GetArrayFromImage(label)
        assert np.array_equal(array[slices] != 0, body[slices])


def test_ingest_levels_excludes_a_test_set_and_refuses_problems(tmp_path, ct_dir, capsys):
    levels = write_csv(tmp_path / "levels.csv", "a,10,14,12,high,", "b,10,14,12,high,",
                       "c,10,14,12,high,")
    test_set = write_csv(tmp_path / "test.csv", "b,,,12,high,", "q,,,1,low,")
    out = tmp_path / "train"
    assert main(["ingest-levels", str(levels), "--ct-dir", str(ct_dir), "--out", str(out),
                 "--exclude", str(test_set)]) == 0
    assert "Left out 1 of 3 cases listed in" in capsys.readouterr().out
    assert [row["case_id"] for row in read_manifest(out / "manifest.csv")] == ["a", "c"]
    assert not (out / "b_section.nii.gz").exists()

    bad = write_csv(tmp_path / "bad.csv", "a,10,14,12,high,", "b,10,11,10,high,")
    assert main(["ingest-levels", str(bad), "--ct-dir", str(ct_dir),
                 "--out", str(tmp_path / "bad_out")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("b: the C3 body would be 6.0 mm tall")
    assert "nothing was written" in captured.err
    assert not (tmp_path / "bad_out").exists()


def test_section_stage_trains_on_a_levels_manifest_and_muscle_stage_says_why_not(
        tmp_path, ct_dir):
    levels = write_csv(tmp_path / "levels.csv", "a,10,14,12,high,", "b,12,16,14,high,")
    out = tmp_path / "labels"
    assert main(["ingest-levels", str(levels), "--ct-dir", str(ct_dir), "--out", str(out)]) == 0
    manifest = str(out / "manifest.csv")
    assert main(["train", "--manifest", manifest, "--stage", "section", "--preset", "fast",
                 "--out", str(tmp_path / "section"), "--folds", "2", "--iterations", "2",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "section" / "fold1.pt").is_file()
    from C3SarcopeniaLib.models import ModelCard
    from C3SarcopeniaLib.training import prepare_muscle_case

    card = ModelCard.from_preset("muscle", "paper", folds=2, seed=0, iterations=1, command="",
                                 trained_on="", synthetic=True)
    with pytest.raises(InputError, match="case a has no muscle mask"):
        prepare_muscle_case(read_manifest(manifest)[0], card)


@pytest.mark.skipif(not BY_EYE.is_file(), reason="shared OpenKBP by-eye levels not present")
def test_the_shared_by_eye_levels_validate_on_the_real_cts():
    levels = read_levels(BY_EYE)
    assert len(levels) == 30 and all(level.has_body for level in levels)
    assert check_levels(levels, CtLocator(OPENKBP)) == {}
    # The file's middles follow the rule used for a blank middle.
    assert all(level.middle_k == (level.top_k + level.bottom_k + 1) // 2 for level in levels)


@pytest.mark.skipif(not BY_EYE.is_file(), reason="shared OpenKBP by-eye levels not present")
def test_shared_levels_ingest_into_sections_on_the_real_grid(tmp_path):
    with BY_EYE.open(newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    subset = tmp_path / "by_eye_3.csv"
    subset.write_text("".join(lines[:4]))
    out = tmp_path / "test_set"
    assert main(["ingest-levels", str(subset), "--ct-dir", str(OPENKBP), "--out", str(out)]) == 0
    for row, level in zip(read_manifest(out / "manifest.csv"), read_levels(subset)):
        ct = imaging.read_ct(row["ct"])
        slices = label_slices(Path(row["section_mask"]))
        zs = imaging.slice_zs_mm(ct)[slices]
        middle_z = imaging.slice_z_mm(ct, level.middle_k)
        assert np.all(np.abs(zs - middle_z) <= 16.5)
        assert len(slices) == np.sum(np.abs(imaging.slice_zs_mm(ct) - middle_z) <= 16.5)
        assert (int(row["c3_top_k"]), int(row["c3_bottom_k"])) == (level.top_k, level.bottom_k)
