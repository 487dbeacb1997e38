"""Annotation sheets: the C3 slice in reading windows beside its numbered regions.

A reader lists region numbers per muscle group; ``draw_pick`` shows the pick in colour with
its CSA so that the reader can check and correct it before moving on.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

from ..fileio import write_figure_atomic, write_text_atomic  # noqa: E402
from ..measures import MUSCLE_GROUPS  # noqa: E402
from ..overlay import GROUP_STYLE  # noqa: E402
from .regions import RegionSheet  # noqa: E402

SOFT_WINDOW_HU = (-160, 240)   # W400 / L40
BONE_WINDOW_HU = (-100, 1000)
GROUP_COLOURS = {group: GROUP_STYLE[label][1] for label, group in enumerate(MUSCLE_GROUPS, 1)}


def _show(axis, image: np.ndarray, window: tuple[float, float], title: str) -> None:
    axis.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])


def _orientation_marks(axis, shape: tuple[int, int]) -> None:
    """R on the viewer's left, A at the top: how a radiologist reads an axial slice."""
    style = dict(color="yellow", fontsize=10, fontweight="bold", va="center", ha="center")
    axis.text(4, shape[0] / 2, "R", **style)
    axis.text(shape[1] - 5, shape[0] / 2, "L", **style)
    axis.text(shape[1] / 2, 4, "A", **style)


def label_points(regions: np.ndarray) -> dict[int, tuple[float, float]]:
    """Per region, its most interior pixel (row, column): a number there sits inside it."""
    points = {}
    for number in range(1, int(regions.max()) + 1):
        blob = regions == number
        if not blob.any():
            continue
        distance = ndimage.distance_transform_edt(np.pad(blob, 1))[1:-1, 1:-1]
        row, col = np.unravel_index(np.argmax(distance), blob.shape)
        points[number] = (float(row), float(col))
    return points


def _numbered(axis, sheet: RegionSheet, fills: dict[int, tuple] | None = None) -> None:
    """Soft-tissue slice with region outlines and numbers; picked regions filled."""
    view, regions = sheet.view, sheet.regions
    grey = np.clip((view.hu_fine - SOFT_WINDOW_HU[0]) / np.ptp(SOFT_WINDOW_HU), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for number, colour in (fills or {}).items():
        rgb[regions == number] = 0.45 * rgb[regions == number] + 0.55 * np.array(colour)
    rgb[find_boundaries(regions, mode="inner") & (regions > 0)] = (1.0, 0.85, 0.0)
    axis.imshow(rgb, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])
    for number, (row, col) in label_points(regions).items():
        axis.text(col, row, str(number), fontsize=6.5, color="black", ha="center",
                  va="center", bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none",
                                         alpha=0.75))
    _orientation_marks(axis, regions.shape)


def write_sheet(sheet: RegionSheet, neighbours: dict[int, np.ndarray], path: Path) -> None:
    """The sheet: numbered regions large; the slice in soft-tissue and bone windows and
    two neighbouring slices (a headrest or mask shows as the same crescent on each)."""
    figure = plt.figure(figsize=(15, 8.5), dpi=100)
    grid = figure.add_gridspec(2, 3, width_ratios=[2.2, 1, 1])
    _numbered(figure.add_subplot(grid[:, 0]), sheet)
    view = sheet.view
    _show(figure.add_subplot(grid[0, 1]), view.hu_fine, SOFT_WINDOW_HU,
          f"k={view.slice_k} soft tissue W400/L40")
    _show(figure.add_subplot(grid[0, 2]), view.hu_fine, BONE_WINDOW_HU, f"k={view.slice_k} bone")
    for column, (k, image) in zip((1, 2), sorted(neighbours.items())):
        _show(figure.add_subplot(grid[1, column]), image, SOFT_WINDOW_HU, f"neighbour k={k}")
    figure.suptitle(f"{sheet.case}: C3 slice k={view.slice_k}, {sheet.n_regions} regions "
                    f"(patient's right on the left)", fontsize=11)
    figure.tight_layout()
    write_figure_atomic(figure, path)
    plt.close(figure)


def draw_pick(sheet: RegionSheet, pick: dict[str, list[int]], csa_cm2: dict[str, float],
              path: Path, title: str = "") -> None:
    """A reader's pick filled per group (red paravertebral, green SCM right, blue SCM left)
    with each group's CSA, to check before the reading is final."""
    fills = {number: GROUP_COLOURS[group] for group, numbers in pick.items() for number in numbers}
    figure, axes = plt.subplots(1, 2, figsize=(15, 8), dpi=100,
                                gridspec_kw={"width_ratios": [1.6, 1]})
    _numbered(axes[0], sheet, fills)
    _show(axes[1], sheet.view.hu_fine, SOFT_WINDOW_HU, "soft tissue W400/L40")
    figures = ", ".join(f"{group} {value:.1f}" for group, value in csa_cm2.items())
    figure.suptitle(f"{sheet.case} k={sheet.view.slice_k} {title}\nCSA cm²: {figures}",
                    fontsize=11)
    figure.tight_layout()
    write_figure_atomic(figure, path)
    plt.close(figure)


def write_index(rows: list[tuple[str, str, str]], path: Path) -> None:
    """An HTML page with every sheet, for a reader working through a set."""
    items = "\n".join(f'<h3>{html.escape(case)}</h3><p>{html.escape(summary)}</p>'
                      f'<img src="{html.escape(name)}" style="max-width:100%">'
                      for case, name, summary in rows)
    write_text_atomic(path, "<!doctype html><meta charset='utf-8'><title>C3 muscle sheets"
                            f"</title><h1>C3 muscle annotation sheets</h1>\n{items}\n")
