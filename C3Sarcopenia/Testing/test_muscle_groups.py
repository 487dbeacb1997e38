"""Muscle groups end to end: the Chargi rule, the guards, side-aware flips, three-class
models, evaluation against grouped labels, and how much the folds disagree."""

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from C3SarcopeniaLib import guards, imaging
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.measures import ClinicalInfo, measure_slice
from C3SarcopeniaLib.models import ModelCard, load_ensemble
from C3SarcopeniaLib.phantoms.phantom import PhantomOptions, make_phantom
from C3SarcopeniaLib.pipeline import segment_muscle, segment_muscle_folds
from C3SarcopeniaLib.training import RandLeftRightFlipd

CLINICAL = ClinicalInfo(age_years=60, sex="M", height_cm=175, weight_kg=80)


def labelled_slice():
    hu = np.full((20, 30), 40.0)
    labels = np.zeros((20, 30), np.uint8)
    labels[5:15, 10:20] = 1      # 100 px paravertebral
    labels[5:10, 2:6] = 2        # 20 px SCM right
    labels[5:11, 24:28] = 3      # 24 px SCM left
    hu[labels == 2] = 140.0      # the right SCM side is a node-like mass
    return hu, labels


def test_groups_are_measured_and_sum_to_the_total():
    hu, labels = labelled_slice()
    m = measure_slice(hu, labels, (1.0, 1.0), CLINICAL)
    assert (m.paravertebral_csa_cm2, m.scm_right_csa_cm2, m.scm_left_csa_cm2) == (1.0, 0.2, 0.24)
    assert m.muscle_csa_cm2 == pytest.approx(1.44)
    ungrouped = measure_slice(hu, (labels > 0).astype(np.uint8), (1.0, 1.0), CLINICAL)
    assert ungrouped.muscle_csa_cm2 == pytest.approx(1.44)
    assert ungrouped.paravertebral_csa_cm2 is None


def test_chargi_rule_counts_the_other_scm_twice_and_leaves_the_nodal_side_out():
    hu, labels = labelled_slice()
    m = measure_slice(hu, labels, (1.0, 1.0), CLINICAL, scm_nodal="right")
    assert m.muscle_csa_cm2 == pytest.approx(1.0 + 2 * 0.24)
    assert m.muscle_mean_hu == pytest.approx(40.0)  # the node-like side is not averaged
    left = measure_slice(hu, labels, (1.0, 1.0), CLINICAL, scm_nodal="left")
    assert left.muscle_csa_cm2 == pytest.approx(1.0 + 2 * 0.2)
    assert m.l3_csa_cm2 - left.l3_csa_cm2 == pytest.approx(1.363 * 0.08)
    with pytest.raises(InputError, match="groups"):
        measure_slice(hu, (labels > 0).astype(np.uint8), (1.0, 1.0), CLINICAL, scm_nodal="left")
    with pytest.raises(InputError, match="right' or 'left"):
        measure_slice(hu, labels, (1.0, 1.0), CLINICAL, scm_nodal="both")


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, "guarded", PhantomOptions(in_plane_mm=(1.5, 1.5), slice_mm=(3, 3)))


def test_guards_keep_muscle_out_of_the_canal_and_outside_the_body(phantom):
    hu = sitk.GetArrayFromImage(phantom.ct)[phantom.c3_slice_k].astype(np.float32)
    spacing = imaging.pixel_spacing_mm(phantom.ct)
    canal = guards.enclosed_by_bone(hu, spacing)
    # the phantom's canal: soft tissue (15-35 HU) ringed by the laminae behind the body
    assert 0.5 < canal.sum() * spacing[0] * spacing[1] / 100 < guards.MAX_CANAL_AREA_CM2
    rows, cols = np.nonzero(canal)
    bone_rows = np.nonzero((hu > guards.BONE_HU).any(axis=1))[0]
    assert bone_rows.min() < rows.mean() < bone_rows.max()
    shell = hu.copy()
    shell[2:4, :] = 60.0  # a strip of mask-shell density at the edge of the field of view
    allowed = guards.allowed_muscle_pixels(shell, spacing)
    assert not allowed[2:4].any() and not (allowed & canal).any()
    truth = sitk.GetArrayFromImage(phantom.muscle_mask)[phantom.c3_slice_k]
    assert (allowed[truth > 0]).mean() > 0.97  # the true muscle is not removed


