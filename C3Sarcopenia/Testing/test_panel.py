"""The Slicer panel without Slicer: the module file is read as source (it imports Slicer's
GUI), the .ui is checked against it and rendered with PySide6, and the CMake lists are
checked against the files they must install."""

from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

MODULE_DIR = Path(__file__).resolve().parents[1]
MODULE_FILE = MODULE_DIR / "C3Sarcopenia.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "C3Sarcopenia.ui"
CMAKE_FILE = MODULE_DIR / "CMakeLists.txt"
MODELS_DIR = MODULE_DIR.parent / "models"
PREVIEW_PNG = MODULE_DIR / "Resources" / "Screenshots" / "panel_preview.png"
# Which widget class may show a parameter of each annotated type (as the parameter node
# wrapper's GUI connectors accept them).
WIDGETS_FOR_TYPE = {"float": {"QDoubleSpinBox", "ctkSliderWidget"}, "int": {"QSpinBox", "QSlider"},
                    "str": {"QComboBox", "QLineEdit"}, "Path": {"ctkPathLineEdit"},
                    "node": {"qMRMLNodeComboBox"}}


@pytest.fixture(scope="module")
def module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text())


@pytest.fixture(scope="module")
def ui_widgets() -> dict[str, ElementTree.Element]:
    root = ElementTree.parse(UI_FILE).getroot()
    return {widget.get("name"): widget for widget in root.iter("widget")}


