"""A stand-in for Slicer's PythonQt ``qt`` module: just the objects the C3 Sarcopenia module
touches, with PythonQt's calling conventions (``widget.connect("clicked(bool)", slot)``,
properties as attributes). Widgets are plain Python; the .ui file is read by QUiLoader below.

Behaviour that matters to the module is kept: a QDoubleSpinBox rounds to its decimals, a
QComboBox that is cleared and refilled reports its first item, a QTimer fires only when the
test lets events run (``process_events``)."""

from __future__ import annotations

import inspect
import time
import weakref
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

_live_timers: "weakref.WeakSet[QTimer]" = weakref.WeakSet()


def _positional_count(slot: Callable, available: int) -> int:
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return available
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return available
    return min(available, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                              for p in parameters))


class QObject:
    def __init__(self, parent=None):
        self._slots: dict[str, list[Callable]] = {}
        self._children: list[QObject] = []
        self._properties: dict[str, object] = {}
        self.name = ""
        if parent is not None:
            parent._children.append(self)

    def connect(self, signal: str, slot: Callable) -> None:
        self._slots.setdefault(signal, []).append(slot)

    def disconnect(self, signal: str, slot: Callable) -> None:
        self._slots.get(signal, []).remove(slot)

    def emit(self, signal: str, *args) -> None:
        """As PythonQt: a slot gets as many of the signal's arguments as it takes."""
        for slot in list(self._slots.get(signal, [])):
            slot(*args[:_positional_count(slot, len(args))])

    def children(self) -> list:
        return list(self._children)

    def property(self, name: str):
        return self._properties.get(name)

    def setProperty(self, name: str, value) -> None:
        self._properties[name] = value


class QWidget(QObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.enabled = True
        self.visible = True
        self.toolTip = ""

    def isWidgetType(self) -> bool:
        return True

    def show(self) -> None:
        self.visible = True

    def hide(self) -> None:
        self.visible = False

    def setMRMLScene(self, scene) -> None:
        for child in self._children:
            if hasattr(child, "setMRMLScene"):
                child.setMRMLScene(scene)


class QFrame(QWidget):
    pass


class QGroupBox(QWidget):
    pass


class QLabel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = ""


class QPushButton(QLabel):
    def click(self) -> None:
        if self.enabled:
            self.emit("clicked(bool)", False)


class QProgressBar(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.value = 0


class _ValueWidget(QWidget):
    """A widget with a ``value`` that reports each change, as Qt's spin boxes do."""

    SIGNAL = ""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._value = 0
        self.minimum, self.maximum = 0, 99

    def _clean(self, value):
        return min(max(value, self.minimum), self.maximum)

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value) -> None:
        value = self._clean(value)
        if value != self._value:
            self._value = value
            self.emit(self.SIGNAL, value)


class QSpinBox(_ValueWidget):
    SIGNAL = "valueChanged(int)"

    def _clean(self, value):
        return int(super()._clean(int(value)))


class QDoubleSpinBox(_ValueWidget):
    SIGNAL = "valueChanged(double)"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.decimals = 2

    def _clean(self, value):
        return round(float(super()._clean(float(value))), self.decimals)


class QComboBox(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._items: list[str] = []
        self._current = -1

    @property
    def currentText(self) -> str:
        return self._items[self._current] if self._current >= 0 else ""

    def _select(self, index: int) -> None:
        if index != self._current:
            self._current = index
            self.emit("currentIndexChanged(int)", index)
            self.emit("currentTextChanged(QString)", self.currentText)

    def clear(self) -> None:
        self._items = []
        self._select(-1)

    def addItems(self, items) -> None:
        self._items += list(items)
        if self._current < 0 and self._items:
            self._select(0)

    def addItem(self, item: str) -> None:
        self.addItems([item])

    def setCurrentText(self, text: str) -> None:
        if text in self._items:
            self._select(self._items.index(text))

    def count(self) -> int:
        return len(self._items)


class QLineEdit(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._text = ""

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.emit("textChanged(QString)", text)


class QTimer(QObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.interval = 0
        self._active = False
        _live_timers.add(self)

    def setInterval(self, milliseconds: int) -> None:
        self.interval = milliseconds

    def start(self) -> None:
        self._active = True

    def stop(self) -> None:
        self._active = False

    def isActive(self) -> bool:
        return self._active


def active_timers() -> list[QTimer]:
    return [timer for timer in list(_live_timers) if timer.isActive()]


def process_events(until: Callable[[], bool], timeout_s: float, tick_s: float = 0.05) -> bool:
    """The event loop for a test: fire the active timers until ``until()`` or the timeout."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            return False
        time.sleep(tick_s)
        for timer in active_timers():
            timer.emit("timeout()")
    return True


class QFile:
    ReadOnly = 1

    def __init__(self, path):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def open(self, mode) -> bool:
        return self.exists()


class QFileDialog:
    next_directory = ""  # what the test's user picks

    @staticmethod
    def getExistingDirectory(parent=None, caption="", directory="", options=None) -> str:
        return QFileDialog.next_directory


class QUiLoader:
    """Builds the .ui file's widgets from the stand-in classes, with the properties the
    module relies on (SlicerParameterName, decimals, range, combo box items)."""

    def load(self, qfile: QFile) -> QWidget:
        root = ElementTree.parse(qfile.path).getroot().find("widget")
        return self._widget(root, None)

    def _widget(self, element, parent):
        widget = widget_class(element.get("class"))(parent)
        widget.name = element.get("name")
        for prop in element.findall("property"):
            _set_property(widget, prop)
        items = [item.find("property/string").text for item in element.findall("item")]
        if items:
            widget.addItems(items)
        for child in element.iter("widget"):
            if child is not element and _nearest_widget(element, child):
                self._widget(child, widget)
        return widget


def _nearest_widget(parent, child) -> bool:
    """True when ``child`` is a widget directly under ``parent`` (layouts in between)."""
    def search(node):
        for sub in node:
            if sub is child:
                return True
            if sub.tag != "widget" and search(sub):
                return True
        return False
    return search(parent)


def _set_property(widget, prop) -> None:
    name, value = prop.get("name"), list(prop)[0]
    parsed = {"string": lambda v: v.text or "", "number": lambda v: int(v.text),
              "double": lambda v: float(v.text), "bool": lambda v: v.text == "true"}.get(
        value.tag)
    if parsed is None:
        return
    if prop.get("stdset") == "0":
        widget.setProperty(name, parsed(value))
    elif name in ("decimals", "minimum", "maximum", "text", "toolTip", "singleStep"):
        setattr(widget, name, parsed(value))


def widget_class(name: str):
    """The stand-in for a class named in the .ui: Qt's here, CTK's and Slicer's in ctk."""
    import ctk

    return globals().get(name) or getattr(ctk, name, None) or QWidget
