"""sliceOmatic ``.tag`` label files: read, write, and check them against the CT they label.

Many sarcopenia archives hold their manual muscle segmentations as tag files, so reading them
lets those segmentations be measured and compared directly. The format (TomoVision): an ASCII
header of ``keyword:value`` pairs separated by spaces, commas, tabs or line breaks, where
everything after a ``*`` on a line is a comment and keywords are case-insensitive; a form
feed (0x0C) ends the header; then x*y*z label bytes, slice by slice, each slice row by row
from the top and each row from the left, the order of DICOM pixel data. ``org_*`` is the
centre of the top-left pixel in patient coordinates, ``inc_x``/``inc_y`` the pixel spacing,
``epais`` the slice thickness, ``dir_h_*``/``dir_v_*`` the row and column directions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .fileio import write_atomic

END_OF_HEADER = b"\x0c"
SKELETAL_MUSCLE_TAG = 1  # sliceOmatic's first tag colour, the usual muscle label
SPACING_TOLERANCE = 0.01  # relative; rounding in exported headers stays well inside it
_SEPARATORS = re.compile(r"[\s,]+")
_NUMBER_FIELDS = ("org_x", "org_y", "org_z", "inc_x", "inc_y", "epais",
                  "dir_h_x", "dir_h_y", "dir_h_z", "dir_v_x", "dir_v_y", "dir_v_z")
_KNOWN_FIELDS = ("x", "y", "z", "type", "uid", "chksum") + _NUMBER_FIELDS


@dataclass(frozen=True)
class TagHeader:
    """What a tag header says about its label grid; optional fields are None when absent."""

    size: tuple[int, int, int]  # x (columns), y (rows), z (slices)
    origin_mm: tuple[float, float, float] | None = None  # centre of the top-left pixel
    pixel_spacing_mm: tuple[float, float] | None = None  # inc_x, inc_y
    slice_thickness_mm: float | None = None  # epais
    row_direction: tuple[float, float, float] | None = None  # dir_h: along a row
    column_direction: tuple[float, float, float] | None = None  # dir_v: down a column
    uid: str | None = None
    checksum: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # other fields, kept for rewriting
    comments: tuple[str, ...] = ()


def parse_tag_header(text: str) -> TagHeader:
    """The header fields from the text before the form feed (any line ending, any case)."""
    fields: dict[str, str] = {}
    comments = []
    for line in re.split(r"\r\n|\r|\n", text):
        content, star, comment = line.partition("*")
        if star:
            comments.append(comment.strip())
        for token in _SEPARATORS.split(content):
            key, colon, value = token.partition(":")
            if colon and key:
                fields[key.lower()] = value
    size = tuple(_integer(fields, key, default=1 if key == "z" else None) for key in "xyz")
    if fields.get("type", "BYTE").upper() != "BYTE":
        raise InputError(f"tag files hold one byte per pixel, but this header says "
                         f"type:{fields['type']}: export the tags again from sliceOmatic.")
    numbers = {key: _number(fields, key) for key in _NUMBER_FIELDS}
    return TagHeader(
        size=size,
        origin_mm=_all_or_none(numbers, "org_x", "org_y", "org_z"),
        pixel_spacing_mm=_all_or_none(numbers, "inc_x", "inc_y"),
        slice_thickness_mm=numbers["epais"],
        row_direction=_all_or_none(numbers, "dir_h_x", "dir_h_y", "dir_h_z"),
        column_direction=_all_or_none(numbers, "dir_v_x", "dir_v_y", "dir_v_z"),
        uid=fields.get("uid") or None,
        checksum=fields.get("chksum") or None,
        extra={k: v for k, v in fields.items() if k not in _KNOWN_FIELDS},
        comments=tuple(comments))


def _integer(fields: dict[str, str], key: str, default: int | None) -> int:
    if key not in fields and default is not None:
        return default
    try:
        value = int(float(fields[key]))
    except (KeyError, ValueError):
        raise InputError(f"the tag header has no valid '{key}:' size field "
                         f"({fields.get(key)!r}): this is not a sliceOmatic .tag file.") from None
    if value < 1:
        raise InputError(f"the tag header gives {key}:{value}; sizes must be positive.")
    return value


def _number(fields: dict[str, str], key: str) -> float | None:
    text = fields.get(key, "")
    try:
        return float(text) if text else None
    except ValueError:
        raise InputError(f"the tag header field {key}:{text} is not a number.") from None


def _all_or_none(numbers: dict[str, float | None], *keys: str) -> tuple[float, ...] | None:
    values = tuple(numbers[key] for key in keys)
    return None if None in values else values


def read_tag(path: str | Path) -> tuple[TagHeader, np.ndarray]:
    """Header and labels of a tag file; labels as a (z, y, x) uint8 array in DICOM row order.

    Zero bytes after the x*y*z labels (padding some writers add) are ignored; any other
    extra byte means the header does not describe the labels, and is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: check the path to the .tag file.")
    content = path.read_bytes()
    end = content.find(END_OF_HEADER)
    if end < 0:
        raise InputError(f"{path.name} has no end-of-header mark (form feed): it is not a "
                         "sliceOmatic .tag file.")
    header = parse_tag_header(content[:end].decode("latin-1"))
    x, y, z = header.size
    labels = np.frombuffer(content, dtype=np.uint8, offset=end + 1)
    if labels.size < x * y * z:
        raise InputError(f"{path.name} is truncated: its header announces {x}x{y}x{z} labels "
                         f"but it holds {labels.size} bytes of labels. Copy the file again.")
    if labels[x * y * z:].any():
        raise InputError(f"{path.name} holds {labels.size} bytes of labels but its header "
                         f"announces {x}x{y}x{z} = {x * y * z}: the header does not describe "
                         "the labels. Export the tags again from sliceOmatic.")
    return header, labels[:x * y * z].reshape(z, y, x).copy()


