"""Review sheets: the spine track follows the real column, sheets and index get written."""

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib import pyplot as plt

from C3SarcopeniaLib import imaging
from C3SarcopeniaLib.cohort import review
from C3SarcopeniaLib.cli import main
from conftest import SHARED

OPENKBP = SHARED / "openkbp"
needs_openkbp = pytest.mark.skipif(not OPENKBP.is_dir(), reason="shared OpenKBP data not present")


@needs_openkbp
@pytest.mark.parametrize("case", ["train-pats_pt_133", "train-pats_pt_151"])
def test_spine_track_follows_the_spinal_cord_of_a_real_ct(case):
    """The clinicians' spinal-cord contour runs inside the canal: the track (the centre of the
    vertebra's bone) stays within a vertebra's reach of it on every slice of the neck, even
    where the mandible is in the slice (pt 151)."""
    ct = imaging.read_ct(OPENKBP / f"{case}_ct.nii.gz")
    cord = sitk.DICOMOrient(sitk.ReadImage(str(OPENKBP / f"{case}_SpinalCord.nii.gz")), "LPS")
    hu, _ = review._lps(ct)
    track = review.spine_track(hu, ct.GetSpacing())
    cord = sitk.GetArrayFromImage(cord) > 0
    spacing = ct.GetSpacing()
    distances = []
    for k in np.flatnonzero(cord.any(axis=(1, 2))):
        j, i = np.nonzero(cord[k])
        distances.append(np.hypot((track.column_i[k] - i.mean()) * spacing[0],
                                  (track.row_j[k] - j.mean()) * spacing[1]))
    assert len(distances) > 20
    assert np.median(distances) < 15.0 and np.percentile(distances, 90) < 25.0


@needs_openkbp
def test_bone_profile_dips_at_the_discs_around_c3():
    """On a case read by eye with high confidence, the discs just above and below the C3 body
    are darker on the profile than the middle of the body."""
    rows = {r["case"]: r for r in csv.DictReader(open(OPENKBP / "c3_levels_by_eye.csv"))}
    level = rows["train-pats_pt_133"]
    ct = imaging.read_ct(OPENKBP / "train-pats_pt_133_ct.nii.gz")
    hu, flipped = review._lps(ct)
    profile = review.bone_profile(hu, review.spine_track(hu, ct.GetSpacing()), ct.GetSpacing())
    if flipped:
        profile = profile[::-1]  # back to the CT's own slice order
    top, bottom = int(level["c3_top_z_index"]), int(level["c3_bottom_z_index"])
    body = profile[top:bottom + 1].max()
    assert profile[top - 2:top].min() < body and profile[bottom + 1:bottom + 3].min() < body


def test_review_command_writes_sheets_with_levels_and_an_index(tmp_path, phantom_cohort,
                                                                tiny_models):
    levels = tmp_path / "levels.csv"
    rows = list(csv.DictReader(open(phantom_cohort)))[:2]
    levels.write_text("case,c3_top_z_index,c3_bottom_z_index,c3_mid_z_index,confidence,notes\n"
                      + "".join(f"{r['case_id']},{int(r['c3_slice_k']) - 2},"
                                f"{int(r['c3_slice_k']) + 2},,high,test\n" for r in rows))
    out = tmp_path / "sheets"
    assert main(["review", str(phantom_cohort), "--out", str(out), "--models", str(tiny_models),
                 "--levels", str(levels)]) == 0
    sheets = sorted(out.glob("*.png"))
    assert len(sheets) == 5 and all(sheet.stat().st_size > 20_000 for sheet in sheets)
    index = (out / "index.html").read_text()
    assert index.count("<img") == 5 and "annotated C3 body" in index


def test_axial_panel_shows_the_predicted_slice_else_the_annotated_middle(phantom_cohort):
    row = next(csv.DictReader(open(phantom_cohort)))
    ct = imaging.read_ct(Path(phantom_cohort).parent / row["ct"])

    def axial_title(marks):
        figure = review.review_figure(ct, "case", marks)
        titles = [ax.get_title() for ax in figure.axes if ax.get_title().startswith("axial")]
        plt.close(figure)
        return titles

    # the annotated middle as levels.C3Level.middle_k gives it, not the rounded mean (12)
    side = " (patient's right on the left)"
    assert axial_title(review.LevelMarks(body_ks=(10, 15), body_middle_k=13)) == [
        "axial slice k=13" + side]
    assert axial_title(review.LevelMarks(9, (4, 14), (10, 15), 13)) == ["axial slice k=9" + side]
    assert axial_title(review.LevelMarks()) == []
