"""Where the shipped data is: the trained models and the sample CT.

The repository holds one copy of each (models/ at its top, the Slicer module's
Resources/SampleData/); the Slicer module finds them in its Resources/, a source checkout
in place, and an installed wheel as package data (pyproject.toml maps them into the package
as shipped_models/ and shipped_sample_data/), looked up here with importlib.resources.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def package_data_dir(name: str) -> Path | None:
    """A data folder the installed wheel carries ('shipped_models', 'shipped_sample_data');
    None in a source checkout or in Slicer, where the files sit elsewhere."""
    folder = resources.files(__package__) / name
    return Path(str(folder)) if folder.is_dir() else None


def first_existing(candidates: list[Path | None]) -> Path | None:
    return next((c for c in candidates if c is not None and c.is_dir()), None)


def models_dir() -> Path:
    """The shipped models: package data, else models/ of the source tree, else the Slicer
    module's Resources/models (where its CMake build puts them)."""
    checkout, slicer = _HERE.parents[1] / "models", _HERE.parent / "Resources" / "models"
    return first_existing([package_data_dir("shipped_models"), checkout, slicer]) or checkout


def sample_data_dir() -> Path:
    """The sample CT's folder: package data, else the module's Resources/SampleData."""
    resources_dir = _HERE.parent / "Resources" / "SampleData"
    return first_existing([package_data_dir("shipped_sample_data"),
                           resources_dir]) or resources_dir
