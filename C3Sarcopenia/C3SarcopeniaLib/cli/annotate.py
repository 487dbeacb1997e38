"""Sub-commands for reading C3 muscle by region picking: sheets, drawing, checking, consensus,
and the model read as one more reader."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..errors import InputError
from ..fileio import check_output_file, check_output_folder, remove_outputs
from ..cohort.levels import DEFAULT_CT_PATTERN, CtLocator, read_levels
from .core import add_model_arguments, load_stage_models


def register(subparsers) -> None:
    sheets = subparsers.add_parser(
        "muscle-sheets", help="annotation sheets of numbered regions on each case's C3 slice",
        description="Per case: the C3 slice (the levels file's middle slice) zoomed on the neck "
                    "in soft-tissue and bone windows, its neighbours, and the -29..150 HU pixels "
                    "inside the body split into numbered regions of about 1 cm². A reader lists "
                    "region numbers per muscle group in a readings CSV.")
    sheets.add_argument("source", help="a folder of CTs named by --ct-pattern, or a manifest "
                                       ".csv with case_id and ct columns")
    sheets.add_argument("--levels", required=True, help="C3 levels CSV (case, c3_top_z_index, "
                                                        "c3_bottom_z_index, c3_mid_z_index, ...)")
    sheets.add_argument("--ct-pattern", default=DEFAULT_CT_PATTERN,
                        help=f"CT file name in the folder, with {{case}} (default "
                             f"{DEFAULT_CT_PATTERN})")
    sheets.add_argument("--out", required=True, help="folder for sheets, regions and index.html")
    sheets.set_defaults(handler=run_sheets)

    draw = subparsers.add_parser(
        "muscle-draw", help="draw a reader's picks with their CSA, to check them",
        description="Each reading of the CSV (or only --case) drawn on its sheet: red "
                    "paravertebral, green SCM right, blue SCM left, with the CSA per group.")
    draw.add_argument("readings", help="the reader's readings CSV")
    draw.add_argument("--sheets", required=True, help="the muscle-sheets folder")
    draw.add_argument("--case", action="append", help="only this case (repeatable)")
    draw.add_argument("--out", required=True, help="folder for the drawings")
    draw.set_defaults(handler=run_draw)

    check = subparsers.add_parser("muscle-check", help="validate readings CSVs against sheets")
    check.add_argument("readings", nargs="+", help="readings CSVs (one per reader)")
    check.add_argument("--sheets", required=True, help="the muscle-sheets folder")
    check.set_defaults(handler=run_check)

    consensus = subparsers.add_parser(
        "muscle-consensus", help="majority of readers per region -> label masks and manifest",
        description="Per case, each region takes the group that more than half of its readers "
                    "gave it (ties are left out). Writes <case>_muscle_labels.nii.gz on the CT "
                    "grid (0 background, 1 paravertebral, 2 SCM right, 3 SCM left), manifest.csv "
                    "for 'train --stage muscle' and 'evaluate', and agreement.csv with the "
                    "readers' DSC and CSA per case.")
    consensus.add_argument("readings", nargs="+", help="readings CSVs (one per reader)")
    consensus.add_argument("--sheets", required=True, help="the muscle-sheets folder")
    consensus.add_argument("--min-readers", type=int, default=2,
                           help="cases read by fewer readers are left out (default 2)")
    _add_cases_from(consensus)
    consensus.add_argument("--out", required=True, help="folder for masks and manifest")
    consensus.set_defaults(handler=run_consensus)
    _register_model_reader(subparsers)


def _add_cases_from(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases-from", metavar="CSV",
                        help="only the cases listed in this CSV (column case or case_id), "
                             "to keep a training, validation or test split apart")


def _register_model_reader(subparsers) -> None:
    pick = subparsers.add_parser(
        "muscle-pick", help="the model's muscle on each sheet, as a reader's pick",
        description="Runs stage 2 on each sheet's slice and gives every region the group "
                    "most of its pixels carry in the model's outline: a readings CSV (the "
                    "reader is the file's name) for an annotator to correct with muscle-draw, "
                    "or for muscle-agreement to set the model beside the readers. Measures "
                    "come from the pixel outline (predict), not from this pick. "
                    "muscle-consensus refuses its rows while their notes still begin with "
                    "the model's mark, so that a blind consensus stays blind.")
    pick.add_argument("--sheets", required=True, help="the muscle-sheets folder")
    _add_cases_from(pick)
    add_model_arguments(pick)
    pick.add_argument("--out", required=True, help="the readings CSV to write, e.g. model.csv")
    pick.set_defaults(handler=run_pick)

    agree = subparsers.add_parser(
        "muscle-agreement", help="one reader (or the model's pick) against the other readers",
        description="Per case read by READER and at least two others: READER's DSC with each "
                    "other reader beside the others' DSC with each other (whole C3 muscle, "
                    "CT grid). Vets a new annotator, or the model read as a third reader.")
    agree.add_argument("readings", nargs="+", help="readings CSVs (one per reader)")
    agree.add_argument("--sheets", required=True, help="the muscle-sheets folder")
    agree.add_argument("--reader", required=True,
                       help="the reader to compare: a readings file's name without .csv")
    _add_cases_from(agree)
    agree.add_argument("--out", help="CSV of the per-case figures")
    agree.set_defaults(handler=run_agreement)


def run_sheets(args: argparse.Namespace) -> int:
    from ..annotate import make_sheets

    remove_outputs(check_output_folder(args.out), ("index.html",))  # written last
    levels = read_levels(args.levels)
    locate = _locator(Path(args.source), args.ct_pattern)
    out = Path(args.out)
    written = make_sheets.write_sheets(
        [(level.case, locate(level), level.middle_k) for level in levels], out,
        progress=lambda cases: tqdm(cases, desc="muscle sheets", unit="case", file=sys.stderr))
    print(f"{written} sheets: {out / 'index.html'}")
    return 0


def _locator(source: Path, pattern: str):
    """The CT of a case: from a manifest's ct column, or the folder and pattern."""
    if source.is_file() and source.suffix.lower() == ".csv":
        from ..training import read_manifest

        cts = {row["case_id"]: Path(row["ct"]) for row in read_manifest(source)}

        def from_manifest(level):
            if level.case not in cts:
                raise InputError(f"case {level.case} of the levels file is not in {source}.")
            return cts[level.case]
        return from_manifest
    if not source.is_dir():
        raise InputError(f"{source} is neither a folder of CTs nor a manifest .csv.")
    return CtLocator(source, pattern)


