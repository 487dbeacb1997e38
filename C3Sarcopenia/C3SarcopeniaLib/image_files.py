"""Reading image files through ITK without believing or printing what ITK does.

ITK zero-fills a NIfTI file shorter than its header promises and reads its NaN or infinite
voxels as 0, so a broken CT would be measured; a short NRRD or MetaImage (.mha, .mhd) fails
with pages of C++ text. So the stored bytes are checked here first, streamed (a large CT
needs no second copy in memory), and the refusal names the real reason. And ITK, GDCM,
MetaIO and the NIfTI library print warnings and errors, several lines each, straight to the
process's stderr (file descriptor 2, below Python's sys.stderr): while ITK reads, that goes
nowhere, and the caller says what is wrong in one line.
"""

from __future__ import annotations

import bz2
import gzip
import os
import struct
import sys
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from .errors import InputError

_CHUNK_BYTES = 1 << 24
_ZLIB_CHUNK_BYTES = 1 << 20  # compressed: its output may be many times larger
_HEADER_LINES_MAX = 1000
_HEADER_LINE_BYTES = 4096
# NIfTI datatype codes of floating-point voxels (the ones that can hold NaN) and their numpy type.
_NIFTI_FLOATS = {16: "f4", 64: "f8"}
_NRRD_TYPE_NAMES = {
    1: ("signed char", "int8", "uchar", "unsigned char", "uint8"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "ushort",
        "unsigned short", "unsigned short int", "uint16"),
    4: ("int", "signed int", "int32", "uint", "unsigned int", "uint32", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int",
        "int64", "ulonglong", "unsigned long long", "unsigned long long int", "uint64",
        "double")}
_NRRD_BYTES = {name: size for size, names in _NRRD_TYPE_NAMES.items() for name in names}
_NRRD_COMPRESSION = {"raw": "none", "gzip": "gzip", "gz": "gzip", "bzip2": "bz2", "bz2": "bz2"}
_MET_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
              "MET_UINT": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}


@dataclass
class StoredVoxels:
    """Where a file keeps its voxels, and how many bytes its header promises."""
    data_path: Path
    file_offset: int  # bytes before the (possibly compressed) voxel data in data_path
    n_bytes: int
    compression: str  # "none", "gzip", "bz2" or "zlib"
    stream_offset: int = 0  # bytes to skip once decompressed (a .nii.gz's header)
    float_type: str | None = None  # numpy type of floating-point voxels, which can be NaN


def read_image(path: str | Path, what: str = "image", pixel_type=None) -> sitk.Image:
    """An image file read by ITK once its stored bytes are checked; one line if it fails."""
    path = Path(path)
    check_stored_voxels(path, what)
    try:
        with quiet_itk():
            return sitk.ReadImage(str(path), sitk.sitkUnknown if pixel_type is None
                                  else pixel_type)
    except RuntimeError:
        raise InputError(f"{path} could not be read as an image: use NIfTI, NRRD or MHA, "
                         f"or export the {what} again.") from None


def check_stored_voxels(path: Path, what: str = "CT") -> None:
    """Refuse a NIfTI, NRRD or MetaImage file with fewer voxel bytes than its header
    announces, or with NaN or infinite voxels. Other files pass untouched."""
    try:
        stored = _layout(path)
    except EOFError:  # a compressed header that ends early
        raise InputError(f"{path} is truncated: copy the {what} again from its source.") from None
    except (OSError, zlib.error, ValueError, struct.error):
        stored = None
    if stored is None:
        return  # no header to go by: ITK's own reading decides
    if not stored.data_path.is_file():
        raise InputError(f"{path} keeps its voxels in {stored.data_path}, which is missing: "
                         "copy the header and its data file together.")
    try:
        if stored.compression == "none" and stored.float_type is None:
            held, non_finite = stored.data_path.stat().st_size - stored.file_offset, 0
        else:
            held, non_finite = _count(_voxel_chunks(stored), stored)
    except EOFError:  # a compressed stream that ends early
        raise InputError(f"{path} is truncated: its compressed voxels end before the "
                         f"{stored.n_bytes} bytes its header announces. Copy the {what} again "
                         "from its source.") from None
    except (OSError, zlib.error) as error:
        raise InputError(f"{path} is truncated or damaged ({error}): copy the {what} again "
                         "from its source.") from None
    if held < stored.n_bytes:
        raise InputError(f"{path} is truncated: its header announces {stored.n_bytes} bytes of "
                         f"voxels but the file holds {max(held, 0)}. Copy the {what} again "
                         "from its source.")
    if non_finite:
        raise InputError(f"{path} contains {non_finite} NaN or infinite voxels: re-export the "
                         f"{what} from the scanner or PACS.")


