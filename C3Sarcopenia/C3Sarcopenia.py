"""C3 Sarcopenia: the 3D Slicer module. A thin shell: the panel, the parameter node, a
background runner and the self-test; all computation lives in C3SarcopeniaLib."""

from __future__ import annotations

import importlib.util
import logging
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

import ctk
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, Minimum, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest,
                                           ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from C3SarcopeniaLib import mrml
from C3SarcopeniaLib.sample_data import SAMPLE_CT
from C3SarcopeniaLib.errors import SYNTHETIC_MODELS_WARNING, Cancelled, InputError
from C3SarcopeniaLib.measures import ClinicalInfo, parse_sex

Progress = Callable[[float, str], None]
SEX_CHOICES = ["unknown", "female", "male"]  # spellings parse_sex understands
SCM_NODAL_CHOICES = ["none", "right", "left"]  # the Chargi rule: which SCM is lost in nodes
DEVICE_CHOICES = ["auto", "cpu", "cuda"]
TORCH_REQUIREMENT = ">=2.1"
PIP_REQUIREMENTS = {"monai": "monai>=1.3"}  # import name -> what pip installs

HELP_TEXT = """
<p>Skeletal muscle at the third cervical vertebra (C3) on a head-and-neck CT, and the lumbar
skeletal muscle index (SMI) estimated from it (Naser et al. 2022, Front Oncol 12:930432).</p>
<p><b>Why C3?</b> Sarcopenia is usually measured as muscle area at the third lumbar vertebra
(L3), but head-and-neck CTs stop at the neck. Muscle area at C3 follows L3 closely, so L3 can
be estimated from it.</p>
<ol>
<li><b>Patient and CT.</b> Select the CT. Age, sex, height and weight are filled from the
DICOM tags when the CT came from the DICOM database; check and correct them.</li>
<li><b>Find C3.</b> A 3D network outlines the <i>C3 section</i>: a slab of the neck 33 mm
thick, centred on C3. It is drawn see-through; check that it sits on C3 (count down from
C1 and C2). The slice at its centre becomes the <i>C3 slice</i>.</li>
<li><b>C3 slice.</b> The single axial slice where muscle is measured. Step it one slice
towards the head or feet, or scroll the axial (red) view and click <i>Use slice shown in
axial view</i>.</li>
<li><b>Skeletal muscle.</b> A 2D network outlines the C3 muscle in three segments
(paravertebral, SCM right, SCM left) on the C3 slice, kept between -29 and 150 HU. Correct
them in the Segment Editor: the results follow every edit. <i>SCM lost in nodes</i> counts the
other SCM twice when nodes hide one (Chargi et al.).</li>
<li><b>Results.</b> C3 CSA is the muscle pixel count times the pixel area; mean HU is the
muscle density. L3 CSA = 27.304 + 1.363 C3 CSA - 0.671 age + 0.640 weight + 26.422 sex
(female 1, male 2) (Swartz et al. 2016). SMI = L3 CSA / height&sup2;. Muscle is
<i>depleted</i> below the Prado cut-offs: 52.4 cm&sup2;/m&sup2; for men, 38.5 for women.</li>
<li><b>Ground truth.</b> Once slice and muscle are checked, <i>Save as ground truth</i> writes
the CT, the muscle on the C3 slice and the slice (a row of <tt>c3_levels.csv</tt> with your
name) to a folder: training data for your own models (<tt>c3sarcopenia ingest-levels</tt>).</li>
</ol>
<p><b>Research software, not a medical device.</b> The shipped muscle model was trained on
synthetic phantoms only (the results table says so), the C3 finder on phantoms and real neck
CTs read by AI agents: check every level and outline.</p>
"""


# --- module ----------------------------------------------------------------------------------


