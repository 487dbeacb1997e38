"""The training curve of an ensemble: each fold's smoothed loss, saved beside its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_training_curve(folder: Path, losses: dict[int, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import write_figure_atomic

    figure, axis = plt.subplots(figsize=(6, 4))
    for fold, values in sorted(losses.items()):
        window = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        axis.plot(np.arange(len(smooth)) + window, smooth, label=f"fold {fold}")
    axis.set_xlabel("iteration")
    axis.set_ylabel("soft Dice loss (smoothed)")
    axis.set_title("Training curve")
    axis.legend()
    figure.tight_layout()
    write_figure_atomic(figure, folder / "training_curve.png")
    plt.close(figure)