def test_left_right_flip_swaps_the_scm_labels():
    flip = RandLeftRightFlipd(("image", "label"), prob=1.0,
                              classes=["paravertebral", "scm_right", "scm_left"])
    label = torch.tensor([[[2, 0, 1, 3]]], dtype=torch.uint8)
    out = flip({"image": label.float(), "label": label})
    assert out["label"].tolist() == [[[2, 1, 0, 3]]]
    assert out["image"].tolist() == [[[3.0, 1.0, 0.0, 2.0]]]
    section = RandLeftRightFlipd(("image", "label"), prob=1.0, classes=["c3_section"])
    binary = torch.tensor([[[1, 0, 0, 1, 1]]], dtype=torch.uint8)
    assert section({"image": binary.float(), "label": binary})["label"].tolist() == \
        [[[1, 1, 0, 0, 1]]]


def test_three_class_models_segment_groups_within_the_guards(tiny_models, phantom):
    card = ModelCard.load(tiny_models / "muscle")
    assert card.classes == ["paravertebral", "scm_right", "scm_left"]
    models = load_ensemble(tiny_models / "muscle", "cpu")
    labels = segment_muscle(phantom.ct, phantom.c3_slice_k, models)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
    hu = sitk.GetArrayFromImage(phantom.ct)[phantom.c3_slice_k]
    assert not (labels > 0)[~guards.allowed_muscle_pixels(
        hu.astype(np.float32), imaging.pixel_spacing_mm(phantom.ct))].any()


def test_measure_command_reports_groups_and_applies_the_scm_rule(tmp_path, phantom):
    import json

    from C3SarcopeniaLib.cli import main

    ct_path, mask_path = tmp_path / "ct.nii.gz", tmp_path / "muscle.nii.gz"
    sitk.WriteImage(phantom.ct, str(ct_path))
    labels = sitk.GetArrayFromImage(phantom.muscle_mask)
    labels[np.arange(len(labels)) != phantom.c3_slice_k] = 0
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(phantom.ct)
    sitk.WriteImage(mask, str(mask_path))
    common = ["measure", "--ct", str(ct_path), "--mask", str(mask_path), "--age", "60",
              "--sex", "M", "--height-cm", "175", "--weight-kg", "80"]
    assert main(common + ["--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "result.json").read_text())
    groups = [plain[f"{g}_csa_cm2"] for g in ("paravertebral", "scm_right", "scm_left")]
    assert all(value > 0 for value in groups)
    assert plain["muscle_csa_cm2"] == pytest.approx(sum(groups))
    assert main(common + ["--scm-nodal", "left", "--out", str(tmp_path / "nodal")]) == 0
    nodal = json.loads((tmp_path / "nodal" / "result.json").read_text())
    assert nodal["muscle_csa_cm2"] == pytest.approx(groups[0] + 2 * groups[1])
    assert any("Chargi" in warning for warning in nodal["warnings"])


def test_evaluate_gives_group_dsc_bland_altman_and_the_readers_ceiling(tmp_path, tiny_models):
    import csv
    import json

    from C3SarcopeniaLib.cli import main

    rows = []
    for seed, reader_dsc in ((31, 0.9), (32, 0.96)):
        p = make_phantom(seed, f"case{seed}", PhantomOptions(in_plane_mm=(2, 2), slice_mm=(3, 3)))
        sitk.WriteImage(p.ct, str(tmp_path / f"case{seed}_ct.nii.gz"))
        sitk.WriteImage(p.muscle_mask, str(tmp_path / f"case{seed}_muscle.nii.gz"))
        rows.append({"case_id": f"case{seed}", "ct": f"case{seed}_ct.nii.gz",
                     "muscle_mask": f"case{seed}_muscle.nii.gz", "c3_slice_k": p.c3_slice_k,
                     "reader_dsc": reader_dsc, "reader_csa_diff_percent": 5.0})
    with open(tmp_path / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["evaluate", "--manifest", str(tmp_path / "manifest.csv"), "--models",
                 str(tiny_models), "--out", str(tmp_path / "evaluation")]) == 0
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["inter_reader_dsc_mean"] == pytest.approx(0.93)
    limits = metrics["csa_bland_altman_cm2_gt"]
    assert limits["loa_low"] <= limits["bias"] <= limits["loa_high"]
    assert metrics["muscle_dsc_mean"] is not None


def test_fold_disagreement_is_zero_for_identical_folds_and_positive_for_differing_ones(
        tiny_models, phantom):
    models = load_ensemble(tiny_models / "muscle", "cpu")
    same = replace(models, nets=[models.nets[0]] * 2)
    labels, agreed = segment_muscle_folds(phantom.ct, phantom.c3_slice_k, same)
    assert labels.any() and agreed == 0.0
    _, differing = segment_muscle_folds(phantom.ct, phantom.c3_slice_k, models)
    assert 0 < differing < 1  # the two test folds were trained on different cases
    single = replace(models, nets=models.nets[:1])
    assert segment_muscle_folds(phantom.ct, phantom.c3_slice_k, single)[1] is None
