"""The two stages of Naser et al. 2022 and the whole prediction.

Stage 1 segments the C3 section (a 33 mm slab) in 3D; its centre of mass gives the C3 slice.
Stage 2 segments skeletal muscle on that slice in 2D. Each stage is an ensemble of folds
combined by per-voxel majority vote. Results are mapped back to the CT's own grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers import sliding_window_inference

from . import guards, imaging, input_checks
from .errors import (FOLDS_MISSING_PHRASE, LEVEL_DISAGREEMENT_PHRASE, SECTION_AT_EDGE_PHRASE,
                     SYNTHETIC_MODELS_WARNING, THIN_SECTION_PHRASE, InputError)
from .measures import (ClinicalInfo, SarcopeniaMeasures, chargi_warning,
                       fold_disagreement, fold_disagreement_warning, implausibility_warnings,
                       measure_slice)
from .models import Ensemble

Progress = Callable[[float, str], None]
# Half a vertebra plus disc: folds further apart than this disagree on the level.
FOLD_DISAGREEMENT_MM = 10.0
MIN_SECTION_MM = 11.0  # a third of the section: less is a sliver, not C3
THIN_SECTION_MM = 0.8 * imaging.SECTION_THICKNESS_MM
AIR_INPUT = float(imaging.normalise_hu(np.array(imaging.AIR_HU)))  # -1: air as the nets see it
EDGE_MARGIN_MM = 8.0  # half a C3 body: nearer the scan's edge, the level cannot be checked
# C2 and C1, by which C3 is counted, lie 40-50 mm above C3's middle; every one of 249 real
# neck CTs read by hand showed at least 50 mm of neck above it.
MIN_NECK_ABOVE_C3_MM = 40.0


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


@dataclass
class NetworkInput:
    """A CT resampled for a network: normalised array plus the grid it lives on."""

    image: np.ndarray     # normalised to [-1, 1], SimpleITK array order
    grid: sitk.Image      # geometry of ``image`` (its pixels are HU)
    body: np.ndarray      # body mask on that grid


def section_network_input(ct: sitk.Image, spacing_mm: float) -> NetworkInput:
    """Stage-1 input: LPS-aligned isotropic grid, cropped to the body to save work.

    Only the part of the grid near voxels above the body threshold is resampled at all: the
    rest is air, which the crop would drop.
    """
    above = sitk.GetArrayViewFromImage(ct) > imaging.BODY_THRESHOLD_HU
    grid = imaging.resample_to_lps_grid(ct, spacing_mm, around=above if above.any() else None)
    hu = sitk.GetArrayFromImage(grid)
    body = imaging.body_mask(hu)
    if not body.any():
        raise InputError("no body found in the CT (nothing above -500 HU): is this a CT in "
                         "Hounsfield units?")
    crop = imaging.bounding_box(body)
    # SimpleITK slicing is (x, y, z); numpy is (z, y, x).
    return NetworkInput(imaging.normalise_hu(hu[crop]), grid[crop[::-1]], body[crop])


def muscle_network_input(ct: sitk.Image, slice_k: int, spacing_mm: float) -> NetworkInput:
    """Stage-2 input: the C3 slice resampled in-plane to the model's spacing."""
    grid = imaging.resample_to_lps_grid(ct[:, :, slice_k], spacing_mm)
    hu = sitk.GetArrayFromImage(grid)
    return NetworkInput(imaging.normalise_hu(hu), grid, hu > imaging.BODY_THRESHOLD_HU)


