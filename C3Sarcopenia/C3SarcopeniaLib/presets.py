"""The stages and the architecture presets: plain data, so that the command line can offer
them without importing torch."""

from __future__ import annotations

STAGES = ("section", "muscle")
# Architectures. "paper": Naser et al. 2022 as far as the paper states it (1 mm, 96-voxel
# patches); channels, strides and residual units are our assumption (appendix unavailable).
PRESETS: dict[tuple[str, str], dict] = {
    ("section", "paper"): dict(spacing_mm=1.0, patch_size=[96, 96, 96],
                               channels=[16, 32, 64, 128, 256], strides=[2, 2, 2, 2],
                               num_res_units=2),
    ("section", "fast"): dict(spacing_mm=3.0, patch_size=[64, 64, 64],
                              channels=[8, 16, 32, 64], strides=[2, 2, 2], num_res_units=1),
    ("muscle", "paper"): dict(spacing_mm=1.0, patch_size=[96, 96],
                              channels=[16, 32, 64, 128, 256], strides=[2, 2, 2, 2],
                              num_res_units=2),
    # The paper's network on a 2 mm grid: a patch spans 192 mm, the whole neck, so that the
    # tongue, glands and nodes are seen beside the spine and the SCMs.
    ("muscle", "fast"): dict(spacing_mm=2.0, patch_size=[96, 96],
                             channels=[16, 32, 64, 128, 256], strides=[2, 2, 2, 2],
                             num_res_units=2),
}
