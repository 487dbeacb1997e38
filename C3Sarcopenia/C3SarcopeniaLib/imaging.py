"""Reading CTs and preparing them for the networks.

Everything stays in SimpleITK's physical (LPS) space so that the CT's own grid, spacing and
orientation are kept; the networks see a resampled, LPS-aligned, isotropic copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import dicom_series, input_checks
from .errors import InputError
from .measures import ClinicalInfo
from .image_files import check_stored_voxels, quiet_itk, read_image

HU_WINDOW = (-250.0, 250.0)
BODY_THRESHOLD_HU = -500.0
AIR_HU = -1024.0
_READING_WARNINGS_KEY = "C3Sarcopenia_reading_warnings"
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
_IN_PLANE = np.array([np.zeros((3, 3), bool), ndimage.generate_binary_structure(2, 1),
                      np.zeros((3, 3), bool)])  # 4-connected within an axial slice only


def read_ct(path: str | Path) -> sitk.Image:
    """A CT in Hounsfield units as a 3D float32 image, from a file or a DICOM folder.

    A folder may hold several series: the CT series with the most slices is taken.
    A single slice comes back as a volume one slice deep. What reading found worth a
    reviewer's eye (a gantry tilt, DICOM tags not used) is in ``reading_warnings``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: check the path to the CT.")
    if path.is_dir():
        image, warnings = dicom_series.read_ct_series(dicom_series.ct_series_files(path))
    else:
        image, warnings = _read_file(path)
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path} is not a greyscale CT volume (it has "
                         f"{image.GetDimension()} dimensions, "
                         f"{image.GetNumberOfComponentsPerPixel()} channels).")
    floating = image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64)
    image = sitk.Cast(image, sitk.sitkFloat32)
    if floating and not np.isfinite(sitk.GetArrayViewFromImage(image)).all():  # ints are finite
        raise InputError(f"{path} contains NaN or infinite voxels: re-export the CT from "
                         "the scanner or PACS.")
    check_axial(image, str(path))
    input_checks.check_hounsfield(sitk.GetArrayViewFromImage(image), str(path))
    image.SetMetaData(_READING_WARNINGS_KEY, "\n".join(warnings))
    return image


def reading_warnings(ct: sitk.Image) -> list[str]:
    """The warnings read_ct found; kept in the image's own metadata, so that they reach
    result.json whichever command or panel read the CT."""
    if not ct.HasMetaDataKey(_READING_WARNINGS_KEY):
        return []
    return [w for w in ct.GetMetaData(_READING_WARNINGS_KEY).split("\n") if w]


def _read_file(path: Path) -> tuple[sitk.Image, list[str]]:
    check_stored_voxels(path)
    unreadable = InputError(f"{path} could not be read as an image: use NIfTI, NRRD, MHA or "
                            "DICOM, or copy the CT again from its source.")
    try:
        reader = dicom_series.file_header(path)
    except RuntimeError:
        raise unreadable from None
    warnings = []
    if reader.HasMetaDataKey(dicom_series.TAGS["modality"]):  # a DICOM slice
        dicom_series.check_modality(dicom_series.tag(reader, "modality"), path)
        warnings = dicom_series.header_warnings(reader)
    try:
        with quiet_itk():
            return reader.Execute(), warnings
    except RuntimeError:
        raise unreadable from None


def check_axial(image: sitk.Image, name: str = "the CT") -> None:
    """Refuse volumes whose third voxel axis is not the patient's head-feet axis."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if abs(direction[2, 2]) < 0.7:
        raise InputError(f"{name} is not stored as axial slices: reformat it to axial "
                         "slices before measuring.")


def radiological_view(image: sitk.Image, array_2d: np.ndarray) -> np.ndarray:
    """A stored axial slice as radiologists look at it: the patient's right on the viewer's
    left, anterior at the top (the same flips undo it)."""
    direction = image.GetDirection()
    return array_2d[::-1 if direction[4] < 0 else 1, ::-1 if direction[0] < 0 else 1]


def slice_z_mm(image: sitk.Image, slice_k: int) -> float:
    """Patient z (LPS, mm; larger is more superior) at the centre of slice k."""
    size = image.GetSize()
    centre = (0.5 * (size[0] - 1), 0.5 * (size[1] - 1), float(slice_k))
    return float(image.TransformContinuousIndexToPhysicalPoint(centre)[2])


def slice_zs_mm(image: sitk.Image) -> np.ndarray:
    """Patient z of every slice centre, in the image's own slice order."""
    return np.array([slice_z_mm(image, k) for k in range(image.GetSize()[2])])


def nearest_slice_k(image: sitk.Image, z_mm: float) -> int:
    """The CT slice whose centre lies nearest a patient z."""
    return int(np.argmin(np.abs(slice_zs_mm(image) - z_mm)))


