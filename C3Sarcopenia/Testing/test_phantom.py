"""Phantom labels agree with their definitions, and the anatomy is in the right order."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk

from C3SarcopeniaLib import imaging
from C3SarcopeniaLib.measures import MUSCLE_HU_RANGE, muscle_csa_cm2
from C3SarcopeniaLib.phantoms.phantom import (MANIFEST_COLUMNS, PhantomOptions, make_phantom,
                                     write_phantom_cohort)


@pytest.fixture(scope="module")
def phantoms(small_phantom_options):
    return [make_phantom(seed, options=small_phantom_options) for seed in range(8)]


def test_same_seed_same_phantom_other_seed_other_phantom(small_phantom_options):
    a, b = make_phantom(5, options=small_phantom_options), make_phantom(5, options=small_phantom_options)
    c = make_phantom(6, options=small_phantom_options)
    assert np.array_equal(sitk.GetArrayFromImage(a.ct), sitk.GetArrayFromImage(b.ct))
    assert a.clinical == b.clinical and a.c3_slice_k == b.c3_slice_k
    assert a.ct.GetSize() != c.ct.GetSize() or not np.array_equal(
        sitk.GetArrayFromImage(a.ct), sitk.GetArrayFromImage(c.ct))


def test_section_is_a_33mm_slab_centred_on_c3_inside_the_body(phantoms):
    for p in phantoms:
        section = sitk.GetArrayFromImage(p.section_mask).astype(bool)
        slices = np.flatnonzero(section.any(axis=(1, 2)))
        zs = np.array([imaging.slice_z_mm(p.ct, k) for k in slices])
        z_c3 = imaging.slice_z_mm(p.ct, p.c3_slice_k)
        thickness = p.ct.GetSpacing()[2]
        assert zs.max() - zs.min() == pytest.approx(33.0, abs=thickness)
        assert abs((zs.max() + zs.min()) / 2 - z_c3) <= thickness / 2 + 1e-6
        body = imaging.body_mask(sitk.GetArrayFromImage(p.ct).astype(float))
        assert not (section & ~body).any()


def test_c3_slice_lies_in_a_c3_body_of_14_to_16_mm(phantoms):
    for p in phantoms:
        first, last = p.c3_body_k_range
        assert first <= p.c3_slice_k <= last
        height = (last - first + 1) * p.ct.GetSpacing()[2]
        assert 14 * 0.85 - p.ct.GetSpacing()[2] <= height <= 16 * 1.15 + p.ct.GetSpacing()[2]


def test_muscle_label_is_within_the_muscle_hu_range(phantoms):
    for p in phantoms:
        hu = sitk.GetArrayFromImage(p.ct)
        muscle = sitk.GetArrayFromImage(p.muscle_mask).astype(bool)
        assert muscle.any()
        assert hu[muscle].min() >= MUSCLE_HU_RANGE[0] and hu[muscle].max() <= MUSCLE_HU_RANGE[1]
        assert 25 <= np.median(hu[muscle]) <= 75  # muscle, not fat at the edge of the range


def test_c3_muscle_area_is_in_the_clinical_range_and_larger_in_men():
    areas = {"M": [], "F": []}
    for seed in range(16):
        p = make_phantom(seed, options=PhantomOptions(in_plane_mm=(1.6, 1.6), slice_mm=(3, 3)))
        mask = sitk.GetArrayFromImage(p.muscle_mask)[p.c3_slice_k]
        areas[p.clinical.sex].append(muscle_csa_cm2(mask, imaging.pixel_spacing_mm(p.ct)))
    every = areas["M"] + areas["F"]
    assert 15 <= min(every) and max(every) <= 65
    assert areas["M"] and areas["F"] and np.mean(areas["M"]) > np.mean(areas["F"])


def test_bone_at_the_c3_body_and_a_disc_just_above_it(phantoms):
    """Near the spine, the C3 body and its arch are bone; the C2-C3 disc slice is not."""
    for p in phantoms:
        hu = sitk.GetArrayFromImage(p.ct).astype(float)
        muscle = sitk.GetArrayFromImage(p.muscle_mask)[p.c3_slice_k]
        cj, ci = np.argwhere(muscle).mean(axis=0)
        j, i = np.indices(muscle.shape)
        near_spine = np.hypot((j - cj) * p.ct.GetSpacing()[1], (i - ci) * p.ct.GetSpacing()[0]) < 30
        bone = [np.count_nonzero((hu[k] > 250) & near_spine)
                for k in (p.c3_slice_k, p.c3_body_k_range[0] - 1)]
        assert bone[0] > 50 and bone[1] < 0.5 * bone[0]


def test_field_of_view_without_c3(small_phantom_options):
    options = PhantomOptions(in_plane_mm=(1.6, 1.6), slice_mm=(3, 3), covers_c3=False)
    p = make_phantom(3, options=options)
    assert p.c3_slice_k is None and p.c3_body_k_range is None
    assert not sitk.GetArrayFromImage(p.section_mask).any()


def test_clinical_fields_are_plausible_for_a_head_and_neck_cohort():
    from C3SarcopeniaLib.phantoms.phantom import draw_clinical

    rng = np.random.default_rng(0)
    people = [draw_clinical(rng) for _ in range(400)]
    men = [p for p in people if p.sex == "M"]
    assert 0.7 < len(men) / len(people) < 0.9
    assert 52 <= np.median([p.age_years for p in people]) <= 62
    assert np.mean([p.height_cm for p in men]) > np.mean(
        [p.height_cm for p in people if p.sex == "F"])


def test_cohort_writes_manifest_and_readable_files(tmp_path, small_phantom_options):
    manifest = write_phantom_cohort(2, 9, tmp_path, small_phantom_options)
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == MANIFEST_COLUMNS and len(rows) == 2
    for row in rows:
        ct = imaging.read_ct(tmp_path / row["ct"])
        muscle = imaging.read_mask(tmp_path / row["muscle_mask"], ct)
        section = imaging.read_mask(tmp_path / row["section_mask"], ct)
        assert section[int(row["c3_slice_k"])].any() and muscle.any()
    again = write_phantom_cohort(2, 9, tmp_path / "again", small_phantom_options)
    assert again.read_text() == manifest.read_text()
