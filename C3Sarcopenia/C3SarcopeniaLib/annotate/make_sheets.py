"""Writing a folder of annotation sheets: per case a PNG and its saved regions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import imaging
from ..errors import InputError
from .regions import SHEET_SUFFIX, numbered_regions, save_regions, slice_view
from .regions import RegionSheet
from .sheets import write_index, write_sheet

NEIGHBOUR_OFFSETS = (-2, 2)


def neighbour_slices(ct: sitk.Image, sheet: RegionSheet) -> dict[int, np.ndarray]:
    """Two nearby slices cropped and upsampled like the sheet's own slice."""
    view = sheet.view
    out = {}
    for offset in NEIGHBOUR_OFFSETS:
        k = min(max(view.slice_k + offset, 0), ct.GetSize()[2] - 1)
        if k == view.slice_k:
            continue
        hu = sitk.GetArrayViewFromImage(ct)[k].astype(np.float32)
        hu = hu[::-1 if view.flip_rows else 1, ::-1 if view.flip_cols else 1]
        crop = hu[view.rows[0]:view.rows[1], view.cols[0]:view.cols[1]]
        out[k] = ndimage.zoom(crop, view.factor, order=1, mode="nearest")
    return out


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
        save_regions(out / f"{case}{SHEET_SUFFIX}", view, sheet.regions, case, sheet.ct)
        write_sheet(sheet, neighbour_slices(ct, sheet), out / f"{case}.png")
        index.append((case, f"{case}.png", f"slice k={slice_k}, {sheet.n_regions} regions"))
    write_index(index, out / "index.html")
    return len(index)