def pixel_spacing_mm(image: sitk.Image) -> tuple[float, float]:
    return float(image.GetSpacing()[0]), float(image.GetSpacing()[1])


def resample_to_lps_grid(image: sitk.Image, spacing_mm: float,
                         interpolator=sitk.sitkLinear, default_value: float = AIR_HU,
                         around: np.ndarray | None = None) -> sitk.Image:
    """Resample onto an axis-aligned grid with isotropic spacing covering the image (2D or 3D).

    The networks then see every CT the same way round, whatever its stored orientation.
    With ``around`` (a non-empty mask in the image's array order), only the block of that
    grid whose linear interpolation can reach a voxel of the mask is made, from the voxels
    it needs: the whole grid's values there, for a fraction of the work.
    """
    dim = image.GetDimension()
    low, high = _physical_box(image, [-0.5] * dim, [n - 0.5 for n in image.GetSize()])
    size = np.array([max(1, int(np.ceil((h - lo) / spacing_mm - 1e-6)))
                     for lo, h in zip(low, high)])
    origin = low + 0.5 * spacing_mm
    if around is not None:
        box = bounding_box(around)[::-1]  # SimpleITK's (i, j, k) order
        # Interpolated points more than a voxel from the box cannot reach it; 2 for rounding.
        near_low, near_high = _physical_box(image, [b.start - 2 for b in box],
                                            [b.stop + 1 for b in box])
        first = np.clip(np.floor((near_low - origin) / spacing_mm), 0, size - 1).astype(int)
        last = np.clip(np.ceil((near_high - origin) / spacing_mm), 0, size - 1).astype(int)
        origin, size = origin + first * spacing_mm, last - first + 1
        image = image[_voxel_range(image, origin, origin + (size - 1) * spacing_mm)]
    return sitk.Resample(image, [int(n) for n in size], sitk.Transform(dim, sitk.sitkIdentity),
                         interpolator, origin.tolist(), [spacing_mm] * dim,
                         np.eye(dim).ravel().tolist(), default_value, image.GetPixelID())


