"""Turning an archive export into a cohort: CT volumes, true C3 slices and muscle labels.

Sarcopenia archives hold, per patient, the CT series and a copy of the one slice a reader
segmented (sliceOmatic: ``X.dcm`` with its ``X.dcm.tag``), but rarely say which slice of the
series that copy is. It is found here by position (the slice's ImagePositionPatient z) and
confirmed by pixels, because a copy from another series or another patient can sit at the
same z. A patient that cannot be matched is left out with the reason; the others go on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .. import dicom_series, imaging, input_checks
from ..errors import InputError
from ..fileio import write_csv_atomic, write_image_atomic
from ..image_files import quiet_itk, read_image
from ..measures import ClinicalInfo, parse_sex
from ..phantoms.phantom import MANIFEST_COLUMNS
from .review_marks import ReviewMark
from .survival import is_missing, parse_number, read_table_csv, parse_event, resolve_column
from ..tagfile import SKELETAL_MUSCLE_TAG, tag_mask_for_image

SURVIVAL_COLUMNS = ("survival_time", "event")  # time in the clinical table's unit; event 1/0
REPORT_COLUMNS = ("case_id", "outcome", "c3_slice_k", "single_slice", "segmentation", "reason")
POSITION_TOLERANCE = 0.25  # of the slice spacing: further from every slice is between slices
PIXEL_TOLERANCE_HU = 1.0  # a copy of a slice differs by rounding at most
_TAG_SUFFIX = ".tag"


@dataclass(frozen=True)
class ClinicalColumns:
    """Clinical table columns, named as in its first line; defaults: the TCIA HNSCC table.

    An empty name means the table has no such column (the field is then unknown).
    """

    patient_id: str | None = None  # default: the first column
    age: str = "Age"
    sex: str = "Sex"
    height_cm: str = "Height (cm)"
    weight_kg: str = "BW Start tx (kg)"
    time: str | None = None  # survival time, carried into the manifest when given
    event: str | None = None


class ClinicalTable:
    """The clinical table's rows by patient id, with its column names resolved."""

    def __init__(self, path: str | Path, columns: ClinicalColumns) -> None:
        if (columns.time is None) != (columns.event is None):
            raise InputError("give both the survival time and the event column, or neither.")
        header, rows = read_table_csv(Path(path))
        self.name = Path(path).name
        self.columns = ClinicalColumns(**{
            role: resolve_column(name, header, role.split("_")[0]) if name else name
            for role, name in vars(columns).items()})
        id_column = self.columns.patient_id or header[0]
        self._rows: dict[str, list[dict[str, str]]] = {}
        self.patient_ids: list[str] = []  # as written in the table, in its order
        for _, row in rows:
            patient_id = row[id_column].strip()
            if patient_id and patient_id.casefold() not in self._rows:
                self.patient_ids.append(patient_id)
            self._rows.setdefault(patient_id.casefold(), []).append(row)

    def fields(self, patient_id: str) -> dict[str, str]:
        """The manifest's clinical (and survival) cells for one patient."""
        rows = self._rows.get(patient_id.strip().casefold(), [])
        if len(rows) != 1:
            raise InputError(f"{self.name} has {len(rows) or 'no'} rows for patient "
                             f"{patient_id}: the folder name must match one patient id.")
        row, c = rows[0], self.columns

        def number(column: str) -> float | None:
            return None if not column or is_missing(row[column]) else parse_number(row[column], column)

        sex = None if not c.sex or is_missing(row[c.sex]) else parse_sex(row[c.sex])
        clinical = ClinicalInfo(number(c.age), sex, number(c.height_cm), number(c.weight_kg))
        cells = {"age": clinical.age_years, "sex": clinical.sex,
                 "height_cm": clinical.height_cm, "weight_kg": clinical.weight_kg}
        if c.time:
            event = None if is_missing(row[c.event]) else int(parse_event(row[c.event]))
            cells.update(survival_time=number(c.time), event=event)
        return {key: "" if value is None else f"{value:g}" if isinstance(value, float)
                else str(value) for key, value in cells.items()}


