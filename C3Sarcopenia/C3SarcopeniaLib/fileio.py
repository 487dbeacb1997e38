"""Atomic writes: a reader (or a crashed run) never leaves half a result behind. And reading
the project's CSV tables, with the line of each row for messages."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from .errors import InputError


def read_csv_rows(path: str | Path, required: tuple[str, ...],
                  described_as: str) -> list[tuple[int, dict]]:
    """(line where the row ends, row) of a CSV; a missing file or column is refused with
    the header the file needs. ``described_as`` names the file for a reader: 'a readings CSV'."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: give {described_as}.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path.name} lacks the column(s) {', '.join(missing)}: "
                             f"{described_as} starts with the line {','.join(required)}.")
        return [(reader.line_num, row) for row in reader]


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
