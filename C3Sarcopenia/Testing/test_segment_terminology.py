"""The Slicer segments carry the same standard codes as the DICOM SEG, and a saved .seg.nrrd
keeps them (real MRML nodes from slicer-core, without the Slicer application)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")

from C3SarcopeniaLib import mrml, terminology  # noqa: E402


def small_ct() -> sitk.Image:
    hu = np.full((8, 24, 30), -1000.0, np.float32)
    hu[:, 6:18, 8:24] = 45.0
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.8, 0.7, 2.5))
    return image


def terminology_tags(segmentation_node) -> dict[str, str]:
    segmentation = segmentation_node.GetSegmentation()
    tags = {}
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        tags[segment.GetName()] = segment.GetTerminology()
    return tags


def test_every_segment_name_of_the_module_has_codes():
    assert set(mrml.MUSCLE_SEGMENTS) | {mrml.SECTION_SEGMENT} == set(terminology.SEGMENT_CODES)


def test_segments_carry_the_seg_codes_and_seg_nrrd_keeps_them(tmp_path):
    scene = slicer.vtkMRMLScene()
    ct_node = mrml.add_volume_node(scene, small_ct(), "ct")
    segmentation = mrml.new_segmentation_node(scene, ct_node, "seg")
    labels = np.zeros((24, 30), np.uint8)
    labels[8:12, 10:20], labels[13:16, 9:12], labels[13:16, 18:22] = 1, 2, 3
    mrml.set_muscle_slice_mask(segmentation, ct_node, 4, labels)
    section = np.zeros((8, 24, 30), np.uint8)
    section[3:6] = 1
    mrml.set_segment_mask(segmentation, ct_node, mrml.SECTION_SEGMENT, section,
                          mrml.SECTION_COLOR)
    expected = {name: terminology.slicer_terminology_entry(name)
                for name in ("Paravertebral muscles", "SCM right", "SCM left", "C3 section")}
    assert terminology_tags(segmentation) == expected
    assert "SCT^24028007^Right" in expected["SCM right"].split("~")

    path = mrml.save_segmentation(segmentation, tmp_path / "case.seg.nrrd")
    reloaded = mrml.load_segmentation(slicer.vtkMRMLScene(), path)
    assert terminology_tags(reloaded) == expected
    # a mask without groups becomes one 'Skeletal muscle' segment, coded as muscle tissue
    mrml.set_muscle_slice_mask(segmentation, ct_node, 4, (labels > 0).astype(np.uint8))
    tag = terminology_tags(segmentation)[mrml.MUSCLE_SEGMENT]
    assert tag.split("~")[1:3] == ["^".join(terminology.TISSUE), "^".join(terminology.MUSCLE)]
