"""Review sheets for reading and checking the C3 level by eye.

One PNG per CT: a sagittal view straightened along the vertebral column in two windows,
with the CT's own slice indices as gridlines (the numbers an annotator writes down), a
bone-intensity profile along the column (discs show as dips), the predicted C3 section and
slice when given, and the axial slice at that level. An HTML index lists all sheets.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from scipy import ndimage  # noqa: E402

from .. import imaging  # noqa: E402
from ..fileio import write_figure_atomic, write_text_atomic  # noqa: E402
from ..overlay import axial_neck_panel  # noqa: E402

BONE_HU = 200.0
SOFT_WINDOW_HU = (-250, 250)
BONE_WINDOW_HU = (0, 600)  # narrow: vertebral bodies bright, discs grey
VIEW_HALF_WIDTH_MM = 60.0  # anterior-posterior half width of the zoomed sagittal views
PROFILE_HALF_SIZE_MM = (5.0, 4.0)  # left-right, anterior-posterior box on a vertebral body
SPINE_AP_FRACTION = 0.6  # where the column sits between the neck's front and back
BODY_SEARCH_MM = 30.0  # how far in front of the column's bone centre a body is looked for
GRID_EVERY_SLICES = 5


@dataclass
class SpineTrack:
    """Per slice (LPS array order), the left-right and anterior-posterior pixel of the column."""

    column_i: np.ndarray
    row_j: np.ndarray


@dataclass
class LevelMarks:
    """What to draw on a sheet, in the CT's own slice indices; any may be missing."""

    c3_slice_k: int | None = None
    section_ks: tuple[int, int] | None = None  # first and last slice of a predicted section
    body_ks: tuple[int, int] | None = None     # annotated C3 body top and bottom
    body_middle_k: int | None = None           # annotated middle (levels.C3Level.middle_k)


def _lps(ct: sitk.Image) -> tuple[np.ndarray, bool]:
    """HU array oriented LPS (slices feet to head) and whether the CT's k axis was flipped."""
    oriented = sitk.DICOMOrient(ct, "LPS")
    flipped = ct.GetDirection()[8] < 0
    return sitk.GetArrayFromImage(oriented).astype(np.float32), flipped


def spine_track(hu: np.ndarray, spacing_mm: tuple[float, float, float]) -> SpineTrack:
    """Follow the vertebral column: per slice, the centre of the bone near where a neck's
    column sits (left-right middle, about 60 % of the way from the front to the back).

    Weighting bone by closeness to that place leaves out the mandible, hyoid and shoulders;
    the track is then smoothed along z so that a slice without bone borrows its neighbours'.
    """
    n, rows, cols = hu.shape
    body = hu > imaging.BODY_THRESHOLD_HU
    bone = hu > BONE_HU
    i_grid = np.arange(cols)[None, :]
    j_grid = np.arange(rows)[:, None]
    column = np.full(n, np.nan)
    row = np.full(n, np.nan)
    for k in range(n):
        if not body[k].any():
            continue
        body_j, body_i = np.nonzero(body[k])
        target_j = body_j.min() + SPINE_AP_FRACTION * (body_j.max() - body_j.min())
        closeness = (((i_grid - body_i.mean()) * spacing_mm[0] / 20.0) ** 2
                     + ((j_grid - target_j) * spacing_mm[1] / 15.0) ** 2)
        weight = bone[k] * np.exp(-closeness)
        if weight.sum() > 1e-3:
            column[k] = (weight * i_grid).sum() / weight.sum()
            row[k] = (weight * j_grid).sum() / weight.sum()
    return SpineTrack(_smooth_fill(column, cols), _smooth_fill(row, rows))


