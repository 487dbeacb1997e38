"""The shipped synthetic neck CT in Slicer's Sample Data module, so a class can start at once."""

from __future__ import annotations

import logging
from pathlib import Path

import slicer

from ..sample_data import SAMPLE_CT

SAMPLE_NAME = "C3SarcopeniaSampleNeckCT"
THUMBNAIL = Path(__file__).resolve().parents[2] / "Resources" / "Icons" / "C3Sarcopenia.png"


def registerSampleData() -> None:
    """Called once Slicer has started. The keywords are those of
    SampleDataLogic.registerCustomSampleDataSource in Slicer 5.8 and 5.10."""
    if not SAMPLE_CT.is_file():
        logging.warning(f"C3Sarcopenia sample CT missing: {SAMPLE_CT}")
        return
    import SampleData

    checksum = slicer.util.computeChecksum("SHA256", str(SAMPLE_CT))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="C3 Sarcopenia",
        sampleName=SAMPLE_NAME,
        thumbnailFileName=str(THUMBNAIL),
        uris=SAMPLE_CT.as_uri(),
        fileNames=SAMPLE_CT.name,
        nodeNames=SAMPLE_NAME,
        checksums=f"SHA256:{checksum}",  # a newer sample replaces the cached copy
        loadFileType="VolumeFile",  # every version takes it (5.x also as loadFileTypes)
    )