def header_for_image(image: sitk.Image) -> TagHeader:
    """The tag header that places labels on this image's grid (2D or 3D)."""
    n = image.GetDimension()
    spacing = tuple(image.GetSpacing())
    size = tuple(image.GetSize()) + (1,) * (3 - n)
    origin = tuple(image.GetOrigin()) + (0.0,) * (3 - n)
    direction = np.eye(3)
    direction[:n, :n] = np.array(image.GetDirection()).reshape(n, n)
    return TagHeader(
        size=size, origin_mm=origin, pixel_spacing_mm=spacing[:2],
        slice_thickness_mm=spacing[2] if n == 3 else None,
        row_direction=tuple(float(v) for v in direction[:, 0]),
        column_direction=tuple(float(v) for v in direction[:, 1]))


def format_tag_header(header: TagHeader) -> str:
    """Header text in sliceOmatic's layout (CRLF lines, form feed not included)."""
    x, y, z = header.size
    lines = [f"x:{x} y:{y} z:{z} type:BYTE"]
    spacing = _axis_fields("inc", header.pixel_spacing_mm)
    if header.slice_thickness_mm is not None:
        spacing["epais"] = header.slice_thickness_mm
    groups = [_axis_fields("org", header.origin_mm), spacing,
              _axis_fields("dir_h", header.row_direction),
              _axis_fields("dir_v", header.column_direction)]
    lines += [" ".join(f"{key}:{_fmt(v)}" for key, v in group.items()) for group in groups if group]
    identity = {"uid": header.uid, "chksum": header.checksum, **header.extra}
    pairs = [f"{key}:{value}" for key, value in identity.items() if value is not None]
    if pairs:
        lines.append(" ".join(pairs))
    lines += [f"* {comment}" for comment in header.comments]
    return "".join(line + "\r\n" for line in lines)


def _axis_fields(prefix: str, values: tuple[float, ...] | None) -> dict[str, float]:
    return {} if values is None else {f"{prefix}_{axis}": v for axis, v in zip("xyz", values)}


def _fmt(value: float) -> str:
    return repr(float(value))  # shortest text that reads back to the same number


