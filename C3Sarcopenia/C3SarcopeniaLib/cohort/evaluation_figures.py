"""The paper's validation figures: DSC box plots per fold and ensemble, slice-error
histogram, CSA scatter and difference histogram, SMI scatter by sex."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fileio import write_figure_atomic  # noqa: E402


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    write_figure_atomic(figure, path)
    plt.close(figure)


def _values(cases, name: str) -> list[float]:
    return [getattr(c, name) for c in cases if c.error is None and getattr(c, name) is not None]


def dsc_boxplots(cases, path: Path) -> None:
    ok = [c for c in cases if c.error is None and c.section_dsc_folds]
    n_folds = max((len(c.section_dsc_folds) for c in ok), default=0)
    groups = [[c.section_dsc_folds[f] for c in ok if len(c.section_dsc_folds) > f]
              for f in range(n_folds)]
    labels = [f"fold {f}" for f in range(n_folds)]
    groups += [_values(cases, "section_dsc"), _values(cases, "muscle_dsc")]
    labels += ["section\n(ensemble)", "muscle\n(ensemble)"]
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 2, 4))
    kept = [(g, lab) for g, lab in zip(groups, labels) if g]
    if kept:
        axis.boxplot([g for g, _ in kept], tick_labels=[lab for _, lab in kept])
    axis.set_ylabel("Dice similarity coefficient")
    axis.set_title("DSC on the test cases")
    _save(figure, path)


def slice_error_histogram(cases, path: Path) -> None:
    errors = _values(cases, "slice_error_mm")
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.hist(errors, bins=max(5, min(30, len(errors))), color="tab:blue")
    axis.set_xlabel("|chosen slice - true C3 slice| (mm)")
    axis.set_ylabel("cases")
    axis.set_title("C3 slice error")
    _save(figure, path)


def csa_scatter(cases, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 5))
    for column, label, marker in (("csa_pred_gt_cm2", "Pred_GT (true slice)", "o"),
                                  ("csa_pred_c3_cm2", "Pred_C3 (chosen slice)", "x")):
        pairs = [(c.csa_true_cm2, getattr(c, column)) for c in cases
                 if c.error is None and getattr(c, column) is not None]
        if pairs:
            axis.scatter(*np.array(pairs).T, label=label, marker=marker)
    _identity_line(axis)
    axis.set_xlabel("true C3 CSA (cm²)")
    axis.set_ylabel("predicted C3 CSA (cm²)")
    axis.legend()
    _save(figure, path)


def csa_difference_histogram(cases, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 4))
    for column, label in (("csa_pred_gt_cm2", "Pred_GT"), ("csa_pred_c3_cm2", "Pred_C3")):
        diffs = [100 * (getattr(c, column) - c.csa_true_cm2) / c.csa_true_cm2 for c in cases
                 if c.error is None and getattr(c, column) is not None]
        if diffs:
            axis.hist(diffs, bins=15, alpha=0.6, label=label)
    axis.set_xlabel("CSA difference (% of true)")
    axis.set_ylabel("cases")
    axis.legend()
    _save(figure, path)


def smi_scatter(cases, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5, 5))
    for sex, colour in (("M", "tab:blue"), ("F", "tab:red")):
        pairs = [(c.smi_true, c.smi_pred_c3) for c in cases if c.error is None and c.sex == sex
                 and c.smi_true is not None and c.smi_pred_c3 is not None]
        if pairs:
            axis.scatter(*np.array(pairs).T, color=colour, label={"M": "men", "F": "women"}[sex])
    _identity_line(axis)
    axis.set_xlabel("SMI from true muscle (cm²/m²)")
    axis.set_ylabel("SMI from prediction on chosen slice (cm²/m²)")
    axis.legend()
    _save(figure, path)


def _identity_line(axis) -> None:
    low, high = axis.get_xlim()
    axis.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")


FIGURES = ("dsc_boxplots.png", "slice_error_histogram.png", "csa_scatter.png",
           "csa_difference_histogram.png", "smi_scatter_by_sex.png")


def write_figures(cases, out_dir: Path) -> None:
    """The DSC and slice-error figures; the CSA and SMI ones when some case has a true muscle
    (cases with a C3 level only have none)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    boxplots, errors, scatter, differences, smi = (out_dir / name for name in FIGURES)
    dsc_boxplots(cases, boxplots)
    slice_error_histogram(cases, errors)
    if _values(cases, "csa_true_cm2"):
        csa_scatter(cases, scatter)
        csa_difference_histogram(cases, differences)
        smi_scatter(cases, smi)
