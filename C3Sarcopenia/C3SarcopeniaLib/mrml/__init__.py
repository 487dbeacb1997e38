"""Everything that touches the MRML scene: CT volumes, segments, slice views, the results table.

Each function takes the scene or the node it works on, so the same code runs in the Slicer
application and, through slicer-core, in plain pytest. One module per concern; every public
name is importable from here (``from C3SarcopeniaLib import mrml; mrml.voxels(...)``).
"""

from .files import (GROUND_TRUTH_CSV, clinical_from_dicom, export_results, load_segmentation,
                    save_ground_truth, save_segmentation, save_table_csv)
from .geometry import (add_volume_node, ct_from_volume_node, ijk_to_ras, neighbour_slice_k,
                       numpy_matrix, set_volume_from_image, show_slice, slice_centre_ras,
                       slice_count, slice_k_shown, slice_offset_mm, volume_ijk_to_ras, voxels,
                       vtk_matrix)
from .results import (RESULT_COLUMNS, WARNING_MEASURE, measure_muscle_segment, measure_rows,
                      review_warnings, set_review_warnings, table_rows, update_results,
                      write_results_table, write_unmeasured_results)
from .segments import (MUSCLE_COLOR, MUSCLE_GROUP_SEGMENTS, MUSCLE_SEGMENT, MUSCLE_SEGMENTS,
                       SECTION_COLOR, SECTION_SEGMENT, labelmap_on_grid, muscle_segment_ids,
                       muscle_slice_mask, new_segmentation_node, register_segmentation_converters,
                       segment_id, segment_mask, set_muscle_slice_mask, set_section_opacity,
                       set_segment_mask, show_segments, watch_segment)

__all__ = [
    "GROUND_TRUTH_CSV", "clinical_from_dicom", "export_results", "load_segmentation",
    "save_ground_truth", "save_segmentation", "save_table_csv",
    "add_volume_node", "ct_from_volume_node", "ijk_to_ras", "neighbour_slice_k", "numpy_matrix",
    "set_volume_from_image", "show_slice", "slice_centre_ras", "slice_count", "slice_k_shown",
    "slice_offset_mm", "volume_ijk_to_ras", "voxels", "vtk_matrix",
    "RESULT_COLUMNS", "WARNING_MEASURE", "measure_muscle_segment", "measure_rows",
    "review_warnings", "set_review_warnings", "table_rows", "update_results",
    "write_results_table", "write_unmeasured_results",
    "MUSCLE_COLOR", "MUSCLE_GROUP_SEGMENTS", "MUSCLE_SEGMENT", "MUSCLE_SEGMENTS", "SECTION_COLOR",
    "SECTION_SEGMENT", "labelmap_on_grid", "muscle_segment_ids", "muscle_slice_mask",
    "new_segmentation_node", "register_segmentation_converters", "segment_id", "segment_mask",
    "set_muscle_slice_mask", "set_section_opacity", "set_segment_mask", "show_segments",
    "watch_segment",
]
