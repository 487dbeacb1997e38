"""The module's panel through a whole case, as in Slicer but headless: real MRML and
slicer.util (slicer-core), stand-ins for qt, ctk and the application (slicer_stand_ins/), and
the real inference worker as a child process on tiny trained models.

Every ``slicer.util`` function the module calls is checked against its signature; the
stand-ins declare Slicer's own signatures, so a wrong keyword fails here as it would there."""

from __future__ import annotations

import ast
import inspect
import os
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")

MODULE_DIR = Path(__file__).resolve().parents[1]
SLICER_APP_FILES = [MODULE_DIR / "C3Sarcopenia.py",
                    *sorted((MODULE_DIR / "C3SarcopeniaLib" / "slicerapp").glob("*.py"))]
# slicer.util functions that would open a window or switch module: recorded, not run
RECORDED = {"errorDisplay", "confirmOkCancelDisplay", "selectModule", "pip_install",
            "delayDisplay", "mainWindow"}
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def app(tiny_models):
    """The stand-ins, slicer.util wrapped to check and record calls, the module loaded and
    its sample data registered at 'startup'."""
    import slicer_stand_ins

    scene = slicer.vtkMRMLScene()
    slicer_stand_ins.install(scene)
    calls: list[tuple[str, inspect.BoundArguments]] = []
    originals = {name: getattr(slicer.util, name) for name in dir(slicer.util)
                 if inspect.isfunction(getattr(slicer.util, name))}

    def checked(name, function):
        def call(*args, **kwargs):
            bound = inspect.signature(function).bind(*args, **kwargs)  # TypeError if wrong
            calls.append((name, bound))
            return None if name in RECORDED else function(*args, **kwargs)
        return call

    for name, function in originals.items():
        setattr(slicer.util, name, checked(name, function))
    from C3SarcopeniaLib.slicerapp import worker_client

    command = worker_client.pythonSlicerCommand
    worker_client.pythonSlicerCommand = lambda: [sys.executable, "-m", "C3SarcopeniaLib",
                                                 "worker"]
    import C3Sarcopenia

    C3Sarcopenia.C3Sarcopenia(slicer.ScriptedLoadableModule.ModuleParent())
    slicer.app.emit("startupCompleted()")
    yield {"module": C3Sarcopenia, "calls": calls, "scene": scene, "models": tiny_models,
           "originals": originals}
    worker_client.pythonSlicerCommand = command
    for name, function in originals.items():
        setattr(slicer.util, name, function)
    sys.modules.pop("C3Sarcopenia", None)
    slicer_stand_ins.uninstall()


def run_events(until, timeout_s: float = RUN_TIMEOUT_S) -> None:
    import qt

    assert qt.process_events(until, timeout_s), "the step did not finish in time"


def load_sample_ct(scene):
    """What Sample Data does with the registered source: the CT as a volume node."""
    import SampleData

    from C3SarcopeniaLib import imaging, mrml

    source = SampleData.SampleDataLogic.sources["C3 Sarcopenia"][0]
    path = Path(source["uris"].removeprefix("file://"))
    return mrml.add_volume_node(scene, imaging.read_ct(path), source["nodeNames"])


def test_sample_data_registers_with_the_real_signature(app):
    import SampleData

    from C3SarcopeniaLib.sample_data import SAMPLE_CT

    (source,) = SampleData.SampleDataLogic.sources["C3 Sarcopenia"]
    assert source["uris"] == SAMPLE_CT.as_uri() and source["loadFileTypes"] == "VolumeFile"
    assert source["checksums"].startswith("SHA256:") and Path(source["thumbnailFileName"]).is_file()


def test_every_slicer_util_call_matches_its_signature(app):
    """Statically, so paths the workflow does not take are checked too."""
    problems = []
    for path in SLICER_APP_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and ast.unparse(node.func.value) == "slicer.util"):
                continue
            function = app["originals"].get(node.func.attr) or getattr(slicer.util, node.func.attr,
                                                                       None)
            if function is None:
                problems.append(f"{path.name}:{node.lineno} slicer.util.{node.func.attr} missing")
                continue
            try:
                inspect.signature(function).bind(*node.args, **{k.arg: k.value for k in
                                                              node.keywords if k.arg})
            except TypeError as error:
                problems.append(f"{path.name}:{node.lineno} slicer.util.{node.func.attr}: {error}")
    assert not problems, problems


@pytest.fixture(scope="module")
def panel(app, tmp_path_factory):
    """The module's widget set up on the sample CT, with the tiny models on the CPU."""
    module = app["module"]
    ct = load_sample_ct(app["scene"])
    widget = module.C3SarcopeniaWidget()
    widget.setup()
    widget.parent.isEntered = True
    widget.enter()
    ui = widget.ui
    ui.inputVolumeSelector.setCurrentNode(ct)
    ui.ageSpinBox.value, ui.weightSpinBox.value = 55, 80.2
    ui.heightSpinBox.value = 180.4
    ui.sexComboBox.setCurrentText("male")
    ui.deviceComboBox.setCurrentText("cpu")
    ui.foldsSpinBox.value = 1
    ui.modelsPathLineEdit.currentPath = str(app["models"])
    yield widget, ct
    widget.cleanup()


