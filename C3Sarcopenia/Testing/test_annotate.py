"""Reading C3 muscle by region picking: sheets, regions, the readings validator, consensus."""

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from C3SarcopeniaLib.annotate import consensus, readings as rd
from C3SarcopeniaLib.annotate.model_reading import pick_from_labels
from C3SarcopeniaLib.annotate.regions import (REGION_AREA_MM2, candidate_pixels, load_sheets,
                                              numbered_regions, slice_view)
from C3SarcopeniaLib.cli import main
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.measures import dice
from C3SarcopeniaLib.phantoms.phantom import PhantomOptions, make_phantom
from C3SarcopeniaLib.training import prepare_muscle_case, read_manifest

HEADER = "case,slice_k,paravertebral,scm_right,scm_left,confidence,notes\n"


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(11, "neck", PhantomOptions(in_plane_mm=(2.0, 2.0), slice_mm=(3.0, 3.0)))


@pytest.fixture(scope="module")
def sheet_folder(tmp_path_factory, phantom):
    """Sheets of the phantom's C3 slice, as muscle-sheets writes them from a levels CSV."""
    root = tmp_path_factory.mktemp("sheets")
    sitk.WriteImage(phantom.ct, str(root / "neck_ct.nii.gz"))
    top, bottom = phantom.c3_body_k_range
    (root / "levels.csv").write_text(
        "case,c3_top_z_index,c3_bottom_z_index,c3_mid_z_index,confidence,notes\n"
        f"neck,{top},{bottom},{phantom.c3_slice_k},high,phantom\n")
    assert main([ "muscle-sheets", str(root), "--levels", str(root / "levels.csv"),
                 "--out", str(root / "sheets")]) == 0
    return root / "sheets"


def test_sheet_regions_are_numbered_connected_and_about_a_square_centimetre(sheet_folder):
    sheet = load_sheets(sheet_folder)["neck"]
    regions = sheet.regions
    numbers = np.unique(regions[regions > 0])
    assert numbers.tolist() == list(range(1, len(numbers) + 1))
    from scipy import ndimage
    for number in numbers:
        assert ndimage.label(regions == number)[1] == 1
    areas_mm2 = np.bincount(regions.ravel())[1:] * sheet.view.fine_pixel_area_mm2
    assert 0.3 * REGION_AREA_MM2 < np.median(areas_mm2) < 3 * REGION_AREA_MM2
    # every muscle-density pixel of the body is in some region, nothing else is
    assert np.array_equal(regions > 0, candidate_pixels(sheet.view))
    assert (sheet_folder / "neck.png").stat().st_size > 10_000
    assert "neck.png" in (sheet_folder / "index.html").read_text()


def test_a_perfect_readers_pick_reproduces_the_phantom_label(sheet_folder, phantom):
    sheet = load_sheets(sheet_folder)["neck"]
    truth = sitk.GetArrayFromImage(phantom.muscle_mask)[phantom.c3_slice_k]
    labels = rd.slice_labels(sheet, pick_from_labels(sheet, truth))
    for label in (1, 2, 3):
        overlap = ((labels == label) & (truth == label)).sum()
        assert 2 * overlap / ((labels == label).sum() + (truth == label).sum()) > 0.8


def test_picks_map_back_to_the_same_pixels_on_a_flipped_ct(tmp_path, phantom):
    """A CT stored right-to-left shows the same picture; a pick lands on the same anatomy."""
    k = phantom.c3_slice_k
    flipped = sitk.Flip(phantom.ct, [True, False, False])  # same anatomy, i axis reversed
    normal_view, flipped_view = slice_view(phantom.ct, k), slice_view(flipped, k)
    assert np.array_equal(normal_view.hu_fine, flipped_view.hu_fine)
    regions = numbered_regions(normal_view)
    pick = (regions > 0).astype(np.uint8)
    on_normal = normal_view.to_ct_slice(pick)
    on_flipped = flipped_view.to_ct_slice(pick)
    assert on_normal.any()
    assert np.array_equal(on_flipped, on_normal[:, ::-1])


