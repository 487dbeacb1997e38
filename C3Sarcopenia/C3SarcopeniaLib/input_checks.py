"""Is it a CT in Hounsfield units, a label mask, a neck the right way up?

Data that is none of these can still pass every format check and give believable numbers
(an MR, a CT stored as HU + 1024, a probability map, a neck stored upside down), so each
is refused with what was seen; nothing is fixed silently.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

AIR_MAX_HU = -900.0  # air reads near -1000 HU on every calibrated CT
MIN_AIR_FRACTION = 0.005  # around the neck, in the airway: a CT always shows some air
BODY_MIN_HU = -500.0
BODY_MEDIAN_HU = (-150.0, 150.0)  # fat, muscle, glands and bone: soft tissue dominates
MAX_SAMPLED_VOXELS = 2_000_000
MAX_MASK_LABELS = 10
# Orientation, from 271 real neck CTs (OpenKBP): heads are at most 22 cm wide, shoulders
# from 33 cm; the widest slice lay 30 mm or more below the narrowest in every one stored the
# right way up, and 33 mm or more above it in each of the 182 with shoulders once reversed.
SHOULDER_WIDTH_CM = 26.0
MIN_NECK_AREA_CM2 = 80.0  # smaller slices are tubes, a chin or the crown, not the neck
UPSIDE_DOWN_RISE_MM = 15.0


def check_hounsfield(hu: np.ndarray, name: str) -> None:
    """Refuse values that are not Hounsfield units: no air near -1000 HU, or a body whose
    median is far from soft tissue (0-100 HU). Judged on an even sample of the voxels."""
    step = max(1, int(np.ceil((hu.size / MAX_SAMPLED_VOXELS) ** (1 / hu.ndim))))
    sample = np.asarray(hu[(slice(None, None, step),) * hu.ndim], dtype=np.float32)
    body = sample[sample > BODY_MIN_HU]
    median = float(np.median(body)) if body.size else float(np.median(sample))
    air_fraction = float(np.mean(sample <= AIR_MAX_HU))
    if air_fraction < MIN_AIR_FRACTION:
        seen = (f"nothing in it is air (at or below {AIR_MAX_HU:.0f} HU; its lowest value is "
                f"{float(sample.min()):g})")
    elif not body.size or not BODY_MEDIAN_HU[0] <= median <= BODY_MEDIAN_HU[1]:
        seen = (f"the body's median value is {median:.0f}, where soft tissue lies near "
                "0-100 HU")
    else:
        return
    raise InputError(f"{name} does not look like a CT in Hounsfield units: {seen}. A CT "
                     "stored as HU + 1024 without its rescale, a rescaled or normalised image, "
                     "an MR or a blank volume cannot be measured: export the CT in HU.")


def check_label_mask(labels: np.ndarray, name: str) -> None:
    """Refuse what is not a label mask: whole numbers 0-255 with at most a few labels."""
    low, high = float(labels.min()), float(labels.max())
    if not np.issubdtype(labels.dtype, np.integer):
        fractional = labels[labels != np.round(labels)]
        if fractional.size:
            raise InputError(f"{name} holds values between whole numbers (such as "
                             f"{float(fractional.flat[0]):g}): a probability map, not a mask. "
                             "Threshold it into a label mask (0 background, 1-3 muscle).")
    if low < 0 or high > 255:
        raise InputError(f"{name} holds values from {low:g} to {high:g}: an image such as a "
                         "CT, not a label mask (0 background, 1-3 muscle). Check that the mask "
                         "and the CT were not swapped.")
    labels_used = np.count_nonzero(np.bincount(labels.astype(np.uint8).ravel(), minlength=256)[1:])
    if labels_used > MAX_MASK_LABELS:
        raise InputError(f"{name} holds {labels_used} different labels: an image, not a "
                         "label mask (0 background, 1-3 muscle).")


def check_head_up(body: np.ndarray, spacing_mm: tuple[float, float, float]) -> None:
    """Refuse a neck stored upside down (slices reversed, header unchanged): the shoulders,
    wider than any head, then lie above the neck. ``body`` is (k, j, i) on an axis-aligned
    LPS grid, k growing towards the head; a scan without the shoulders passes."""
    pixel_area_cm2 = spacing_mm[0] * spacing_mm[1] / 100.0
    area_cm2 = body.reshape(len(body), -1).sum(axis=1) * pixel_area_cm2
    imaged = np.flatnonzero(area_cm2 >= MIN_NECK_AREA_CM2)
    if imaged.size < 2:
        return
    columns = body[imaged].any(axis=1)  # (slice, i): where the body is, left to right
    widths_cm = np.array([np.ptp(np.flatnonzero(c)) + 1 for c in columns]) * spacing_mm[0] / 10
    widest, narrowest = imaged[int(np.argmax(widths_cm))], imaged[int(np.argmin(widths_cm))]
    rise_mm = (widest - narrowest) * spacing_mm[2]
    if widths_cm.max() >= SHOULDER_WIDTH_CM and rise_mm >= UPSIDE_DOWN_RISE_MM:
        raise InputError(f"this CT seems to be stored upside down: its widest part "
                         f"({widths_cm.max():.0f} cm across, the shoulders) lies {rise_mm:.0f} mm "
                         "above its narrowest (the neck). Check the slice order and the "
                         "orientation in the file's header, and export the CT again.")