def parameter_fields(tree: ast.Module) -> dict[str, ast.expr]:
    """name -> annotation of the class decorated with @parameterNodeWrapper."""
    for node in tree.body:
        decorators = getattr(node, "decorator_list", [])
        if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", "") == "parameterNodeWrapper" for d in decorators):
            return {item.target.id: item.annotation for item in node.body
                    if isinstance(item, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in C3Sarcopenia.py")


def module_constants(tree: ast.Module) -> dict[str, object]:
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def type_kind(annotation: ast.expr) -> str:
    """'float', 'int', 'str', 'Path' or 'node' for an (Annotated) field type."""
    if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", "") == "Annotated":
        annotation = annotation.slice.elts[0]
    name = annotation.id
    return "node" if name.startswith("vtkMRML") else name


def choices(annotation: ast.expr, constants: dict[str, object]) -> list[str] | None:
    for node in ast.walk(annotation):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Choice":
            argument = node.args[0]
            return constants[argument.id] if isinstance(argument, ast.Name) \
                else ast.literal_eval(argument)
    return None


def bound_parameter(widget: ElementTree.Element) -> str | None:
    for prop in widget.findall("property"):
        if prop.get("name") == "SlicerParameterName":
            return prop.find("string").text
    return None


def test_every_widget_the_module_uses_is_in_the_ui(module_tree, ui_widgets):
    used = {node.attr for node in ast.walk(module_tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui"}
    assert used, "the module names no self.ui widgets"
    assert used <= set(ui_widgets), f"missing from the .ui: {sorted(used - set(ui_widgets))}"


def test_every_parameter_is_bound_to_a_fitting_widget(module_tree, ui_widgets):
    fields = parameter_fields(module_tree)
    constants = module_constants(module_tree)
    bound = {bound_parameter(w): w for w in ui_widgets.values() if bound_parameter(w)}
    assert set(bound) == set(fields), (f"unbound fields {sorted(set(fields) - set(bound))}, "
                                       f"bindings to no field {sorted(set(bound) - set(fields))}")
    for name, annotation in fields.items():
        widget = bound[name]
        assert widget.get("class") in WIDGETS_FOR_TYPE[type_kind(annotation)], \
            f"{name} ({type_kind(annotation)}) is shown by a {widget.get('class')}"
        listed = choices(annotation, constants)
        if widget.get("class") == "QComboBox":
            items = [item.find("property/string").text for item in widget.findall("item")]
            assert items == listed, f"{name}: the .ui lists {items}, the choices are {listed}"


def test_the_module_imports_no_torch_until_first_use(module_tree):
    """Slicer loads every module at startup: torch and MONAI may not be installed yet."""
    top_level = set()
    for node in module_tree.body:
        if isinstance(node, ast.Import):
            top_level |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            top_level |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    heavy = {name for name in top_level
             if re.search(r"\b(torch|monai)\b|C3SarcopeniaLib\.(pipeline|models|phantom)", name)}
    assert not heavy, f"imported at module load: {sorted(heavy)}"


def cmake_list(variable: str) -> list[str]:
    text = CMAKE_FILE.read_text()
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"{variable} not set in {CMAKE_FILE}"
    return [item.replace("${MODULE_NAME}", "C3Sarcopenia") for item in match.group(1).split()]


def test_cmake_lists_every_lib_file():
    listed = set(cmake_list("MODULE_PYTHON_SCRIPTS"))
    on_disk = {path.relative_to(MODULE_DIR).as_posix()
               for path in (MODULE_DIR / "C3SarcopeniaLib").rglob("*.py")}
    assert on_disk <= listed, f"add to C3Sarcopenia/CMakeLists.txt: {sorted(on_disk - listed)}"
    missing = {item for item in listed if not (MODULE_DIR / item).is_file()}
    assert not missing, f"listed in CMakeLists.txt but missing: {sorted(missing)}"


def test_cmake_lists_every_resource_and_model_file():
    resources = MODULE_DIR / "Resources"
    on_disk = {str(path.relative_to(MODULE_DIR)) for path in resources.rglob("*")
               if path.is_file() and "Screenshots" not in path.parts}
    listed = set(cmake_list("MODULE_PYTHON_RESOURCES"))
    assert on_disk == listed, (f"not listed: {sorted(on_disk - listed)}, "
                               f"listed but missing: {sorted(listed - on_disk)}")
    models = {str(path.relative_to(MODELS_DIR)) for path in MODELS_DIR.rglob("*")
              if path.is_file()} if MODELS_DIR.is_dir() else set()
    listed_models = set(cmake_list("MODULE_MODEL_FILES"))
    assert models == listed_models, (f"not listed: {sorted(models - listed_models)}, "
                                     f"listed but missing: {sorted(listed_models - models)}")


# --- the rendered panel ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def qt_app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    widgets = pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed")
    return widgets.QApplication.instance() or widgets.QApplication([])


def slicer_stand_ins():
    """Plain Qt widgets under the names of Slicer's widget classes, with the properties the
    .ui sets on them, so QUiLoader builds every control."""
    from PySide6.QtCore import Property, Qt
    from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QGroupBox, QHBoxLayout, QLineEdit,
                                   QSlider, QTableView, QWidget)

    class qMRMLWidget(QWidget):
        pass

    class ctkCollapsibleButton(QGroupBox):
        """Shown open even when collapsed, so the preview shows every control."""

        def __init__(self, parent=None):
            super().__init__(parent)
            self._text, self._collapsed = "", False

        def _retitle(self) -> None:
            self.setTitle(("▸ " if self._collapsed else "▾ ") + self._text)

        def _set_text(self, text: str) -> None:
            self._text = text
            self._retitle()

        def _set_collapsed(self, collapsed: bool) -> None:
            self._collapsed = collapsed
            self._retitle()

        text = Property(str, lambda self: self._text, _set_text)
        collapsed = Property(bool, lambda self: self._collapsed, _set_collapsed)

    class ctkSliderWidget(QWidget):
        def __init__(self, parent=None):
            super().__init__(parent)
            self.slider = QSlider(Qt.Horizontal)
            self.spin_box = QDoubleSpinBox()
            layout = QHBoxLayout(self)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.addWidget(self.slider)
            layout.addWidget(self.spin_box)
            self.spin_box.valueChanged.connect(lambda value: self.slider.setValue(
                round(100 * value / (self.spin_box.maximum() or 1))))

        def _setter(name):
            return lambda self, value: getattr(self.spin_box, name)(value)

        singleStep = Property(float, lambda self: self.spin_box.singleStep(),
                              _setter("setSingleStep"))
        minimum = Property(float, lambda self: self.spin_box.minimum(), _setter("setMinimum"))
        maximum = Property(float, lambda self: self.spin_box.maximum(), _setter("setMaximum"))
        value = Property(float, lambda self: self.spin_box.value(), _setter("setValue"))
        del _setter

    class ctkPathLineEdit(QLineEdit):
        pass

    class qMRMLNodeComboBox(QComboBox):
        def __init__(self, parent=None):
            super().__init__(parent)
            self._flags: dict[str, object] = {}

        def _flag(name, kind):
            return Property(kind, lambda self: self._flags.get(name),
                            lambda self, value: self._flags.__setitem__(name, value))

        nodeTypes = _flag("nodeTypes", "QStringList")
        showChildNodeTypes = _flag("showChildNodeTypes", bool)
        noneEnabled = _flag("noneEnabled", bool)
        addEnabled = _flag("addEnabled", bool)
        removeEnabled = _flag("removeEnabled", bool)
        renameEnabled = _flag("renameEnabled", bool)
        del _flag

    class qMRMLTableView(QTableView):
        pass

    return [qMRMLWidget, ctkCollapsibleButton, ctkSliderWidget, ctkPathLineEdit,
            qMRMLNodeComboBox, qMRMLTableView]


def load_panel(qt_app):
    from PySide6.QtCore import QFile, QIODevice, qInstallMessageHandler
    from PySide6.QtUiTools import QUiLoader

    loader = QUiLoader()
    for stand_in in slicer_stand_ins():
        loader.registerCustomWidget(stand_in)
    messages: list[str] = []
    previous = qInstallMessageHandler(lambda mode, context, text: messages.append(text))
    ui_file = QFile(str(UI_FILE))
    ui_file.open(QIODevice.ReadOnly)
    try:
        panel = loader.load(ui_file)
    finally:
        ui_file.close()
        qInstallMessageHandler(previous)
    assert panel is not None, loader.errorString()
    return panel, messages


def test_the_ui_loads_and_only_scene_signals_stay_unconnected(qt_app):
    panel, messages = load_panel(qt_app)
    # mrmlSceneChanged(vtkMRMLScene*) and friends exist only on Slicer's own widgets; Qt
    # follows each failed connection with the sender and receiver names.
    unexpected = [text for text in messages if "vtkMRML" not in text
                  and not re.match(r"QObject::connect:\s+\((sender|receiver) name", text)]
    assert not unexpected, unexpected
    from PySide6.QtWidgets import QWidget

    names = {child.objectName() for child in panel.findChildren(QWidget)}
    assert {"findC3Button", "segmentMuscleButton", "resultsTableView"} <= names


def fill_preview(panel) -> None:
    """The sample case while 'Segment muscle' runs again: node names, the earlier results."""
    from PySide6.QtGui import QStandardItem, QStandardItemModel
    from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QProgressBar, QSpinBox, QTableView

    from C3SarcopeniaLib.measures import ClinicalInfo, measure_slice
    from C3SarcopeniaLib.mrml import RESULT_COLUMNS, measure_rows

    find = panel.findChild
    find(QComboBox, "inputVolumeSelector").addItem("C3SarcopeniaSampleNeckCT")
    find(QComboBox, "segmentationSelector").addItem("C3SarcopeniaSampleNeckCT C3")
    find(QComboBox, "resultsTableSelector").addItem("C3SarcopeniaSampleNeckCT C3 results")
    find(QDoubleSpinBox, "ageSpinBox").setValue(61)
    find(QComboBox, "sexComboBox").setCurrentText("male")
    find(QDoubleSpinBox, "heightSpinBox").setValue(174)
    find(QDoubleSpinBox, "weightSpinBox").setValue(71)
    find(QSpinBox, "c3SliceSpinBox").setValue(41)
    panel.findChild(object, "c3SlicePositionLabel").setText("z = -112.5 mm (head-feet)")
    find(QProgressBar, "progressBar").setValue(60)
    panel.findChild(object, "statusLabel").setText("Segmenting muscle: fold 4/5")
    hu = np.full((120, 120), 40.0)
    muscle = np.zeros((120, 120), bool)
    muscle[10:90, 10:110] = True
    clinical = ClinicalInfo(age_years=61, sex="M", height_cm=174, weight_kg=71)
    measures = measure_slice(hu, muscle, (0.7, 0.7), clinical)
    rows = [("C3 slice", "41", "index", "z = -112.5 mm")] + measure_rows(measures) + [
        ("Warning", "", "", "a model used here was trained on synthetic phantoms only, not "
                            "on patients: review the slice and the muscle before clinical use.")]
    model = QStandardItemModel(len(rows), len(RESULT_COLUMNS), panel)
    model.setHorizontalHeaderLabels(list(RESULT_COLUMNS))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            model.setItem(r, c, QStandardItem(text))
    table = find(QTableView, "resultsTableView")
    table.setModel(model)
    table.resizeColumnsToContents()


def test_layout_preview_renders(qt_app, tmp_path):
    """Renders the panel as Slicer would lay it out. The checked-in preview is rewritten when
    missing or when C3SARCOPENIA_UPDATE_PREVIEW=1, so ordinary runs leave the tree clean."""
    panel, _ = load_panel(qt_app)
    fill_preview(panel)
    panel.resize(420, panel.sizeHint().height())
    panel.show()
    qt_app.processEvents()
    image = panel.grab()
    assert image.width() == 420 and image.height() > 600
    rendered = tmp_path / "panel_preview.png"
    assert image.save(str(rendered))
    if os.environ.get("C3SARCOPENIA_UPDATE_PREVIEW") == "1" or not PREVIEW_PNG.is_file():
        PREVIEW_PNG.parent.mkdir(parents=True, exist_ok=True)
        assert image.save(str(PREVIEW_PNG))


def test_height_and_weight_show_the_decimals_that_are_used(ui_widgets):
    """The sample's 180.4 cm must not show as 180 while 180.4 is used."""
    from C3SarcopeniaLib.sample_data import SAMPLE_CLINICAL

    for name, value in (("heightSpinBox", SAMPLE_CLINICAL["height_cm"]),
                        ("weightSpinBox", SAMPLE_CLINICAL["weight_kg"])):
        decimals = next(int(p.find("number").text) for p in ui_widgets[name].findall("property")
                        if p.get("name") == "decimals")
        assert round(value, decimals) == value, f"{name} shows {round(value, decimals)}"