def write_tag(path: str | Path, labels: np.ndarray, header: TagHeader | sitk.Image) -> None:
    """Write labels ((z, y, x) or one (y, x) slice, values 0-255) as a tag file.

    ``header`` is a TagHeader or the image the labels lie on (its grid then fills the header).
    """
    if isinstance(header, sitk.Image):
        header = header_for_image(header)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[np.newaxis]
    expected = tuple(reversed(header.size))
    if labels.shape != expected:
        raise InputError(f"the labels have shape {labels.shape} but the tag header describes "
                         f"{expected} (z, y, x): write labels made on the same image.")
    if labels.dtype != bool and not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"tag labels must be whole numbers, not {labels.dtype} values.")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise InputError("tag labels must lie between 0 and 255 (one byte per pixel).")
    content = (format_tag_header(header).encode("latin-1") + END_OF_HEADER
               + np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    write_atomic(Path(path), lambda tmp: tmp.write_bytes(content))


def tag_mask_for_image(tag_path: str | Path, image: sitk.Image,
                       muscle_values: tuple[int, ...] = (SKELETAL_MUSCLE_TAG,)) -> np.ndarray:
    """The muscle mask of a tag file on the image's grid, in ``GetArrayFromImage`` order.

    The tag must have the image's slice size and pixel spacing (within 1 %). A one-slice tag
    is placed on the CT slice its ``org_*`` position falls on, and refused when none is there:
    a tag beside a copy of another slice must not label it.
    """
    tag_path = Path(tag_path)
    header, labels = read_tag(tag_path)
    name = tag_path.name
    size = tuple(image.GetSize()) + (1,) * (3 - image.GetDimension())
    _check_slice_grid(header, image, name)
    mask = np.isin(labels, muscle_values)
    if not mask.any():
        found = ", ".join(str(v) for v in np.unique(labels) if v) or "none"
        raise InputError(f"{name} has no pixels labelled {_list(muscle_values)} (labels "
                         f"present: {found}): give the muscle label(s) with --tag-values.")
    placed = image.GetDimension() == 3 and (header.origin_mm is not None or size[2] > 1)
    if header.size[2] == 1 and placed:  # by its position, even on a one-slice CT
        full = np.zeros(size[::-1], dtype=bool)
        full[_slice_of_single_tag(header, image, name)] = mask[0]
    elif header.size[2] == size[2]:
        full = mask
    else:
        raise InputError(f"{name} has {header.size[2]} slices but the CT has {size[2]}: give "
                         "the CT series the tags were drawn on, or a one-slice tag.")
    return full if image.GetDimension() == 3 else full[0]


def _check_slice_grid(header: TagHeader, image: sitk.Image, name: str) -> None:
    columns, rows = image.GetSize()[:2]
    if header.size[:2] != (columns, rows):
        raise InputError(f"{name} is {header.size[0]}x{header.size[1]} pixels but the CT "
                         f"slices are {columns}x{rows}: the tags were drawn on another "
                         "image. Give the CT series the tag file was made on.")
    if header.pixel_spacing_mm is None:
        return
    ct_spacing = np.array(image.GetSpacing()[:2])
    relative = np.abs(np.array(header.pixel_spacing_mm) - ct_spacing) / ct_spacing
    if np.any(relative > SPACING_TOLERANCE):
        tag_text = "x".join(f"{v:.4g}" for v in header.pixel_spacing_mm)
        ct_text = "x".join(f"{v:.4g}" for v in ct_spacing)
        raise InputError(f"{name} has a pixel spacing of {tag_text} mm but the CT has "
                         f"{ct_text} mm: the tags were drawn on another reconstruction. Give "
                         "the CT series the tag file was made on.")


def _slice_of_single_tag(header: TagHeader, image: sitk.Image, name: str) -> int:
    """The CT slice a one-slice tag lies on, from the position of its top-left pixel."""
    if header.origin_mm is None:
        raise InputError(f"{name} holds one slice without its position (org_x/org_y/org_z), "
                         "so it cannot be placed in this CT: give the single DICOM slice it "
                         "was drawn on as the CT.")
    k = image.TransformPhysicalPointToContinuousIndex(header.origin_mm)[2]
    nearest = int(round(k))
    if not 0 <= nearest < image.GetSize()[2] or abs(k - nearest) > 0.25:
        raise InputError(f"{name} lies at z = {header.origin_mm[2]:.1f} mm, which is not a "
                         "slice of this CT: give the CT series the tag file was made on.")
    return nearest


def _list(values) -> str:
    return " or ".join(str(v) for v in values)
