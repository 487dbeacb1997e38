"""One case in the Slicer scene, as the module's parameter node describes it: what a step asks
the worker for, and how its result and every later edit land in the scene. Main thread only.

``p`` is the module's parameter node (C3SarcopeniaParameterNode): inputVolume, the clinical
fields, scmNodal, c3SliceK, segmentation, resultsTable, modelsFolder, device, foldCount.
"""

from __future__ import annotations

import traceback

import slicer

from .. import mrml
from ..errors import SYNTHETIC_MODELS_WARNING, InputError
from ..measures import ClinicalInfo, parse_sex
from ..worker import StepResult


def sex_choice(sex: str | None, choices: list[str]) -> str:
    """The panel's spelling of a sex code ('M', 'F' or None)."""
    return next(choice for choice in choices if parse_sex(choice) == sex)


def clinical_info(p) -> ClinicalInfo:
    """Zero means 'unknown' in the panel's spin boxes."""
    return ClinicalInfo(age_years=p.ageYears or None, sex=parse_sex(p.sex),
                        height_cm=p.heightCm or None, weight_kg=p.weightKg or None)


def scm_nodal(p) -> str | None:
    return None if p.scmNodal == "none" else p.scmNodal


def request_fields(p, step: str) -> dict:
    """The worker request of a step ('find_c3' or 'segment_muscle' on the chosen slice);
    refuses a step that cannot run before anything starts."""
    if p.inputVolume is None:
        raise InputError("no CT is selected: load a CT and select it first.")
    if step == "segment_muscle" and p.c3SliceK < 0:
        raise InputError("no C3 slice is chosen: run Find C3 or choose the slice first.")
    clinical = clinical_info(p)  # implausible fields are refused here, not after the run
    return {"slice_k": p.c3SliceK if step == "segment_muscle" else None,
            "clinical": {name: getattr(clinical, name) for name in clinical.__dataclass_fields__},
            "scm_nodal": scm_nodal(p), "device": p.device, "folds": p.foldCount,
            "models": "" if str(p.modelsFolder) in ("", ".") else str(p.modelsFolder)}


def apply_result(p, result: StepResult) -> None:
    """Write a step's result into the case's segmentation (and table), made when missing."""
    volume = p.inputVolume
    if p.segmentation is None:
        p.segmentation = mrml.new_segmentation_node(slicer.mrmlScene, volume,
                                                    f"{volume.GetName()} C3")
    segmentation = p.segmentation
    if result.step == "find_c3":
        mrml.set_segment_mask(segmentation, volume, mrml.SECTION_SEGMENT, result.mask,
                              mrml.SECTION_COLOR)
        mrml.set_review_warnings(segmentation, result.warnings)
    else:
        if p.resultsTable is None:
            p.resultsTable = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", f"{volume.GetName()} C3 results")
        synthetic = [SYNTHETIC_MODELS_WARNING] if result.synthetic_models else []
        mrml.set_review_warnings(segmentation, mrml.review_warnings(segmentation) + synthetic)
        mrml.set_muscle_slice_mask(segmentation, volume, result.c3_slice_k, result.mask)
    mrml.show_segments(segmentation, p.sectionOpacity)
    p.c3SliceK = result.c3_slice_k


def update_results(p) -> None:
    """Re-measure the muscle on the chosen slice; a problem (muscle on another slice, an
    implausible clinical field) replaces the figures in the table."""
    ready = p.inputVolume and p.segmentation and p.resultsTable and p.c3SliceK >= 0
    if not ready or not mrml.muscle_segment_ids(p.segmentation):
        return
    try:
        mrml.update_results(p.resultsTable, p.segmentation, p.inputVolume, p.c3SliceK,
                            clinical_info(p), scm_nodal(p))
    except InputError as problem:
        mrml.write_unmeasured_results(p.resultsTable, p.segmentation, p.inputVolume,
                                      p.c3SliceK, str(problem))


def start_new_case(p, unknown_sex: str) -> None:
    """Another CT: its own slice, segmentation and table, no fields of the last patient."""
    with slicer.util.NodeModify(p):
        p.c3SliceK, p.segmentation, p.resultsTable = -1, None, None
        p.ageYears, p.sex, p.heightCm, p.weightKg = 0.0, unknown_sex, 0.0, 0.0


def prefill_clinical(p, sex_choices: list[str]) -> bool:
    """Age, sex, height and weight from the CT's DICOM tags; False if it has none. The DICOM
    database exists only once the DICOM module has set it up."""
    database = getattr(slicer, "dicomDatabase", None)
    found = mrml.clinical_from_dicom(p.inputVolume, database.fileForInstance) \
        if database is not None and p.inputVolume is not None else None
    if found is None:
        return False
    p.ageYears, p.sex = found.age_years or 0.0, sex_choice(found.sex, sex_choices)
    p.heightCm, p.weightKg = found.height_cm or 0.0, found.weight_kg or 0.0
    return True


def edit_in_segment_editor(segmentation, volume) -> None:
    """Open the Segment Editor on the first muscle segment; painting must not cut holes in
    the section, in which the muscle lies."""
    slicer.util.selectModule("SegmentEditor")
    editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
    editor.setSegmentationNode(segmentation)
    editor.setSourceVolumeNode(volume)
    editor.setCurrentSegmentID(mrml.muscle_segment_ids(segmentation)[0])
    editor.mrmlSegmentEditorNode().SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)


def show_error(error: BaseException) -> None:
    """Clinician-facing errors as they are; anything else with its details for a report."""
    if isinstance(error, InputError):
        slicer.util.errorDisplay(str(error))
        return
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    slicer.util.errorDisplay(f"Unexpected error: {str(error).splitlines()[0]} Nothing was "
                             "changed. Please report it with the details.",
                             detailedText=f"{details}\n{error}")
