"""Where C3 muscle can never be: outside the body, inside the spinal canal, outside -29..150 HU.

These hold whatever a network says, so that a mask, a couch or the cord is never measured.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import imaging
from .measures import muscle_density

BONE_HU = 250.0
# Gaps of a pixel in the bony ring (at a 4-5 mm pixel size) are bridged by growing the
# bone by each of these many pixels: more would fill a finely sampled canal altogether.
RING_GROWTHS_PX = (0, 1)
MAX_CANAL_AREA_CM2 = 6.0   # an enclosed pocket bigger than this is not a spinal canal
MIN_CANAL_AREA_CM2 = 0.3   # smaller ones are marrow or noise inside the bone


def body_pixels(hu_slice: np.ndarray) -> np.ndarray:
    """The body's largest connected part on this slice, holes filled (the airway is inside)."""
    return imaging.body_mask(hu_slice[None])[0]


def enclosed_by_bone(hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> np.ndarray:
    """Pixels enclosed by bone: the spinal canal inside the vertebral ring (and marrow).

    The bone is grown over one-pixel gaps, and pockets with and without growth count; pockets
    larger than a canal (between the mandible and the spine, say) are not taken, so that no
    muscle is removed by them.
    """
    bone = hu_slice > BONE_HU
    pockets = np.zeros_like(bone)
    for growth_px in RING_GROWTHS_PX:
        pockets |= _pockets(bone, pixel_spacing_mm, growth_px)
    return pockets


def _pockets(bone: np.ndarray, pixel_spacing_mm: tuple[float, float],
             growth_px: int) -> np.ndarray:
    """Canal-sized pockets enclosed by the bone once grown by this much, grown back into the
    non-bone pixels by as much (a closing would fill a narrow canal altogether)."""
    structure = np.ones((2 * growth_px + 1,) * 2, bool)
    grown = ndimage.binary_dilation(bone, structure) if growth_px else bone
    pockets, n = ndimage.label(ndimage.binary_fill_holes(grown) & ~grown)
    if n == 0:
        return np.zeros_like(bone)
    pixel_cm2 = pixel_spacing_mm[0] * pixel_spacing_mm[1] / 100.0
    sizes = ndimage.sum(np.ones_like(bone), pockets, index=np.arange(1, n + 1)) * pixel_cm2
    canal_sized = (sizes >= MIN_CANAL_AREA_CM2) & (sizes <= MAX_CANAL_AREA_CM2)
    keep = np.concatenate([[False], canal_sized])[pockets]
    if growth_px:
        keep = ndimage.binary_dilation(keep, structure, mask=~bone)
    return keep & ~bone


def allowed_muscle_pixels(hu_slice: np.ndarray,
                          pixel_spacing_mm: tuple[float, float]) -> np.ndarray:
    """Muscle density, inside the body's largest part, not enclosed by bone."""
    return (muscle_density(hu_slice) & body_pixels(hu_slice)
            & ~enclosed_by_bone(hu_slice, pixel_spacing_mm))
