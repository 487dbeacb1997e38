"""What ITK does not say about a NIfTI file: it zero-fills a file shorter than its header
promises and reads NaN or infinite voxels as 0, so a broken CT would be measured. The
stored bytes are checked here, streamed, so a large CT needs no second copy in memory.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import InputError

_CHUNK_BYTES = 1 << 24
# NIfTI datatype codes of floating-point voxels (the ones that can hold NaN) and their numpy type.
_FLOAT_TYPES = {16: "f4", 64: "f8"}


def check_nifti(path: Path, what: str = "CT") -> None:
    """Refuse a single-file NIfTI (.nii, .nii.gz) with fewer voxel bytes than its header
    announces, or with NaN or infinite voxels. Other files pass untouched."""
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            layout = _layout(stream.read(540))
    except EOFError:  # a compressed stream that ends early
        raise InputError(f"{path} is truncated: copy the {what} again from its source.") from None
    except (OSError, zlib.error):
        layout = None
    if layout is None:
        return  # no NIfTI header to go by: ITK's own reading decides
    offset, n_bytes, float_type = layout
    try:
        with opener(path, "rb") as stream:
            if opener is open and float_type is None:
                held = path.stat().st_size - offset  # integers: the length says it all
                non_finite = 0
            else:
                stream.seek(offset)
                held, non_finite = _scan(stream, n_bytes, float_type)
    except (EOFError, OSError, zlib.error) as error:
        raise InputError(f"{path} is truncated or damaged ({error}): copy the {what} again "
                         "from its source.") from None
    if held < n_bytes:
        raise InputError(f"{path} is truncated: its header announces {n_bytes} bytes of voxels "
                         f"but the file holds {max(held, 0)}. Copy the {what} again from its "
                         "source.")
    if non_finite:
        raise InputError(f"{path} contains {non_finite} NaN or infinite voxels: re-export the "
                         f"{what} from the scanner or PACS.")


def _layout(header: bytes) -> tuple[int, int, str | None] | None:
    """(voxel offset, voxel bytes, numpy float type or None) of a NIfTI-1 or -2 header."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            if header[344:347] != b"n+1":
                return None
            dims = struct.unpack(order + "8h", header[40:56])
            datatype, bitpix = struct.unpack(order + "2h", header[70:74])
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            if header[4:7] != b"n+2":
                return None
            datatype, bitpix = struct.unpack(order + "2h", header[12:16])
            dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        return None
    n_voxels = int(np.prod([max(int(d), 1) for d in dims[1:1 + min(max(dims[0], 0), 7)]]))
    float_type = _FLOAT_TYPES.get(datatype)
    return offset, n_voxels * bitpix // 8, None if float_type is None else order + float_type


def _scan(stream, n_bytes: int, float_type: str | None) -> tuple[int, int]:
    """Bytes of voxels the stream holds (up to n_bytes) and how many of them are not finite."""
    held = non_finite = 0
    while held < n_bytes:
        chunk = stream.read(min(_CHUNK_BYTES, n_bytes - held))
        if not chunk:
            break
        held += len(chunk)
        if float_type is not None:
            values = np.frombuffer(chunk[:len(chunk) - len(chunk) % int(float_type[-1])],
                                   dtype=float_type)
            non_finite += int(values.size - np.count_nonzero(np.isfinite(values)))
    return held, non_finite
