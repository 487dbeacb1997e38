"""Writing a folder of annotation sheets: per case a PNG and its saved regions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import SimpleITK as sitk

from .. import imaging
from ..errors import InputError
from .regions import (SHEET_SUFFIX, RegionSheet, SliceView, numbered_regions, save_regions,
                      slice_view)
from .sheets import write_index, write_sheet

NEIGHBOUR_OFFSETS = (-2, 2)


def neighbour_slices(ct: sitk.Image, view: SliceView) -> dict[int, np.ndarray]:
    """Two nearby slices cropped and upsampled like the sheet's own slice."""
    last = ct.GetSize()[2] - 1
    ks = {min(max(view.slice_k + offset, 0), last) for offset in NEIGHBOUR_OFFSETS}
    return {k: view.fine(sitk.GetArrayViewFromImage(ct)[k]) for k in sorted(ks - {view.slice_k})}


def write_sheets(cases: list[tuple[str, Path, int]], out: Path,
                 progress: Callable[[Iterable], Iterable] = iter) -> int:
    """Sheets for (case, CT path, C3 slice k); a case that fails is reported and skipped."""
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for case, ct_path, slice_k in progress(cases):
        try:
            ct = imaging.read_ct(ct_path)
            view = slice_view(ct, slice_k)
        except InputError as error:
            print(f"{case}: no sheet: {error}", file=sys.stderr)
            continue
        sheet = RegionSheet(case, str(Path(ct_path).resolve()), view, numbered_regions(view))
        save_regions(out / f"{case}{SHEET_SUFFIX}", sheet)
        write_sheet(sheet, neighbour_slices(ct, view), out / f"{case}.png")
        index.append((case, f"{case}.png", f"slice k={slice_k}, {sheet.n_regions} regions"))
    write_index(index, out / "index.html")
    return len(index)