class C3Sarcopenia(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "C3 Sarcopenia"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["C3Sarcopenia contributors"]
        self.parent.helpText = HELP_TEXT
        self.parent.acknowledgementText = (
            "Implements Naser MA et al., Deep learning auto-segmentation of cervical skeletal "
            "muscle for sarcopenia analysis in patients with head and neck cancer, Front Oncol "
            "2022;12:930432. L3 estimate: Swartz JE et al. 2016; cut-offs: Prado CM et al. 2008.")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """The shipped synthetic neck CT in the Sample Data module, so a class can start at once."""
    if not SAMPLE_CT.is_file():
        logging.warning(f"C3Sarcopenia sample CT missing: {SAMPLE_CT}")
        return
    import SampleData

    checksum = slicer.util.computeChecksum("SHA256", str(SAMPLE_CT))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="C3 Sarcopenia",
        sampleName="C3SarcopeniaSampleNeckCT",
        sampleDescription="Neck CT phantom",
        thumbnailFileName=str(Path(__file__).parent / "Resources" / "Icons" / "C3Sarcopenia.png"),
        uris=SAMPLE_CT.as_uri(),
        fileNames=SAMPLE_CT.name,
        checksums=f"SHA256:{checksum}",  # a newer sample replaces the cached copy
        nodeNames="C3SarcopeniaSampleNeckCT",
        loadFileType="VolumeFile",
    )


def ensurePythonDependencies() -> bool:
    """PyTorch (through the PyTorch extension) and MONAI, installed on first use once the user
    agrees. False, after telling the user what to do, when they are not there."""
    missing = [name for name in ("torch", *PIP_REQUIREMENTS)
               if importlib.util.find_spec(name) is None]
    if not missing:
        return True
    if "torch" in missing and not _installTorch():
        return False
    pipMissing = [PIP_REQUIREMENTS[name] for name in missing if name in PIP_REQUIREMENTS]
    # In testing mode Slicer answers OK by itself.
    if pipMissing and not slicer.util.confirmOkCancelDisplay(
            f"C3 Sarcopenia needs {', '.join(pipMissing)} (a few MB). Download and install it "
            "now?", "C3 Sarcopenia: missing Python packages"):
        return False
    try:
        for requirement in pipMissing:
            slicer.util.pip_install(requirement)
    except Exception:
        slicer.util.errorDisplay(
            f"Could not install {', '.join(pipMissing)}. Is this computer offline? Connect to "
            "the internet and try again, or install the wheel files from a USB stick in the "
            "Python console: slicer.util.pip_install('/path/to/monai-*.whl').",
            detailedText=traceback.format_exc())
        return False
    return True


def _installTorch() -> bool:
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        slicer.util.errorDisplay(
            "C3 Sarcopenia needs the PyTorch extension: open View > Extensions Manager, install "
            "'PyTorch', restart Slicer, and try again.")
        return False
    try:
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT)
    except Exception:
        slicer.util.errorDisplay(
            "PyTorch could not be downloaded. Is this computer offline? Connect to the internet "
            "and try again, or install PyTorch from the PyTorch Utils module.",
            detailedText=traceback.format_exc())
        return False
    if torch is None:
        slicer.util.errorDisplay("C3 Sarcopenia cannot run without PyTorch. Click the button "
                                 "again to install it, or install it in the PyTorch Utils module.")
        return False
    return True


# --- parameter node --------------------------------------------------------------------------


@parameterNodeWrapper
class C3SarcopeniaParameterNode:
    """What the panel shows, saved with the scene. Zero means 'unknown' for the clinical
    numbers (the spin boxes say so) and -1 means 'no slice chosen'."""

    inputVolume: vtkMRMLScalarVolumeNode
    ageYears: Annotated[float, WithinRange(0, 110)] = 0
    sex: Annotated[str, Choice(SEX_CHOICES)] = "unknown"
    heightCm: Annotated[float, WithinRange(0, 230)] = 0
    weightKg: Annotated[float, WithinRange(0, 300)] = 0
    scmNodal: Annotated[str, Choice(SCM_NODAL_CHOICES)] = "none"
    sectionOpacity: Annotated[float, WithinRange(0, 1)] = 0.3
    c3SliceK: Annotated[int, Minimum(-1)] = -1
    segmentation: vtkMRMLSegmentationNode
    resultsTable: vtkMRMLTableNode
    modelsFolder: Path  # empty: the shipped models
    device: Annotated[str, Choice(DEVICE_CHOICES)] = "auto"
    foldCount: Annotated[int, WithinRange(1, 5)] = 5
    groundTruthFolder: Path  # where "Save as ground truth" writes
    annotator: str = ""