def _smooth_fill(values: np.ndarray, size: int) -> np.ndarray:
    known = np.flatnonzero(~np.isnan(values))
    if known.size == 0:
        return np.full(values.shape, size // 2, dtype=int)
    filled = np.interp(np.arange(values.size), known, values[known])
    smooth = ndimage.median_filter(filled, size=9, mode="nearest")
    return np.clip(np.round(ndimage.uniform_filter1d(smooth, 5)), 0, size - 1).astype(int)


def straightened_sagittal(hu: np.ndarray, track: SpineTrack) -> np.ndarray:
    """(slices, rows): each slice's anterior-posterior line through the column."""
    return hu[np.arange(hu.shape[0]), :, track.column_i]


def bone_profile(hu: np.ndarray, track: SpineTrack,
                 spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Per slice, the brightest small box of bone in front of the column's centre.

    The centre of a vertebra's bone lies near the spinal canal, so the vertebral body is
    searched for anteriorly; discs between bodies show as dips of the profile.
    """
    half_i = max(1, int(round(PROFILE_HALF_SIZE_MM[0] / spacing_mm[0])))
    half_j = max(1, int(round(PROFILE_HALF_SIZE_MM[1] / spacing_mm[1])))
    reach_j = int(round(BODY_SEARCH_MM / spacing_mm[1]))
    smoothed = ndimage.uniform_filter(np.clip(hu, *BONE_WINDOW_HU),
                                      size=(1, 2 * half_j + 1, 2 * half_i + 1))
    profile = np.empty(hu.shape[0])
    for k in range(hu.shape[0]):
        i, j = track.column_i[k], track.row_j[k]
        profile[k] = smoothed[k, max(0, j - reach_j):j + 1, i].max()
    return profile


def review_figure(ct: sitk.Image, title: str, marks: LevelMarks | None = None):
    """The review sheet of one CT as a matplotlib figure."""
    marks = marks or LevelMarks()
    hu, flipped = _lps(ct)
    spacing = ct.GetSpacing()
    n = hu.shape[0]
    to_lps = (lambda k: n - 1 - k) if flipped else (lambda k: k)
    track = spine_track(hu, spacing)
    sagittal = straightened_sagittal(hu, track)
    profile = bone_profile(hu, track, spacing)
    centre_j = int(np.median(track.row_j))
    half = int(VIEW_HALF_WIDTH_MM / spacing[1])
    lo, hi = max(0, centre_j - half), min(hu.shape[1], centre_j + half)
    figure, axes = plt.subplots(1, 4, figsize=(15, 11),
                                gridspec_kw={"width_ratios": [1, 1, 0.6, 1.6]})
    extent = [lo * spacing[1], hi * spacing[1], -0.5, n - 0.5]  # rows: LPS slice index
    for ax, window, name in ((axes[0], SOFT_WINDOW_HU, "soft tissue"),
                             (axes[1], BONE_WINDOW_HU, "bone 0..600 HU")):
        ax.imshow(sagittal[:, lo:hi], cmap="gray", vmin=window[0], vmax=window[1],
                  origin="lower", extent=extent, aspect=spacing[2])
        ax.set_title(f"sagittal along the spine ({name})", fontsize=9)
        ax.set_xlabel("anterior → posterior (mm)", fontsize=8)
    axes[2].plot(profile, np.arange(n), color="black", lw=1)
    axes[2].set_ylim(-0.5, n - 0.5)
    axes[2].set_title("bone profile on the column", fontsize=9)
    axes[2].set_xlabel("mean HU (0..600)", fontsize=8)
    for ax in axes[:3]:
        _slice_gridlines(ax, n, to_lps)
        _draw_marks(ax, marks, to_lps)
    _axial_panel(axes[3], ct, marks)
    figure.suptitle(f"{title}   (pixels {spacing[0]:.1f} mm, slices {spacing[2]:.1f} mm apart)",
                    fontsize=11)
    figure.tight_layout()
    return figure


def _slice_gridlines(ax, n: int, to_lps) -> None:
    """Gridlines and tick labels in the CT's own slice indices k."""
    ks = np.arange(0, n, GRID_EVERY_SLICES)
    rows = [to_lps(k) for k in ks]
    ax.set_yticks(rows)
    ax.set_yticklabels([str(k) for k in ks], fontsize=6)
    for row in rows:
        ax.axhline(row, color="cyan", lw=0.3, alpha=0.5)
    ax.set_ylabel("CT slice index k", fontsize=8)


def _draw_marks(ax, marks: LevelMarks, to_lps) -> None:
    if marks.section_ks is not None:
        a, b = sorted(to_lps(k) for k in marks.section_ks)
        for row in (a - 0.5, b + 0.5):
            ax.axhline(row, color="tab:orange", lw=1)
    if marks.body_ks is not None:
        for k in marks.body_ks:
            ax.axhline(to_lps(k), color="tab:green", lw=1, ls="--")
    if marks.c3_slice_k is not None:
        ax.axhline(to_lps(marks.c3_slice_k), color="tab:red", lw=1.2)


def _axial_panel(ax, ct: sitk.Image, marks: LevelMarks) -> None:
    k = marks.c3_slice_k if marks.c3_slice_k is not None else marks.body_middle_k
    if k is None:
        ax.axis("off")
        return
    axial_neck_panel(ax, ct, sitk.GetArrayViewFromImage(ct)[k])
    ax.set_title(f"axial slice k={k} (patient's right on the left)", fontsize=9)
    ax.axis("off")


def write_review_sheet(ct: sitk.Image, path: Path, title: str,
                       marks: LevelMarks | None = None) -> None:
    figure = review_figure(ct, title, marks)
    try:
        write_figure_atomic(figure, path)
    finally:
        plt.close(figure)


def write_index(sheets: list[tuple[str, str, str]], path: Path) -> None:
    """An HTML page listing (case, sheet file name, one-line summary) for quick browsing."""
    items = "\n".join(
        f'<h3 id="{html.escape(case)}">{html.escape(case)}</h3><p>{html.escape(summary)}</p>'
        f'<img src="{html.escape(name)}" style="max-width:100%">'
        for case, name, summary in sheets)
    write_text_atomic(path, "<!doctype html><meta charset='utf-8'>"
                      f"<title>C3 level review</title><h1>C3 level review</h1>\n{items}\n")