@dataclass(frozen=True)
class PatientFiles:
    """What a patient folder holds: the segmented slice, its labels and the CT series."""

    single_slice: Path
    segmentation: Path  # a .tag file, or a label image of the single slice
    series: list[str]  # the CT series' files in slice order


def find_patient_files(folder: Path) -> PatientFiles:
    """The segmentation, the DICOM slice beside it, and the largest other CT series."""
    pairs = [(path, _slice_beside(path)) for path in sorted(folder.rglob("*"))
             if path.is_file() and _is_segmentation_name(path.name)]
    pairs = [(seg, single) for seg, single in pairs
             if single is not None or seg.name.lower().endswith(_TAG_SUFFIX)]
    if not pairs:
        raise InputError("no segmentation: expected the segmented DICOM slice with its "
                         "sliceOmatic tag beside it (X.dcm and X.dcm.tag), or a label image "
                         "named after the slice (X.nii.gz).")
    if len(pairs) > 1:
        names = ", ".join(str(seg.relative_to(folder)) for seg, _ in pairs)
        raise InputError(f"several segmentations ({names}): keep one per patient.")
    segmentation, single = pairs[0]
    if single is None:
        raise InputError(f"no DICOM slice beside {segmentation.name}: keep the segmented "
                         "slice next to its tag (X.dcm and X.dcm.tag).")
    series = _largest_ct_series(folder, exclude=single)
    return PatientFiles(single, segmentation, series)


def _is_segmentation_name(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(_TAG_SUFFIX) or lower.endswith(imaging.VOLUME_SUFFIXES)


def _slice_beside(segmentation: Path) -> Path | None:
    """``X.dcm`` for ``X.dcm.tag``, ``X.tag``, ``X.nii.gz`` ...; None when there is none."""
    name = segmentation.name
    suffix = next(s for s in (_TAG_SUFFIX, *imaging.VOLUME_SUFFIXES)
                  if name.lower().endswith(s))
    base = name[:-len(suffix)]
    for candidate in (base, base + ".dcm", base + ".DCM"):
        path = segmentation.with_name(candidate)
        if candidate and path.is_file() and not _is_segmentation_name(candidate):
            return path
    return None


def _largest_ct_series(folder: Path, exclude: Path) -> list[str]:
    """The CT series with the most files anywhere under the folder, the single slice apart
    (it may be a copy that shares the series' UID and folder)."""
    found = []
    for directory, _, names in os.walk(folder):
        if all(_is_segmentation_name(name) for name in names):
            continue  # nothing to look at
        with quiet_itk():
            ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory) or ()
            series = [sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, i) for i in ids]
        for files in series:
            files = [f for f in files if Path(f).resolve() != exclude.resolve()]
            if len(files) > 1 and _modality(files[0]) in ("CT", None):
                found.append(files)
    if not found:
        raise InputError("no CT series besides the segmented slice: add the patient's CT "
                         "series (DICOM) to the folder.")
    return max(found, key=len)


def _modality(dicom_file: str) -> str | None:
    try:
        return dicom_series.file_modality(dicom_file)
    except RuntimeError:  # DICOM without pixels (RTSTRUCT, SR): not an image series
        return "none"


def read_series(files: list[str]) -> sitk.Image:
    """The series as a HU volume, with the checks of imaging.read_ct (gaps, sizes, units)."""
    image = sitk.Cast(dicom_series.read_ct_series(files)[0], sitk.sitkFloat32)
    imaging.check_axial(image, "the CT series")
    input_checks.check_hounsfield(sitk.GetArrayViewFromImage(image), "the CT series")
    return image


@dataclass(frozen=True)
class SliceMatch:
    slice_k: int
    distance_mm: float  # between the single slice and series slice k
    max_hu_difference: float