def run_step(widget, button) -> list[str]:
    """Click a step's button and let the timer run until the step ends; the messages seen."""
    messages: list[str] = []
    original = widget.showProgress
    widget.showProgress = lambda fraction, message: (messages.append(message),
                                                     original(fraction, message))
    try:
        button.click()
        assert widget.logic.worker.busy
        assert not widget.ui.inputsCollapsibleButton.enabled, "inputs stay editable in a run"
        run_events(lambda: not widget.logic.worker.busy)
    finally:
        widget.showProgress = original
    return messages


def table(widget) -> dict[str, str]:
    from C3SarcopeniaLib import mrml

    return {row[0]: row[1] for row in mrml.table_rows(widget._parameterNode.resultsTable)}


def test_find_c3_then_muscle_through_the_worker(panel, app):
    widget, ct = panel
    p = widget._parameterNode
    assert p.heightCm == pytest.approx(180.4), "the height field drops its decimals"
    messages = run_step(widget, widget.ui.findC3Button)
    assert any("Finding C3" in message for message in messages), messages
    assert widget.ui.statusLabel.text.startswith("Done"), widget.ui.statusLabel.text
    from C3SarcopeniaLib import mrml

    assert mrml.segment_mask(p.segmentation, ct, mrml.SECTION_SEGMENT).any()
    found_k = p.c3SliceK
    assert 0 <= found_k < mrml.slice_count(ct)
    widget.ui.sliceUpButton.click()
    assert p.c3SliceK != found_k  # nudged one slice towards the head
    run_step(widget, widget.ui.segmentMuscleButton)
    assert widget.ui.inputsCollapsibleButton.enabled
    assert float(table(widget)["C3 muscle CSA"]) > 0 and table(widget)["SMI"]
    assert "C3 muscle CSA" in table(widget)


def test_an_edit_changes_csa_and_smi_and_undo_restores_them(panel):
    from C3SarcopeniaLib import mrml

    widget, ct = panel
    p = widget._parameterNode
    before = table(widget)
    history = slicer.vtkSegmentationHistory()
    history.SetSegmentation(p.segmentation.GetSegmentation())
    history.SaveState()
    segment = mrml.muscle_segment_ids(p.segmentation)[0]
    muscle = mrml.segment_mask(p.segmentation, ct, p.segmentation.GetSegmentation()
                               .GetSegment(segment).GetName(), p.c3SliceK, 1)
    if not muscle.any():
        pytest.fail("the tiny models found no muscle in its first group")
    rows = np.flatnonzero(muscle[0].any(axis=1))[:2]
    edited = muscle.copy()
    edited[0, rows] = 0
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.SetBinaryLabelmapToSegment(mrml.labelmap_on_grid(ct, edited, p.c3SliceK),
                                     p.segmentation, segment, logic.MODE_REPLACE)
    after = table(widget)
    assert float(after["C3 muscle CSA"]) < float(before["C3 muscle CSA"])
    assert float(after["SMI"]) < float(before["SMI"])
    history.RestorePreviousState()  # the Segment Editor's undo
    assert table(widget)["C3 muscle CSA"] == before["C3 muscle CSA"]


def test_export_and_ground_truth(panel, tmp_path):
    import qt

    widget, _ = panel
    qt.QFileDialog.next_directory = str(tmp_path / "export")
    (tmp_path / "export").mkdir()
    widget.ui.exportButton.click()
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == [
        "C3SarcopeniaSampleNeckCT_c3_results.csv",
        "C3SarcopeniaSampleNeckCT_c3_segmentation.seg.nrrd"]
    (tmp_path / "truth").mkdir()
    widget.ui.groundTruthPathLineEdit.currentPath = str(tmp_path / "truth")
    widget.ui.annotatorLineEdit.text = "tester"
    widget.ui.saveGroundTruthButton.click()
    assert (tmp_path / "truth" / "c3_levels.csv").is_file()
    assert widget.ui.statusLabel.text.startswith("Saved as ground truth")


def worker_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def muscle_segments(p, ct) -> np.ndarray:
    """Every muscle segment on every slice."""
    from C3SarcopeniaLib import mrml

    return np.stack([mrml.segment_mask(p.segmentation, ct, name)
                     for name in mrml.MUSCLE_SEGMENTS
                     if mrml.segment_id(p.segmentation, name) is not None])


def test_cancel_mid_run_leaves_the_scene_unchanged(panel):
    widget, ct = panel
    p = widget._parameterNode
    before, k = muscle_segments(p, ct), p.c3SliceK
    widget.ui.sliceDownButton.click()
    widget.ui.segmentMuscleButton.click()
    pid = widget.logic.worker.pid
    widget.ui.cancelButton.click()
    assert worker_gone(pid) and not widget.logic.worker.busy
    assert widget.ui.statusLabel.text.startswith("Cancelled")
    assert np.array_equal(muscle_segments(p, ct), before)
    p.c3SliceK = k