def run_draw(args: argparse.Namespace) -> int:
    from ..annotate import readings as rd
    from ..annotate import sheets as sh
    from ..annotate.regions import load_sheets

    check_output_folder(args.out)
    chosen = [r for r in rd.read_readings(args.readings) if not args.case or r.case in args.case]
    if not chosen:
        raise InputError("no reading to draw: check --case against the readings CSV.")
    sheets = load_sheets(args.sheets, {r.case for r in chosen})
    out = Path(args.out)
    failed = 0
    for reading in chosen:
        problems = rd.reading_problems(reading, sheets.get(reading.case))
        if problems:
            failed += 1
            print(f"{reading.case}: " + "; ".join(problems), file=sys.stderr)
            continue
        sheet = sheets[reading.case]
        labels = rd.slice_labels(sheet, reading.regions)
        csa = rd.group_and_total_csa_cm2(labels, sheet.view.pixel_spacing_mm)
        path = out / f"{reading.case}.{reading.reader}.png"
        sh.draw_pick(sheet, reading.regions, csa, path,
                     f"reader {reading.reader} ({reading.confidence})")
        print(f"{reading.case}: total {csa['total']:.1f} cm² -> {path}")
    return 2 if failed else 0


def _valid_readings(paths: list[str], sheets: dict) -> dict[str, list]:
    """Each readings CSV, read and checked against the sheets (refused with every problem)."""
    from ..annotate import readings as rd

    checked = {}
    for path in paths:
        checked[path] = rd.read_readings(path)
        rd.validate(checked[path], sheets)
    return checked


