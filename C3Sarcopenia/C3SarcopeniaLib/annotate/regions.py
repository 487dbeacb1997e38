"""Numbered regions of the muscle-density pixels on one axial slice.

The slice is shown as radiologists look at it (patient's right on the viewer's left,
anterior at the top), cropped to the body with a margin and upsampled by an integer factor
to about 1 mm, so that every CT pixel is a whole block of fine pixels and a pick maps back
to the CT grid exactly. SLIC (scikit-image) splits the -29..150 HU pixels into regions of
about 1 cm² that follow fat planes.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.segmentation import slic

from .. import guards, imaging
from ..errors import InputError
from ..measures import muscle_density

FINE_PIXEL_MM = 1.0
REGION_AREA_MM2 = 100.0
CROP_MARGIN_MM = 10.0
SLIC_COMPACTNESS = 0.15
SLIC_HU_CLIP = (-200.0, 250.0)


@dataclass
class SliceView:
    """One axial slice as displayed: HU in radiological orientation, cropped, upsampled.

    ``flip_rows`` / ``flip_cols`` say how the CT's stored slice was flipped to get there;
    ``rows`` / ``cols`` are the crop on the flipped CT slice; ``factor`` the upsampling.
    """

    body_fine: np.ndarray
    hu_slice: np.ndarray                  # the CT's stored slice, unflipped, for the CSA
    flip_rows: bool
    flip_cols: bool
    rows: tuple[int, int]
    cols: tuple[int, int]
    factor: int
    slice_k: int
    pixel_spacing_mm: tuple[float, float]  # columns (x), rows (y) of the CT

    def fine(self, stored_slice: np.ndarray) -> np.ndarray:
        """A stored slice of the same CT as the sheet shows it: flipped, cropped, upsampled."""
        return ndimage.zoom(self._shown_crop(stored_slice).astype(np.float32), self.factor,
                            order=1, mode="nearest")

    def fine_blocks(self, stored_labels: np.ndarray) -> np.ndarray:
        """Labels of the CT's stored slice on the fine grid, each CT pixel a whole block (the
        inverse of to_ct_slice, exactly)."""
        return np.kron(self._shown_crop(stored_labels),
                       np.ones((self.factor, self.factor), stored_labels.dtype))

    def _shown_crop(self, stored_slice: np.ndarray) -> np.ndarray:
        shown = stored_slice[::-1 if self.flip_rows else 1, ::-1 if self.flip_cols else 1]
        return shown[self.rows[0]:self.rows[1], self.cols[0]:self.cols[1]]

    @functools.cached_property
    def hu_fine(self) -> np.ndarray:
        return self.fine(self.hu_slice)

    @property
    def slice_shape(self) -> tuple[int, int]:
        return self.hu_slice.shape

    @property
    def fine_pixel_area_mm2(self) -> float:
        return self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1] / self.factor ** 2

    def to_ct_slice(self, fine: np.ndarray) -> np.ndarray:
        """A fine label map back on the CT's stored slice: each CT pixel takes the label
        most of its fine pixels carry (background wins ties, so nothing is added)."""
        f = self.factor
        h, w = fine.shape[0] // f, fine.shape[1] // f
        blocks = fine[:h * f, :w * f].reshape(h, f, w, f).transpose(0, 2, 1, 3).reshape(h, w, -1)
        n_labels = int(fine.max()) + 1
        counts = np.stack([(blocks == label).sum(axis=2) for label in range(n_labels)], axis=2)
        coarse = np.argmax(counts, axis=2).astype(np.uint8)
        coarse[counts.max(axis=2) * 2 <= f * f] = 0
        out = np.zeros(self.slice_shape, np.uint8)
        shown = out[::-1 if self.flip_rows else 1, ::-1 if self.flip_cols else 1]  # a view
        shown[self.rows[0]:self.rows[1], self.cols[0]:self.cols[1]] = coarse
        return out


def slice_view(ct: sitk.Image, slice_k: int) -> SliceView:
    """The C3 slice of ``ct`` cropped to the body, oriented for reading, at about 1 mm."""
    imaging.check_axial(ct)
    size = ct.GetSize()
    if not 0 <= slice_k < size[2]:
        raise InputError(f"slice {slice_k} is outside the CT (slices 0-{size[2] - 1}): check the "
                         "levels file against this CT.")
    hu_slice = sitk.GetArrayViewFromImage(ct)[slice_k].astype(np.float32)
    direction = ct.GetDirection()
    flip_cols, flip_rows = direction[0] < 0, direction[4] < 0
    hu = imaging.radiological_view(ct, hu_slice)
    body = guards.body_pixels(hu)
    if not body.any():
        raise InputError(f"slice {slice_k} shows no body (nothing above "
                         f"{imaging.BODY_THRESHOLD_HU:.0f} HU): check the slice index.")
    spacing = imaging.pixel_spacing_mm(ct)
    rows, cols = ((box.start, box.stop) for box in imaging.body_crop(body, spacing,
                                                                     CROP_MARGIN_MM))
    factor = max(1, int(round(min(spacing) / FINE_PIXEL_MM)))
    body_fine = np.kron(body[slice(*rows), slice(*cols)], np.ones((factor, factor), bool))
    return SliceView(body_fine, hu_slice, bool(flip_rows), bool(flip_cols), rows, cols, factor,
                     slice_k, spacing)


def candidate_pixels(view: SliceView) -> np.ndarray:
    """Muscle-density pixels inside the body, opened by one pixel to drop thin rims."""
    candidate = muscle_density(view.hu_fine) & view.body_fine
    return ndimage.binary_opening(candidate, iterations=1)


def numbered_regions(view: SliceView) -> np.ndarray:
    """Region numbers 1..n on the fine grid (0 outside the candidate pixels).

    SLIC is seeded for about 1 cm² regions over the candidate area; pieces of one SLIC
    label that are not connected become separate regions, so a number names one blob.
    """
    candidate = candidate_pixels(view)
    area_mm2 = candidate.sum() * FINE_PIXEL_MM ** 2
    if area_mm2 == 0:
        return np.zeros(candidate.shape, np.int32)
    image = (np.clip(view.hu_fine, *SLIC_HU_CLIP) - SLIC_HU_CLIP[0]) / np.ptp(SLIC_HU_CLIP)
    n_segments = max(1, int(round(area_mm2 / REGION_AREA_MM2)))
    slic_labels = slic(image, n_segments=n_segments, compactness=SLIC_COMPACTNESS, sigma=0.5,
                       mask=candidate, channel_axis=None, start_label=1,
                       enforce_connectivity=True)
    return _split_disconnected(slic_labels)


def _split_disconnected(labels: np.ndarray) -> np.ndarray:
    """Renumber 1..n in reading order (top to bottom), one number per connected blob."""
    out = np.zeros(labels.shape, np.int32)
    blobs = []
    for label in np.unique(labels[labels > 0]):
        pieces, n = ndimage.label(labels == label)
        blobs.extend(pieces == piece for piece in range(1, n + 1))
    order = sorted(blobs, key=lambda blob: tuple(np.argwhere(blob).mean(axis=0).round()))
    for number, blob in enumerate(order, start=1):
        out[blob] = number
    return out


def save_regions(path: Path, sheet: "RegionSheet") -> None:
    """Everything a pick needs to become a mask, without rereading the CT's pixels. The CT
    is named relative to the file, so that sheets and CTs can move together."""
    view = sheet.view
    ct = os.path.relpath(Path(sheet.ct).resolve(), path.parent.resolve())
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, regions=sheet.regions, case=sheet.case, ct=ct,
                        body_fine=view.body_fine, hu_slice=view.hu_slice.astype(np.int16),
                        flips=[view.flip_rows, view.flip_cols],
                        rows=view.rows, cols=view.cols, factor=view.factor,
                        slice_k=view.slice_k,
                        pixel_spacing_mm=view.pixel_spacing_mm)
    tmp.replace(path)


@dataclass
class RegionSheet:
    """A case's saved regions: the view, the region map and where the CT is."""

    case: str
    ct: str
    view: SliceView
    regions: np.ndarray

    @property
    def n_regions(self) -> int:
        return int(self.regions.max())


