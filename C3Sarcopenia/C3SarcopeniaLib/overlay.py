"""The review picture: the C3 axial slice with the muscle outline and the figures, and a
sagittal view with the chosen level, so a reader can judge the result at a glance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from . import guards, imaging  # noqa: E402

DISPLAY_WINDOW_HU = (-250, 250)
CROP_MARGIN_MM = 15.0
# label value -> (name, colour): red paravertebral, green SCM right, blue SCM left
GROUP_STYLE = {1: ("paravertebral", (0.95, 0.25, 0.2)), 2: ("SCM right", (0.2, 0.85, 0.3)),
               3: ("SCM left", (0.25, 0.5, 1.0))}


def _figures_text(result: dict) -> str:
    def fmt(value, unit="", digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}{unit}"

    lines = [f"C3 slice k={result['c3_slice_k']}  z={result['c3_slice_z_mm']:.1f} mm",
             f"CSA {fmt(result['muscle_csa_cm2'], ' cm²')}   "
             f"mean {fmt(result['muscle_mean_hu'], ' HU')}",
             *([f"  paravertebral {fmt(result['paravertebral_csa_cm2'])}  SCM R "
                f"{fmt(result['scm_right_csa_cm2'])}  L {fmt(result['scm_left_csa_cm2'])}"]
               if result.get("paravertebral_csa_cm2") is not None else []),
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
    """A matplotlib figure: sagittal with the C3 level (and section), axial with muscle,
    and the figures beside them (not over the anatomy)."""
    hu = sitk.GetArrayViewFromImage(ct)
    k = result["c3_slice_k"]
    figure, (ax_sag, ax_ax, ax_text) = plt.subplots(
        1, 3, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1, 1.3, 0.75]})
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
    axial_neck_panel(ax_ax, ct, hu[k], muscle_slice_mask)
    ax_ax.set_title("C3 axial slice (patient's right on the left), muscle by group")
    ax_ax.axis("off")
    ax_text.axis("off")
    ax_text.text(0.0, 0.5, _figures_text(result), transform=ax_text.transAxes, fontsize=9.5,
                 va="center", family="monospace")
    for row, warning in enumerate(result.get("warnings", [])[:3]):
        figure.text(0.01, 0.01 + 0.03 * row, f"⚠ {warning}", fontsize=7, color="darkred")
    figure.tight_layout(rect=(0, 0.08 if result.get("warnings") else 0, 1, 1))
    return figure


def axial_neck_panel(axis, ct: sitk.Image, hu_slice: np.ndarray,
                     labels: np.ndarray | None = None) -> None:
    """An axial slice cropped to the neck (a 50 cm field of view shows a small neck), with
    each muscle group outlined in its colour, oriented as radiologists read it."""
    sx, sy = imaging.pixel_spacing_mm(ct)
    hu = imaging.radiological_view(ct, np.asarray(hu_slice))
    labels = (np.zeros(hu.shape, np.uint8) if labels is None
              else imaging.radiological_view(ct, np.asarray(labels)))
    body = guards.body_pixels(hu)
    if body.any():
        crop = imaging.body_crop(body, (sx, sy), CROP_MARGIN_MM)
        hu, labels = hu[crop], labels[crop]
    extent = [0, hu.shape[1] * sx, hu.shape[0] * sy, 0]
    axis.imshow(hu, cmap="gray", vmin=DISPLAY_WINDOW_HU[0], vmax=DISPLAY_WINDOW_HU[1],
                extent=extent)
    xs, ys = np.arange(hu.shape[1]) * sx + sx / 2, np.arange(hu.shape[0]) * sy + sy / 2
    grouped = labels.max() > 1
    for value, (name, colour) in GROUP_STYLE.items():
        if (labels == value).any():
            axis.contour(xs, ys, (labels == value).astype(float), levels=[0.5], colors=[colour],
                         linewidths=1.0)
            axis.plot([], [], color=colour, label=name if grouped else "muscle")
    if labels.any():
        axis.legend(loc="upper right", fontsize=7)
