"""What a real neck shows beside the C3 muscles: tissue of muscle density that is not C3
muscle, and things outside the body. Phantoms carry them so that stage 2 learns to leave
them out (pharyngeal walls, tongue base, glands, nodes, strap muscles, platysma, the
immobilisation mask and the couch). Units are mm; x grows to the patient's left, y to the
back. Drawn from their own random stream so that the older draws of a seed are unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ellipse(x, y, cx, cy, ax, ay, angle=0.0):
    """Pixels inside an ellipse centred at (cx, cy), half-axes ax, ay, turned by angle."""
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def draw(rng: np.random.Generator) -> dict:
    """Per-phantom choices: which distractors appear, where and how dense."""
    nodes = [dict(side=int(rng.choice([-1, 1])), dz=rng.uniform(-20, 20),
                  radius=rng.uniform(5, 12), dx=rng.uniform(-6, 4), dy=rng.uniform(-16, -4),
                  hu=rng.uniform(25, 60)) for _ in range(int(rng.integers(0, 4)))]
    return dict(blur_mm=rng.uniform(0.3, 1.5), gland_hu=rng.uniform(30, 60),
                wall_mm=rng.uniform(2.0, 4.0), nodes=nodes,
                mask_shell=bool(rng.random() < 0.5), shell_gap_mm=rng.uniform(6, 15),
                shell_hu=rng.uniform(60, 200), couch=bool(rng.random() < 0.6),
                couch_gap_mm=rng.uniform(10, 40), couch_hu=rng.uniform(80, 300))


def paint_neck(anatomy, z, x, y, sx, sy, s, hu, inner, fat, muscle_hu) -> np.ndarray:
    """Muscle-density tissue that is not C3 muscle; returns the pixels it covers."""
    extras = anatomy.extras
    covered = np.zeros(x.shape, bool)

    def paint(mask, value):
        hu[mask] = value
        covered[mask] = True

    t = float(np.clip((anatomy.c1_z[0] - z) / 120.0, 0, 1))
    airway_y = sy - (30 + 14 * t) * s
    airway_ax, airway_ay = (11 - 3 * t) * s, (7 + 2 * t) * s
    hyoid_z = anatomy.levels["C3"][0] - 2
    if z < anatomy.c1_z[1] + 20:  # pharyngeal constrictors and mucosa around the airway
        wall = extras["wall_mm"]
        paint(ellipse(x, y, sx, airway_y, airway_ax + wall, airway_ay + wall) & inner,
              muscle_hu - 5)
    if hyoid_z < z < anatomy.c1_z[1] - 5:  # tongue base in front of the oropharynx
        paint(ellipse(x, y, sx, airway_y - airway_ay - 14 * s, 20 * s, 13 * s) & inner,
              muscle_hu + 5)
    if hyoid_z - 6 < z < anatomy.levels["C2"][0] + 10:  # submandibular glands
        for side in (-1, 1):
            paint(ellipse(x, y, sx + side * 33 * s, airway_y - 12 * s, 10 * s, 8 * s) & inner,
                  extras["gland_hu"])
    if z < hyoid_z:  # infrahyoid strap muscles in front of the larynx
        for side in (-1, 1):
            paint(ellipse(x, y, sx + side * 9 * s, airway_y - airway_ay - 5 * s, 8 * s, 2.5 * s,
                           side * 0.3) & inner, muscle_hu)
    c3_mid = float(np.mean(anatomy.levels["C3"]))
    for node in extras["nodes"]:  # lymph nodes beside and in front of the SCM
        r2 = node["radius"] ** 2 - (z - c3_mid - node["dz"]) ** 2
        if r2 > 4:
            r = np.sqrt(r2)
            paint(ellipse(x, y, sx + node["side"] * (32 * s + node["dx"]),
                           sy + node["dy"] * s - 18 * s, r, r) & inner, node["hu"])
    # platysma: a thin sheet in the subcutaneous fat, just under the skin, front and sides
    pixel_mm = float(abs(x[0, 1] - x[0, 0])) or 1.0
    under_skin = fat & ~ndimage.binary_erosion(fat, iterations=max(1, round(1.5 / pixel_mm)))
    paint(under_skin & ~ndimage.binary_dilation(inner) & (y < sy - 5), muscle_hu)
    return covered


def paint_outside(anatomy, x, y, cx, cy, ax, ay, hu, body) -> np.ndarray:
    """A thermoplastic mask shell around the neck and the couch behind it, outside the body;
    returns the pixels they cover."""
    extras = anatomy.extras
    outside = np.zeros(x.shape, bool)
    if extras["mask_shell"]:
        gap = extras["shell_gap_mm"]
        shell = (ellipse(x, y, cx, cy, ax + gap + 2, ay + gap + 2)
                 & ~ellipse(x, y, cx, cy, ax + gap, ay + gap) & (y < cy + 0.2 * ay))
        outside |= shell & ~body
        hu[shell & ~body] = extras["shell_hu"]
    if extras["couch"]:
        top = cy + ay + extras["couch_gap_mm"]
        couch = (y > top) & (y < top + 6) & ~body
        outside |= couch
        hu[couch] = extras["couch_hu"]
    return outside
