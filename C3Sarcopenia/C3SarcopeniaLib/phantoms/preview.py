"""The README's phantom picture: the C3 section and slice on a sagittal cut, the muscle label
on the C3 axial slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .phantom import Phantom


def save_preview_png(phantom: Phantom, path: str | Path) -> None:
    """Sagittal through the spine with the C3 section and slice, and the C3 axial slice with
    the muscle label outlined: what the README shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import write_figure_atomic

    hu = sitk.GetArrayFromImage(phantom.ct)
    muscle = sitk.GetArrayFromImage(phantom.muscle_mask)
    section = sitk.GetArrayFromImage(phantom.section_mask)
    k = phantom.c3_slice_k
    sx, sy, sz = phantom.ct.GetSpacing()
    column = int(np.nonzero(muscle[k])[1].mean())
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 5))
    left.imshow(hu[::-1, :, column], cmap="gray", vmin=-250, vmax=700, aspect=sz / sy)
    rows = np.flatnonzero(section.any(axis=(1, 2)))
    left.axhspan(hu.shape[0] - 1 - rows[-1], hu.shape[0] - 1 - rows[0], color="orange",
                 alpha=0.25, label="C3 section (33 mm)")
    left.axhline(hu.shape[0] - 1 - k, color="red", label=f"C3 slice k={k}")
    left.set_title("Sagittal through the spine")
    left.legend(loc="lower left", fontsize=8)
    left.axis("off")
    right.imshow(hu[k], cmap="gray", vmin=-250, vmax=250, aspect=sy / sx)
    right.contour(muscle[k] > 0, levels=[0.5], colors="red", linewidths=0.8)
    c = phantom.clinical
    right.set_title(f"C3 axial: muscle label ({c.sex}, {c.age_years:.0f} y, {c.weight_kg:.0f} kg)")
    right.axis("off")
    figure.tight_layout()
    write_figure_atomic(figure, Path(path))
    plt.close(figure)