def sexChoice(sex: str | None) -> str:
    return next(choice for choice in SEX_CHOICES if parse_sex(choice) == sex)


def clinicalInfo(parameters: C3SarcopeniaParameterNode) -> ClinicalInfo:
    return ClinicalInfo(age_years=parameters.ageYears or None, sex=parse_sex(parameters.sex),
                        height_cm=parameters.heightCm or None,
                        weight_kg=parameters.weightKg or None)


# --- logic -----------------------------------------------------------------------------------


@dataclass
class StepOutcome:
    """What a worker thread hands back to the GUI thread."""

    value: Any       # SectionResult (find C3) or the (j, i) muscle mask (segment muscle)
    synthetic: bool  # the ensemble was trained on synthetic phantoms
    sliceK: int      # the slice the step worked on


class C3SarcopeniaLogic(ScriptedLoadableModuleLogic):
    """Each step is split in three: read the scene (GUI thread), compute (any thread, no
    scene access), write the scene (GUI thread). The self-test runs them in a row."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._ensembles: dict[tuple, Any] = {}
        self._stopFollowing: Callable[[], None] | None = None

    def getParameterNode(self) -> C3SarcopeniaParameterNode:
        return C3SarcopeniaParameterNode(super().getParameterNode())

    # models

    def _ensemble(self, stage: str, folder: Path, device: str, folds: int):
        """Loaded once per setting: a 5-fold ensemble takes seconds to read."""
        from C3SarcopeniaLib import models

        root = models.default_models_dir() if str(folder) in ("", ".") else folder
        key = (stage, str(root), device, folds)
        if key not in self._ensembles:
            self._ensembles[key] = models.load_ensemble(root / stage, device, folds)
        return self._ensembles[key]

    # stage 1

    def sectionWork(self, p: C3SarcopeniaParameterNode) -> Callable[[Progress | None], StepOutcome]:
        ct = mrml.ct_from_volume_node(p.inputVolume)
        settings = (Path(p.modelsFolder), p.device, p.foldCount)

        def work(progress: Progress | None) -> StepOutcome:
            from C3SarcopeniaLib import pipeline

            models = self._ensemble("section", *settings)
            result = pipeline.find_c3_section(ct, models, progress)
            return StepOutcome(result, models.card.synthetic, result.c3_slice_k)

        return work

    def applySection(self, p: C3SarcopeniaParameterNode, outcome: StepOutcome) -> None:
        segmentation = self._segmentation(p)
        result = outcome.value
        mrml.set_segment_mask(segmentation, p.inputVolume, mrml.SECTION_SEGMENT,
                              result.section_mask, mrml.SECTION_COLOR)
        mrml.set_review_warnings(segmentation, result.warnings
                                 + ([SYNTHETIC_MODELS_WARNING] if outcome.synthetic else []))
        mrml.show_segments(segmentation, p.sectionOpacity)
        p.c3SliceK = outcome.sliceK

    def findC3(self, p: C3SarcopeniaParameterNode, progress: Progress | None = None) -> None:
        self.applySection(p, self.sectionWork(p)(progress))

    # stage 2

    def muscleWork(self, p: C3SarcopeniaParameterNode) -> Callable[[Progress | None], StepOutcome]:
        if p.c3SliceK < 0:
            raise InputError("no C3 slice is chosen: run Find C3 or choose the slice first.")
        ct = mrml.ct_from_volume_node(p.inputVolume)
        sliceK, settings = p.c3SliceK, (Path(p.modelsFolder), p.device, p.foldCount)

        def work(progress: Progress | None) -> StepOutcome:
            from C3SarcopeniaLib import pipeline

            models = self._ensemble("muscle", *settings)
            muscle = pipeline.segment_muscle(ct, sliceK, models, progress)
            return StepOutcome(muscle, models.card.synthetic, sliceK)

        return work

    def applyMuscle(self, p: C3SarcopeniaParameterNode, outcome: StepOutcome) -> None:
        segmentation = self._segmentation(p)
        if outcome.synthetic:
            mrml.set_review_warnings(segmentation, mrml.review_warnings(segmentation)
                                     + [SYNTHETIC_MODELS_WARNING])
        self._resultsTable(p)
        p.c3SliceK = outcome.sliceK
        mrml.set_muscle_slice_mask(segmentation, p.inputVolume, outcome.sliceK, outcome.value)
        mrml.show_segments(segmentation, p.sectionOpacity)
        self.followMuscleEdits(p)
        self.updateResults(p)

    def segmentMuscle(self, p: C3SarcopeniaParameterNode, progress: Progress | None = None) -> None:
        self.applyMuscle(p, self.muscleWork(p)(progress))

    # outputs

    def _segmentation(self, p: C3SarcopeniaParameterNode):
        if p.segmentation is None:
            p.segmentation = mrml.new_segmentation_node(
                slicer.mrmlScene, p.inputVolume, f"{p.inputVolume.GetName()} C3")
        return p.segmentation

    def _resultsTable(self, p: C3SarcopeniaParameterNode):
        if p.resultsTable is None:
            p.resultsTable = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", f"{p.inputVolume.GetName()} C3 results")
        return p.resultsTable

    def followMuscleEdits(self, p: C3SarcopeniaParameterNode) -> None:
        """Recompute the table after every change of the muscle segment, wherever it is
        edited (the Segment Editor is another module, so this lives here, not in the panel)."""
        self.stopFollowingEdits()
        if p.segmentation is not None:
            self._stopFollowing = mrml.watch_segment(p.segmentation, mrml.MUSCLE_SEGMENTS,
                                                     lambda: self.updateResults(p))

    def stopFollowingEdits(self) -> None:
        if self._stopFollowing is not None:
            self._stopFollowing()
            self._stopFollowing = None

    def updateResults(self, p: C3SarcopeniaParameterNode) -> None:
        """Re-measure the muscle on the chosen slice; a problem (muscle on another slice, an
        implausible clinical field) replaces the figures in the table."""
        ready = p.inputVolume and p.segmentation and p.resultsTable and p.c3SliceK >= 0
        if not ready or not mrml.muscle_segment_ids(p.segmentation):
            return
        try:
            mrml.update_results(p.resultsTable, p.segmentation, p.inputVolume, p.c3SliceK,
                                clinicalInfo(p), None if p.scmNodal == "none" else p.scmNodal)
        except InputError as problem:
            mrml.write_unmeasured_results(p.resultsTable, p.segmentation, p.inputVolume,
                                          p.c3SliceK, str(problem))

    def export(self, p: C3SarcopeniaParameterNode, folder: str) -> list[Path]:
        return mrml.export_results(p.resultsTable, p.segmentation, folder,
                                   p.inputVolume.GetName())

    def saveGroundTruth(self, p: C3SarcopeniaParameterNode) -> list[Path]:
        """The accepted slice and muscle as training truth in the ground-truth folder."""
        if str(p.groundTruthFolder) in ("", "."):
            raise InputError("no ground-truth folder is chosen: choose one under "
                             "'6. Ground truth' first.")
        return mrml.save_ground_truth(p.inputVolume, p.segmentation, p.c3SliceK,
                                      p.groundTruthFolder, p.annotator)

    # views and fields

    def showSlice(self, p: C3SarcopeniaParameterNode) -> None:
        """The axial view through the chosen slice, and that plane shown in 3D."""
        red = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed")
        if red is not None and p.inputVolume is not None and p.c3SliceK >= 0:
            mrml.show_slice(red, p.inputVolume, p.c3SliceK)
            red.SetSliceVisible(True)

    def useSliceShown(self, p: C3SarcopeniaParameterNode) -> None:
        red = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNodeRed")
        p.c3SliceK = mrml.slice_k_shown(red, p.inputVolume)

    def stepSlice(self, p: C3SarcopeniaParameterNode, towardsHead: bool) -> None:
        p.c3SliceK = mrml.neighbour_slice_k(p.inputVolume, p.c3SliceK, towardsHead)

    def startNewCase(self, p: C3SarcopeniaParameterNode) -> None:
        """Another CT: its own slice, segmentation and table (the old ones stay in the scene),
        and no patient fields carried over from the previous patient."""
        self.stopFollowingEdits()
        with slicer.util.NodeModify(p):
            p.c3SliceK = -1
            p.segmentation = None
            p.resultsTable = None
            p.ageYears, p.sex, p.heightCm, p.weightKg = 0.0, SEX_CHOICES[0], 0.0, 0.0

    def prefillClinical(self, p: C3SarcopeniaParameterNode) -> bool:
        """Age, sex, height and weight from the CT's DICOM tags; False if it has none."""
        database = slicer.dicomDatabase
        found = mrml.clinical_from_dicom(p.inputVolume, database.fileForInstance) \
            if database is not None and p.inputVolume is not None else None
        if found is None:
            return False
        p.ageYears = found.age_years or 0.0
        p.sex = sexChoice(found.sex)
        p.heightCm = found.height_cm or 0.0
        p.weightKg = found.weight_kg or 0.0
        return True


