"""Sub-commands for one CT: predict, measure, demo, and the phantom maker."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..fileio import check_output_folder
from ..measures import ClinicalInfo, parse_sex
from ..report import remove_result, write_prediction
from ..sample_data import SAMPLE_CLINICAL, SAMPLE_CT, SAMPLE_TRUE_C3_SLICE_K

if TYPE_CHECKING:
    import SimpleITK as sitk


def register(subparsers) -> None:
    _add_predict(subparsers)
    _add_measure(subparsers)
    _add_demo(subparsers)
    _add_phantom(subparsers)


def add_clinical_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "clinical fields (needed for L3 CSA, SMI and status; read from DICOM tags when "
        "present, these flags win)")
    group.add_argument("--age", type=float, help="age in years")
    group.add_argument("--sex", help="M or F")
    group.add_argument("--height-cm", type=float, help="height in centimetres (not metres)")
    group.add_argument("--weight-kg", type=float, help="body weight in kilograms")
    group.add_argument("--scm-nodal", choices=["right", "left"],
                       help="this SCM cannot be delineated (engulfed by nodes): count the other "
                            "SCM twice (Chargi et al.); needs a mask with muscle groups")


def clinical_from_args(args: argparse.Namespace, ct_path: str | Path) -> ClinicalInfo:
    from .. import imaging

    tags = imaging.read_clinical_tags(ct_path)
    return ClinicalInfo(
        age_years=args.age if args.age is not None else tags.age_years,
        sex=parse_sex(args.sex) if args.sex is not None else tags.sex,
        height_cm=args.height_cm if args.height_cm is not None else tags.height_cm,
        weight_kg=args.weight_kg if args.weight_kg is not None else tags.weight_kg)


class ProgressPrinter:
    """Prints a step on stderr when its message changes: enough to see a long run move."""

    def __init__(self) -> None:
        self._last = ""

    def __call__(self, fraction: float, message: str) -> None:
        if message != self._last:
            print(f"[{100 * fraction:3.0f}%] {message}", file=sys.stderr, flush=True)
            self._last = message


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="find C3, segment muscle and measure it",
        description="Find the C3 slice (stage 1), segment skeletal muscle on it (stage 2) and "
                    "write result.json, muscle.nii.gz, c3_section.nii.gz and overlay.png.")
    parser.add_argument("ct", help="CT: NIfTI, NRRD, MHA, a DICOM series folder or one DICOM "
                                   "slice")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--slice-k", type=int,
                        help="use this slice (index along the CT's third axis) and skip stage 1")
    add_model_arguments(parser)
    add_clinical_arguments(parser)
    parser.set_defaults(handler=run_predict)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path,
                        help="folder with section/ and muscle/ model folders "
                             "(default: the shipped models)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the networks run (default: a CUDA GPU when present)")
    parser.add_argument("--folds", type=int, help="use only the first N folds of each ensemble")


def command_line() -> str:
    """The command as typed, for model cards (empty when called from Python)."""
    return "c3sarcopenia " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""


def load_stage_models(args: argparse.Namespace, stage: str):
    from ..models import default_models_dir, load_ensemble

    root = args.models or default_models_dir()
    return load_ensemble(root / stage, args.device, args.folds)


def prepare_result_folder(out: str | Path) -> Path:
    """Before any work: the folder must be writable, and the previous result goes, so that
    a run refused or failing half-way leaves no older result that reads as this CT's."""
    out = check_output_folder(out)
    remove_result(out)
    return out


def dicom_writer_for(ct_path: str | Path, ct: sitk.Image, automatic: bool = True):
    """The DICOM SEG and SR writer (dicomout.dicom_results_writer) for a DICOM CT; None for
    another input."""
    from ..dicomout import dicom_results_writer
    from ..dicomout.source import is_dicom_input

    return dicom_results_writer(ct_path, ct, automatic) if is_dicom_input(ct_path) else None


