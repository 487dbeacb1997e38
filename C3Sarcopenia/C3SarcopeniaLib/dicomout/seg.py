"""The C3 muscle (one segment per group) and the C3 section as a DICOM Segmentation (SEG)
of the source CT series: a PACS files it with the patient, a viewer overlays it on the CT."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from .. import __version__
from ..fileio import write_atomic
from ..pipeline import Prediction
from ..terminology import (C3_SECTION_CODES, MUSCLE_GROUP_CODES, SKELETAL_MUSCLE_CODES,
                           Coded, SegmentCodes)

ALGORITHM_NAME = "C3Sarcopenia"
MANUFACTURER = "C3Sarcopenia (research software)"
SEG_SERIES_NUMBER = 9301


def coded(code: Coded) -> hd.sr.CodedConcept:
    scheme, value, meaning = code
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def algorithm_identification() -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.cid7162.ArtificialIntelligence, version=__version__)


def segment_masks(prediction: Prediction,
                  n_slices: int) -> list[tuple[SegmentCodes, np.ndarray]]:
    """Each segment with its (k, j, i) mask: the muscle groups present (or the one muscle
    of a mask without groups) on the C3 slice, then the C3 section when stage 1 found it."""
    labels = np.asarray(prediction.muscle_slice_mask).astype(np.uint8)
    if labels.max() > 1:
        wanted = [(MUSCLE_GROUP_CODES[group], labels == value)
                  for value, group in enumerate(MUSCLE_GROUP_CODES, start=1)]
    else:
        wanted = [(SKELETAL_MUSCLE_CODES, labels > 0)]
    segments = []
    for codes_, slice_mask in wanted:
        if slice_mask.any():
            volume = np.zeros((n_slices, *slice_mask.shape), bool)
            volume[prediction.c3_slice_k] = slice_mask
            segments.append((codes_, volume))
    if prediction.section_mask is not None and prediction.section_mask.any():
        segments.append((C3_SECTION_CODES, prediction.section_mask > 0))
    return segments


def _description(number: int, codes_: SegmentCodes, automatic: bool) -> hd.seg.SegmentDescription:
    description = hd.seg.SegmentDescription(
        segment_number=number, segment_label=codes_.label,
        segmented_property_category=coded(codes_.category),
        segmented_property_type=coded(codes_.type),
        algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if automatic
                        else hd.seg.SegmentAlgorithmTypeValues.MANUAL),
        algorithm_identification=algorithm_identification() if automatic else None,
        anatomic_regions=[coded(codes_.anatomic_region)] if codes_.anatomic_region else None)
    if codes_.type_modifier is not None:  # the side of a paired muscle (CID 244)
        description.SegmentedPropertyTypeCodeSequence[0] \
            .SegmentedPropertyTypeModifierCodeSequence = [coded(codes_.type_modifier)]
    return description


def build_segmentation(source: list[pydicom.Dataset], prediction: Prediction,
                       automatic: bool) -> hd.seg.Segmentation:
    """A binary SEG on the source slices (``source[k]`` is slice k), new UIDs, the
    patient and study of the source."""
    segments = segment_masks(prediction, len(source))
    pixels = np.stack([mask for _, mask in segments], axis=-1)
    return hd.seg.Segmentation(
        source_images=source, pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(number, codes_, automatic)
                              for number, (codes_, _) in enumerate(segments, start=1)],
        series_instance_uid=hd.UID(), series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=ALGORITHM_NAME, software_versions=__version__,
        device_serial_number="none", series_description="C3 muscle segmentation",
        content_label="C3_MUSCLE", content_description="C3 skeletal muscle and C3 section")


def write_segmentation(segmentation: hd.seg.Segmentation, path: Path) -> Path:
    write_atomic(Path(path), lambda tmp: segmentation.save_as(tmp))
    return Path(path)