def test_a_crashed_worker_leaves_the_scene_unchanged(panel, app):
    import signal

    widget, ct = panel
    p = widget._parameterNode
    before = muscle_segments(p, ct)
    errors = len([c for c in app["calls"] if c[0] == "errorDisplay"])
    widget.ui.segmentMuscleButton.click()
    os.killpg(widget.logic.worker.pid, signal.SIGKILL)  # a crash, from the panel's view
    run_events(lambda: not widget.logic.worker.busy, 30)
    shown = [c for c in app["calls"] if c[0] == "errorDisplay"][errors:]
    assert shown and "stopped unexpectedly" in shown[0][1].arguments["text"]
    assert np.array_equal(muscle_segments(p, ct), before)
    assert widget.ui.inputsCollapsibleButton.enabled  # the panel is usable again


def test_an_unexpected_error_in_the_apply_step_is_shown_plainly(panel, app, monkeypatch):
    widget, _ = panel

    def fail(p, result):
        raise RuntimeError("the segmentation node is locked")

    monkeypatch.setattr(widget.logic, "apply", fail)
    errors = len([c for c in app["calls"] if c[0] == "errorDisplay"])
    run_step(widget, widget.ui.segmentMuscleButton)
    shown = [c for c in app["calls"] if c[0] == "errorDisplay"][errors:]
    assert shown[0][1].arguments["text"].startswith(
        "Unexpected error: the segmentation node is locked")
    assert "locked" in widget.ui.statusLabel.text


def test_a_result_for_another_ct_is_refused(panel, app):
    from C3SarcopeniaLib import mrml

    widget, ct = panel
    p = widget._parameterNode
    widget.ui.findC3Button.click()
    other = mrml.add_volume_node(app["scene"], mrml.ct_from_volume_node(ct), "another CT")
    p.inputVolume = other  # not through the locked panel: from a script, say
    run_events(lambda: not widget.logic.worker.busy)
    assert "CT changed" in widget.ui.statusLabel.text
    assert p.segmentation is None  # the new CT starts empty, and stays so
    p.inputVolume = ct
    p.segmentation = app["scene"].GetFirstNodeByName("C3SarcopeniaSampleNeckCT C3")
    p.resultsTable = app["scene"].GetFirstNodeByName("C3SarcopeniaSampleNeckCT C3 results")


def test_clinical_fields_survive_leaving_and_reentering_on_5_8(panel):
    """Slicer 5.8's connectGui returns None (the stand-in does the same)."""
    widget, _ = panel
    p = widget._parameterNode
    p.sex, p.device, p.ageYears = "male", "cpu", 55
    for _ in range(2):
        widget.exit()  # the Segment Editor and back
        widget.enter()
    p = widget._parameterNode
    assert (p.sex, p.device, p.ageYears) == ("male", "cpu", 55)
    assert widget.ui.sexComboBox.currentText == "male"


def test_the_stand_in_shows_the_5_8_bug_to_a_naive_reconnect(panel):
    """The check above can fail: reconnecting each time, as the old panel did, loses Sex."""
    widget, _ = panel
    p = widget._parameterNode
    p.sex = "female"
    old = widget.logic.getParameterNode()
    old.connectGui(widget.ui)
    assert widget.logic.getParameterNode().sex == "unknown"
    p.sex, p.device = "male", "cpu"


def test_cleanup_stops_the_timer_and_the_worker(app, tiny_models):
    import qt

    module = app["module"]
    widget = module.C3SarcopeniaWidget()
    widget.setup()
    widget.ui.modelsPathLineEdit.currentPath = str(tiny_models)
    widget.ui.foldsSpinBox.value = 1
    widget.ui.findC3Button.click()
    pid = widget.logic.worker.pid
    widget.cleanup()
    assert not qt.active_timers() and worker_gone(pid)


def test_scene_close_ends_the_worker_and_resets_the_panel(panel, app):
    widget, _ = panel
    worker = widget.logic.worker
    assert worker.pid is not None  # the warm worker of the earlier steps
    pid = worker.pid
    app["scene"].Clear(0)
    assert worker_gone(pid) and worker.pid is None
    p = widget._parameterNode
    assert p.inputVolume is None and p.segmentation is None and p.sex == "unknown"


def test_the_self_test_runs_through_the_worker_and_installs_nothing(app):
    """The module's own self-test (Reload and Test, ctest), on the shipped models."""
    import unittest

    calls_before = len(app["calls"])
    result = unittest.TextTestRunner(stream=open(os.devnull, "w")).run(
        app["module"].C3SarcopeniaTest("runTest"))
    assert result.wasSuccessful(), result.errors + result.failures
    assert not result.skipped
    called = {name for name, _ in app["calls"][calls_before:]}
    assert not called & {"pip_install", "confirmOkCancelDisplay"}, called