def run_predict(args: argparse.Namespace) -> int:
    from .. import imaging

    prepare_result_folder(args.out)
    ct = imaging.read_ct(args.ct)
    dicom_writer = dicom_writer_for(args.ct, ct)
    clinical = clinical_from_args(args, args.ct)
    if args.slice_k is None and ct.GetSize()[2] == 1:
        raise InputError(f"{args.ct} is a single slice: give --slice-k 0 to measure it "
                         "(stage 1 needs a volume).")
    from ..pipeline import predict  # torch: only once the inputs passed their checks

    section_models = None if args.slice_k is not None else load_stage_models(args, "section")
    prediction = predict(ct, clinical, load_stage_models(args, "muscle"), section_models,
                         args.slice_k, ProgressPrinter(), args.scm_nodal)
    result = write_prediction(args.out, ct, prediction, dicom_writer)
    print_result(result, Path(args.out))
    return 0


def print_result(result: dict, out_dir: Path) -> None:
    def fmt(value, digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}"

    print(f"C3 slice        k={result['c3_slice_k']} (z = {result['c3_slice_z_mm']:.1f} mm)")
    print(f"Muscle CSA      {fmt(result['muscle_csa_cm2'], 2)} cm^2")
    if result.get("paravertebral_csa_cm2") is not None:
        print(f"  paravertebral {fmt(result['paravertebral_csa_cm2'], 2)} cm^2, SCM right "
              f"{fmt(result['scm_right_csa_cm2'], 2)}, SCM left {fmt(result['scm_left_csa_cm2'], 2)}")
    print(f"Muscle mean HU  {fmt(result['muscle_mean_hu'])}")
    print(f"L3 CSA          {fmt(result['l3_csa_cm2'])} cm^2")
    print(f"SMI             {fmt(result['smi_cm2_m2'])} cm^2/m^2")
    print(f"Status          {result['muscle_status'] or 'n/a (give age, sex, height, weight)'}")
    if result.get("muscle_fold_disagreement") is not None:
        print(f"Fold disagreement {result['muscle_fold_disagreement']:.2f} on the muscle "
              "(0: every fold drew the same)")
    for warning in result["warnings"]:
        print(f"Warning: {warning}")
    print(f"Overlay         {out_dir / 'overlay.png'}")


def _add_measure(subparsers) -> None:
    parser = subparsers.add_parser(
        "measure", help="measure an existing muscle segmentation",
        description="Measure CSA, mean HU, L3 CSA, SMI and status from a muscle mask (NIfTI, "
                    "NRRD, MHA on the CT's grid) or a sliceOmatic .tag file.")
    parser.add_argument("--ct", required=True, help="CT volume, folder or single DICOM slice")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mask", help="muscle mask on the CT's grid")
    source.add_argument("--tag", help="sliceOmatic .tag file of the CT slice")
    parser.add_argument("--tag-values", type=int, nargs="+", default=[1],
                        help="tag labels that are skeletal muscle (default: 1)")
    parser.add_argument("--slice-k", type=int,
                        help="slice to measure (needed when the mask covers several slices)")
    parser.add_argument("--out", required=True, help="output folder")
    add_clinical_arguments(parser)
    parser.set_defaults(handler=run_measure)


def muscle_slice_from_mask(mask: np.ndarray, slice_k: int | None) -> tuple[int, np.ndarray]:
    """The slice to measure: the one given, or the only slice the mask touches."""
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if slices.size == 0:
        raise InputError("the muscle mask is empty: check that the right file was given.")
    if slice_k is None:
        if slices.size > 1:
            raise InputError(f"the mask covers {slices.size} slices ({slices[0]} to "
                             f"{slices[-1]}): give the C3 slice with --slice-k.")
        slice_k = int(slices[0])
    if not 0 <= slice_k < mask.shape[0]:
        raise InputError(f"slice {slice_k} is outside this CT (slices 0 to {mask.shape[0] - 1}).")
    return slice_k, mask[slice_k]