def load_regions(path: Path) -> RegionSheet:
    with np.load(path) as data:
        view = SliceView(data["body_fine"], data["hu_slice"].astype(np.float32),
                         bool(data["flips"][0]), bool(data["flips"][1]),
                         tuple(int(v) for v in data["rows"]), tuple(int(v) for v in data["cols"]),
                         int(data["factor"]), int(data["slice_k"]),
                         tuple(float(v) for v in data["pixel_spacing_mm"]))
        ct = (path.parent / str(data["ct"])).resolve()
        return RegionSheet(str(data["case"]), str(ct), view, data["regions"])


SHEET_SUFFIX = ".regions.npz"


def load_sheets(folder: str | Path, cases: set[str] | None = None) -> dict[str, RegionSheet]:
    """The regions of a muscle-sheets folder: every case's, or only those of ``cases``."""
    folder = Path(folder)
    paths = sorted(folder.glob(f"*{SHEET_SUFFIX}"))
    if not paths:
        raise InputError(f"{folder} holds no region sheets: make them with 'c3sarcopenia "
                         "muscle-sheets' first.")
    if cases is not None:
        paths = [p for p in paths if p.name[:-len(SHEET_SUFFIX)] in cases]
    return {sheet.case: sheet for sheet in map(load_regions, paths)}