# --- background runs -------------------------------------------------------------------------


class BackgroundRun:
    """One Lib call on a worker thread, polled from the GUI thread by a QTimer.

    torch releases the GIL while it computes, so the panel stays responsive. The worker never
    touches the scene: its result is applied by ``onDone`` on the GUI thread. Cancelling sets
    an event that the next progress report turns into Cancelled inside the worker; whatever
    the worker returns after that is dropped.
    """

    POLL_MS = 100

    def __init__(self, work: Callable[[Progress], Any], onProgress: Progress,
                 onDone: Callable[[Any], None], onError: Callable[[BaseException], None]):
        self._work, self._onProgress = work, onProgress
        self._onDone, self._onError = onDone, onError
        self._cancel = threading.Event()
        self._progress = (0.0, "Starting")
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.connect("timeout()", self._poll)

    def start(self) -> None:
        self._thread.start()
        self._timer.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _report(self, fraction: float, message: str) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        self._progress = (fraction, message)

    def _run(self) -> None:
        try:
            self._result = self._work(self._report)
        except BaseException as error:  # handed to the GUI thread, which reports it
            self._error = error

    def _poll(self) -> None:
        self._onProgress(*self._progress)
        if self._thread.is_alive():
            return
        self._timer.stop()
        if self._cancel.is_set():  # a result that came in after Cancel is dropped too
            self._onError(Cancelled())
        elif self._error is not None:
            self._onError(self._error)
        else:
            self._onDone(self._result)