def run_measure(args: argparse.Namespace) -> int:
    from .. import imaging

    prepare_result_folder(args.out)
    ct = imaging.read_ct(args.ct)
    clinical = clinical_from_args(args, args.ct)
    if args.tag:
        from ..tagfile import tag_mask_for_image

        mask = tag_mask_for_image(args.tag, ct, tuple(args.tag_values))
    else:
        mask = imaging.read_mask(args.mask, ct)
    slice_k, muscle = muscle_slice_from_mask(mask, args.slice_k)
    from ..pipeline import measure_on_slice  # torch: only once the inputs passed their checks

    prediction = measure_on_slice(ct, slice_k, muscle, clinical, scm_nodal=args.scm_nodal)
    dicom_writer = dicom_writer_for(args.ct, ct, automatic=False)
    print_result(write_prediction(args.out, ct, prediction, dicom_writer), Path(args.out))
    return 0


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run predict with the shipped models on the shipped sample CT",
        description="Runs 'predict' on the shipped sample neck CT (a synthetic phantom, unlike "
                    "the training ones) with the shipped models, and prints the figures.")
    parser.add_argument("--out", default="demo_output", help="output folder (default: "
                                                             "demo_output)")
    add_model_arguments(parser)
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if not SAMPLE_CT.is_file():
        raise InputError(f"the sample CT {SAMPLE_CT} is missing: reinstall C3Sarcopenia.")
    print(f"Sample CT: {SAMPLE_CT} (synthetic phantom; clinical fields {SAMPLE_CLINICAL}; "
          f"its true C3 slice is k={SAMPLE_TRUE_C3_SLICE_K})")
    args.ct, args.slice_k = str(SAMPLE_CT), None
    args.age, args.sex = SAMPLE_CLINICAL["age"], SAMPLE_CLINICAL["sex"]
    args.height_cm, args.weight_kg = SAMPLE_CLINICAL["height_cm"], SAMPLE_CLINICAL["weight_kg"]
    args.scm_nodal = None
    return run_predict(args)


def _add_phantom(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom", help="write synthetic neck CT phantoms with their labels",
        description="Write N synthetic neck CTs with C3 section, muscle masks and clinical "
                    "fields, and DIR/manifest.csv. The same seed gives the same files.")
    parser.add_argument("--n", type=int, required=True, help="number of phantoms")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--in-plane-mm", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="range of the in-plane pixel size (default 0.5 1.2; the muscle "
                             "stage was taught with 0.4 4.7, the span of real neck CTs)")
    parser.add_argument("--c3-slab-mm", type=float,
                        help="draw only this far above and below C3: enough for the muscle "
                             "stage, many times faster (no C1-C2 to find C3 by: not for stage 1)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(handler=run_phantom)


def run_phantom(args: argparse.Namespace) -> int:
    from ..phantoms.phantom import PhantomOptions, write_phantom_cohort

    if args.n < 1:
        raise InputError("--n must be at least 1.")
    check_output_folder(args.out)
    options = PhantomOptions(c3_slab_mm=args.c3_slab_mm)
    if args.c3_slab_mm is not None and not 10 <= args.c3_slab_mm <= 100:
        raise InputError("--c3-slab-mm must be between 10 and 100 mm.")
    if args.in_plane_mm:
        low, high = args.in_plane_mm
        if not 0.1 <= low <= high <= 10:
            raise InputError("--in-plane-mm takes LOW HIGH in mm with 0.1 <= LOW <= HIGH <= 10.")
        options.in_plane_mm = (low, high)
    manifest = write_phantom_cohort(
        args.n, args.seed, args.out, options,
        progress=lambda done, total: print(f"phantom {done}/{total}", file=sys.stderr))
    print(f"Wrote {args.n} phantoms and {manifest}")
    return 0
