"""The review picture: the C3 axial slice with the muscle outline and the figures, and a
sagittal view with the chosen level, so a reader can judge the result at a glance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from . import imaging  # noqa: E402

DISPLAY_WINDOW_HU = (-250, 250)


def _figures_text(result: dict) -> str:
    def fmt(value, unit="", digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}{unit}"

    lines = [f"C3 slice k={result['c3_slice_k']}  z={result['c3_slice_z_mm']:.1f} mm",
             f"CSA {fmt(result['muscle_csa_cm2'], ' cm²')}   "
             f"mean {fmt(result['muscle_mean_hu'], ' HU')}",
             f"L3 CSA {fmt(result['l3_csa_cm2'], ' cm²')}   "
             f"SMI {fmt(result['smi_cm2_m2'], ' cm²/m²')}",
             f"status: {result['muscle_status'] or 'n/a (clinical fields missing)'}"]
    return "\n".join(lines)


def sagittal_view(hu: np.ndarray, ct: sitk.Image, column_i: int) -> tuple[np.ndarray, list]:
    """A sagittal image (superior up) through column i, and its extent in mm for imshow."""
    zs = imaging.slice_zs_mm(ct)
    order = np.argsort(zs)[::-1]  # superior first
    view = hu[order, :, column_i]
    sy = ct.GetSpacing()[1]
    return view, [0, view.shape[1] * sy, zs.min(), zs.max()]


def overlay_figure(ct: sitk.Image, muscle_slice_mask: np.ndarray, result: dict,
                   section_mask: np.ndarray | None = None):
    """A matplotlib figure: sagittal with the C3 level (and section), axial with muscle."""
    hu = sitk.GetArrayViewFromImage(ct)
    k = result["c3_slice_k"]
    figure, (ax_sag, ax_ax) = plt.subplots(1, 2, figsize=(11, 5.5),
                                           gridspec_kw={"width_ratios": [1, 1.3]})
    sx, sy = imaging.pixel_spacing_mm(ct)
    if hu.shape[0] > 1:
        columns = np.nonzero(muscle_slice_mask)[1]
        mid_i = int(round(columns.mean())) if columns.size else hu.shape[2] // 2
        view, extent = sagittal_view(hu, ct, mid_i)
        ax_sag.imshow(view, cmap="gray", vmin=DISPLAY_WINDOW_HU[0], vmax=DISPLAY_WINDOW_HU[1],
                      extent=extent, aspect="equal")
        if section_mask is not None and section_mask.any():
            zs = [imaging.slice_z_mm(ct, kk) for kk in np.flatnonzero(section_mask.any((1, 2)))]
            ax_sag.axhspan(min(zs), max(zs), color="tab:orange", alpha=0.25, label="C3 section")
        ax_sag.axhline(result["c3_slice_z_mm"], color="tab:red", lw=1.5, label="C3 slice")
        ax_sag.legend(loc="lower right", fontsize=8)
        ax_sag.set_title("Sagittal (midline of the muscle)")
        ax_sag.set_xlabel("anterior → posterior (mm)")
        ax_sag.set_ylabel("patient z (mm)")
    else:
        ax_sag.axis("off")
    ax_ax.imshow(hu[k], cmap="gray", vmin=DISPLAY_WINDOW_HU[0], vmax=DISPLAY_WINDOW_HU[1],
                 extent=[0, hu.shape[2] * sx, hu.shape[1] * sy, 0])
    if muscle_slice_mask.any():
        ax_ax.contour(np.arange(hu.shape[2]) * sx + sx / 2, np.arange(hu.shape[1]) * sy + sy / 2,
                      muscle_slice_mask.astype(float), levels=[0.5], colors="tab:red",
                      linewidths=0.8)
    ax_ax.set_title("C3 axial slice, skeletal muscle outlined")
    ax_ax.axis("off")
    ax_ax.text(0.02, 0.02, _figures_text(result), transform=ax_ax.transAxes, color="white",
               fontsize=9, va="bottom", family="monospace",
               bbox={"facecolor": "black", "alpha": 0.6, "pad": 4})
    for row, warning in enumerate(result.get("warnings", [])[:3]):
        figure.text(0.01, 0.01 + 0.03 * row, f"⚠ {warning}", fontsize=7, color="darkred")
    figure.tight_layout(rect=(0, 0.08 if result.get("warnings") else 0, 1, 1))
    return figure
