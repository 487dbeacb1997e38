"""A stand-in for CTK's widgets as PythonQt shows them, and for the qMRML widgets of the .ui
(which Slicer exposes under ``slicer``): what the panel and the parameter node use."""

from __future__ import annotations

from qt import QDoubleSpinBox, QLineEdit, QWidget


class ctkCollapsibleButton(QWidget):
    pass


class ctkSliderWidget(QDoubleSpinBox):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.maximum, self.singleStep = 1.0, 0.05


class ctkPathLineEdit(QLineEdit):
    Dirs = 0x1
    Files = 0x2

    def __init__(self, parent=None):
        super().__init__(parent)
        self.filters = self.Files
        self.connect("textChanged(QString)",
                     lambda text: self.emit("currentPathChanged(QString)", text))

    @property
    def currentPath(self) -> str:
        return self.text

    @currentPath.setter
    def currentPath(self, path: str) -> None:
        self.text = path


class qMRMLWidget(QWidget):
    pass


class qMRMLNodeComboBox(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene, self._node = None, None

    def setMRMLScene(self, scene) -> None:
        self._scene = scene

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node) -> None:
        if node is not self._node:
            self._node = node
            self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class qMRMLTableView(QWidget):
    pass
