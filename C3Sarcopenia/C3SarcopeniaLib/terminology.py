"""Standard codes for what C3Sarcopenia segments, shared by the DICOM SEG and the Slicer
segments, so that a PACS, a DICOM viewer and Slicer's Segment Editor all know what a segment
is without reading its name.

Every code is a SNOMED CT concept of the DICOM standard's Segmentation Property Categories
(CID 7150), Segmentation Property Types (CID 7151) or Laterality (CID 244), as pydicom and
highdicom carry them (a test checks each against those context groups). Stored as plain
(scheme, value, meaning) triples: no DICOM library is needed to read them, in Slicer either.
Slicer's bundled terminology lists carry older codes for some of these concepts (Muscle
SCT 71616004; Anatomical Structure SCT 123037004 in its General Anatomy list), which the
standard has since replaced; Slicer keeps and saves the tag all the same, so the Slicer
segments carry exactly the SEG's codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .measures import MUSCLE_GROUPS

Coded = tuple[str, str, str]  # (coding scheme designator, code value, code meaning)

TISSUE: Coded = ("SCT", "85756007", "Tissue")  # CID 7150
ANATOMICAL_STRUCTURE: Coded = ("SCT", "91723000", "Anatomical Structure")  # CID 7150
MUSCLE: Coded = ("SCT", "91727004", "Muscle")  # CID 7151 (7166 Common Tissue types)
MUSCLE_OF_NECK: Coded = ("SCT", "81727001", "Muscle of neck")  # CID 7151
STERNOCLEIDOMASTOID: Coded = ("SCT", "22823000", "Sternocleidomastoid muscle")  # CID 7151
NECK: Coded = ("SCT", "45048000", "Neck")  # CID 7151
C3_VERTEBRA: Coded = ("SCT", "113205007", "C3 vertebra")  # CID 7151
RIGHT: Coded = ("SCT", "24028007", "Right")  # CID 244
LEFT: Coded = ("SCT", "7771000", "Left")  # CID 244

SLICER_CATEGORY_CONTEXT = "Segmentation category and type - DICOM master list"
SLICER_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


@dataclass(frozen=True)
class SegmentCodes:
    """What a segment is: category and type (with a laterality modifier for a paired
    muscle), and the anatomic region it lies in, where that says more than the type."""

    label: str  # the segment's name, in the SEG and in Slicer
    category: Coded
    type: Coded
    type_modifier: Coded | None = None
    anatomic_region: Coded | None = None


# A grouped C3 muscle mask (labels 1-3, measures.MUSCLE_GROUPS): the paravertebral group is
# every neck muscle of Swartz et al. but the SCMs; each SCM is coded with its side.
MUSCLE_GROUP_CODES = dict(zip(MUSCLE_GROUPS, (
    SegmentCodes("Paravertebral muscles", ANATOMICAL_STRUCTURE, MUSCLE_OF_NECK,
                 anatomic_region=C3_VERTEBRA),
    SegmentCodes("SCM right", ANATOMICAL_STRUCTURE, STERNOCLEIDOMASTOID, RIGHT, C3_VERTEBRA),
    SegmentCodes("SCM left", ANATOMICAL_STRUCTURE, STERNOCLEIDOMASTOID, LEFT, C3_VERTEBRA))))
# A muscle mask without groups: all skeletal muscle on the C3 slice.
SKELETAL_MUSCLE_CODES = SegmentCodes("Skeletal muscle", TISSUE, MUSCLE,
                                     anatomic_region=C3_VERTEBRA)
# The C3 section: the neck in a 33 mm slab centred on the C3 measurement slice.
C3_SECTION_CODES = SegmentCodes("C3 section", ANATOMICAL_STRUCTURE, NECK,
                                anatomic_region=C3_VERTEBRA)
SEGMENT_CODES = {codes.label: codes for codes in (*MUSCLE_GROUP_CODES.values(),
                                                  SKELETAL_MUSCLE_CODES, C3_SECTION_CODES)}


def slicer_terminology_entry(segment_name: str) -> str | None:
    """The Slicer terminology of a segment named as C3Sarcopenia names them; None for
    another name (a segment the user added)."""
    codes = SEGMENT_CODES.get(segment_name)
    return None if codes is None else _serialized(codes)


def set_slicer_terminology(segment, name: str) -> None:
    """Tag a vtkSegment with its standard codes, as Slicer's Segment Editor shows them and
    .seg.nrrd keeps them; a segment of another name is left as it is."""
    entry = slicer_terminology_entry(name)
    if entry is not None:
        segment.SetTag(segment.GetTerminologyEntryTagName(), entry)


def _serialized(codes: SegmentCodes) -> str:
    """The segment's terminology as Slicer stores it in the 'TerminologyEntry' tag
    (vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry): context~category~type~
    type modifier~anatomic context~region~region modifier, each code as scheme^value^meaning."""
    def code(coded: Coded | None) -> str:
        return "^".join(coded) if coded else "^^"

    region_context = SLICER_ANATOMIC_CONTEXT if codes.anatomic_region else ""
    return "~".join((SLICER_CATEGORY_CONTEXT, code(codes.category), code(codes.type),
                     code(codes.type_modifier), region_context, code(codes.anatomic_region),
                     code(None)))
