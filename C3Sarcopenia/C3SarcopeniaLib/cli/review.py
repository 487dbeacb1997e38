"""The review sub-commands: ``review`` sheets for reading or checking the C3 level by eye,
and ``batch-report``, the review report of a batch run's results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core import add_model_arguments, load_stage_models
from ..errors import InputError
from ..fileio import check_output_file, check_output_folder, remove_outputs, staged_outputs

INDEX = "index.html"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "review", help="review sheets (PNG + HTML index) of the C3 level, per CT",
        description="For each CT: a sagittal view straightened along the cervical spine with "
                    "the CT's slice indices as gridlines, a bone-intensity profile (discs show "
                    "as dips), the predicted C3 section and slice, and the axial slice at that "
                    "level. Read the C3 body's top and bottom slice from it for a level CSV.")
    parser.add_argument("source", help="a folder of CTs (files or DICOM series folders) or a "
                                       "manifest .csv")
    parser.add_argument("--out", required=True, help="folder for the sheets and index.html")
    add_model_arguments(parser)
    parser.add_argument("--no-predict", action="store_true",
                        help="draw no prediction (for annotating without being led by the "
                             "model)")
    parser.add_argument("--levels", default=None,
                        help="a C3 levels CSV whose C3 body extents are drawn (green dashed), "
                             "to check annotations")
    parser.set_defaults(handler=run_review)
    _add_batch_report(subparsers)


def _add_batch_report(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch-report",
        help="(re)build the review report (NAME_report.html) of a batch CSV NAME.csv",
        description="The page batch writes at the end of each run: one row per case with "
                    "its C3 slice, CSA, SMI, status, warnings, error and review priority, "
                    "sortable and filterable, where a reviewer marks each case accept or "
                    "needs correction and saves the marks to a CSV. Opens from the disk, "
                    "no server.")
    parser.add_argument("batch_csv", metavar="CSV", help="the results CSV of a batch run")
    parser.add_argument("--save-dir", type=Path, metavar="DIR",
                        help="the batch's --save-dir: each case's thumbnail comes from there")
    parser.add_argument("--review-marks", metavar="CSV",
                        help="marks saved from an earlier report, to resume a review")
    parser.add_argument("--out", metavar="HTML",
                        help="where to write the page (default: NAME_report.html beside NAME.csv)")
    parser.set_defaults(handler=run_batch_report)


def run_batch_report(args: argparse.Namespace) -> int:
    from ..cohort.report_page import report_path
    from ..cohort.review_marks import read_review_marks
    from .cohort import write_review_report

    check_output_file(args.out or report_path(args.batch_csv),
                      "--out" if args.out else "the review report beside CSV")
    marks = read_review_marks(args.review_marks) if args.review_marks else None
    write_review_report(args.batch_csv, args.save_dir, marks, args.out)
    return 0


def run_review(args: argparse.Namespace) -> int:
    """The sheets and index.html are written into a staging folder switched in at the end:
    an interrupted review leaves neither half of them nor the previous index."""
    from tqdm import tqdm

    from ..cohort.batch import find_cases
    from ..cohort.levels import read_levels
    from ..cohort.review import write_index

    out = check_output_folder(args.out)
    remove_outputs(out, (INDEX,))
    cases = find_cases(args.source)
    annotated = ({level.case: level for level in read_levels(args.levels)}
                 if args.levels else {})
    section_models = None if args.no_predict else load_stage_models(args, "section")
    sheets = []
    with staged_outputs(out, (INDEX, *(f"{case.case_id}.png" for case in cases))) as staging:
        for case in tqdm(cases, desc="review sheets", unit="CT", file=sys.stderr):
            summary = _write_sheet(case, annotated.get(case.case_id), section_models,
                                   staging / f"{case.case_id}.png")
            sheets.append((case.case_id, f"{case.case_id}.png", summary))
        write_index(sheets, staging / INDEX)
    print(f"{len(sheets)} review sheets: {out / INDEX}")
    return 0


def _write_sheet(case, level, section_models, path: Path) -> str:
    """One CT's review sheet; returns its line for the index."""
    import numpy as np

    from .. import imaging, pipeline
    from ..cohort import review

    ct = imaging.read_ct(case.path)
    body_ks = (level.top_k, level.bottom_k) if level is not None and level.has_body else None
    middle_k = level.middle_k if level is not None else None
    marks = review.LevelMarks(body_ks=body_ks, body_middle_k=middle_k)
    summary = "no prediction drawn"
    if section_models is not None:
        try:
            found = pipeline.find_c3_section(ct, section_models)
            section_ks = np.flatnonzero(found.section_mask.any(axis=(1, 2)))
            marks = review.LevelMarks(found.c3_slice_k,
                                      (int(section_ks[0]), int(section_ks[-1])), body_ks,
                                      middle_k)
            summary = f"predicted C3 slice k={found.c3_slice_k}; " + " ".join(found.warnings)
        except InputError as error:
            summary = f"no C3 level: {error}"
    if level is not None:
        summary += f"; annotated C3 body {level.top_k}-{level.bottom_k} ({level.confidence})"
    review.write_review_sheet(ct, path, case.case_id, marks)
    return summary
