"""Zoomed views of one CT for confirming a C3 level.

usage: python zoom_view.py CASE K_FROM K_TO [AXIAL_K ...]
writes views/CASE_K_FROM-K_TO.png: the straightened sagittal (bone window and
soft window) between slices K_FROM and K_TO with a gridline and label at EVERY slice,
the bone profile, and axial slices (window -200..800 HU) at the AXIAL_K slices.
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "C3Sarcopenia"))
import numpy as np
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt

from C3SarcopeniaLib import imaging, review

case, k0, k1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
axial_ks = [int(a) for a in sys.argv[4:]]
ct = imaging.read_ct(Path(__file__).resolve().parents[3] / "shared/data/openkbp" / f"{case}_ct.nii.gz")
hu, flipped = review._lps(ct)
sp = ct.GetSpacing()
n = hu.shape[0]
to_lps = (lambda k: n - 1 - k) if flipped else (lambda k: k)
track = review.spine_track(hu, sp)
sag = review.straightened_sagittal(hu, track)
prof = review.bone_profile(hu, track, sp)
rows = sorted([to_lps(k0), to_lps(k1)])
cj = int(np.median(track.row_j[rows[0]:rows[1] + 1])); half = int(45 / sp[1])
lo, hi = max(0, cj - half), min(hu.shape[1], cj + half)
from scipy import ndimage
# coronal strip through the vertebral bodies: per slice, the brightest spot in front of the track
sm = ndimage.uniform_filter(np.clip(hu, 0, 600), size=(1, 3, 3))
reach = int(round(30 / sp[1])); half_i = int(30 / sp[0])
cor = np.full((n, 2 * half_i + 1), -1000.0)
for kk in range(n):
    i0, j0 = track.column_i[kk], track.row_j[kk]
    jb = max(0, j0 - reach) + int(np.argmax(sm[kk, max(0, j0 - reach):j0 + 1, i0]))
    line = hu[kk, jb, max(0, i0 - half_i):i0 + half_i + 1]
    cor[kk, :line.size] = line
ncol = 4 + len(axial_ks)
fig, ax = plt.subplots(1, ncol, figsize=(4 * ncol, 9))
ext = [lo * sp[1], hi * sp[1], rows[0] - 0.5, rows[1] + 0.5]
for a, (w, name) in zip(ax[:2], [((-100, 900), "bone -100..900"), ((-250, 250), "soft")]):
    a.imshow(sag[rows[0]:rows[1] + 1, lo:hi], cmap="gray", vmin=w[0], vmax=w[1], origin="lower",
             extent=ext, aspect=sp[2], interpolation="nearest")
    a.set_title(f"sagittal {name}")
ax[3].imshow(cor[rows[0]:rows[1] + 1], cmap="gray", vmin=-100, vmax=900, origin="lower",
             extent=[-half_i * sp[0], half_i * sp[0], rows[0] - 0.5, rows[1] + 0.5], aspect=sp[2],
             interpolation="nearest")
ax[3].set_title("coronal through the bodies")
ax[2].plot(prof[rows[0]:rows[1] + 1], np.arange(rows[0], rows[1] + 1), "k-o", ms=3)
ax[2].set_ylim(rows[0] - 0.5, rows[1] + 0.5); ax[2].set_title("bone profile")
for a in ax[:4]:
    ks = range(min(k0, k1), max(k0, k1) + 1)
    a.set_yticks([to_lps(k) for k in ks]); a.set_yticklabels([str(k) for k in ks], fontsize=7)
    for k in ks:
        a.axhline(to_lps(k), color="cyan", lw=0.3, alpha=0.6)
d = ct.GetDirection()
arr = imaging.sitk.GetArrayViewFromImage(ct)
for a, k in zip(ax[4:], axial_ks):
    sl = arr[k][::-1 if d[4] < 0 else 1, ::-1 if d[0] < 0 else 1]
    jj, ii = np.nonzero(sl > -500)
    if jj.size:
        sl = sl[max(0, jj.min() - 3):jj.max() + 4, max(0, ii.min() - 3):ii.max() + 4]
    a.imshow(sl, cmap="gray", vmin=-200, vmax=800, interpolation="nearest")
    a.set_title(f"axial k={k}"); a.axis("off")
fig.suptitle(f"{case} slices {k0}-{k1} (slices {sp[2]:.1f} mm apart)")
fig.tight_layout()
out = Path(__file__).parent / "views" / f"{case}_{k0}-{k1}.png"; out.parent.mkdir(exist_ok=True, parents=True)
fig.savefig(out, dpi=90)
print(out)