def run_check(args: argparse.Namespace) -> int:
    from ..annotate.regions import load_sheets

    for path, readings in _valid_readings(args.readings, load_sheets(args.sheets)).items():
        print(f"{path}: {len(readings)} readings, all valid")
    return 0


def run_consensus(args: argparse.Namespace) -> int:
    from ..annotate import consensus
    from ..annotate.model_reading import MODEL_PICK_NOTE
    from ..annotate.regions import load_sheets

    remove_outputs(check_output_folder(args.out), ("manifest.csv", "agreement.csv"))
    sheets = load_sheets(args.sheets)
    all_readings = [reading for readings in _valid_readings(args.readings, sheets).values()
                    for reading in readings]
    all_readings = _listed_only(all_readings, args.cases_from)
    from_model = sorted({r.reader for r in all_readings if r.notes.startswith(MODEL_PICK_NOTE)})
    if from_model:
        raise InputError(f"the readings of {', '.join(from_model)} are the model's picks "
                         "(muscle-pick): a consensus of blind readers must not include them. "
                         "Leave that file out, or have an annotator correct each pick and "
                         "rewrite its notes.")
    summary = consensus.write_consensus(all_readings, sheets, Path(args.out), args.min_readers)
    print(summary)
    return 0


def run_pick(args: argparse.Namespace) -> int:
    from ..annotate.model_reading import model_reading
    from ..annotate.readings import write_readings
    from ..annotate.regions import load_sheets

    out = check_output_file(args.out)
    wanted = _listed_cases(Path(args.cases_from)) if args.cases_from else None
    sheets = load_sheets(args.sheets, wanted)
    if not sheets:
        raise InputError(f"no sheet of {args.sheets} is among the cases of --cases-from.")
    models = load_stage_models(args, "muscle")
    readings = [model_reading(sheet, models, out.stem)
                for sheet in tqdm(sheets.values(), desc="muscle picks", unit="case",
                                  file=sys.stderr)]
    write_readings(out, readings)
    low = [r.case for r in readings if r.confidence != "high"]
    print(f"{len(readings)} picks by {out.stem}: {out}"
          + (f"; to check first (folds disagree or no muscle): {', '.join(low)}" if low else ""))
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    from ..annotate import model_reading as mr
    from ..annotate.regions import load_sheets
    from ..fileio import write_csv_atomic

    out = check_output_file(args.out) if args.out else None
    names = [Path(path).stem for path in args.readings]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"two readings files are named {', '.join(twice)}: a reader is named "
                         "by the file, so rename one of them.")
    sheets = load_sheets(args.sheets)
    readings = _listed_only([r for rs in _valid_readings(args.readings, sheets).values()
                             for r in rs], args.cases_from)
    comparisons = mr.compare_reader(readings, sheets, args.reader)
    if out:
        write_csv_atomic(out, mr.COMPARISON_COLUMNS, mr.comparison_rows(comparisons))
    print(mr.comparison_summary(args.reader, comparisons))
    return 0


def _listed_only(readings: list, cases_from: str | None) -> list:
    """The readings of the cases --cases-from lists (all without it)."""
    if not cases_from:
        return readings
    wanted = _listed_cases(Path(cases_from))
    return [r for r in readings if r.case in wanted]


def _listed_cases(path: Path) -> set[str]:
    """The case names in a CSV's case (or case_id) column."""
    import csv

    if not path.is_file():
        raise InputError(f"{path} does not exist: give a CSV listing the cases to keep.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        column = next((c for c in ("case", "case_id") if c in (reader.fieldnames or [])), None)
        if column is None:
            raise InputError(f"{path} has no 'case' or 'case_id' column.")
        return {row[column].strip() for row in reader}
