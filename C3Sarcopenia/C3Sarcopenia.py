"""C3 Sarcopenia: the 3D Slicer module. The panel, its parameter node, the logic that moves
results between the inference worker and the scene, and the self-test; the computation lives
in C3SarcopeniaLib (the networks in a worker process: C3SarcopeniaLib/worker.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Callable

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
from C3SarcopeniaLib.errors import Cancelled, InputError
from C3SarcopeniaLib.slicerapp import scene_steps
from C3SarcopeniaLib.slicerapp.help_text import ACKNOWLEDGEMENT_TEXT, HELP_TEXT
from C3SarcopeniaLib.slicerapp.installer import ensurePythonDependencies
from C3SarcopeniaLib.slicerapp.sample_data import registerSampleData
from C3SarcopeniaLib.slicerapp.scene_steps import show_error
from C3SarcopeniaLib.slicerapp.worker_client import WorkerClient
from C3SarcopeniaLib.worker import StepResult

SEX_CHOICES = ["unknown", "female", "male"]  # spellings parse_sex understands
SCM_NODAL_CHOICES = ["none", "right", "left"]  # the Chargi rule: which SCM is lost in nodes
DEVICE_CHOICES = ["auto", "cpu", "cuda"]


class C3Sarcopenia(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "C3 Sarcopenia"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["C3Sarcopenia contributors"]
        self.parent.helpText = HELP_TEXT
        self.parent.acknowledgementText = ACKNOWLEDGEMENT_TEXT
        slicer.app.connect("startupCompleted()", registerSampleData)


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


class C3SarcopeniaLogic(ScriptedLoadableModuleLogic):
    """Asks the worker for a step and writes its result into the scene (main thread only)."""

    def __init__(self, worker: WorkerClient | None = None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.worker = worker or WorkerClient()
        self._stopFollowing: Callable[[], None] | None = None

    def getParameterNode(self) -> C3SarcopeniaParameterNode:
        return C3SarcopeniaParameterNode(super().getParameterNode())

    def request(self, p: C3SarcopeniaParameterNode, step: str, onProgress, onDone,
                onError) -> None:
        """Hand a step to the worker: 'find_c3' or 'segment_muscle' (on the chosen slice)."""
        self.worker.request(step, p.inputVolume, onProgress, onDone, onError,
                            **scene_steps.request_fields(p, step))

    def apply(self, p: C3SarcopeniaParameterNode, result: StepResult) -> None:
        scene_steps.apply_result(p, result)
        self.followMuscleEdits(p)
        scene_steps.update_results(p)

    def runStep(self, p: C3SarcopeniaParameterNode, step: str, timeoutS: float = 600) -> None:
        """A step from start to scene, waiting for it (self-test, scripts)."""
        fields = scene_steps.request_fields(p, step)
        self.apply(p, self.worker.run(step, p.inputVolume, timeoutS, **fields))

    def followMuscleEdits(self, p: C3SarcopeniaParameterNode) -> None:
        """Recompute the table after every change of the muscle (Segment Editor strokes and
        undo happen in another module, so this lives in the logic, not the panel)."""
        self.stopFollowingEdits()
        if p.segmentation is not None:
            self._stopFollowing = mrml.watch_segment(p.segmentation, mrml.MUSCLE_SEGMENTS,
                                                     lambda: scene_steps.update_results(p))

    def stopFollowingEdits(self) -> None:
        if self._stopFollowing is not None:
            self._stopFollowing()
            self._stopFollowing = None

    def export(self, p: C3SarcopeniaParameterNode, folder: str) -> list[Path]:
        return mrml.export_results(p.resultsTable, p.segmentation, folder,
                                   p.inputVolume.GetName())

    def saveGroundTruth(self, p: C3SarcopeniaParameterNode) -> list[Path]:
        if str(p.groundTruthFolder) in ("", "."):
            raise InputError("no ground-truth folder is chosen: choose one under "
                             "'6. Ground truth' first.")
        return mrml.save_ground_truth(p.inputVolume, p.segmentation, p.c3SliceK,
                                      p.groundTruthFolder, p.annotator)

    def showSlice(self, p: C3SarcopeniaParameterNode) -> None:
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
        self.stopFollowingEdits()
        scene_steps.start_new_case(p, SEX_CHOICES[0])


class C3SarcopeniaWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: C3SarcopeniaLogic | None = None
        self._parameterNode: C3SarcopeniaParameterNode | None = None
        self._guiConnected: C3SarcopeniaParameterNode | None = None  # see setParameterNode
        self._guiTag = None
        self._runVolumeId: str | None = None  # the CT of the running step
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
        slicer.app.connect("aboutToQuit()", self.logic.worker.stop)
        self.ui.findC3Button.connect("clicked(bool)", lambda: self.startStep("find_c3"))
        self.ui.segmentMuscleButton.connect("clicked(bool)",
                                            lambda: self.startStep("segment_muscle"))
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.sliceUpButton.connect(
            "clicked(bool)", lambda: self.logic.stepSlice(self._parameterNode, True))
        self.ui.sliceDownButton.connect(
            "clicked(bool)", lambda: self.logic.stepSlice(self._parameterNode, False))
        self.ui.useShownSliceButton.connect(
            "clicked(bool)", lambda: self.logic.useSliceShown(self._parameterNode))
        self.ui.editMuscleButton.connect("clicked(bool)", lambda: (
            scene_steps.edit_in_segment_editor(self._parameterNode.segmentation,
                                               self._parameterNode.inputVolume)))
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.saveGroundTruthButton.connect("clicked(bool)", self.onSaveGroundTruth)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.logic.worker.stop()
        self.logic.stopFollowingEdits()
        self.setParameterNode(None)
        self.removeObservers()
        if self._guiConnected is not None:
            self._guiConnected.disconnectGui(self._guiTag)
            self._guiConnected = None

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        """The panel stops reacting; the logic keeps following muscle edits, which happen in
        the Segment Editor, another module."""
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()  # its result would land in a scene that no longer exists
        self.logic.worker.stop()
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
        """The GUI is connected once per parameter node and stays connected: Slicer 5.8's
        connectGui returns None, so disconnectGui cannot undo it, and connecting again would
        let the stale connections reset Sex and Device while the combo boxes refill."""
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self.onParameterNodeModified)
        if parameterNode is not None and self._guiConnected is not None and \
                self._guiConnected.parameterNode is parameterNode.parameterNode:
            parameterNode = self._guiConnected  # the same node: keep its connection
        elif parameterNode is not None:
            if self._guiConnected is not None:
                self._guiConnected.disconnectGui(self._guiTag)
            self._guiTag = parameterNode.connectGui(self.ui)
            self._guiConnected = parameterNode
        self._parameterNode = parameterNode
        if parameterNode is not None:
            volume = parameterNode.inputVolume
            self._volumeId = volume.GetID() if volume else None  # restored scene: keep fields
            self._shownSliceK = parameterNode.c3SliceK
            self.addObserver(parameterNode, vtk.vtkCommand.ModifiedEvent,
                             self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """React to any panel change: a new CT, a new slice, a new clinical field."""
        p = self._parameterNode
        volume = p.inputVolume
        if (volume.GetID() if volume else None) != self._volumeId:
            self._volumeId = volume.GetID() if volume else None
            self.logic.startNewCase(p)
            if scene_steps.prefill_clinical(p, SEX_CHOICES):
                self.ui.statusLabel.text = "Patient fields filled from the DICOM tags: check them."
        if volume and p.c3SliceK >= 0 and p.c3SliceK != self._shownSliceK:
            self._shownSliceK = p.c3SliceK
            self.logic.showSlice(p)
        if p.segmentation is not None:
            mrml.set_section_opacity(p.segmentation, p.sectionOpacity)
        scene_steps.update_results(p)
        self.updatePanel()

    def updatePanel(self) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self.logic.worker.busy
        hasVolume = p.inputVolume is not None
        hasSlice = hasVolume and 0 <= p.c3SliceK < mrml.slice_count(p.inputVolume)
        hasMuscle = p.segmentation is not None and bool(mrml.muscle_segment_ids(p.segmentation))
        for inputs in (self.ui.inputsCollapsibleButton, self.ui.sliceCollapsibleButton,
                       self.ui.advancedCollapsibleButton, self.ui.groundTruthCollapsibleButton):
            inputs.enabled = not running  # a result must land on the CT it was asked for
        self.ui.findC3Button.enabled = hasVolume and not running
        self.ui.segmentMuscleButton.enabled = hasSlice and not running
        self.ui.c3SliceSpinBox.maximum = mrml.slice_count(p.inputVolume) - 1 if hasVolume else -1
        self.ui.editMuscleButton.enabled = hasMuscle and not running
        self.ui.exportButton.enabled = hasMuscle and p.resultsTable is not None
        self.ui.saveGroundTruthButton.enabled = hasMuscle and hasSlice and not running
        self.ui.c3SlicePositionLabel.text = (
            f"z = {mrml.slice_offset_mm(p.inputVolume, p.c3SliceK):.1f} mm (head-feet)"
            if hasSlice else "no slice chosen")

    # steps, computed by the worker process

    def startStep(self, step: str) -> None:
        if not ensurePythonDependencies():
            return
        p = self._parameterNode  # kept: the user may leave the module while the step runs
        try:
            self.logic.request(p, step, self.showProgress,
                               lambda result: self.finishStep(p, result), self.failStep)
        except InputError as error:
            show_error(error)
            return
        self._runVolumeId = p.inputVolume.GetID()
        self.ui.progressFrame.show()
        self.showProgress(0.0, "Starting")
        self.updatePanel()

    def showProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.statusLabel.text = message

    def finishStep(self, p: C3SarcopeniaParameterNode, result: StepResult) -> None:
        volume = p.inputVolume
        if volume is None or volume.GetID() != self._runVolumeId:
            self.endRun("The CT changed while the step ran: its result was dropped. Run it again.")
            return
        try:
            self.logic.apply(p, result)
        except Exception as error:  # the step's result could not be shown: say why
            self.endRun(f"Stopped: {error}")
            show_error(error)
            return
        self.endRun("Done. Check the section, the slice and the muscle.")
        slicer.util.setSliceViewerLayers(background=volume)
        self.logic.showSlice(p)

    def failStep(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self.endRun("Cancelled: nothing was changed.")
            return
        self.endRun(f"Stopped: {str(error).splitlines()[0]}")
        show_error(error)

    def endRun(self, message: str) -> None:
        self._runVolumeId = None
        self.ui.progressFrame.hide()
        self.ui.statusLabel.text = message
        self.updatePanel()

    def onCancel(self) -> None:
        if self.logic.worker.busy:
            self.logic.worker.cancel()  # kills the worker: failStep reports Cancelled

    # outputs

    def onExport(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                     "Export C3 results to folder")
        if folder:
            self.writeOutputs(lambda p: self.logic.export(p, folder), "Exported ")

    def onSaveGroundTruth(self) -> None:
        self.writeOutputs(self.logic.saveGroundTruth, "Saved as ground truth: ")

    def writeOutputs(self, write: Callable, saying: str) -> None:
        try:
            written = write(self._parameterNode)
        except InputError as error:
            show_error(error)
            return
        self.ui.statusLabel.text = saying + ", ".join(path.name for path in written)


class C3SarcopeniaTest(ScriptedLoadableModuleTest):
    """End to end on a phantom through the worker: find C3, segment muscle, then edit the
    muscle as the Segment Editor would and check that the table follows."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_EditedMuscleUpdatesCsaAndSmi()

    def test_EditedMuscleUpdatesCsaAndSmi(self) -> None:
        # Never the installer here: on a build machine it would download torch.
        if any(importlib.util.find_spec(name) is None for name in ("torch", "monai")):
            self.skipTest("torch and MONAI are not installed in this Slicer")
        from C3SarcopeniaLib.phantoms import phantom

        coarse = phantom.PhantomOptions(in_plane_mm=(1.6, 1.6), slice_mm=(3.0, 3.0))
        case = phantom.make_phantom(0, case_id="selftest", options=coarse)
        logic = C3SarcopeniaLogic()
        p = logic.getParameterNode()
        p.inputVolume = mrml.add_volume_node(slicer.mrmlScene, case.ct, "phantom")
        clinical = case.clinical
        p.ageYears, p.heightCm = clinical.age_years, clinical.height_cm
        p.weightKg = clinical.weight_kg
        p.sex, p.foldCount = scene_steps.sex_choice(clinical.sex, SEX_CHOICES), 1
        try:
            logic.runStep(p, "find_c3")
            self.assertGreaterEqual(p.c3SliceK, 0)
            logic.runStep(p, "segment_muscle")
        finally:
            logic.worker.stop()
        table = dict(row[:2] for row in mrml.table_rows(p.resultsTable))
        muscle = mrml.muscle_slice_mask(p.segmentation, p.inputVolume, p.c3SliceK)
        rows = [row for row in range(muscle.shape[0]) if muscle[row].any()][:3]
        edited = muscle.copy()
        edited[rows] = 0
        mrml.set_muscle_slice_mask(p.segmentation, p.inputVolume, p.c3SliceK, edited)
        spacing = p.inputVolume.GetSpacing()
        removedCm2 = int((muscle[rows] > 0).sum()) * spacing[0] * spacing[1] / 100.0
        after = dict(row[:2] for row in mrml.table_rows(p.resultsTable))
        self.assertGreater(removedCm2, 0)
        self.assertAlmostEqual(float(after["C3 muscle CSA"]),
                               float(table["C3 muscle CSA"]) - removedCm2, delta=0.011)
        smiDrop = 1.363 * removedCm2 / (clinical.height_cm / 100.0) ** 2
        self.assertAlmostEqual(float(after["SMI"]), float(table["SMI"]) - smiDrop, delta=0.011)
        self.delayDisplay("Edited muscle updated CSA and SMI")