def match_slice(series: sitk.Image, single: sitk.Image) -> SliceMatch:
    """The series slice the single slice is a copy of: same position and same pixels."""
    _check_in_plane(series, single)
    z = imaging.slice_z_mm(single, 0)
    k = imaging.nearest_slice_k(series, z)
    distance = abs(imaging.slice_z_mm(series, k) - z)
    volume = sitk.GetArrayViewFromImage(series)
    pixels = sitk.GetArrayViewFromImage(single)[0]
    if distance > POSITION_TOLERANCE * series.GetSpacing()[2]:
        low, high = sorted((imaging.slice_z_mm(series, 0),
                            imaging.slice_z_mm(series, len(volume) - 1)))
        raise InputError(f"the segmented slice lies at z = {z:.1f} mm, which is no slice of the "
                         f"series (z {low:.1f} to {high:.1f} mm){_pixel_hint(volume, pixels)}.")
    difference = float(np.max(np.abs(volume[k] - pixels)))
    if difference > PIXEL_TOLERANCE_HU:
        r = float(np.corrcoef(volume[k].ravel(), pixels.ravel())[0, 1])
        raise InputError(f"the segmented slice lies at the position of series slice {k} but "
                         f"its pixels differ by up to {difference:.0f} HU (correlation "
                         f"{r:.3f}){_pixel_hint(volume, pixels)}: it is not a copy of this "
                         "series; find the series the slice was taken from.")
    return SliceMatch(k, distance, difference)


def _check_in_plane(series: sitk.Image, single: sitk.Image) -> None:
    if single.GetSize()[:2] != series.GetSize()[:2] or not np.allclose(
            single.GetSpacing()[:2], series.GetSpacing()[:2], rtol=0.01):
        def grid(image):
            return (f"{image.GetSize()[0]}x{image.GetSize()[1]} pixels of "
                    f"{image.GetSpacing()[0]:.3g} mm")
        raise InputError(f"the segmented slice has {grid(single)} but the series has "
                         f"{grid(series)}: it was taken from another reconstruction.")


def _pixel_hint(volume: np.ndarray, pixels: np.ndarray) -> str:
    """Names the series slice with the same pixels, if any: then only the position tags
    disagree, which a reader can check and correct."""
    differences = np.abs(volume - pixels[np.newaxis]).reshape(len(volume), -1).max(axis=1)
    k = int(np.argmin(differences))
    if differences[k] > PIXEL_TOLERANCE_HU:
        return ""
    return f"; its pixels equal series slice {k}, so its position tags disagree with the series"


def slice_muscle(segmentation: Path, single: sitk.Image,
                 muscle_values: tuple[int, ...]) -> np.ndarray:
    """The (j, i) muscle mask of the single slice, from its tag or label image."""
    if segmentation.name.lower().endswith(_TAG_SUFFIX):
        return tag_mask_for_image(segmentation, single, muscle_values)[0]
    label = read_image(segmentation, "label image")
    if label.GetDimension() == 2:
        label = sitk.JoinSeries(label, single.GetOrigin()[2], single.GetSpacing()[2])
    if label.GetSize()[2] == 1:  # one slice: its thickness says nothing about the grid
        label.SetSpacing(label.GetSpacing()[:2] + (single.GetSpacing()[2],))
    imaging.check_same_grid(label, single, f"the label image {segmentation.name}")
    return np.isin(sitk.GetArrayViewFromImage(label)[0], muscle_values)


@dataclass
class CaseOutcome:
    """One line of ingest_report.csv: how a patient folder went."""

    case_id: str
    c3_slice_k: int | None = None
    single_slice: str = ""
    segmentation: str = ""
    reason: str = ""  # why it was left out; empty when ingested

    @property
    def ingested(self) -> bool:
        return not self.reason


