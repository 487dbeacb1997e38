"""Reading a CT from DICOM files, each file's own tags first.

ITK spreads a series over an even grid whatever its files say: a missing or unreadable
slice, or a slice without a position, would silently move every slice after it, and a
gantry tilt would stretch the slice spacing. Here each file's size and position are read
first; a series is read only when its slices are all placed, of one size and evenly spaced,
and a tilt becomes a warning. ITK's own multi-line warnings are not printed: these checks
say what is wrong, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .image_files import quiet_itk
from .measures import ClinicalInfo, parse_sex

TAGS = {"modality": "0008|0060", "position": "0020|0032", "orientation": "0020|0037",
        "tilt": "0018|1120", "PatientAge": "0010|1010", "PatientSex": "0010|0040",
        "PatientSize": "0010|1020", "PatientWeight": "0010|1030"}
SPACING_TOLERANCE = 0.2  # of the series' usual slice spacing: more is a gap or an overlap
TILT_WARNING_DEG = 1.0


def file_header(path: str | Path) -> sitk.ImageFileReader:
    """A reader holding one file's size and tags (no pixels read); RuntimeError if unreadable."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_itk():
        reader.ReadImageInformation()
    return reader


def tag(reader: sitk.ImageFileReader, name: str) -> str | None:
    key = TAGS[name]
    value = reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""
    return value or None


def file_modality(dicom_file: str) -> str | None:
    return tag(file_header(dicom_file), "modality")


def check_modality(modality: str | None, path: Path) -> None:
    if modality not in ("CT", None):
        raise InputError(f"{path} is a {modality} image, not a CT: C3Sarcopenia measures "
                         "muscle in Hounsfield units and needs a CT.")


def ct_series_files(folder: Path) -> list[str]:
    """The files of the folder's CT series with the most slices."""
    series = []
    with quiet_itk():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
        for series_id in ids:
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
            if file_modality(files[0]) in ("CT", None):
                series.append(list(files))
    if not series:
        raise InputError(f"{folder} holds no CT DICOM series: point to the folder of the "
                         "CT series, or to a NIfTI/NRRD file.")
    return max(series, key=len)


@dataclass
class SliceFile:
    path: Path
    size: tuple[int, int]
    position_mm: np.ndarray
    normal: np.ndarray  # the slice plane's normal, from ImageOrientationPatient


def read_ct_series(files: list[str]) -> tuple[sitk.Image, list[str]]:
    """The series as an image whose slices sit at their files' positions, with warnings."""
    folder = Path(files[0]).parent
    if len(files) == 1:  # one slice, or one multi-frame file: nothing to place
        reader = file_header(files[0])
        return _execute(reader, folder), header_warnings(reader)
    slices = [_slice_file(Path(f), folder) for f in files]
    _check_sizes(slices, folder)
    normal = slices[0].normal
    slices.sort(key=lambda s: float(s.position_mm @ normal))
    steps = np.array([float((b.position_mm - a.position_mm) @ normal)
                      for a, b in zip(slices, slices[1:])])
    _check_spacing(slices, steps, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(s.path) for s in slices])
    image = _execute(reader, folder)
    # ITK spaces sheared slices along the tilt; their true spacing is along the normal
    image.SetSpacing(image.GetSpacing()[:2] + (float(np.median(steps)),))
    return image, header_warnings(file_header(slices[0].path), _shear_deg(slices, normal))


def _execute(reader, folder: Path) -> sitk.Image:
    try:
        with quiet_itk():
            return reader.Execute()
    except RuntimeError:
        raise InputError(f"the CT series in {folder} could not be read: a slice file may be "
                         "damaged; export the series again from the PACS.") from None


def _slice_file(path: Path, folder: Path) -> SliceFile:
    try:
        reader = file_header(path)
    except RuntimeError:
        raise InputError(f"{path.name} in the CT series in {folder} could not be read: export "
                         "the series again from the PACS.") from None
    numbers = {}
    for name, count in (("position", 3), ("orientation", 6)):
        try:
            numbers[name] = np.array([float(v) for v in (tag(reader, name) or "").split("\\")])
        except ValueError:
            numbers[name] = np.array([])
        if numbers[name].size != count:
            label = "ImagePositionPatient" if name == "position" else "ImageOrientationPatient"
            raise InputError(f"{path.name} in the CT series in {folder} has no valid {name} "
                             f"({label}), so its slices cannot be placed: export the series "
                             "again from the PACS.")
    row, column = numbers["orientation"][:3], numbers["orientation"][3:]
    normal = np.cross(row, column)
    return SliceFile(path, tuple(reader.GetSize()[:2]), numbers["position"],
                     normal / (np.linalg.norm(normal) or 1.0))


def _check_sizes(slices: list[SliceFile], folder: Path) -> None:
    sizes = [s.size for s in slices]
    usual = max(set(sizes), key=sizes.count)
    odd = [s for s in slices if s.size != usual]
    if odd:
        names = ", ".join(s.path.name for s in odd[:3])
        raise InputError(f"the CT series in {folder} mixes slice sizes: {names} "
                         f"{'is' if len(odd) == 1 else 'are'} {odd[0].size[0]}x{odd[0].size[1]} "
                         f"pixels, the other slices {usual[0]}x{usual[1]}. Remove the odd "
                         "file(s) (a scout or another reconstruction) or export the series again.")


