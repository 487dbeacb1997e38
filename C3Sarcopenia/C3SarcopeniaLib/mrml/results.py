"""The results table: the measures of the muscle segments as they are now, and the reasons
to review them."""

from __future__ import annotations

import vtk

from ..measures import (SMI_CUTOFF_CM2_M2, ClinicalInfo, SarcopeniaMeasures, chargi_warning,
                        measure_slice)
from .geometry import slice_offset_mm, voxels
from .segments import muscle_slice_mask

RESULT_COLUMNS = ("Measure", "Value", "Unit", "Note")
WARNING_MEASURE = "Warning"
_WARNINGS_ATTRIBUTE = "C3Sarcopenia.ReviewWarnings"


def measure_muscle_segment(segmentation_node, volume_node, c3_slice_k: int,
                           clinical: ClinicalInfo,
                           scm_nodal: str | None = None) -> SarcopeniaMeasures:
    """The measures of the muscle segments as they are now on slice k: what the table shows
    after each edit. The pixel area comes from the CT's own spacing; ``scm_nodal`` applies
    the Chargi rule."""
    hu = voxels(volume_node)[c3_slice_k]
    muscle = muscle_slice_mask(segmentation_node, volume_node, c3_slice_k)
    return measure_slice(hu, muscle, tuple(volume_node.GetSpacing()[:2]), clinical, scm_nodal)


def _slice_row(volume_node, c3_slice_k: int) -> tuple[str, str, str, str]:
    return ("C3 slice", str(c3_slice_k), "index",
            f"z = {slice_offset_mm(volume_node, c3_slice_k):.1f} mm")


def measure_rows(measures: SarcopeniaMeasures) -> list[tuple[str, str, str, str]]:
    """The measures as (measure, value, unit, note) rows; unknown values stay empty with a
    note saying which clinical field is missing. Warnings and problems also go in the note
    column, so the value column stays narrow. Plain ASCII, so a spreadsheet opens the CSV
    right whatever encoding it assumes."""
    cutoffs = f"Prado cut-offs: men {SMI_CUTOFF_CM2_M2['M']}, women {SMI_CUTOFF_CM2_M2['F']}"
    l3_missing = "enter age, sex and weight"
    smi_missing = "enter age, sex, weight and height"
    return [
        ("C3 muscle CSA", f"{measures.muscle_csa_cm2:.2f}", "cm^2",
         "skeletal muscle area on the C3 slice"),
        *_group_rows(measures),
        ("C3 muscle mean", _fmt(measures.muscle_mean_hu, 1), "HU",
         "muscle density; lower means more fat in the muscle"),
        ("L3 CSA (estimated)", _fmt(measures.l3_csa_cm2, 2), "cm^2",
         "Swartz et al. 2016 regression" if measures.l3_csa_cm2 is not None else l3_missing),
        ("SMI", _fmt(measures.smi_cm2_m2, 2), "cm^2/m^2",
         "L3 CSA / height^2" if measures.smi_cm2_m2 is not None else smi_missing),
        ("Muscle status", measures.muscle_status or "", "",
         cutoffs if measures.muscle_status is not None else smi_missing),
    ]


def _group_rows(measures: SarcopeniaMeasures) -> list[tuple[str, str, str, str]]:
    """CSA per muscle group, when the muscle has groups."""
    if measures.paravertebral_csa_cm2 is None:
        return []
    return [("  paravertebral", _fmt(measures.paravertebral_csa_cm2, 2), "cm^2",
             "prevertebral, scalenes, levator scapulae, posterior neck"),
            ("  SCM right", _fmt(measures.scm_right_csa_cm2, 2), "cm^2", "sternocleidomastoid"),
            ("  SCM left", _fmt(measures.scm_left_csa_cm2, 2), "cm^2", "sternocleidomastoid")]


def _fmt(value: float | None, decimals: int) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def write_results_table(table_node, rows: list[tuple[str, str, str, str]]) -> None:
    """Replace the table's content by the rows, under the RESULT_COLUMNS headers."""
    table = vtk.vtkTable()
    columns = []
    for name in RESULT_COLUMNS:
        column = vtk.vtkStringArray()
        column.SetName(name)
        table.AddColumn(column)
        columns.append(column)
    for row in rows:
        for column, text in zip(columns, row):
            # Slicer's CSV writer does not escape double quotes inside a cell.
            column.InsertNextValue(text.replace('"', "'"))
    table_node.SetAndObserveTable(table)
    table_node.SetLocked(True)  # the view shows measures; they are not for typing over


def table_rows(table_node) -> list[tuple[str, ...]]:
    table = table_node.GetTable()
    return [tuple(table.GetValue(r, c).ToString() for c in range(table.GetNumberOfColumns()))
            for r in range(table.GetNumberOfRows())]


def set_review_warnings(segmentation_node, warnings: list[str]) -> None:
    """Keep the reasons to review this result (stage-1 doubts, synthetic models) with the
    segmentation, so they survive a saved scene and are repeated after every edit."""
    unique = list(dict.fromkeys(text.replace("\n", " ") for text in warnings))
    segmentation_node.SetAttribute(_WARNINGS_ATTRIBUTE, "\n".join(unique))


def review_warnings(segmentation_node) -> list[str]:
    stored = segmentation_node.GetAttribute(_WARNINGS_ATTRIBUTE) or ""
    return [text for text in stored.split("\n") if text]


def _warning_rows(segmentation_node) -> list[tuple[str, str, str, str]]:
    return [(WARNING_MEASURE, "", "", text) for text in review_warnings(segmentation_node)]


def update_results(table_node, segmentation_node, volume_node, c3_slice_k: int,
                   clinical: ClinicalInfo, scm_nodal: str | None = None) -> SarcopeniaMeasures:
    """Measure the muscle segments on slice k and rewrite the table, warnings included."""
    measures = measure_muscle_segment(segmentation_node, volume_node, c3_slice_k, clinical,
                                      scm_nodal)
    chargi = [(WARNING_MEASURE, "", "", chargi_warning(scm_nodal))] if scm_nodal else []
    write_results_table(table_node, [_slice_row(volume_node, c3_slice_k)]
                        + measure_rows(measures) + chargi + _warning_rows(segmentation_node))
    return measures


def write_unmeasured_results(table_node, segmentation_node, volume_node, c3_slice_k: int,
                             problem: str) -> None:
    """A table that says why nothing is measured (say, the muscle is on another slice),
    rather than the figures of a slice that is no longer the chosen one."""
    rows = [_slice_row(volume_node, c3_slice_k), ("Not measured", "", "", problem)]
    write_results_table(table_node, rows + _warning_rows(segmentation_node))
