"""Sub-commands for C3 level annotations: check a levels CSV against its CTs, and turn it into
stage-1 training labels (or a test manifest for evaluate)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..fileio import check_output_folder, remove_outputs

FORMAT_HELP = ("The CSV has the columns case, c3_top_z_index, c3_bottom_z_index, c3_mid_z_index, "
               "confidence (high, medium or low) and notes, optionally annotator and ct (the CT's "
               "path, relative to the CSV's folder). Indices count from 0 along the CT's third "
               "voxel axis; top and bottom are the first and last slice of the C3 vertebral body.")


def register(subparsers) -> None:
    _add_check_levels(subparsers)
    _add_ingest_levels(subparsers)


def _add_ct_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cohort.levels import DEFAULT_CT_PATTERN

    parser.add_argument("csv", type=Path, metavar="CSV", help="C3 levels CSV")
    parser.add_argument("--ct-dir", type=Path, metavar="DIR",
                        help="folder of the CTs, for rows with an empty ct column")
    parser.add_argument("--ct-pattern", default=DEFAULT_CT_PATTERN, metavar="P",
                        help=f"CT file name in --ct-dir (default: {DEFAULT_CT_PATTERN})")


def _add_check_levels(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-levels", help="check a C3 levels CSV against its CTs",
        description="List what is wrong with each case of a C3 levels CSV: CT missing or "
                    "unreadable, indices outside the CT, a middle slice outside the body, a body "
                    "height no C3 has (about 8-30 mm), a case listed twice, an unknown "
                    "confidence. Exit status 2 when there is a problem. " + FORMAT_HELP)
    _add_ct_arguments(parser)
    parser.set_defaults(handler=run_check_levels)


def run_check_levels(args: argparse.Namespace) -> int:
    from ..cohort.levels import CtLocator, check_levels, problem_lines, read_levels, summary

    levels = read_levels(args.csv)
    problems = check_levels(levels, CtLocator(args.ct_dir, args.ct_pattern))
    for line in problem_lines(problems):
        print(line)
    if problems:
        print(f"{args.csv}: problems in {len(problems)} of {len(levels)} cases")
        return 2
    print(f"{args.csv}: {summary(levels)}, all valid")
    return 0


def _add_ingest_levels(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest-levels", help="C3 levels CSV -> C3 section labels and manifest.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check the levels (as check-levels), then write for each case\n"
                    "DIR/<case>_section.nii.gz (the 33 mm C3 section inside the body, centred\n"
                    "on the C3 body's middle slice, on the CT's grid) and DIR/manifest.csv, which\n"
                    "'train --stage section' trains on and 'evaluate' scores (stage 1 only:\n"
                    "chosen slice inside the C3 body, error to the body's middle).",
        epilog="Keep the test set out of training with --exclude. Example:\n"
               "  c3sarcopenia ingest-levels my_levels.csv --ct-dir cts --out train_levels \\\n"
               "      --exclude ../shared/data/openkbp/c3_levels_by_eye.csv")
    _add_ct_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for the labels and manifest.csv")
    parser.add_argument("--exclude", type=Path, nargs="+", action="extend", default=[],
                        metavar="CSV",
                        help="levels CSV(s) whose cases are left out (a test set)")
    parser.set_defaults(handler=run_ingest_levels)


def run_ingest_levels(args: argparse.Namespace) -> int:
    from ..cohort.levels import (CtLocator, LevelProblems, exclude_cases, ingest_levels, problem_lines,
                         read_levels, summary)

    remove_outputs(check_output_folder(args.out), ("manifest.csv",))  # written last
    levels = read_levels(args.csv)
    kept = exclude_cases(levels, args.exclude)
    if args.exclude:
        print(f"Left out {len(levels) - len(kept)} of {len(levels)} cases listed in "
              f"{', '.join(str(p) for p in args.exclude)}")
    try:
        manifest = ingest_levels(kept, CtLocator(args.ct_dir, args.ct_pattern), args.out,
                                 lambda i, n, case: print(f"[{i + 1}/{n}] {case}",
                                                          file=sys.stderr))
    except LevelProblems as problems:
        for line in problem_lines(problems.problems):
            print(line)
        print(f"c3sarcopenia: error: {problems}", file=sys.stderr)
        return 2
    print(f"Ingested {summary(kept)}")
    print(f"Wrote    {len(kept)} section labels and {manifest}")
    return 0