def _check_spacing(slices: list[SliceFile], steps: np.ndarray, folder: Path) -> None:
    """Refuse two slices at one position, and gaps: an even grid would misplace the slices."""
    spacing = float(np.median(steps))
    if spacing < 1e-3:
        raise InputError(f"the CT series in {folder} holds several slices at each position: "
                         "it mixes series or reconstructions; export one series.")
    uneven = np.flatnonzero(np.abs(steps - spacing) > SPACING_TOLERANCE * spacing)
    if uneven.size == 0:
        return
    i = int(uneven[0])
    low, high = float(slices[i].position_mm[2]), float(slices[i + 1].position_mm[2])
    if steps[i] > spacing:
        missing = int(round(steps[i] / spacing)) - 1
        what = (f"a gap: no slice between z = {low:.1f} and {high:.1f} mm, where the series "
                f"has one every {spacing:.2f} mm ({max(missing, 1)} missing{_unreadable(folder)})")
    else:
        what = (f"slices {steps[i]:.2f} mm apart at z = {low:.1f} mm where the series has one "
                f"every {spacing:.2f} mm")
    raise InputError(f"the CT series in {folder} has {what}: on an even grid the slices "
                     "beyond would be misplaced. Export the complete series again.")


def _unreadable(folder: Path) -> str:
    """Files of the folder that cannot be read as images: damaged slices, often."""
    names = []
    for path in sorted(folder.iterdir()):
        try:
            if path.is_file():
                file_header(path)
        except RuntimeError:
            names.append(path.name)
    return f"; unreadable files there: {', '.join(names[:3])}" if names else ""


def _shear_deg(slices: list[SliceFile], normal: np.ndarray) -> float:
    """The angle between the slice normal and the line through the slice positions."""
    step = slices[-1].position_mm - slices[0].position_mm
    cosine = abs(float(step @ normal)) / (float(np.linalg.norm(step)) or 1.0)
    return float(np.degrees(np.arccos(min(cosine, 1.0))))


def header_warnings(reader: sitk.ImageFileReader, shear_deg: float = 0.0) -> list[str]:
    """What a slice's tags say a reviewer should know: a gantry tilt (from the tag or the
    slices' shear), patient tags that could not be used."""
    try:
        tilt_deg = max(shear_deg, abs(float(tag(reader, "tilt") or 0.0)))
    except ValueError:
        tilt_deg = shear_deg
    return _tilt_warnings(tilt_deg) + clinical_from_header(reader)[1]


def _tilt_warnings(tilt_deg: float) -> list[str]:
    if tilt_deg <= TILT_WARNING_DEG:
        return []
    return [f"the CT was acquired with a gantry tilt of {tilt_deg:.0f} degrees: its slices are "
            "oblique to the neck, so the CSA may be up to "
            f"{100 / np.cos(np.radians(tilt_deg)) - 100:.0f} % too large and levels are placed "
            "along the tilted axis; review the level, or reformat to true axial slices."]


def clinical_tags(path: str | Path) -> tuple[ClinicalInfo, list[str]]:
    """Age, sex, height and weight from a DICOM file or series folder, where present, and a
    warning for each tag left unknown because its value is not understood or implausible
    (an empty or zero tag is DICOM's usual 'unknown' and passes quietly)."""
    path = Path(path)
    try:
        reader = file_header(ct_series_files(path)[0] if path.is_dir() else path)
    except (RuntimeError, InputError):
        return ClinicalInfo(), []
    return clinical_from_header(reader)


def clinical_from_header(reader: sitk.ImageFileReader) -> tuple[ClinicalInfo, list[str]]:
    fields, warnings = {}, []
    for field, tag_name, parse in _CLINICAL_TAGS:
        text = tag(reader, tag_name)
        try:
            fields[field] = parse(text)
            ClinicalInfo(**{field: fields[field]})
        except InputError as error:
            fields[field] = None
            warnings.append(f"the DICOM tag {tag_name} = {text!r} was not used: {error}")
    return ClinicalInfo(**fields), warnings


def _age_years(text: str | None) -> float | None:
    """DICOM ages look like '057Y'; months, weeks and days are children, not our patients."""
    if not text:
        return None
    if not text[:-1].isdigit() or text[-1].upper() != "Y":
        raise InputError("not an age in years.")
    return float(int(text[:-1]))


def _number(text: str | None, scale: float = 1.0) -> float | None:
    try:
        value = float(text) * scale if text else 0.0
    except ValueError:
        raise InputError("not a number.") from None
    return value or None


_CLINICAL_TAGS = (("age_years", "PatientAge", _age_years), ("sex", "PatientSex", parse_sex),
                  ("height_cm", "PatientSize", lambda text: _number(text, scale=100.0)),
                  ("weight_kg", "PatientWeight", _number))