def _physical_box(image: sitk.Image, first: list[float],
                  last: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest physical coordinates of a box of continuous voxel indices."""
    corners = [image.TransformContinuousIndexToPhysicalPoint(
        [float(last[axis] if bit else first[axis]) for axis, bit in enumerate(c)])
        for c in np.ndindex(*(2,) * image.GetDimension())]
    return np.min(corners, axis=0), np.max(corners, axis=0)


def _voxel_range(image: sitk.Image, low: np.ndarray, high: np.ndarray) -> tuple[slice, ...]:
    """(x, y, z) index slices of the image's voxels around a physical box, one voxel wider:
    those linear interpolation uses for points in the box."""
    corners = [image.TransformPhysicalPointToContinuousIndex(
        [float(high[axis] if bit else low[axis]) for axis, bit in enumerate(c)])
        for c in np.ndindex(*(2,) * image.GetDimension())]
    size = np.array(image.GetSize()) - 1
    first = np.clip(np.floor(np.min(corners, axis=0)), 0, size).astype(int)
    last = np.clip(np.floor(np.max(corners, axis=0)) + 1, 0, size).astype(int)
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(first, last))


def voxels_reached(reference: sitk.Image, image: sitk.Image,
                   box: tuple[slice, ...]) -> tuple[slice, ...]:
    """The reference voxels (numpy order) that linearly interpolating ``image`` onto them can
    make non-zero, when ``image`` is zero outside ``box`` (numpy order)."""
    low, high = _physical_box(image, [b.start - 1 for b in box[::-1]],
                              [b.stop for b in box[::-1]])
    return _voxel_range(reference, low, high)[::-1]


def body_crop(body: np.ndarray, spacing_mm: tuple[float, float],
              margin_mm: float) -> tuple[slice, slice]:
    """The body's box on an axial slice widened by a margin (mm), kept inside the slice: a
    neck in a 50 cm field of view is small on screen without it."""
    margins = (int(np.ceil(margin_mm / spacing_mm[1])), int(np.ceil(margin_mm / spacing_mm[0])))
    return tuple(slice(max(0, box.start - m), min(n, box.stop + m))
                 for box, m, n in zip(bounding_box(body), margins, body.shape))


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (in the mask's array order) holding every voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(occupied[0]), int(occupied[-1]) + 1))
    return tuple(box)


def resample_like(image: sitk.Image, reference: sitk.Image, interpolator=sitk.sitkNearestNeighbor,
                  default_value: float = 0.0) -> sitk.Image:
    """Bring an image (usually a label) back onto a reference grid, such as the CT's own."""
    return sitk.Resample(image, reference, sitk.Transform(image.GetDimension(), sitk.sitkIdentity),
                         interpolator, default_value, image.GetPixelID())


def normalise_hu(hu: np.ndarray) -> np.ndarray:
    """Clip to the soft-tissue window [-250, 250] HU and scale to [-1, 1], as in the paper."""
    low, high = HU_WINDOW
    return ((np.clip(hu, low, high) - low) / (high - low) * 2.0 - 1.0).astype(np.float32)


# Less body than this in an axial slice is a tube, the couch or the rim of a mask, not the neck.
MIN_NECK_AREA_CM2 = 20.0


def imaged_slices(body: np.ndarray, pixel_area_mm2: float) -> np.ndarray:
    """The slices (k) that show the neck or head: a CT padded with air, or masked to a
    region, images the patient only where the body's cross-section is this large."""
    area_cm2 = body.reshape(len(body), -1).sum(axis=1) * pixel_area_mm2 / 100.0
    return np.flatnonzero(area_cm2 >= MIN_NECK_AREA_CM2)


def body_mask(hu: np.ndarray) -> np.ndarray:
    """The patient's body: HU > -500, holes filled slice by slice, largest 3D component.

    Filling each axial slice keeps the airway inside the body even where it leaves the
    volume at the top or bottom of the field of view.
    """
    mask = hu > BODY_THRESHOLD_HU
    # Per-slice hole filling in one pass: background pieces connected within their slice,
    # those that touch the slice's edge are outside, the others are holes.
    background, n = ndimage.label(~mask, structure=_IN_PLANE)
    edges = np.concatenate([background[:, [0, -1], :].ravel(), background[:, :, [0, -1]].ravel()])
    outside = np.zeros(n + 1, bool)
    outside[edges] = True
    outside[0] = False  # label 0 is the body itself
    return largest_component(~outside[background])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of a mask: drops the table, cables and stray islands."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def read_clinical_tags(path: str | Path) -> ClinicalInfo:
    """Age, sex, height and weight from a DICOM file or series folder, where present;
    implausible tags are left unknown (and named in the reading warnings of read_ct)."""
    return dicom_series.clinical_tags(path)[0]


SECTION_THICKNESS_MM = 33.0


def c3_section_mask(ct: sitk.Image, c3_slice_k: int, hu: np.ndarray | None = None,
                    thickness_mm: float = SECTION_THICKNESS_MM) -> np.ndarray:
    """The C3 section label: a slab centred on the C3 slice, inside the body mask.

    Returned in SimpleITK array order (k, j, i) on the CT's own grid, as uint8.
    """
    hu = sitk.GetArrayViewFromImage(ct) if hu is None else hu
    zs = slice_zs_mm(ct)
    in_slab = np.abs(zs - zs[c3_slice_k]) <= thickness_mm / 2.0
    mask = np.zeros(hu.shape, dtype=np.uint8)
    mask[in_slab] = body_mask(np.asarray(hu[in_slab]))
    return mask


def int16_hu(ct: sitk.Image) -> sitk.Image:
    """HU to the unit, as the scanner stored them: half the size of float volumes."""
    hu = np.clip(np.rint(sitk.GetArrayViewFromImage(ct)), -32768, 32767).astype(np.int16)
    image = sitk.GetImageFromArray(hu)
    image.CopyInformation(ct)
    return image


def mask_image(mask: np.ndarray, ct: sitk.Image) -> sitk.Image:
    """A (k, j, i) mask as a uint8 label image on the CT's grid."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(ct)
    return image


def check_same_grid(image: sitk.Image, ct: sitk.Image, what: str = "the mask") -> None:
    """Refuse a mask that was not made on this CT's voxel grid."""
    checks = {"size": (image.GetSize(), ct.GetSize(), 0.0),
              "spacing": (image.GetSpacing(), ct.GetSpacing(), 1e-3),
              "origin": (image.GetOrigin(), ct.GetOrigin(), 1e-2),
              "orientation": (image.GetDirection(), ct.GetDirection(), 1e-3)}
    for name, (got, expected, tolerance) in checks.items():
        if len(got) != len(expected) or not np.allclose(got, expected, atol=tolerance, rtol=0):
            raise InputError(f"{what} does not lie on the CT's grid ({name} {_fmt(got)} vs "
                             f"{_fmt(expected)}): export the mask from the same CT series.")


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def read_mask(path: str | Path, ct: sitk.Image) -> np.ndarray:
    """A label image on the CT's grid, as a (k, j, i) uint8 array. Labels 1-3 are the muscle
    groups (paravertebral, SCM right, SCM left); any other non-zero value counts as 1."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: check the path to the mask.")
    image = read_image(path, "mask")
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    check_same_grid(image, ct, f"the mask {path.name}")
    labels = sitk.GetArrayFromImage(image)
    input_checks.check_label_mask(labels, f"the mask {path.name}")
    grouped = np.isin(labels, (0, 1, 2, 3)).all()
    return labels.astype(np.uint8) if grouped else (labels != 0).astype(np.uint8)
