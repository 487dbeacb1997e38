"""A small picture of the C3 slice for the cohort review report: the neck only, each muscle
group outlined in its colour, so that a reader can scan hundreds of cases on one page.

Drawn with numpy and Pillow, not matplotlib: it costs milliseconds per case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from . import guards, imaging
from .fileio import write_atomic
from .overlay import CROP_MARGIN_MM, DISPLAY_WINDOW_HU, GROUP_STYLE

THUMBNAIL_PX = 200  # the longer side
# JPEG without chroma subsampling: coloured outlines stay sharp at a third of a PNG's size
# (about 8 kB a case), which matters in a page that embeds thousands of them.
JPEG_QUALITY = 80


def neck_thumbnail(ct: sitk.Image, slice_k: int, labels: np.ndarray) -> np.ndarray:
    """(rows, columns, 3) uint8: slice k cropped to the neck, patient's right on the left,
    resized to THUMBNAIL_PX on its longer side with square pixels, muscle groups outlined."""
    spacing = imaging.pixel_spacing_mm(ct)
    hu = imaging.radiological_view(ct, sitk.GetArrayViewFromImage(ct)[slice_k].astype(np.float32))
    labels = imaging.radiological_view(ct, np.asarray(labels, dtype=np.uint8))
    body = guards.body_pixels(hu)
    if body.any():
        crop = imaging.body_crop(body, spacing, CROP_MARGIN_MM)
        hu, labels = hu[crop], labels[crop]
    height_mm, width_mm = hu.shape[0] * spacing[1], hu.shape[1] * spacing[0]
    scale = THUMBNAIL_PX / max(height_mm, width_mm)
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    low, high = DISPLAY_WINDOW_HU
    grey = np.clip((hu - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    grey = np.asarray(Image.fromarray(grey).resize(size, Image.BILINEAR))
    labels = np.asarray(Image.fromarray(labels).resize(size, Image.NEAREST))
    picture = np.repeat(grey[..., None], 3, axis=2)
    for value, (_, colour) in GROUP_STYLE.items():
        group = labels == value
        outline = group & ~ndimage.binary_erosion(group)
        picture[outline] = (np.array(colour) * 255).astype(np.uint8)
    return picture


def thumbnail_jpeg(picture: Image.Image, target) -> None:
    """Save a thumbnail (to a path or a file object) as the report embeds it."""
    picture.convert("RGB").save(target, format="JPEG", quality=JPEG_QUALITY, subsampling=0)


def write_thumbnail(picture: np.ndarray, path: Path) -> None:
    write_atomic(Path(path), lambda tmp: thumbnail_jpeg(Image.fromarray(picture), tmp))
