"""A stand-in for ``slicer.parameterNodeWrapper``: typed properties stored in a real
vtkMRMLScriptedModuleNode, and connectGui with Slicer 5.8.0/5.8.1's behaviour, where
``connectGui`` returns None (so ``disconnectGui`` cannot undo it) and connecting refills each
combo box, whose stale connections then write its first item into the node. Set
``CONNECT_GUI_RETURNS_TAG = True`` for 5.10's behaviour."""

from __future__ import annotations

import typing
from pathlib import Path

import vtk

CONNECT_GUI_RETURNS_TAG = False


class Choice:
    def __init__(self, choices):
        self.choices = list(choices)


class WithinRange:
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum


class Minimum(WithinRange):
    def __init__(self, minimum):
        super().__init__(minimum, float("inf"))


def _is_node(kind) -> bool:
    return isinstance(kind, type) and kind.__name__.startswith("vtkMRML")


class _Parameter:
    def __init__(self, name: str, hint):
        self.name = name
        self.kind, self.rules = hint, []
        if typing.get_origin(hint) is typing.Annotated:
            self.kind, *self.rules = typing.get_args(hint)
        self.default = {float: 0.0, int: 0, str: "", Path: Path("")}.get(self.kind)

    def check(self, value) -> None:
        for rule in self.rules:
            if isinstance(rule, Choice) and value not in rule.choices:
                raise ValueError(f"{self.name}: {value!r} is not one of {rule.choices}")
            if isinstance(rule, WithinRange) and not rule.minimum <= value <= rule.maximum:
                raise ValueError(f"{self.name}: {value!r} is outside the range")

    def read(self, node):
        if _is_node(self.kind):
            return node.GetNodeReference(self.name)
        text = node.GetParameter(self.name)
        return self.default if not text else self.kind(text)

    def write(self, node, value) -> None:
        if _is_node(self.kind):
            node.SetNodeReferenceID(self.name, value.GetID() if value is not None else None)
            return
        value = self.kind(value)
        self.check(value)
        node.SetParameter(self.name, str(value))


def parameterNodeWrapper(cls):
    hints = typing.get_type_hints(cls, include_extras=True)
    parameters = {name: _Parameter(name, hint) for name, hint in hints.items()}
    for name, parameter in parameters.items():
        if hasattr(cls, name):
            parameter.default = getattr(cls, name)
        setattr(cls, name, property(
            lambda self, p=parameter: p.read(self.parameterNode),
            lambda self, value, p=parameter: p.write(self.parameterNode, value)))
    cls.allParameters = parameters
    cls.__init__ = _init
    cls.connectGui, cls.disconnectGui = _connect_gui, _disconnect_gui
    cls.StartModify = lambda self: self.parameterNode.StartModify()
    cls.EndModify = lambda self, was: self.parameterNode.EndModify(was)
    cls.AddObserver = lambda self, event, callback, priority=0.0: \
        self.parameterNode.AddObserver(event, callback, priority)
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    cls.Modified = lambda self: self.parameterNode.Modified()
    return cls


def _init(self, parameterNode) -> None:
    self.parameterNode = parameterNode
    self._guis: dict[int, list] = {}


# widget -> (signal, how to read it, how to show a value)
def _binding(widget, parameter: _Parameter):
    kind = type(widget).__name__
    if kind == "qMRMLNodeComboBox":
        return "currentNodeChanged(vtkMRMLNode*)", widget.currentNode, widget.setCurrentNode
    if kind == "QComboBox":
        return ("currentTextChanged(QString)", lambda: widget.currentText,
                lambda value: widget.setCurrentText(value))
    if kind in ("QLineEdit", "ctkPathLineEdit"):
        return ("textChanged(QString)", lambda: widget.text,
                lambda value: setattr(widget, "text", "" if str(value) == "." else str(value)))
    signal = "valueChanged(int)" if kind == "QSpinBox" else "valueChanged(double)"
    return signal, lambda: widget.value, lambda value: setattr(widget, "value", value)


def _connect_gui(self, gui):
    widgets = {w.property("SlicerParameterName"): w for w in gui.__dict__.values()
               if w.property("SlicerParameterName")}
    connections = []
    updating = [False]

    def show_all(*args) -> None:
        updating[0] = True
        try:
            for name, (widget, signal, read, show) in shown.items():
                show(getattr(self, name))
        finally:
            updating[0] = False

    shown = {}
    for name, widget in widgets.items():
        parameter = self.allParameters[name]
        signal, read, show = _binding(widget, parameter)
        if type(widget).__name__ == "QComboBox":  # the Choice connector refills the items
            choices = next(r.choices for r in parameter.rules if isinstance(r, Choice))
            widget.clear()
            widget.addItems(choices)

        def changed(*args, name=name, read=read, parameter=parameter) -> None:
            value = read()
            if updating[0] or (parameter.kind is str and any(
                    isinstance(r, Choice) and value not in r.choices for r in parameter.rules)):
                return
            setattr(self, name, value)

        widget.connect(signal, changed)
        connections.append((widget, signal, changed))
        shown[name] = (widget, signal, read, show)
    show_all()
    tag = self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, show_all)
    key = len(self._guis) + 1
    self._guis[key] = connections + [(None, tag, None)]
    return key if CONNECT_GUI_RETURNS_TAG else None


def _disconnect_gui(self, tag) -> None:
    for widget, signal, callback in self._guis.pop(tag, []):
        if widget is None:
            self.parameterNode.RemoveObserver(signal)
        else:
            widget.disconnect(signal, callback)
