"""Stand-ins for the parts of 3D Slicer that slicer-core lacks: PythonQt's ``qt``, ``ctk``,
``slicer.app``, ``slicer.parameterNodeWrapper``, ``slicer.ScriptedLoadableModule`` and the
SampleData and PyTorchUtils modules. MRML and ``slicer.util`` stay the real ones.

``install()`` puts them in place for one test module; ``uninstall()`` takes them away."""

from __future__ import annotations

import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
_ADDED = ("qt", "ctk", "slicer.parameterNodeWrapper", "slicer.ScriptedLoadableModule",
          "SampleData", "PyTorchUtils")
# modules that bind the stand-ins at import (``import qt``): forgotten with them, so that the
# next install() is not driven through a stale qt whose timers no test pumps
_BOUND = "C3SarcopeniaLib.slicerapp"


def install(scene):
    """Stand-ins in sys.modules and on ``slicer``; ``scene`` becomes slicer.mrmlScene."""
    sys.path.insert(0, str(HERE))
    import slicer

    from . import application, parameter_node_wrapper, scripted_module

    sys.modules["slicer.parameterNodeWrapper"] = parameter_node_wrapper
    sys.modules["slicer.ScriptedLoadableModule"] = scripted_module
    sys.modules["SampleData"] = types.SimpleNamespace(SampleDataLogic=application.SampleDataLogic)
    sys.modules["PyTorchUtils"] = types.SimpleNamespace(
        PyTorchUtilsLogic=application.PyTorchUtilsLogic)
    slicer.parameterNodeWrapper = parameter_node_wrapper
    slicer.ScriptedLoadableModule = scripted_module
    slicer.app = application.Application()
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace()
    return slicer


def uninstall() -> None:
    import slicer

    for name in _ADDED:
        sys.modules.pop(name, None)
    for name in [name for name in sys.modules if name.startswith(_BOUND)]:
        sys.modules.pop(name)
    for name in ("app", "mrmlScene", "modules", "parameterNodeWrapper", "ScriptedLoadableModule"):
        if hasattr(slicer, name):
            delattr(slicer, name)
    sys.path.remove(str(HERE))