def showError(error: BaseException) -> None:
    """Clinician-facing errors as they are; anything else with its traceback for a report."""
    if isinstance(error, InputError):
        slicer.util.errorDisplay(str(error))
    else:
        slicer.util.errorDisplay(f"Unexpected error: {error}. Please report it with the details.",
                                 detailedText="".join(traceback.format_exception(
                                     type(error), error, error.__traceback__)))


# --- widget ----------------------------------------------------------------------------------


class C3SarcopeniaWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: C3SarcopeniaLogic | None = None
        self._parameterNode: C3SarcopeniaParameterNode | None = None
        self._parameterNodeGuiTag = None
        self._run: BackgroundRun | None = None
        self._volumeId: str | None = None  # the CT the clinical fields belong to
        self._shownSliceK: int | None = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/C3Sarcopenia.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = C3SarcopeniaLogic()
        self.ui.progressFrame.hide()
        self.ui.modelsPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.groundTruthPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.findC3Button.connect("clicked(bool)", self.onFindC3)
        self.ui.segmentMuscleButton.connect("clicked(bool)", self.onSegmentMuscle)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.sliceUpButton.connect(
            "clicked(bool)", lambda: self.logic.stepSlice(self._parameterNode, True))
        self.ui.sliceDownButton.connect(
            "clicked(bool)", lambda: self.logic.stepSlice(self._parameterNode, False))
        self.ui.useShownSliceButton.connect(
            "clicked(bool)", lambda: self.logic.useSliceShown(self._parameterNode))
        self.ui.editMuscleButton.connect("clicked(bool)", self.onEditMuscle)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.saveGroundTruthButton.connect("clicked(bool)", self.onSaveGroundTruth)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancel()
        self.logic.stopFollowingEdits()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        """The GUI lets go of the parameter node; the logic keeps following muscle edits,
        which happen in the Segment Editor, another module."""
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()  # its result would land in a scene that no longer exists
        self.logic.stopFollowingEdits()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass(
                "vtkMRMLScalarVolumeNode")
        self.logic.followMuscleEdits(self._parameterNode)

    def setParameterNode(self, parameterNode: C3SarcopeniaParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self.onParameterNodeModified)
        self._parameterNode = parameterNode
        if self._parameterNode:
            volume = self._parameterNode.inputVolume
            self._volumeId = volume.GetID() if volume else None  # restored scene: keep fields
            self._shownSliceK = self._parameterNode.c3SliceK
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                             self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """React to any panel change: a new CT, a new slice, a new clinical field."""
        p = self._parameterNode
        volume = p.inputVolume
        if (volume.GetID() if volume else None) != self._volumeId:
            self._volumeId = volume.GetID() if volume else None
            self.onVolumeChanged()
        if volume and p.c3SliceK >= 0 and p.c3SliceK != self._shownSliceK:
            self._shownSliceK = p.c3SliceK
            self.logic.showSlice(p)
        if p.segmentation is not None:
            mrml.set_section_opacity(p.segmentation, p.sectionOpacity)
        self.logic.updateResults(p)
        self.updatePanel()

    def onVolumeChanged(self) -> None:
        self.logic.startNewCase(self._parameterNode)
        if self.logic.prefillClinical(self._parameterNode):
            self.ui.statusLabel.text = "Patient fields filled from the DICOM tags: check them."

    def updatePanel(self) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self._run is not None
        hasVolume = p.inputVolume is not None
        hasSlice = hasVolume and 0 <= p.c3SliceK < mrml.slice_count(p.inputVolume)
        hasMuscle = p.segmentation is not None and bool(mrml.muscle_segment_ids(p.segmentation))
        self.ui.findC3Button.enabled = hasVolume and not running
        self.ui.segmentMuscleButton.enabled = hasSlice and not running
        for button in (self.ui.sliceUpButton, self.ui.sliceDownButton):
            button.enabled = hasSlice
        self.ui.useShownSliceButton.enabled = hasVolume
        self.ui.c3SliceSpinBox.maximum = mrml.slice_count(p.inputVolume) - 1 if hasVolume else -1
        self.ui.editMuscleButton.enabled = hasMuscle
        self.ui.exportButton.enabled = hasMuscle and p.resultsTable is not None
        self.ui.saveGroundTruthButton.enabled = hasMuscle and hasSlice and not running
        self.ui.c3SlicePositionLabel.text = (
            f"z = {mrml.slice_offset_mm(p.inputVolume, p.c3SliceK):.1f} mm (head-feet)"
            if hasSlice else "no slice chosen")

    # steps in the background

    def onFindC3(self) -> None:
        self.startStep(self.logic.sectionWork, self.logic.applySection)

    def onSegmentMuscle(self) -> None:
        self.startStep(self.logic.muscleWork, self.logic.applyMuscle)

    def startStep(self, prepare, apply) -> None:
        if not ensurePythonDependencies():
            return
        p = self._parameterNode  # kept: the user may leave the module while the step runs
        try:
            work = prepare(p)
        except InputError as error:
            showError(error)
            return
        self._run = BackgroundRun(work, self.showProgress,
                                  lambda outcome: self.finishStep(apply, p, outcome), self.failStep)
        self._run.start()
        self.ui.progressFrame.show()
        self.updatePanel()

    def showProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.statusLabel.text = message

    def finishStep(self, apply, p: C3SarcopeniaParameterNode, outcome: StepOutcome) -> None:
        self.endRun("Done. Check the section, the slice and the muscle.")
        try:
            apply(p, outcome)
        except InputError as error:
            showError(error)
        slicer.util.setSliceViewerLayers(background=p.inputVolume)
        self.logic.showSlice(p)
        self.updatePanel()

    def failStep(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self.endRun("Cancelled: nothing was changed.")
            return
        self.endRun(f"Stopped: {error}")
        showError(error)

    def endRun(self, message: str) -> None:
        self._run = None
        self.ui.progressFrame.hide()
        self.ui.statusLabel.text = message
        self.updatePanel()

    def onCancel(self) -> None:
        if self._run is not None:
            self._run.cancel()
            self.ui.statusLabel.text = "Cancelling..."

    # outputs

    def onEditMuscle(self) -> None:
        p = self._parameterNode
        segmentation, volume = p.segmentation, p.inputVolume
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(volume)
        editor.setCurrentSegmentID(mrml.muscle_segment_ids(segmentation)[0])
        # The muscle lies inside the section: painting it must not cut holes in the section.
        editor.mrmlSegmentEditorNode().SetOverwriteMode(
            slicer.vtkMRMLSegmentEditorNode.OverwriteNone)

    def onExport(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                     "Export C3 results to folder")
        if not folder:
            return
        try:
            written = self.logic.export(self._parameterNode, folder)
        except InputError as error:
            showError(error)
            return
        self.ui.statusLabel.text = "Exported " + ", ".join(path.name for path in written)

    def onSaveGroundTruth(self) -> None:
        try:
            written = self.logic.saveGroundTruth(self._parameterNode)
        except InputError as error:
            showError(error)
            return
        self.ui.statusLabel.text = "Saved as ground truth: " + ", ".join(p.name for p in written)


# --- self-test -------------------------------------------------------------------------------


class C3SarcopeniaTest(ScriptedLoadableModuleTest):
    """End to end on a phantom: find C3, segment muscle, then edit the muscle as the Segment
    Editor would and check that the table follows by the expected amount."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_EditedMuscleUpdatesCsaAndSmi()

    def test_EditedMuscleUpdatesCsaAndSmi(self) -> None:
        self.assertTrue(ensurePythonDependencies(), "torch and MONAI are needed")
        from C3SarcopeniaLib.phantoms import phantom

        coarse = phantom.PhantomOptions(in_plane_mm=(1.6, 1.6), slice_mm=(3.0, 3.0))  # fast
        case = phantom.make_phantom(0, case_id="selftest", options=coarse)
        logic = C3SarcopeniaLogic()
        p = logic.getParameterNode()
        p.inputVolume = mrml.add_volume_node(slicer.mrmlScene, case.ct, "phantom")
        p.ageYears, p.sex = case.clinical.age_years, sexChoice(case.clinical.sex)
        p.heightCm, p.weightKg = case.clinical.height_cm, case.clinical.weight_kg
        p.foldCount = 1

        logic.findC3(p)
        self.assertIn(mrml.SECTION_SEGMENT, self._segmentNames(p.segmentation))
        self.assertGreaterEqual(p.c3SliceK, 0)
        logic.segmentMuscle(p)
        before = mrml.measure_muscle_segment(p.segmentation, p.inputVolume, p.c3SliceK,
                                             clinicalInfo(p))

        muscle = mrml.muscle_slice_mask(p.segmentation, p.inputVolume, p.c3SliceK)
        rows = [row for row in range(muscle.shape[0]) if muscle[row].any()][:3]
        removedPixels = int((muscle[rows] > 0).sum())
        self.assertGreater(removedPixels, 0)
        edited = muscle.copy()
        edited[rows] = 0
        mrml.set_muscle_slice_mask(p.segmentation, p.inputVolume, p.c3SliceK, edited)

        spacing = p.inputVolume.GetSpacing()
        removedCm2 = removedPixels * spacing[0] * spacing[1] / 100.0
        smiDrop = 1.363 * removedCm2 / (case.clinical.height_cm / 100.0) ** 2
        table = {row[0]: row[1] for row in mrml.table_rows(p.resultsTable)}
        self.assertAlmostEqual(float(table["C3 muscle CSA"]),
                               before.muscle_csa_cm2 - removedCm2, delta=0.006)
        self.assertAlmostEqual(float(table["SMI"]), before.smi_cm2_m2 - smiDrop, delta=0.006)
        self.delayDisplay("Edited muscle updated CSA and SMI")

    @staticmethod
    def _segmentNames(segmentation) -> set[str]:
        segments = segmentation.GetSegmentation()
        return {segments.GetNthSegment(n).GetName() for n in range(segments.GetNumberOfSegments())}