def write_readings(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return path


def test_validator_lists_every_problem(tmp_path, sheet_folder):
    sheets = load_sheets(sheet_folder)
    k = sheets["neck"].view.slice_k
    n = sheets["neck"].n_regions
    bad = write_readings(tmp_path / "r1.csv", [
        f"neck,{k + 1},1 2 3,4,5,high,",            # wrong slice
        f"neck,{k},1 2 {n + 5},2,,sure,",          # unknown region, region twice, bad confidence
        f"elsewhere,{k},1,,,low,",                  # no sheet
    ])
    with pytest.raises(InputError) as error:
        rd.validate(rd.read_readings(bad), sheets)
    text = str(error.value)
    for phrase in (f"slice_k {k + 1}", f"region {n + 5} does not exist", "in both",
                   "confidence 'sure'", "read twice", "no sheet"):
        assert phrase in text
    with pytest.raises(InputError, match="whole numbers"):
        rd.read_readings(write_readings(tmp_path / "r2.csv", [f"neck,{k},1 x,,,high,"]))
    unreadable = write_readings(tmp_path / "r3.csv", [f"neck,{k},,,,unreadable,SCMs cut off"])
    rd.validate(rd.read_readings(unreadable), sheets)  # no muscle, but said why: valid


def test_majority_per_region_and_ties_left_out():
    def reading(para, right, left, reader):
        return rd.Reading("c", 0, {"paravertebral": para, "scm_right": right, "scm_left": left},
                          "high", reader=reader)

    three = [reading([1, 2, 3], [7], [9], "a"), reading([1, 2], [7, 3], [9], "b"),
             reading([1, 4], [], [9, 7], "c")]
    assert consensus.majority_regions(three) == {"paravertebral": [1, 2], "scm_right": [7],
                                                 "scm_left": [9]}
    two = [reading([1, 2], [], [], "a"), reading([1], [2], [], "b")]
    assert consensus.majority_regions(two) == {"paravertebral": [1], "scm_right": [],
                                               "scm_left": []}


def test_consensus_writes_trainable_masks_manifest_and_agreement(tmp_path, sheet_folder,
                                                                 phantom):
    sheet = load_sheets(sheet_folder)["neck"]
    truth = sitk.GetArrayFromImage(phantom.muscle_mask)[phantom.c3_slice_k]
    pick = pick_from_labels(sheet, truth)
    k = sheet.view.slice_k
    row = f"neck,{k},{' '.join(map(str, pick['paravertebral']))}," \
          f"{' '.join(map(str, pick['scm_right']))},{' '.join(map(str, pick['scm_left']))},high,"
    dropped = pick["paravertebral"][1:]  # reader b misses one paravertebral region
    row_b = row.replace(",".join([" ".join(map(str, pick["paravertebral"]))]),
                        " ".join(map(str, dropped)), 1)
    a = write_readings(tmp_path / "a.csv", [row])
    b = write_readings(tmp_path / "b.csv", [row_b])
    out = tmp_path / "consensus"
    assert main(["muscle-consensus", str(a), str(b), "--sheets", str(sheet_folder),
                 "--out", str(out)]) == 0
    [manifest_row] = read_manifest(out / "manifest.csv")
    mask = sitk.ReadImage(manifest_row["muscle_mask"])
    assert mask.GetSize() == phantom.ct.GetSize()
    labels = sitk.GetArrayFromImage(mask)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert not labels[np.arange(len(labels)) != k].any()
    # the region only reader a picked is a tie: out of the consensus
    expected = rd.slice_labels(sheet, {**pick, "paravertebral": dropped})
    assert np.array_equal(labels[k], expected)
    with open(out / "agreement.csv") as handle:
        [agreement] = list(csv.DictReader(handle))
    assert 0.8 < float(agreement["mean_pairwise_dsc"]) < 1.0
    assert float(manifest_row["reader_dsc"]) == pytest.approx(
        float(agreement["mean_pairwise_dsc"]), abs=1e-4)
    from C3SarcopeniaLib.models import ModelCard
    case = prepare_muscle_case(manifest_row, ModelCard.from_preset("muscle", "paper"))
    assert case.labels[0].max() == 3  # the groups reach training


def test_draw_and_check_commands(tmp_path, sheet_folder, capsys):
    k = load_sheets(sheet_folder)["neck"].view.slice_k
    good = write_readings(tmp_path / "reader.csv", [f"neck,{k},1 2 3,4,5,medium,"])
    assert main(["muscle-check", str(good), "--sheets", str(sheet_folder)]) == 0
    assert main(["muscle-draw", str(good), "--sheets", str(sheet_folder),
                 "--out", str(tmp_path / "drawn")]) == 0
    assert (tmp_path / "drawn" / "neck.reader.png").is_file()
    assert "total" in capsys.readouterr().out
    bad = write_readings(tmp_path / "bad.csv", [f"neck,{k},1 2 3,3,5,medium,"])
    assert main(["muscle-check", str(bad), "--sheets", str(sheet_folder)]) == 2
    assert "in both" in capsys.readouterr().err


def test_sheets_from_a_manifest_and_consensus_of_listed_cases_only(tmp_path, sheet_folder):
    """A manifest names the CTs; --cases-from keeps a split apart (none here: nothing)."""
    ct = sheet_folder.parent / "neck_ct.nii.gz"
    (tmp_path / "manifest.csv").write_text(f"case_id,ct\nneck,{ct}\n")
    assert main(["muscle-sheets", str(tmp_path / "manifest.csv"), "--levels",
                 str(sheet_folder.parent / "levels.csv"), "--out", str(tmp_path / "s")]) == 0
    again = load_sheets(tmp_path / "s")["neck"]
    assert np.array_equal(again.regions, load_sheets(sheet_folder)["neck"].regions)
    k = again.view.slice_k
    readings = [write_readings(tmp_path / f"{name}.csv", [f"neck,{k},1 2 3,,,medium,"])
                for name in ("a", "b")]
    (tmp_path / "other_split.csv").write_text("case\nsomeone_else\n")
    assert main(["muscle-consensus", *map(str, readings), "--sheets", str(tmp_path / "s"),
                 "--cases-from", str(tmp_path / "other_split.csv"),
                 "--out", str(tmp_path / "c")]) == 2
    assert main(["muscle-consensus", *map(str, readings), "--sheets", str(tmp_path / "s"),
                 "--out", str(tmp_path / "c")]) == 0
    [row] = read_manifest(tmp_path / "c" / "manifest.csv")
    assert Path(row["ct"]) == ct.resolve() and float(row["reader_dsc"]) == 1.0


# --- the model read as one more reader -------------------------------------------------------

def test_fine_blocks_are_the_exact_inverse_of_to_ct_slice_on_a_flipped_ct_too(phantom):
    rng = np.random.default_rng(3)
    for ct in (phantom.ct, sitk.Flip(phantom.ct, [True, False, False])):
        view = slice_view(ct, phantom.c3_slice_k)
        labels = rng.integers(0, 4, view.slice_shape).astype(np.uint8)
        inside = view.to_ct_slice(np.ones(view.body_fine.shape, np.uint8)) > 0  # the crop
        assert np.array_equal(view.to_ct_slice(view.fine_blocks(labels))[inside], labels[inside])


def test_a_pick_from_labels_takes_each_regions_plurality(sheet_folder, phantom):
    sheet = load_sheets(sheet_folder)["neck"]
    shape = sheet.view.slice_shape
    assert pick_from_labels(sheet, np.zeros(shape, np.uint8)) == {g: [] for g in rd.GROUPS}
    everywhere_left = pick_from_labels(sheet, np.full(shape, 3, np.uint8))
    assert everywhere_left["scm_left"] == list(range(1, sheet.n_regions + 1))
    # a reader's pick drawn on the CT's pixels is picked back, region for region, but for
    # the few regions that CT pixels of muscle density barely touch
    truth = sitk.GetArrayFromImage(phantom.muscle_mask)[phantom.c3_slice_k]
    pick = pick_from_labels(sheet, truth)
    again = pick_from_labels(sheet, rd.slice_labels(sheet, pick))
    for group in rd.GROUPS:
        assert len(set(pick[group]) ^ set(again[group])) <= 0.1 * len(pick[group]) + 1, group


def test_muscle_pick_writes_the_models_outline_as_a_valid_reading(tmp_path, sheet_folder,
                                                                  tiny_models, capsys):
    from C3SarcopeniaLib.annotate.model_reading import MODEL_PICK_NOTE
    from C3SarcopeniaLib.models import load_ensemble
    from C3SarcopeniaLib.pipeline import segment_muscle

    out = tmp_path / "model.csv"
    assert main(["muscle-pick", "--sheets", str(sheet_folder), "--models", str(tiny_models),
                 "--device", "cpu", "--out", str(out)]) == 0
    assert "1 picks by model" in capsys.readouterr().out
    sheets = load_sheets(sheet_folder)
    [reading] = rd.read_readings(out)
    rd.validate([reading], sheets)
    assert reading.reader == "model" and reading.notes.startswith(MODEL_PICK_NOTE)
    sheet = sheets["neck"]
    outline = segment_muscle(sitk.ReadImage(sheet.ct), sheet.view.slice_k,
                             load_ensemble(tiny_models / "muscle", "cpu"))
    assert reading.regions == pick_from_labels(sheet, outline)
    # a blind consensus refuses the model's picks
    assert main(["muscle-consensus", str(out), str(out), "--sheets", str(sheet_folder),
                 "--out", str(tmp_path / "c")]) == 2
    assert "model's picks" in capsys.readouterr().err


def test_muscle_pick_refuses_a_ct_that_is_not_the_sheets(tmp_path, sheet_folder, phantom,
                                                         tiny_models, capsys):
    import shutil

    moved = tmp_path / "sheets"
    shutil.copytree(sheet_folder, moved)
    changed = sitk.GetArrayFromImage(phantom.ct)
    changed[phantom.c3_slice_k] += 7
    other = sitk.GetImageFromArray(changed)
    other.CopyInformation(phantom.ct)
    sitk.WriteImage(other, str(tmp_path / "neck_ct.nii.gz"))  # where the copied sheet points
    assert main(["muscle-pick", "--sheets", str(moved), "--models", str(tiny_models),
                 "--device", "cpu", "--out", str(tmp_path / "model.csv")]) == 2
    assert "not the CT its sheet was made from" in capsys.readouterr().err
    assert not (tmp_path / "model.csv").exists()


def test_muscle_agreement_sets_one_reader_beside_the_others(tmp_path, sheet_folder, phantom,
                                                           capsys):
    sheet = load_sheets(sheet_folder)["neck"]
    k = sheet.view.slice_k
    pick = pick_from_labels(sheet, sitk.GetArrayFromImage(phantom.muscle_mask)[k])
    missing_one = {**pick, "paravertebral": pick["paravertebral"][1:]}

    def row(p):
        return f"neck,{k},{' '.join(map(str, p['paravertebral']))}," \
               f"{' '.join(map(str, p['scm_right']))},{' '.join(map(str, p['scm_left']))},high,"
    files = [write_readings(tmp_path / f"{name}.csv", [row(p)])
             for name, p in (("a", pick), ("b", missing_one), ("new", pick))]
    d_ab = dice(rd.slice_labels(sheet, pick) > 0, rd.slice_labels(sheet, missing_one) > 0)
    assert d_ab < 1.0
    out = tmp_path / "agreement.csv"
    assert main(["muscle-agreement", *map(str, files), "--sheets", str(sheet_folder),
                 "--reader", "new", "--out", str(out)]) == 0
    assert "new on 1 cases" in capsys.readouterr().out
    with open(out) as handle:
        [case] = list(csv.DictReader(handle))
    assert float(case["reader_dsc"]) == pytest.approx((1.0 + d_ab) / 2, abs=1e-4)
    assert float(case["others_dsc"]) == pytest.approx(d_ab, abs=1e-4)
    assert float(case["difference"]) == pytest.approx((1.0 - d_ab) / 2, abs=1e-4)
    assert main(["muscle-agreement", *map(str, files), "--sheets", str(sheet_folder),
                 "--reader", "someone"]) == 2
    assert "no case has a readable reading by 'someone'" in capsys.readouterr().err
    (tmp_path / "again").mkdir()
    twin = write_readings(tmp_path / "again" / "a.csv", [row(pick)])
    assert main(["muscle-agreement", *map(str, files), str(twin), "--sheets", str(sheet_folder),
                 "--reader", "new"]) == 2
    assert "two readings files are named a" in capsys.readouterr().err
