"""PyTorch and MONAI for Slicer's Python, installed on first use once the user agrees.

The worker runs in PythonSlicer, which shares Slicer's site-packages: what is installed here
is what it imports. Only find_spec is used, so torch is never imported in Slicer's process.
"""

from __future__ import annotations

import importlib.util
import traceback

import slicer

TORCH_REQUIREMENT = ">=2.1"
PIP_REQUIREMENTS = {"monai": "monai>=1.3"}  # import name -> what pip installs


def missingPackages() -> list[str]:
    return [name for name in ("torch", *PIP_REQUIREMENTS) if importlib.util.find_spec(name) is None]


def ensurePythonDependencies() -> bool:
    """True when torch and MONAI are there (or now installed); False, after telling the user
    what to do, when they are not."""
    missing = missingPackages()
    if not missing:
        return True
    if "torch" in missing and not _installTorch():
        return False
    pipMissing = [PIP_REQUIREMENTS[name] for name in missing if name in PIP_REQUIREMENTS]
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
