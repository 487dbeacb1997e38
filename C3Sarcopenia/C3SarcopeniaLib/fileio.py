"""Atomic writes: a reader (or a crashed run) never leaves half a result behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import SimpleITK as sitk


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary name beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(Path(path), lambda tmp: tmp.write_text(text))


def write_image_atomic(image: sitk.Image, path: Path) -> None:
    """SimpleITK picks the format from the name, so the temporary file keeps the suffix."""
    write_atomic(Path(path), lambda tmp: sitk.WriteImage(image, str(tmp), useCompression=True))


def write_figure_atomic(figure, path: Path) -> None:
    write_atomic(Path(path), lambda tmp: figure.savefig(tmp, format="png", dpi=110))
