"""The measures of result.json as a DICOM Structured Report (TID 1500 Measurement Report):
C3 muscle CSA and mean HU on the C3 slice, L3 CSA, SMI and status, and each muscle
segment's CSA, referencing the C3 slice image and the segmentation.

Standard codes name what the standard has (area, mean attenuation, units); the L3
estimate, the SMI and the Prado status have none, so they use this program's own coding
scheme (a "99" designator, as DICOM reserves for local codes) rather than borrowed codes.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes

from .. import __version__
from ..fileio import write_atomic
from ..measures import MUSCLE_GROUPS, SarcopeniaMeasures
from ..terminology import (C3_VERTEBRA, MUSCLE_GROUP_CODES, SEGMENT_CODES,
                           SKELETAL_MUSCLE_CODES)
from .seg import ALGORITHM_NAME, MANUFACTURER, coded

SR_SERIES_NUMBER = 9302
LOCAL_SCHEME = "99C3SARC"
L3_CSA = hd.sr.CodedConcept("L3CSA", LOCAL_SCHEME, "L3 skeletal muscle area estimated from C3")
SMI = hd.sr.CodedConcept("SMI", LOCAL_SCHEME, "Lumbar skeletal muscle index")
MUSCLE_STATUS = hd.sr.CodedConcept("STATUS", LOCAL_SCHEME,
                                   "Skeletal muscle status (Prado cut-offs)")
STATUS_VALUES = {"depleted": hd.sr.CodedConcept("DEPLETED", LOCAL_SCHEME,
                                                "Depleted skeletal muscle"),
                 "normal": hd.sr.CodedConcept("NORMAL", LOCAL_SCHEME, "Normal skeletal muscle")}
CM2 = hd.sr.CodedConcept("cm2", "UCUM", "square centimeter")
CM2_PER_M2 = hd.sr.CodedConcept("cm2/m2", "UCUM", "square centimeter per square meter")
HU = hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")


def _algorithm() -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=__version__)


def _muscle_group(measures: SarcopeniaMeasures,
                  c3_image: pydicom.Dataset) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The C3 muscle as a whole: its measures on the C3 slice and the L3 estimate."""
    values = [(codes.SCT.Area, measures.muscle_csa_cm2, CM2),
              (codes.DCM.MeanAttenuationCoefficient, measures.muscle_mean_hu, HU),
              (L3_CSA, measures.l3_csa_cm2, CM2), (SMI, measures.smi_cm2_m2, CM2_PER_M2)]
    measurements = [
        hd.sr.Measurement(name=name, value=value, unit=unit, algorithm_id=_algorithm(),
                          referenced_images=[
                              hd.sr.SourceImageForMeasurement.from_source_image(c3_image)])
        for name, value, unit in values if value is not None]
    status = ([hd.sr.QualitativeEvaluation(MUSCLE_STATUS, STATUS_VALUES[measures.muscle_status])]
              if measures.muscle_status is not None else None)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
                                                     identifier="C3 skeletal muscle"),
        finding_type=coded(SKELETAL_MUSCLE_CODES.type), algorithm_id=_algorithm(),
        finding_sites=[hd.sr.FindingSite(coded(C3_VERTEBRA))], measurements=measurements,
        qualitative_evaluations=status,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(c3_image)])


def _segment_groups(measures: SarcopeniaMeasures, segmentation: pydicom.Dataset,
                    c3_image: pydicom.Dataset
                    ) -> list[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations]:
    """Each muscle segment's CSA, referencing that segment of the SEG (TID 1411: a
    segment reference; the segment lies on the C3 slice alone). The reference is built
    from the C3 image rather than the SEG's frames: highdicom 0.28 cannot read the segment
    number of a one-segment SEG, which it stores in the shared functional groups."""
    group_csa = {MUSCLE_GROUP_CODES[group].label: getattr(measures, f"{group}_csa_cm2")
                 for group in MUSCLE_GROUPS}
    group_csa[SKELETAL_MUSCLE_CODES.label] = measures.muscle_csa_cm2
    groups = []
    for segment in segmentation.SegmentSequence:
        csa = group_csa.get(segment.SegmentLabel)
        if csa is None:  # the C3 section, or a group the mask does not have
            continue
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
                                                         identifier=segment.SegmentLabel),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=segmentation.SOPClassUID,
                sop_instance_uid=segmentation.SOPInstanceUID,
                segment_number=int(segment.SegmentNumber),
                source_images=[hd.sr.SourceImageForSegmentation.from_source_image(c3_image)]),
            finding_type=coded(SEGMENT_CODES[segment.SegmentLabel].type),
            algorithm_id=_algorithm(),
            measurements=[hd.sr.Measurement(name=codes.SCT.Area, value=csa, unit=CM2,
                                            algorithm_id=_algorithm())]))
    return groups


def build_report(measures: SarcopeniaMeasures, c3_image: pydicom.Dataset,
                 segmentation: pydicom.Dataset) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 report in a Comprehensive 3D SR, with the patient and study of the CT."""
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=ALGORITHM_NAME, manufacturer_name=MANUFACTURER,
            model_name=ALGORITHM_NAME))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[_muscle_group(measures, c3_image),
                              *_segment_groups(measures, segmentation, c3_image)])
    document = hd.sr.Comprehensive3DSR(
        evidence=[c3_image, segmentation], content=report[0], series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, series_description="C3 muscle measures")
    document.CodingSchemeIdentificationSequence = [pydicom.Dataset()]  # declares the local codes
    document.CodingSchemeIdentificationSequence[0].update(
        {"CodingSchemeDesignator": LOCAL_SCHEME, "CodingSchemeName": "C3Sarcopenia measures",
         "CodingSchemeResponsibleOrganization": ALGORITHM_NAME})
    return document


def write_report(report: hd.sr.Comprehensive3DSR, path: Path) -> Path:
    write_atomic(Path(path), lambda tmp: report.save_as(tmp))
    return Path(path)
