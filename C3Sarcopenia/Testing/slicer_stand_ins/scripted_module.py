"""A stand-in for ``slicer.ScriptedLoadableModule``: the base classes as far as the module
uses them, the parameter node as Slicer's logic makes it (a singleton of the scene)."""

from __future__ import annotations

import inspect
import unittest
from pathlib import Path

import slicer
from qt import QWidget


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = type(self).__name__


class _Layout:
    def __init__(self):
        self.widgets = []

    def addWidget(self, widget) -> None:
        self.widgets.append(widget)


class ModuleParent(QWidget):
    """What a module widget gets as parent: isEntered follows enter() and exit()."""

    def __init__(self):
        super().__init__()
        self.isEntered = False


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent if parent is not None else ModuleParent()
        self.moduleName = type(self).__name__[:-len("Widget")]

    def resourcePath(self, filename: str) -> str:
        return str(Path(inspect.getfile(type(self))).parent / "Resources" / filename)

    def setup(self) -> None:
        self.layout = _Layout()


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = type(self).__name__[:-len("Logic")]

    def getParameterNode(self):
        node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetSingletonTag(self.moduleName)
            node = slicer.mrmlScene.AddNode(node)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message: str, autoCloseMsec: int = 1000, parent=None, **kwargs) -> None:
        pass