def _layout(path: Path) -> StoredVoxels | None:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _nifti_layout(path, name.endswith(".gz"))
    if name.endswith((".nrrd", ".nhdr")):
        return _nrrd_layout(path)
    if name.endswith((".mha", ".mhd")):
        return _metaimage_layout(path)
    return None


def _nifti_layout(path: Path, compressed: bool) -> StoredVoxels | None:
    """The voxels of a single-file NIfTI-1 or -2 (.nii, .nii.gz)."""
    with (gzip.open if compressed else open)(path, "rb") as stream:
        header = stream.read(540)
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
    n_bytes = _product(dims[1:1 + min(max(dims[0], 0), 7)]) * bitpix // 8
    float_type = _NIFTI_FLOATS.get(datatype)
    return StoredVoxels(path, 0 if compressed else offset, n_bytes,
                        "gzip" if compressed else "none", offset if compressed else 0,
                        float_type and order + float_type)


def _nrrd_layout(path: Path) -> StoredVoxels | None:
    """The voxels of a NRRD file (.nrrd) or of the data file a detached header names (.nhdr)."""
    with open(path, "rb") as stream:
        if stream.read(4) != b"NRRD":
            return None
        stream.readline()
        fields = {}
        for _ in range(_HEADER_LINES_MAX):
            line = stream.readline(_HEADER_LINE_BYTES).decode("latin-1").strip()
            if not line:  # a blank line (or the end of a detached header) ends the header
                break
            key, colon, value = line.partition(": ")
            if colon and not line.startswith("#") and ":=" not in key:
                fields[key.strip().lower().replace(" ", "")] = value.strip()
        header_end = stream.tell()
    n_bytes = _NRRD_BYTES.get(fields.get("type", "").lower().replace("_t", ""))
    compression = _NRRD_COMPRESSION.get(fields.get("encoding", "").lower())
    skips = int(fields.get("lineskip", 0)), int(fields.get("byteskip", 0))
    if n_bytes is None or compression is None or "sizes" not in fields or skips[0] \
            or (skips[1] and compression != "none") or skips[1] < 0:
        return None  # text encodings and skips from the end: ITK decides
    data_path, file_offset = path, header_end
    if "datafile" in fields:
        if " " in fields["datafile"] or fields["datafile"].startswith("LIST"):
            return None  # several data files
        data_path, file_offset = path.parent / fields["datafile"], 0
    float_type = {"float": "f4", "double": "f8"}.get(fields["type"].lower())
    order = ">" if fields.get("endian", "little").lower() == "big" else "<"
    return StoredVoxels(data_path, file_offset + skips[1],
                        _product(fields["sizes"].split()) * n_bytes, compression,
                        float_type=float_type and order + float_type)


def _metaimage_layout(path: Path) -> StoredVoxels | None:
    """The voxels of a MetaImage (.mha), or of the data file a .mhd header names."""
    fields = {}
    with open(path, "rb") as stream:
        for _ in range(_HEADER_LINES_MAX):
            key, equals, value = stream.readline(_HEADER_LINE_BYTES).decode("latin-1").partition("=")
            if not equals:
                return None  # not a MetaImage header
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() == "elementdatafile":
                break
        header_end = stream.tell()
    n_bytes = _MET_BYTES.get(fields.get("elementtype", "").upper())
    data_file = fields.get("elementdatafile", "")
    if n_bytes is None or "dimsize" not in fields or not data_file or " " in data_file \
            or data_file.upper() == "LIST" or "%" in data_file:
        return None  # a list or pattern of slice files: ITK decides
    data_path, file_offset = path, header_end
    if data_file.upper() != "LOCAL":
        data_path, file_offset = path.parent / data_file, int(fields.get("headersize", 0))
        if file_offset < 0:
            return None  # the data sits at the end of the file: its length says nothing
    channels = int(fields.get("elementnumberofchannels", 1))
    big_endian = any(fields.get(key, "").lower() == "true"
                     for key in ("elementbyteordermsb", "binarydatabyteordermsb"))
    float_type = {"MET_FLOAT": "f4", "MET_DOUBLE": "f8"}.get(fields["elementtype"].upper())
    return StoredVoxels(data_path, file_offset,
                        _product(fields["dimsize"].split()) * channels * n_bytes,
                        "zlib" if fields.get("compresseddata", "").lower() == "true" else "none",
                        float_type=float_type and (">" if big_endian else "<") + float_type)


