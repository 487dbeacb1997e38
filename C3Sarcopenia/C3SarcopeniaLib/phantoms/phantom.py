"""Synthetic neck CT phantoms with known C3 level and muscle, for tests, demos and training.

Anatomy is drawn analytically, slice by slice, in patient coordinates (LPS, mm): skull base
and mandible above; C1 ring, C2 with dens and bifid spinous process, C3-T2 with discs, canal,
posterior and transverse processes along a lordotic curve; airway, oesophagus, contrast-filled
vessels, hyoid; paravertebral, prevertebral and sternocleidomastoid muscles in fat under skin;
shoulders below C7. Every size, position, scan range, spacing, noise and contrast is drawn
from the seed, so finding C3 means recognising the vertebrae, not remembering a height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import imaging
from ..fileio import write_csv_atomic, write_image_atomic
from . import distractors
from .distractors import ellipse as _ellipse
from ..measures import ClinicalInfo, muscle_density

MANIFEST_COLUMNS = ["case_id", "ct", "section_mask", "muscle_mask", "c3_slice_k", "age", "sex",
                    "height_cm", "weight_kg"]
VERTEBRAE = ["C3", "C4", "C5", "C6", "C7", "T1", "T2"]
FOV_IN_PLANE_MM = 240.0


@dataclass
class PhantomOptions:
    """Ranges the random draws come from; the defaults are those of clinical neck CT."""

    in_plane_mm: tuple[float, float] = (0.5, 1.2)
    slice_mm: tuple[float, float] = (1.0, 5.0)
    noise_hu: tuple[float, float] = (5.0, 25.0)
    covers_c3: bool = True  # False: the scan stops above C3 (a field of view without C3)
    fov_mm: float = FOV_IN_PLANE_MM  # in-plane field of view (square)
    scan_length_mm: float | None = None  # extend the drawn scan range equally up and down
    c3_slab_mm: float | None = None  # draw only this far above and below C3 (muscle-stage data)


@dataclass
class Phantom:
    case_id: str
    ct: sitk.Image            # int16 HU
    section_mask: sitk.Image  # uint8
    muscle_mask: sitk.Image   # uint8: 1 paravertebral, 2 SCM right, 3 SCM left
    c3_slice_k: int | None
    clinical: ClinicalInfo
    c3_body_k_range: tuple[int, int] | None


@dataclass
class Anatomy:
    """Per-patient shape parameters, all in mm (z up, y posterior, x to the patient's left)."""

    levels: dict[str, tuple[float, float]]  # vertebral body z extent (bottom, top)
    c1_z: tuple[float, float]
    size: float
    muscularity: float
    fat_mm: float
    lordosis_mm: float
    tilt: float
    lateral_tilt: float
    contrast_hu: float
    z_mid: float
    extras: dict = field(default_factory=dict)

    def spine_xy(self, z: float) -> tuple[float, float]:
        """Centre of the vertebral body at height z: a lordotic, tilted curve."""
        u = (z - self.z_mid) / 60.0
        return self.lateral_tilt * (z - self.z_mid), 10.0 + self.lordosis_mm * u * u + \
            self.tilt * (z - self.z_mid)


def draw_clinical(rng: np.random.Generator) -> ClinicalInfo:
    """A head-and-neck cancer patient: mostly men, median age near 57."""
    sex = "M" if rng.random() < 0.8 else "F"
    age = float(np.clip(round(rng.normal(57, 9)), 25, 88))
    height = float(np.clip(rng.normal(176, 7) if sex == "M" else rng.normal(163, 6), 145, 200))
    weight = float(np.clip(rng.normal(82, 15) if sex == "M" else rng.normal(68, 13), 42, 150))
    return ClinicalInfo(age, sex, round(height, 1), round(weight, 1))


def draw_anatomy(rng: np.random.Generator, clinical: ClinicalInfo) -> Anatomy:
    size = (clinical.height_cm / 172.0) * rng.normal(1.0, 0.03)
    bmi = clinical.weight_kg / (clinical.height_cm / 100) ** 2
    muscularity = (1.15 if clinical.sex == "M" else 0.97) * (clinical.weight_kg / 78) ** 0.3 * \
        rng.normal(1.0, 0.07)
    levels = {}
    top = -12.0  # C1 spans 0 to -10 mm; C2 body starts below it
    c2_height = rng.uniform(20, 24) * size
    levels["C2"] = (top - c2_height, top)
    top -= c2_height
    for name in VERTEBRAE:
        top -= rng.uniform(4, 6) * size  # disc
        height = rng.uniform(14, 16) * size
        levels[name] = (top - height, top)
        top -= height
    return Anatomy(levels=levels, c1_z=(-10.0, 0.0), size=size, muscularity=muscularity,
                   fat_mm=float(np.clip(3 + 0.9 * (bmi - 18), 2, 25)),
                   lordosis_mm=rng.uniform(-4, 14), tilt=rng.uniform(-0.15, 0.15),
                   lateral_tilt=rng.uniform(-0.04, 0.04), contrast_hu=rng.uniform(120, 320),
                   z_mid=float(np.mean(levels["C4"])))


def _level_at(anatomy: Anatomy, z: float) -> tuple[str | None, str]:
    """Which vertebra lies at z, and whether z cuts its body or the disc below it."""
    names = list(anatomy.levels)  # from C2 downwards
    for name, lower in zip(names, names[1:] + [None]):
        bottom, top = anatomy.levels[name]
        if bottom <= z <= top:
            return name, "body"
        if lower is not None and anatomy.levels[lower][1] < z < bottom:
            return name, "disc"
    return None, ""


def _neck_outline(anatomy: Anatomy, z: float) -> tuple[float, float, float, float]:
    """Body ellipse (centre y, half-width, half-depth): head above C1, shoulders below C7."""
    s = anatomy.size
    ax, ay, cy = 60 * s, 60 * s, 0.0
    if z > anatomy.c1_z[0]:  # head: wider and deeper with the face in front
        grow = min(1.0, (z - anatomy.c1_z[0]) / 40.0)
        ax, ay, cy = ax + 17 * s * grow, ay + 32 * s * grow, cy - 22 * grow
    c7_bottom = anatomy.levels["C7"][0]
    if z < c7_bottom + 10:  # shoulders
        grow = min(1.0, (c7_bottom + 10 - z) / 35.0)
        ax, ay = ax + 90 * s * grow, ay + 20 * s * grow
    return cy, ax, ay * (1 + anatomy.fat_mm / 120), 0.0


def _draw_slice(anatomy: Anatomy, z: float, x: np.ndarray, y: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HU, muscle labels (1 paravertebral, 2 SCM right, 3 SCM left) and what lies outside
    the patient (mask shell, couch) of one axial slice."""
    sx, sy = anatomy.spine_xy(z)
    s, m = anatomy.size, anatomy.muscularity
    hu = np.full(x.shape, -1000.0)
    cy, ax, ay, _ = _neck_outline(anatomy, z)
    body = _ellipse(x, y, sx, sy + cy, ax, ay)
    hu[body] = 30.0  # skin
    fat = _ellipse(x, y, sx, sy + cy, ax - 2, ay - 2)
    hu[fat] = -105.0
    inner = _ellipse(x, y, sx, sy + cy, ax - 2 - anatomy.fat_mm, ay - 2 - anatomy.fat_mm)
    hu[inner] = -75.0  # intermuscular fat and connective tissue
    labels = np.zeros(x.shape, np.uint8)
    muscle_hu = 45.0 + anatomy.extras["muscle_offset_hu"]
    in_neck = anatomy.levels["T2"][0] - 10 < z < anatomy.c1_z[1] + 25
    if in_neck:
        paravertebral = _paravertebral(anatomy, z, x, y, sx, sy, m, s)
        paravertebral |= (_ellipse(x, y, sx - 6 * s, sy - 12 * s, 4 * m, 4 * m)
                          | _ellipse(x, y, sx + 6 * s, sy - 12 * s, 4 * m, 4 * m)
                          ) & (z < anatomy.c1_z[0])  # longus colli and capitis
        labels[paravertebral & inner] = 1
        for side, scm in _sternocleidomastoids(anatomy, z, x, y, sx, sy, m, s):
            labels[scm & inner] = 2 if side < 0 else 3  # SCM right, SCM left
        hu[labels > 0] = muscle_hu
        labels[distractors.paint_neck(anatomy, z, x, y, sx, sy, s, hu, inner, fat,
                                      muscle_hu)] = 0
    covered = _soft_organs(anatomy, z, x, y, sx, sy, s, hu)
    covered |= _bones(anatomy, z, x, y, sx, sy, s, hu)
    outside = distractors.paint_outside(anatomy, x, y, sx, sy + cy, ax, ay, hu, body)
    labels[covered] = 0
    return hu, labels, outside


def _paravertebral(anatomy, z, x, y, sx, sy, m, s) -> np.ndarray:
    """Deep and superficial neck extensors behind and beside the spine, both sides."""
    shape = np.zeros(x.shape, bool)
    for side in (-1, 1):
        shape |= _ellipse(x, y, sx + side * 21 * s, sy + 34 * s, 20 * m, 23 * m, side * 0.3)
        shape |= _ellipse(x, y, sx + side * 30 * s, sy + 8 * s, 9 * m, 12 * m, side * 0.5)
    return shape


def _sternocleidomastoids(anatomy, z, x, y, sx, sy, m, s) -> list[tuple[int, np.ndarray]]:
    """From the mastoid (posterolateral, high) to the sternum (anteromedial, low); per side
    (-1 the patient's right, x grows to the left)."""
    top, bottom = anatomy.c1_z[1] + 10, anatomy.levels["T1"][0]
    t = float(np.clip((top - z) / (top - bottom), 0, 1))
    cx, cy = (52 - 30 * t) * s, (-5 - 45 * t) * s
    return [(side, _ellipse(x, y, sx + side * cx, sy + cy, 8 * m, 17 * m,
                            -side * (0.6 + 0.5 * t))) for side in (-1, 1)]


def _soft_organs(anatomy, z, x, y, sx, sy, s, hu) -> np.ndarray:
    """Airway, oesophagus, thyroid and vessels; returns the pixels they cover."""
    covered = np.zeros(x.shape, bool)
    t = float(np.clip((anatomy.c1_z[0] - z) / 120.0, 0, 1))
    airway = _ellipse(x, y, sx, sy - (30 + 14 * t) * s, (11 - 3 * t) * s, (7 + 2 * t) * s)
    if z < anatomy.c1_z[1] + 20:
        hu[airway] = -1000.0
        covered |= airway
    if z < anatomy.levels["C6"][1]:
        oesophagus = _ellipse(x, y, sx - 3 * s, sy - 15 * s, 8 * s, 5 * s)
        hu[oesophagus] = 40.0
        hu[_ellipse(x, y, sx - 3 * s, sy - 15 * s, 1.5, 1.0)] = -900.0
        covered |= oesophagus
        thyroid = (_ellipse(x, y, sx - 16 * s, sy - 38 * t * s - 8, 7 * s, 11 * s)
                   | _ellipse(x, y, sx + 16 * s, sy - 38 * t * s - 8, 7 * s, 11 * s)) & ~airway
        hu[thyroid] = 90.0 + 0.3 * anatomy.contrast_hu
        covered |= thyroid
    if z < anatomy.c1_z[1]:
        for side in (-1, 1):
            carotid = _ellipse(x, y, sx + side * 24 * s, sy - 20 * s, 3.5 * s, 3.5 * s)
            jugular = _ellipse(x, y, sx + side * 32 * s, sy - 16 * s, 5.5 * s, 4.5 * s)
            hu[carotid] = anatomy.contrast_hu
            hu[jugular] = 0.7 * anatomy.contrast_hu
            covered |= carotid | jugular
    return covered


def _bones(anatomy, z, x, y, sx, sy, s, hu) -> np.ndarray:
    """Skull base, mandible, hyoid, vertebrae with discs, canal and processes."""
    covered = np.zeros(x.shape, bool)
    cortical, cancellous = anatomy.extras["cortical_hu"], anatomy.extras["cancellous_hu"]

    def paint(mask, value):
        hu[mask] = value
        covered[mask] = True

    bx, by = 9 * s, 8 * s
    canal_y = sy + by + 8 * s
    name, part = _level_at(anatomy, z)
    c1_bottom, c1_top = anatomy.c1_z
    if z > c1_top + 3:  # occipital bone of the skull base, with the foramen magnum
        cy, ax, ay, _ = _neck_outline(anatomy, z)
        shell = _ellipse(x, y, sx, sy + cy + 6, ax - 12, ay - 14) & \
            ~_ellipse(x, y, sx, sy + cy + 6, ax - 19, ay - 21) & (y > sy - 5)
        paint(shell, cortical + 200)
        if z > c1_top + 12:
            clivus = _ellipse(x, y, sx, sy - 4, 9 * s, 12 * s)
            paint(clivus, cortical)
    if c1_bottom <= z <= c1_top:
        ring = _ellipse(x, y, sx, canal_y - 4, 20 * s, 22 * s) & \
            ~_ellipse(x, y, sx, canal_y - 4, 15 * s, 17 * s)
        paint(ring, cortical)
    if c1_bottom - 4 <= z <= c1_top + 2:  # dens of C2 inside the C1 ring
        paint(_ellipse(x, y, sx, sy + 1, 5 * s, 5 * s), cancellous + 100)
    if name is not None:
        if part == "body":
            paint(_ellipse(x, y, sx, sy, bx, by), cortical)
            paint(_ellipse(x, y, sx, sy, bx - 1.6, by - 1.6), cancellous)
            _posterior_elements(anatomy, name, z, x, y, sx, canal_y, s, paint)
        else:
            paint(_ellipse(x, y, sx, sy, bx, by), anatomy.extras["disc_hu"])
    canal = _ellipse(x, y, sx, canal_y, 7 * s, 6 * s)
    if z < c1_top + 3:
        paint(canal, 15.0)
        paint(_ellipse(x, y, sx, canal_y, 4 * s, 3.5 * s), 35.0)
    mandible_z = (anatomy.levels["C2"][0] - 4, c1_top - 5)
    if mandible_z[0] <= z <= mandible_z[1]:
        centre_y = sy - 40 * s
        arc = _ellipse(x, y, sx, centre_y, 46 * s, 44 * s) & \
            ~_ellipse(x, y, sx, centre_y, 39 * s, 37 * s) & (y < centre_y + 5)
        paint(arc, cortical + 300)
    hyoid_z = anatomy.levels["C3"][0] - 2
    if abs(z - hyoid_z) <= 2.5:
        centre_y = sy - 44 * s
        arc = _ellipse(x, y, sx, centre_y, 17 * s, 12 * s) & \
            ~_ellipse(x, y, sx, centre_y, 14 * s, 9 * s) & (y < centre_y + 3)
        paint(arc, cortical)
    if anatomy.levels["T1"][0] - 5 <= z <= anatomy.levels["C7"][0] + 4:  # clavicles
        for side in (-1, 1):
            paint(_ellipse(x, y, sx + side * 70 * s, sy - 30 * s, 45 * s, 6 * s, side * 0.35),
                  cortical)
    return covered


def _posterior_elements(anatomy, name, z, x, y, sx, canal_y, s, paint) -> None:
    """Laminae around the canal, spinous process, transverse processes with foramina."""
    lamina = _ellipse(x, y, sx, canal_y, 11 * s, 10 * s) & \
        ~_ellipse(x, y, sx, canal_y, 7 * s, 6 * s)
    paint(lamina, anatomy.extras["cortical_hu"] - 100)
    length = (26 if name == "C2" else 16 if name.startswith("C") else 24) * s
    if name == "C2":  # large bifid spinous process
        for side in (-1, 1):
            paint(_ellipse(x, y, sx + side * 4 * s, canal_y + 10 + length / 2, 3 * s,
                           length / 2, side * 0.15), anatomy.extras["cortical_hu"] - 100)
    else:
        paint(_ellipse(x, y, sx, canal_y + 10 + length / 2, 3 * s, length / 2),
              anatomy.extras["cortical_hu"] - 100)
    if name.startswith("C"):
        for side in (-1, 1):
            process = _ellipse(x, y, sx + side * 20 * s, canal_y - 12 * s, 10 * s, 4 * s)
            paint(process, anatomy.extras["cortical_hu"] - 150)
            paint(_ellipse(x, y, sx + side * 19 * s, canal_y - 12 * s, 2.5 * s, 2.5 * s),
                  anatomy.contrast_hu * 0.8)


def make_phantom(seed: int, case_id: str = "phantom",
                 options: PhantomOptions | None = None) -> Phantom:
    """One synthetic neck CT with its labels; the same seed gives the same phantom."""
    options = options or PhantomOptions()
    rng = np.random.default_rng(seed)
    clinical = draw_clinical(rng)
    anatomy = draw_anatomy(rng, clinical)
    anatomy.extras.update(muscle_offset_hu=rng.uniform(-8, 12), cortical_hu=rng.uniform(650, 950),
                          cancellous_hu=rng.uniform(180, 300), disc_hu=rng.uniform(60, 95))
    in_plane = rng.uniform(*options.in_plane_mm)
    thickness = rng.uniform(*options.slice_mm)
    z_top, z_bottom = _scan_range(anatomy, rng, options.covers_c3)
    if options.scan_length_mm is not None:
        extra = max(0.0, options.scan_length_mm - (z_top - z_bottom)) / 2.0
        z_top, z_bottom = z_top + extra, z_bottom - extra
    if options.c3_slab_mm is not None:
        c3_mid = float(np.mean(anatomy.levels["C3"]))
        z_top, z_bottom = c3_mid + options.c3_slab_mm, c3_mid - options.c3_slab_mm
    n_xy = int(round(options.fov_mm / in_plane))
    n_z = int((z_top - z_bottom) // thickness) + 1
    coords = (np.arange(n_xy) - (n_xy - 1) / 2) * in_plane
    y, x = np.meshgrid(coords + rng.uniform(-10, 10), coords, indexing="ij")
    zs = z_bottom + np.arange(n_z) * thickness
    hu = np.empty((n_z, n_xy, n_xy), np.float32)
    muscle = np.empty(hu.shape, np.uint8)
    outside = np.empty(hu.shape, bool)
    anatomy.extras.update(distractors.draw(np.random.default_rng([seed, 1])))
    for k, z in enumerate(zs):
        hu[k], muscle[k], outside[k] = _draw_slice(anatomy, z, x, y, rng)
    # the blur of a reconstruction kernel (mm), then the pixel's own footprint
    blur_px = anatomy.extras["blur_mm"] / in_plane + 0.3
    hu = ndimage.gaussian_filter(hu, sigma=(0.0, blur_px, blur_px))
    hu += rng.normal(0, rng.uniform(*options.noise_hu), hu.shape).astype(np.float32)
    muscle[~muscle_density(hu)] = 0
    ct = sitk.GetImageFromArray(np.clip(np.round(hu), -1024, 3071).astype(np.int16))
    ct.SetSpacing((in_plane, in_plane, thickness))
    ct.SetOrigin((float(x[0, 0]), float(y[0, 0]), float(zs[0])))
    muscle_image = _like(muscle, ct)
    c3_bottom, c3_top = anatomy.levels["C3"]
    inside = np.flatnonzero((zs >= c3_bottom) & (zs <= c3_top))
    c3_k, body_range = None, None
    if options.covers_c3 and inside.size:
        c3_k = int(np.argmin(np.abs(zs - 0.5 * (c3_bottom + c3_top))))
        body_range = (int(inside[0]), int(inside[-1]))
        # the patient's body only: a mask shell touching the face is no part of the section
        section = imaging.c3_section_mask(
            ct, c3_k, np.where(outside, imaging.AIR_HU, sitk.GetArrayViewFromImage(ct)))
    else:
        section = np.zeros(hu.shape, np.uint8)
    return Phantom(case_id, ct, _like(section, ct), muscle_image, c3_k, clinical, body_range)


def _scan_range(anatomy: Anatomy, rng: np.random.Generator, covers_c3: bool) -> tuple[float, float]:
    """Top between just above C1 and the skull base; bottom between C6 and T2."""
    z_top = rng.uniform(anatomy.c1_z[1] + 8, anatomy.c1_z[1] + 45)
    if not covers_c3:
        return z_top, rng.uniform(anatomy.levels["C2"][0] + 8, anatomy.levels["C2"][1])
    low, high = anatomy.levels["T2"][0], anatomy.levels["C6"][1]
    return z_top, rng.uniform(low, high)


def _like(array: np.ndarray, ct: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(ct)
    return image


def case_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_phantom_cohort(n: int, seed: int, out_dir: str | Path,
                         options: PhantomOptions | None = None,
                         progress: Callable[[int, int], None] | None = None) -> Path:
    """Write n phantoms (NIfTI) and manifest.csv; paths in the manifest are relative."""
    out_dir = Path(out_dir)
    rows = []
    for i in range(n):
        case_id = f"phantom_{seed}_{i:03d}"
        phantom = make_phantom(case_seed(seed, i), case_id, options)
        names = {key: f"{case_id}_{key}.nii.gz" for key in ("ct", "section", "muscle")}
        write_image_atomic(phantom.ct, out_dir / names["ct"])
        write_image_atomic(phantom.section_mask, out_dir / names["section"])
        write_image_atomic(phantom.muscle_mask, out_dir / names["muscle"])
        c = phantom.clinical
        rows.append([case_id, names["ct"], names["section"], names["muscle"],
                     "" if phantom.c3_slice_k is None else phantom.c3_slice_k,
                     c.age_years, c.sex, c.height_cm, c.weight_kg])
        if progress:
            progress(i + 1, n)
    write_csv_atomic(out_dir / "manifest.csv", MANIFEST_COLUMNS,
                     [dict(zip(MANIFEST_COLUMNS, row)) for row in rows])
    return out_dir / "manifest.csv"