def ingest_patient(folder: Path, fields: dict[str, str], out_dir: Path,
                   muscle_values: tuple[int, ...], outcome: CaseOutcome) -> dict[str, str]:
    """Write one patient's CT, section and muscle labels; return its manifest row."""
    files = find_patient_files(folder)
    outcome.single_slice = str(files.single_slice.relative_to(folder.parent))
    outcome.segmentation = str(files.segmentation.relative_to(folder.parent))
    series = read_series(files.series)
    single = imaging.read_ct(files.single_slice)
    match = match_slice(series, single)
    outcome.c3_slice_k = match.slice_k
    muscle = np.zeros(sitk.GetArrayViewFromImage(series).shape, dtype=np.uint8)
    muscle[match.slice_k] = slice_muscle(files.segmentation, single, muscle_values)
    section = imaging.c3_section_mask(series, match.slice_k)
    case = folder.name
    write_image_atomic(imaging.int16_hu(series), out_dir / case / "ct.nii.gz")
    for name, mask in (("section", section), ("muscle", muscle)):
        write_image_atomic(imaging.mask_image(mask, series), out_dir / case / f"{name}.nii.gz")
    return {"case_id": case, "ct": f"{case}/ct.nii.gz", "section_mask": f"{case}/section.nii.gz",
            "muscle_mask": f"{case}/muscle.nii.gz", "c3_slice_k": str(match.slice_k), **fields}


@dataclass
class IngestResult:
    manifest: Path
    report: Path
    outcomes: list[CaseOutcome] = field(default_factory=list)

    @property
    def left_out(self) -> list[CaseOutcome]:
        return [o for o in self.outcomes if not o.ingested]


def ingest_cohort(root: str | Path, clinical_csv: str | Path, out_dir: str | Path,
                  columns: ClinicalColumns = ClinicalColumns(),
                  muscle_values: tuple[int, ...] = (SKELETAL_MUSCLE_TAG,),
                  progress: Callable[[int, int, str], None] | None = None,
                  review_marks: dict[str, ReviewMark] | None = None) -> IngestResult:
    """Ingest every patient folder of ROOT; write manifest.csv and ingest_report.csv.
    ``review_marks`` (review_marks.read_review_marks) fill the manifest's review column.

    A patient that fails (no series, no segmentation, no matching slice, no clinical row)
    is reported with its reason and left out; raises only when none could be ingested.
    """
    root, out_dir = Path(root), Path(out_dir)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []
    if not folders:
        raise InputError(f"{root} holds no patient folders: give the folder that holds one "
                         "folder per patient.")
    table = ClinicalTable(clinical_csv, columns)
    survival = SURVIVAL_COLUMNS if table.columns.time else ()
    rows, result = [], IngestResult(out_dir / "manifest.csv", out_dir / "ingest_report.csv")
    for i, folder in enumerate(folders):
        if progress:
            progress(i, len(folders), folder.name)
        outcome = CaseOutcome(folder.name)
        try:
            rows.append(ingest_patient(folder, table.fields(folder.name), out_dir,
                                       muscle_values, outcome))
        except InputError as error:
            outcome.reason = str(error)
        result.outcomes.append(outcome)
    result.outcomes += _rows_without_folder(table, folders, root)
    write_csv_atomic(result.report, REPORT_COLUMNS, [_report_row(o) for o in result.outcomes])
    if not rows:
        raise InputError(f"none of the {len(folders)} patient folders could be ingested: the "
                         f"reasons are in {result.report} (first: {result.outcomes[0].reason})")
    reviewed = ()
    if review_marks is not None:
        reviewed = ("review",)
        for row in rows:
            mark = review_marks.get(row["case_id"])
            row["review"] = mark.review if mark else ""
    write_csv_atomic(result.manifest, (*MANIFEST_COLUMNS, *survival, *reviewed), rows)
    return result


def _rows_without_folder(table: ClinicalTable, folders: list[Path],
                         root: Path) -> list[CaseOutcome]:
    """Patients of the clinical table with no folder: a misspelt folder or a missing export."""
    named = {folder.name.strip().casefold() for folder in folders}
    return [CaseOutcome(patient_id, reason=f"{table.name} has a row for {patient_id} but {root} "
                        "has no folder of that name: check the folder's name or add its export.")
            for patient_id in table.patient_ids if patient_id.casefold() not in named]


def _report_row(outcome: CaseOutcome) -> dict[str, str]:
    return {"case_id": outcome.case_id, "outcome": "ingested" if outcome.ingested else "left out",
            "c3_slice_k": "" if outcome.c3_slice_k is None else str(outcome.c3_slice_k),
            "single_slice": outcome.single_slice, "segmentation": outcome.segmentation,
            "reason": outcome.reason}