def _product(sizes) -> int:
    return int(np.prod([max(int(size), 1) for size in sizes], dtype=np.int64))


def _voxel_chunks(stored: StoredVoxels) -> Iterator[bytes]:
    """The voxel bytes as stored, decompressed, in chunks."""
    with open(stored.data_path, "rb") as raw:
        raw.seek(stored.file_offset)
        if stored.compression == "zlib":
            inflate = zlib.decompressobj()
            for block in iter(lambda: raw.read(_ZLIB_CHUNK_BYTES), b""):
                yield inflate.decompress(block)
            return
        opener = {"none": lambda f: f, "gzip": lambda f: gzip.GzipFile(fileobj=f),
                  "bz2": bz2.BZ2File}[stored.compression]
        with opener(raw) as stream:
            yield from iter(lambda: stream.read(_CHUNK_BYTES), b"")


def _count(chunks: Iterator[bytes], stored: StoredVoxels) -> tuple[int, int]:
    """Voxel bytes held (up to the number promised) and how many voxels are not finite."""
    skip, held, non_finite, rest = stored.stream_offset, 0, 0, b""
    item_bytes = int(stored.float_type[-1]) if stored.float_type else 1
    for chunk in chunks:
        dropped = min(skip, len(chunk))
        chunk, skip = chunk[dropped:stored.n_bytes - held + dropped], skip - dropped
        held += len(chunk)
        if stored.float_type:
            data = rest + chunk
            usable = len(data) - len(data) % item_bytes
            values = np.frombuffer(data[:usable], dtype=stored.float_type)
            non_finite += int(values.size - np.count_nonzero(np.isfinite(values)))
            rest = data[usable:]
        if held >= stored.n_bytes:
            break
    return held, non_finite


class _Silence:
    """ITK's output switched off by the first of nested or concurrent readers and back on by
    the last, so that no reader restores another's silence as the normal state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.warnings_shown = True
        self.saved_stderr: int | None = None

    def enter(self) -> None:
        with self.lock:
            self.depth += 1
            if self.depth == 1:
                self.warnings_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
                sitk.ProcessObject.SetGlobalWarningDisplay(False)
                self.saved_stderr = _stderr_to_nowhere()

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                sitk.ProcessObject.SetGlobalWarningDisplay(self.warnings_shown)
                if self.saved_stderr is not None:
                    os.dup2(self.saved_stderr, 2)
                    os.close(self.saved_stderr)
                    self.saved_stderr = None


def _stderr_to_nowhere() -> int | None:
    """Point file descriptor 2 at the null device; a copy of the old one, to restore it
    (None where the process has no stderr, as a windowed application may)."""
    if sys.stderr is not None:
        sys.stderr.flush()  # what Python wrote before still goes to the terminal
    try:
        saved = os.dup(2)
    except OSError:
        return None
    try:
        with open(os.devnull, "wb") as nowhere:
            os.dup2(nowhere.fileno(), 2)
    except OSError:
        os.close(saved)
        return None
    return saved


_SILENCE = _Silence()


@contextmanager
def quiet_itk() -> Iterator[None]:
    """Nothing ITK, GDCM, MetaIO or the NIfTI library print reaches stderr meanwhile."""
    _SILENCE.enter()
    try:
        yield
    finally:
        _SILENCE.leave()
