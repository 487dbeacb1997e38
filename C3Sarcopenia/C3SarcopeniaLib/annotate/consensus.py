"""Consensus of blind readers: per-region majority, label masks, inter-reader agreement."""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import imaging
from ..errors import InputError
from ..fileio import write_csv_atomic, write_image_atomic
from ..measures import dice, muscle_csa_cm2
from ..phantoms.phantom import MANIFEST_COLUMNS
from .readings import GROUPS, Reading, group_and_total_csa_cm2, slice_labels
from .regions import RegionSheet


def majority_regions(readings: list[Reading]) -> dict[str, list[int]]:
    """Each region goes to the group more than half of the readers gave it; ties go out."""
    votes: dict[int, Counter] = defaultdict(Counter)
    for reading in readings:
        for group, numbers in reading.regions.items():
            for number in numbers:
                votes[number][group] += 1
    picked: dict[str, list[int]] = {group: [] for group in GROUPS}
    for number, counter in sorted(votes.items()):
        group, count = counter.most_common(1)[0]
        if count * 2 > len(readings):
            picked[group].append(number)
    return picked


@dataclass
class CaseAgreement:
    """How the readers of one case agreed, and the consensus CSA."""

    case: str
    readers: list[str]
    mean_pairwise_dsc: float | None  # None with a single reader
    reader_csa_cm2: list[float]
    consensus_csa_cm2: dict[str, float]

    @property
    def csa_spread_percent(self) -> float | None:
        if len(self.reader_csa_cm2) < 2:
            return None
        low, high = min(self.reader_csa_cm2), max(self.reader_csa_cm2)
        return 100.0 * (high - low) / max(np.mean(self.reader_csa_cm2), 1e-6)


def agreement(case: str, readings: list[Reading], sheet: RegionSheet,
              consensus_labels: np.ndarray) -> CaseAgreement:
    """Pairwise DSC of the readers' whole C3 muscle (on the CT grid) and their CSAs."""
    masks = [slice_labels(sheet, reading.regions) > 0 for reading in readings]
    spacing = sheet.view.pixel_spacing_mm
    dscs = [dice(a, b) for a, b in itertools.combinations(masks, 2)]
    csas = [muscle_csa_cm2(mask, spacing) for mask in masks]
    return CaseAgreement(case, [r.reader for r in readings],
                         float(np.mean(dscs)) if dscs else None, csas,
                         group_and_total_csa_cm2(consensus_labels, spacing))


def label_volume(sheet: RegionSheet, labels: np.ndarray) -> sitk.Image:
    """The consensus slice as a label volume on the CT's grid (other slices 0)."""
    ct = imaging.read_ct(sheet.ct)
    volume = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    volume[sheet.view.slice_k] = labels
    image = sitk.GetImageFromArray(volume)
    image.CopyInformation(ct)
    return image


def write_consensus(readings: list[Reading], sheets: dict[str, RegionSheet], out: Path,
                    min_readers: int = 2) -> str:
    """Masks, manifest.csv and agreement.csv for every case with enough readable readings."""
    by_case: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        by_case[reading.case].append(reading)
    out.mkdir(parents=True, exist_ok=True)
    rows, agreements, left_out = [], [], []
    for case, case_readings in sorted(by_case.items()):
        readable = [r for r in case_readings if r.readable]
        if len(case_readings) < min_readers or len(readable) * 2 <= len(case_readings):
            left_out.append(case)
            continue
        sheet = sheets[case]
        labels = slice_labels(sheet, majority_regions(readable))
        if not labels.any():
            left_out.append(case)
            continue
        mask_name = f"{case}_muscle_labels.nii.gz"
        write_image_atomic(label_volume(sheet, labels), out / mask_name)
        agreements.append(agreement(case, readable, sheet, labels))
        # relative, as read_manifest resolves it: the folder can move with its CTs
        rows.append({"case_id": case, "ct": os.path.relpath(sheet.ct, out.resolve()),
                     "muscle_mask": mask_name,
                     "c3_slice_k": sheet.view.slice_k,
                     "reader_dsc": _fmt(agreements[-1].mean_pairwise_dsc, 4),
                     "reader_csa_diff_percent": _fmt(agreements[-1].csa_spread_percent, 2)})
    if not rows:
        raise InputError(f"no case has {min_readers} readable readings: nothing to write.")
    write_csv_atomic(out / "manifest.csv", CONSENSUS_MANIFEST_COLUMNS, rows)
    write_csv_atomic(out / "agreement.csv", AGREEMENT_COLUMNS, [_agreement_row(a) for a in agreements])
    dscs = [a.mean_pairwise_dsc for a in agreements if a.mean_pairwise_dsc is not None]
    summary = f"{len(rows)} consensus masks in {out}"
    if dscs:
        summary += (f"; readers' DSC mean {np.mean(dscs):.3f}, median {np.median(dscs):.3f}, "
                    f"lowest {min(dscs):.3f}")
    if left_out:
        summary += f"; left out (too few readable readings or no muscle): {', '.join(left_out)}"
    return summary


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


# The readers' agreement rides along, so that 'evaluate' can quote the ceiling beside the model.
CONSENSUS_MANIFEST_COLUMNS = (*MANIFEST_COLUMNS, "reader_dsc", "reader_csa_diff_percent")


AGREEMENT_COLUMNS = ("case", "readers", "mean_pairwise_dsc", "reader_csa_cm2",
                     "csa_spread_percent", *(f"consensus_{g}_cm2" for g in (*GROUPS, "total")))


def _agreement_row(a: CaseAgreement) -> dict:
    return dict(zip(AGREEMENT_COLUMNS, [
        a.case, " ".join(a.readers), _fmt(a.mean_pairwise_dsc, 4),
        " ".join(f"{c:.2f}" for c in a.reader_csa_cm2), _fmt(a.csa_spread_percent, 1),
        *(f"{a.consensus_csa_cm2[g]:.2f}" for g in (*GROUPS, "total"))]))