def fold_masks(ensemble: Ensemble, image: np.ndarray, progress: Progress | None = None,
               span: tuple[float, float] = (0.0, 1.0), label: str = "") -> list[np.ndarray]:
    """Each fold's label map (0 background, 1.. the card's classes) from sliding-window
    inference over the whole image."""
    x = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(ensemble.device)
    masks = []
    step = (span[1] - span[0]) / len(ensemble.nets)
    with torch.inference_mode():
        for i, net in enumerate(ensemble.nets):
            _report(progress, span[0] + i * step, f"{label}: fold {i + 1}/{len(ensemble.nets)}")
            logits = sliding_window_inference(x, ensemble.card.patch_size, sw_batch_size=4,
                                              predictor=_air_once(net), overlap=0.25,
                                              mode="gaussian")
            if logits.shape[1] == 2:  # a comparison: many times faster than argmax on the CPU
                masks.append((logits[0, 1] > logits[0, 0]).cpu().numpy().astype(np.uint8))
            else:
                masks.append(logits[0].argmax(0).cpu().numpy().astype(np.uint8))
    return masks


def _air_once(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network, but windows of pure air (all at the bottom of the HU window, such as
    the air around the neck in a 50 cm field of view) share one computed output."""
    air_output: list[torch.Tensor] = []

    def predict(windows: torch.Tensor) -> torch.Tensor:
        air = (windows == AIR_INPUT).flatten(1).all(1)
        if not air.any():
            return net(windows)
        if not air_output:
            air_output.append(net(windows[air][:1]))
        outputs = air_output[0].repeat(len(windows), *[1] * (windows.dim() - 1))
        if not air.all():
            outputs[~air] = net(windows[~air])
        return outputs

    return predict


def vote_fraction(masks: list[np.ndarray], label: int | None = None) -> np.ndarray:
    """The fraction of folds voting foreground (any class), or for one class label."""
    return np.mean([m > 0 if label is None else m == label for m in masks], axis=0,
                   dtype=np.float32)


def _to_ct_grid(fraction: np.ndarray, grid: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """Majority vote on the reference grid: interpolate the vote fraction, keep > 1/2.

    Only the reference voxels near the votes are interpolated (a 33 mm section is a small
    part of a whole CT); everywhere else the vote is 0 and stays so."""
    voted = np.zeros(reference.GetSize()[::-1], dtype=bool)
    if not fraction.any():
        return voted
    box = imaging.voxels_reached(reference, grid, imaging.bounding_box(fraction > 0))
    voted[box] = _interpolated(fraction, grid, reference[box[::-1]]) > 0.5
    return voted


def _interpolated(fraction: np.ndarray, grid: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """A vote fraction on the network's grid, linearly interpolated onto a reference grid."""
    image = sitk.GetImageFromArray(fraction.astype(np.float32))
    image.CopyInformation(grid)
    return sitk.GetArrayFromImage(imaging.resample_like(image, reference, sitk.sitkLinear))


@dataclass
class FieldOfView:
    """The patient z range over which a CT shows the neck (air padding and masks excluded)."""

    inferior_mm: float
    superior_mm: float
    edge_tolerance_mm: float  # a slice this near an end counts as at the edge

    def at_edge(self, low_mm: float, high_mm: float) -> bool:
        return (low_mm - self.inferior_mm < self.edge_tolerance_mm
                or self.superior_mm - high_mm < self.edge_tolerance_mm)


def field_of_view(net_input: NetworkInput, ct: sitk.Image) -> FieldOfView:
    """Where the stage-1 input shows the neck; an end within a slice of it is at the edge."""
    spacing = net_input.grid.GetSpacing()
    imaged = imaging.imaged_slices(net_input.body, spacing[0] * spacing[1])
    if imaged.size == 0:  # a small body (a child, a phantom): all of it is imaged
        imaged = np.flatnonzero(net_input.body.any(axis=(1, 2)))
    zs = imaging.slice_zs_mm(net_input.grid)[imaged]
    return FieldOfView(float(zs.min()), float(zs.max()),
                       max(spacing[2], ct.GetSpacing()[2]))


@dataclass
class SectionResult:
    section_mask: np.ndarray     # uint8, (k, j, i) on the CT's own grid
    c3_slice_k: int
    c3_slice_z_mm: float
    fold_slice_ks: list[int]
    warnings: list[str] = field(default_factory=list)


def centre_z_mm(mask: np.ndarray, zs_mm: np.ndarray) -> float:
    """Centre of mass along patient z of a (k, j, i) mask whose slices sit at ``zs_mm``."""
    counts = mask.reshape(mask.shape[0], -1).sum(axis=1).astype(float)
    return float((counts * zs_mm).sum() / counts.sum())


def find_c3_section(ct: sitk.Image, models: Ensemble,
                    progress: Progress | None = None) -> SectionResult:
    """Stage 1: the C3 slice of the CT, at the centre of mass of the voted section.

    The section returned is the 33 mm slab centred on that slice inside the body, as the
    training labels are defined, so that section and slice always agree; the network's own
    section is judged for the review warnings and for a field of view that misses C3.
    """
    if ct.GetSize()[2] < 2:
        raise InputError("this CT has a single slice: give the C3 slice yourself "
                         "(--slice-k 0) to measure it.")
    _report(progress, 0.0, "Finding C3: preparing the CT")
    net_input = section_network_input(ct, models.card.spacing_mm)
    input_checks.check_head_up(net_input.body, net_input.grid.GetSpacing())
    masks = fold_masks(models, net_input.image, progress, (0.05, 0.9), "Finding C3")
    masks = [m & net_input.body for m in masks]
    _report(progress, 0.9, "Finding C3: mapping the section to the CT")
    votes = vote_fraction(masks)
    voted = _to_ct_grid(votes * imaging.largest_component(votes > 0.5), net_input.grid, ct)
    zs_ct = imaging.slice_zs_mm(ct)
    in_section = np.flatnonzero(voted.any(axis=(1, 2)))
    extent_mm = _extent_mm(zs_ct, in_section)
    if extent_mm < MIN_SECTION_MM:
        raise InputError("C3 was not found in this CT: the field of view does not seem to "
                         "reach the C3 vertebra. Check the scan covers the neck from the skull "
                         "base to below C4, or give the slice with --slice-k.")
    c3_z = centre_z_mm(voted, zs_ct)
    zs_grid = imaging.slice_zs_mm(net_input.grid)
    fold_zs = [centre_z_mm(m, zs_grid) for m in masks if m.any()]
    view = field_of_view(net_input, ct)
    at_edge = view.at_edge(float(zs_ct[in_section].min()), float(zs_ct[in_section].max()))
    _check_c3_in_view(c3_z, view, at_edge, fold_zs)
    c3_k = imaging.nearest_slice_k(ct, c3_z)
    fold_ks = [imaging.nearest_slice_k(ct, z) for z in fold_zs]
    warnings = _section_warnings(extent_mm, fold_zs, len(masks), at_edge)
    _report(progress, 1.0, f"C3 slice: {c3_k}")
    return SectionResult(imaging.c3_section_mask(ct, c3_k), c3_k, imaging.slice_z_mm(ct, c3_k),
                         fold_ks, warnings)


def _check_c3_in_view(c3_z_mm: float, view: FieldOfView, at_edge: bool,
                      fold_zs_mm: list[float]) -> None:
    """Refuse a level the scan cannot show.

    Without C2 and C1 in view nothing tells C3 from C4 or C5: refused when less than
    MIN_NECK_ABOVE_C3_MM of neck is imaged above it. A section cut by the edge of the field
    of view is C3 seen in part, or C2 or C4 taken for it: refused when its centre lies within
    half a C3 body of that edge, or when the folds disagree on it by more than half a
    vertebra."""
    above_mm = view.superior_mm - c3_z_mm
    if above_mm < MIN_NECK_ABOVE_C3_MM:
        raise InputError(f"C3 could not be placed: this CT shows only {max(above_mm, 0):.0f} mm "
                         "of the neck above the level found, and C2 and C1, by which C3 is "
                         f"counted, lie {MIN_NECK_ABOVE_C3_MM:.0f}-50 mm above it, so the field "
                         "of view may not show C3. Use a scan that covers the neck from the "
                         "skull base to below C4, or give the slice with --slice-k.")
    if not at_edge:
        return
    margin_mm = min(c3_z_mm - view.inferior_mm, above_mm)
    spread_mm = max(fold_zs_mm) - min(fold_zs_mm) if fold_zs_mm else 0.0
    if margin_mm < EDGE_MARGIN_MM or spread_mm > FOLD_DISAGREEMENT_MM:
        raise InputError(f"C3 could not be placed: the C3 section found reaches the edge of "
                         f"this CT's field of view ({margin_mm:.0f} mm from its centre) and the "
                         f"folds place it {spread_mm:.0f} mm apart, so the scan may not show C3. "
                         "Use a scan that covers the neck from the skull base to below C4, or "
                         "give the slice with --slice-k.")


def _extent_mm(zs_mm: np.ndarray, slices: np.ndarray) -> float:
    if slices.size == 0:
        return 0.0
    spacing = float(np.median(np.abs(np.diff(zs_mm)))) if zs_mm.size > 1 else 0.0
    return float(abs(zs_mm[slices[-1]] - zs_mm[slices[0]])) + spacing


def _section_warnings(extent_mm: float, fold_zs: list[float], n_folds: int,
                      at_edge: bool) -> list[str]:
    """Reasons a reviewer should look at the chosen level before trusting it."""
    warnings = []
    if len(fold_zs) < n_folds:
        warnings.append(f"only {len(fold_zs)} of {n_folds} {FOLDS_MISSING_PHRASE}: "
                        "review the level.")
    if fold_zs and max(fold_zs) - min(fold_zs) > FOLD_DISAGREEMENT_MM:
        warnings.append(f"{LEVEL_DISAGREEMENT_PHRASE} by "
                        f"{max(fold_zs) - min(fold_zs):.0f} mm (more than half a vertebra): "
                        "review the level.")
    if extent_mm < THIN_SECTION_MM:
        warnings.append(f"{THIN_SECTION_PHRASE} {extent_mm:.0f} mm thick (expected "
                        f"{imaging.SECTION_THICKNESS_MM:.0f} mm): review the level.")
    if at_edge:
        warnings.append(f"{SECTION_AT_EDGE_PHRASE}: C3 may be partly "
                        "outside the field of view; review the level.")
    return warnings


def segment_muscle(ct: sitk.Image, c3_slice_k: int, models: Ensemble,
                   progress: Progress | None = None) -> np.ndarray:
    """Stage 2: skeletal muscle on slice k as (j, i) uint8 labels on the CT's own pixels
    (1 paravertebral, 2 SCM right, 3 SCM left; 1 alone for a model without groups)."""
    return segment_muscle_folds(ct, c3_slice_k, models, progress)[0]


def segment_muscle_folds(ct: sitk.Image, c3_slice_k: int, models: Ensemble,
                         progress: Progress | None = None) -> tuple[np.ndarray, float | None]:
    """Stage 2's labels and how much its folds disagree on the slice (measures.
    fold_disagreement, on the network's grid of the slice).

    A pixel is muscle when most folds say so, and takes the group most folds chose; the
    guards then keep it within -29..150 HU, inside the body and out of the spinal canal.
    """
    if not 0 <= c3_slice_k < ct.GetSize()[2]:
        raise InputError(f"slice {c3_slice_k} is outside this CT, which has slices 0 to "
                         f"{ct.GetSize()[2] - 1}.")
    net_input = muscle_network_input(ct, c3_slice_k, models.card.spacing_mm)
    masks = fold_masks(models, net_input.image, progress, (0.0, 1.0), "Segmenting muscle")
    ct_slice = ct[:, :, c3_slice_k]
    muscle = _to_ct_grid(vote_fraction(masks), net_input.grid, ct_slice).astype(np.uint8)
    if len(models.card.classes) > 1:
        muscle *= _majority_class(masks, net_input.grid, ct_slice)
    hu = sitk.GetArrayViewFromImage(ct_slice)
    muscle[~guards.allowed_muscle_pixels(hu, imaging.pixel_spacing_mm(ct))] = 0
    _report(progress, 1.0, "Muscle segmented")
    return muscle, fold_disagreement(masks)


def _majority_class(masks: list[np.ndarray], grid: sitk.Image,
                    reference: sitk.Image) -> np.ndarray:
    """Per pixel of the reference, the class most folds chose (interpolated vote fractions)."""
    fractions = [_interpolated(vote_fraction(masks, label), grid, reference)
                 for label in range(1, int(max(m.max() for m in masks)) + 1)]
    if not fractions:
        return np.zeros(reference.GetSize()[::-1], np.uint8)
    return (np.argmax(fractions, axis=0) + 1).astype(np.uint8)


@dataclass
class Prediction:
    """What a prediction or a measurement gives for one CT."""

    c3_slice_k: int
    c3_slice_z_mm: float
    measures: SarcopeniaMeasures
    muscle_slice_mask: np.ndarray          # (j, i) on slice k: 1 paravertebral, 2/3 SCM R/L
    section_mask: np.ndarray | None = None  # (k, j, i), None when stage 1 was skipped
    warnings: list[str] = field(default_factory=list)
    muscle_fold_disagreement: float | None = None  # None: a given mask, or a single fold

    def as_dict(self) -> dict:
        return {"c3_slice_k": self.c3_slice_k, "c3_slice_z_mm": self.c3_slice_z_mm,
                **self.measures.as_dict(),
                "muscle_fold_disagreement": self.muscle_fold_disagreement,
                "warnings": list(self.warnings)}


def measure_on_slice(ct: sitk.Image, slice_k: int, muscle_slice_mask: np.ndarray,
                     clinical: ClinicalInfo, section_mask: np.ndarray | None = None,
                     warnings: list[str] | None = None, scm_nodal: str | None = None,
                     muscle_fold_disagreement: float | None = None) -> Prediction:
    """Measures of a muscle mask on slice k, with the pixel area of the CT's own grid;
    ``scm_nodal`` ('right' or 'left') applies the Chargi rule for an SCM lost in nodes."""
    hu = sitk.GetArrayViewFromImage(ct)[slice_k]
    measures = measure_slice(hu, muscle_slice_mask, imaging.pixel_spacing_mm(ct), clinical,
                             scm_nodal)
    warnings = (imaging.reading_warnings(ct) + list(warnings or [])
                + ([chargi_warning(scm_nodal)] if scm_nodal else [])
                + fold_disagreement_warning(muscle_fold_disagreement)
                + implausibility_warnings(measures))
    return Prediction(slice_k, imaging.slice_z_mm(ct, slice_k), measures, muscle_slice_mask,
                      section_mask, warnings, muscle_fold_disagreement)


def predict(ct: sitk.Image, clinical: ClinicalInfo, muscle_models: Ensemble,
            section_models: Ensemble | None = None, slice_k: int | None = None,
            progress: Progress | None = None, scm_nodal: str | None = None) -> Prediction:
    """Both stages and the measures; with ``slice_k`` the user's slice replaces stage 1."""
    warnings = []
    section = None
    if slice_k is None:
        if section_models is None:
            raise InputError("no C3 slice given and no section model to find it.")
        found = find_c3_section(ct, section_models,
                                lambda f, m: _report(progress, 0.8 * f, m))
        slice_k, section, warnings = found.c3_slice_k, found.section_mask, found.warnings
    used = [muscle_models] + ([section_models] if section is not None else [])
    if any(models.card.synthetic for models in used):
        warnings.append(SYNTHETIC_MODELS_WARNING)
    muscle, disagreement = segment_muscle_folds(
        ct, slice_k, muscle_models, lambda f, m: _report(progress, 0.8 + 0.2 * f, m))
    return measure_on_slice(ct, slice_k, muscle, clinical, section, warnings, scm_nodal,
                            disagreement)
