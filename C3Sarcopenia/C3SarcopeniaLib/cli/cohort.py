"""Sub-commands for a cohort: ingest an archive, measure a batch, evaluate against manual
labels, and survival by muscle status from a clinical table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core import add_model_arguments, command_line, load_stage_models
from ..errors import InputError
from ..fileio import check_output_file, check_output_folder, remove_outputs
from ..measures import SMI_CUTOFF_CM2_M2

# What ingest writes last: a failed or interrupted ingest must leave neither, nor old ones.
INGEST_TABLES = ("manifest.csv", "ingest_report.csv")


def register(subparsers) -> None:
    _add_ingest(subparsers)
    _add_batch(subparsers)
    _add_evaluate(subparsers)
    _add_survival(subparsers)


def _add_ingest(subparsers) -> None:
    from ..cohort.ingest import ClinicalColumns

    defaults = ClinicalColumns()
    parser = subparsers.add_parser(
        "ingest", help="build a cohort (manifest.csv) from DICOM series, segmented slices "
                       "and a clinical table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="ROOT holds one folder per patient (named by its patient id) with the CT\n"
                    "series (DICOM) and the single slice a reader segmented: X.dcm with its\n"
                    "sliceOmatic tag X.dcm.tag beside it (or a label image X.nii.gz). The slice\n"
                    "is found in the series by position and confirmed by pixels. Writes per\n"
                    "patient ct.nii.gz, muscle.nii.gz and section.nii.gz (the 33 mm C3 section),\n"
                    "DIR/manifest.csv for train, evaluate and batch, and DIR/ingest_report.csv\n"
                    "with every patient left out and why.",
        epilog="Column defaults are the TCIA HNSCC table's; give '' for a column the table\n"
               "lacks. Example:\n"
               "  c3sarcopenia ingest archive/ --clinical hnscc_clinical.csv --out cohort \\\n"
               "      --time-column \"Survival  (months)\" \\\n"
               "      --event-column \"Overall Survival Censor\"")
    parser.add_argument("root", help="folder with one sub-folder per patient")
    parser.add_argument("--clinical", required=True, metavar="CSV",
                        help="clinical table, one patient per row")
    parser.add_argument("--out", required=True, metavar="DIR", help="cohort folder to write")
    parser.add_argument("--id-column", metavar="COL",
                        help="patient id, matching the folder names (default: first column)")
    for role, what in (("age", "age in years"), ("sex", "sex (Male/Female or M/F)"),
                       ("height_cm", "height in centimetres"), ("weight_kg", "weight in kg")):
        parser.add_argument(f"--{role.split('_')[0]}-column", dest=role, metavar="COL",
                            default=getattr(defaults, role),
                            help=f"{what} (default: {getattr(defaults, role)!r})")
    parser.add_argument("--time-column", metavar="COL",
                        help="survival time, copied to the manifest as survival_time")
    parser.add_argument("--event-column", metavar="COL",
                        help="death (1/Dead) or censored (0/Alive), copied as event")
    parser.add_argument("--tag-values", type=int, nargs="+", default=[1], metavar="LABEL",
                        help="labels that are skeletal muscle (default: 1)")
    parser.add_argument("--review-marks", metavar="CSV",
                        help="a review report's marks: each patient's mark goes into the "
                             "manifest's review column, and train and evaluate leave out "
                             "those marked needs_correction")
    parser.set_defaults(handler=run_ingest)


def run_ingest(args: argparse.Namespace) -> int:
    remove_outputs(check_output_folder(args.out), INGEST_TABLES)
    from ..cohort.ingest import ClinicalColumns, ingest_cohort
    from ..cohort.review_marks import read_review_marks

    marks = read_review_marks(args.review_marks) if args.review_marks else None

    columns = ClinicalColumns(args.id_column, args.age, args.sex, args.height_cm,
                              args.weight_kg, args.time_column, args.event_column)
    result = ingest_cohort(args.root, args.clinical, args.out, columns, tuple(args.tag_values),
                           lambda i, n, case: print(f"[{i + 1}/{n}] {case}", file=sys.stderr),
                           marks)
    for outcome in result.left_out:
        print(f"Left out {outcome.case_id}: {outcome.reason}")
    print(f"Ingested {len(result.outcomes) - len(result.left_out)} of "
          f"{len(result.outcomes)} patients")
    if marks is not None:
        _say_unknown_marks(sorted(set(marks) - {o.case_id for o in result.outcomes
                                                if o.ingested}), "ingested patient")
    print(f"Wrote    {result.manifest}, {result.report}")
    return 0


def _say_unknown_marks(case_ids: list[str], what: str) -> None:
    if case_ids:
        print(f"{len(case_ids)} review mark(s) name no {what} and were not used: "
              f"{', '.join(case_ids[:10])}{' ...' if len(case_ids) > 10 else ''}")


def _add_batch(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch", help="predict and measure every CT of a folder or manifest into one CSV",
        description="Run predict on every case and append one row per case to the CSV as it "
                    "finishes. A case that cannot be measured gets its error in the row and "
                    "the batch goes on; running the same command again skips the cases "
                    "already measured from an unchanged input and retries the others. One run "
                    "at a time writes a CSV (a second is refused). Exit status: 0 all "
                    "measured, 1 some cases failed, 2 refused, 130 interrupted.")
    parser.add_argument("input", help="folder (each NIfTI/NRRD/MHA file or DICOM series "
                                      "sub-folder is a case) or a manifest.csv (its ct and "
                                      "clinical columns)")
    parser.add_argument("--out", required=True, metavar="CSV", help="results table to write "
                                                                    "or resume")
    parser.add_argument("--save-dir", type=Path, metavar="DIR",
                        help="also write each case's result folder (masks, overlay, "
                             "thumbnail) here; the review report shows the thumbnails")
    parser.add_argument("--dicom-out", action="store_true",
                        help="also write each case's DICOM SEG and SR into its --save-dir "
                             "folder (DICOM cases only)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="measure N cases at once on a local Dask cluster of N worker "
                            "processes sharing the cores (default: one case after another in "
                            "this process, as with 0)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="measure on a running Dask cluster, e.g. tcp://node1:8786 (SLURM "
                            "through dask-jobqueue: see the README)")
    parser.add_argument("--review-marks", metavar="CSV",
                        help="marks saved from an earlier review report: the new report "
                             "(NAME_report.html beside --out NAME.csv) starts with them")
    add_model_arguments(parser)
    parser.set_defaults(handler=run_batch)


def run_batch(args: argparse.Namespace) -> int:
    from ..cohort.report_page import report_path
    from ..cohort.review_marks import read_review_marks

    check_output_file(args.out)
    check_output_file(report_path(args.out), "the review report beside --out")
    if args.save_dir is not None:
        check_output_folder(args.save_dir, "--save-dir")
    if args.workers is not None and args.workers < 0:
        raise InputError("--workers must be 0 (this process) or more.")
    marks = read_review_marks(args.review_marks) if args.review_marks else None
    from ..cohort.batch import BatchJob, find_cases
    from ..cohort.batch import run_batch as measure_all
    from ..models import default_models_dir

    cases = find_cases(args.input)
    if args.dicom_out and args.save_dir is None:
        raise InputError("--dicom-out writes into each case's result folder: give --save-dir.")
    job = BatchJob(Path(args.models or default_models_dir()).absolute(), args.device, args.folds,
                   None if args.save_dir is None else Path(args.save_dir).absolute(),
                   args.dicom_out)  # absolute: a cluster's workers may run in another folder

    def progress(i: int, n: int, case_id: str, row: dict) -> None:
        outcome = f"error: {row['error']}" if row["error"] else \
            f"C3 slice {row['c3_slice_k']}, CSA {row['muscle_csa_cm2']} cm^2"
        print(f"[{i + 1}/{n}] {case_id}: {outcome} ({row['seconds']} s)", file=sys.stderr)

    summary = measure_all(cases, args.out, job, _case_runner(args), progress)
    stale = (f", measured again {summary.stale} whose CT or clinical fields changed"
             if summary.stale else "")
    print(f"Measured {summary.measured}, failed {summary.failed} (see the error column), "
          f"skipped {summary.skipped} already in {args.out}{stale}")
    write_review_report(args.out, args.save_dir, marks)
    if summary.failed:
        print(f"{summary.failed} case(s) failed: their rows say why; run the same command "
              "again to retry them.", file=sys.stderr)
        return 1
    return 0


def _case_runner(args: argparse.Namespace):
    """Where the cases run: this process, or a Dask cluster (imported only then)."""
    if not args.workers and args.scheduler is None:
        return None
    from functools import partial

    from ..cohort.cluster import dask_runner

    return partial(dask_runner, args.workers, args.scheduler)


def write_review_report(batch_csv: str, save_dir: Path | None, marks: dict | None,
                        out: str | None = None) -> None:
    """The review report of a batch CSV, and a line saying where it is."""
    from ..cohort.report_page import write_report

    report = write_report(batch_csv, save_dir, marks, out)
    _say_unknown_marks(report.unknown_marks, "case of the batch")
    print(f"Review   {report.path} ({report.n_cases} cases, {report.n_thumbnails} thumbnails, "
          f"{report.n_marks} marked)")


def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="the paper's validation on a manifest with manual labels",
        description="Run both stages on every case of a manifest and compare with its labels: "
                    "section DSC, C3 slice error, muscle DSC on the true slice, CSA and SMI "
                    "agreement (Pearson r, Wilcoxon). Cases with a C3 level and no muscle mask "
                    "(ingest-levels) run stage 1 only: chosen slice inside the C3 body, error "
                    "to the body's middle, refusals. Writes DIR/metrics.json, DIR/cases.csv "
                    "and the figures.")
    parser.add_argument("--manifest", required=True, help="manifest.csv (ingest or phantom)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_model_arguments(parser)
    parser.add_argument("--record-in-cards", metavar="NAME",
                        help="also write the metrics into both model cards under NAME (for "
                             "example held_out_test_phantoms), with the command and --data")
    parser.add_argument("--data", default="",
                        help="what the manifest's cases are, for the model cards (with "
                             "--record-in-cards; say whether they are phantoms or patients)")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.record_in_cards and not args.data:
        raise InputError("--record-in-cards needs --data saying what the evaluated cases are "
                         "(phantoms or patients, how many, where from).")
    check_output_folder(args.out)
    from ..cohort.evaluation import OUTPUT_FILES, evaluate

    remove_outputs(args.out, OUTPUT_FILES)
    metrics = evaluate(args.manifest, args.out, load_stage_models(args, "section"),
                       load_stage_models(args, "muscle"),
                       lambda i, n, case: print(f"[{i + 1}/{n}] {case}", file=sys.stderr))
    print_metrics(metrics, Path(args.out))
    if args.record_in_cards:
        _record_in_cards(args, metrics)
    return 0


def _record_in_cards(args: argparse.Namespace, metrics: dict) -> None:
    """Held-out figures go into the cards straight from the evaluation that measured them."""
    from ..models import ModelCard, default_models_dir

    root = args.models or default_models_dir()
    for stage in ("section", "muscle"):
        card = ModelCard.load(root / stage)
        card.metrics[args.record_in_cards] = {"data": args.data, "command": command_line(),
                                            **metrics}
        card.save(root / stage)
    print(f"Recorded as {args.record_in_cards!r} in the model cards of {root}")


def print_metrics(metrics: dict, out_dir: Path) -> None:
    def fmt(name: str, digits: int = 3) -> str:
        value = metrics.get(name)
        return "n/a" if value is None else f"{value:.{digits}f}"

    print(f"Cases           {metrics['n_cases']} evaluated, {metrics['n_failed']} failed "
          f"(errors in {out_dir / 'cases.csv'})")
    if metrics.get("left_out_needs_correction"):
        print(f"Left out        {', '.join(metrics['left_out_needs_correction'])} (marked "
              "needs_correction)")
    print(f"Section DSC     {fmt('section_dsc_mean')} +/- {fmt('section_dsc_sd')}")
    print(f"C3 slice error  median {fmt('slice_error_mm_median', 1)} mm, "
          f"max {fmt('slice_error_mm_max', 1)} mm")
    if metrics["n_level_cases"]:
        print(f"C3 level        {metrics['n_level_cases']} cases: chosen slice inside the C3 "
              f"body {fmt('inside_c3_body_fraction')}, stage 1 refused {metrics['n_refused']}")
        print(f"Level error     to the body's middle: median {fmt('level_error_mm_median', 1)} "
              f"mm, mean {fmt('level_error_mm_mean', 1)} mm, max {fmt('level_error_mm_max', 1)} mm")
    if metrics["n_cases"] > metrics["n_level_cases"]:  # cases with a true muscle
        print(f"Muscle DSC      {fmt('muscle_dsc_mean')} +/- {fmt('muscle_dsc_sd')} (true slice); "
              f"paravertebral {fmt('paravertebral_dsc_mean')}, SCMs {fmt('scm_dsc_mean')}")
        for label, where in (("gt", "true slice"), ("auto", "chosen slice")):
            limits = metrics.get("csa_bland_altman_cm2_" + label) or {}
            agreement = ("" if limits.get("bias") is None else
                         f", bias {limits['bias']:+.1f} cm² (limits {limits['loa_low']:+.1f} to "
                         f"{limits['loa_high']:+.1f})")
            print(f"CSA, {where:<13}r = {fmt('csa_pearson_r_' + label)}, median |difference| "
                  f"{fmt('csa_abs_diff_percent_median_' + label, 1)} %{agreement}")
        if "inter_reader_dsc_mean" in metrics:
            print(f"Readers' ceiling DSC {fmt('inter_reader_dsc_mean')} between readers, CSA "
                  f"median |difference| {fmt('inter_reader_csa_diff_percent_median', 1)} %")
    print(f"Wrote           {out_dir / 'metrics.json'}, {out_dir / 'cases.csv'}, figures")


def _add_survival(subparsers) -> None:
    parser = subparsers.add_parser(
        "survival", help="Kaplan-Meier curves and Cox hazard ratio by muscle status, per sex",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare survival of patients with depleted and normal skeletal muscle,\n"
                    "men and women apart: Kaplan-Meier curves with censoring ticks and numbers\n"
                    "at risk, the log-rank p, and the Cox hazard ratio (depleted vs normal)\n"
                    "with its 95% CI. Writes DIR/survival.json, DIR/km_male.png and\n"
                    "DIR/km_female.png.",
        epilog="Column names are those of the table's first line; quote names with spaces.\n"
               "Example (TCIA HNSCC clinical table):\n"
               "  c3sarcopenia survival hnscc_clinical.csv --time \"Survival  (months)\" \\\n"
               "      --event \"Overall Survival Censor\" --sex Sex \\\n"
               "      --status \"PreRT Skeletal Muscle status\" --out survival_results")
    parser.add_argument("table", help="clinical table: CSV (comma, semicolon or tab "
                                      "separated) with one patient per row")
    parser.add_argument("--time", required=True, metavar="COLUMN",
                        help="follow-up time (to death or last contact), in any one unit")
    parser.add_argument("--event", required=True, metavar="COLUMN",
                        help="1 or Dead when the patient died, 0 or Alive when censored")
    parser.add_argument("--sex", required=True, metavar="COLUMN", help="Male/Female or M/F")
    status = parser.add_mutually_exclusive_group(required=True)
    status.add_argument("--status", metavar="COLUMN",
                        help="muscle status: depleted / normal (also 'SM depleted' / "
                             "'SM not depleted')")
    status.add_argument("--smi", metavar="COLUMN",
                        help="L3 skeletal muscle index in cm2/m2; depleted below the Prado "
                             f"cut-off ({SMI_CUTOFF_CM2_M2['M']} men, "
                             f"{SMI_CUTOFF_CM2_M2['F']} women)")
    parser.add_argument("--id", metavar="COLUMN",
                        help="patient id, to name rows in messages (default: first column)")
    parser.add_argument("--drop-missing", action="store_true",
                        help="leave out, and list, patients with a missing value in a column "
                             "used (default: refuse the table and list them)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(handler=run_survival)


def run_survival(args: argparse.Namespace) -> int:
    from ..cohort.survival import (OUTPUT_FILES, SurvivalColumns, analyse_survival,
                                   comparison_text, write_survival)

    remove_outputs(check_output_folder(args.out), OUTPUT_FILES)
    columns = SurvivalColumns(time=args.time, event=args.event, sex=args.sex,
                              status=args.status, smi=args.smi, patient_id=args.id)
    analysis = analyse_survival(args.table, columns, args.drop_missing)
    written = write_survival(analysis, args.out)
    used = analysis.table.columns
    for dropped in analysis.table.dropped:
        print(f"Left out {dropped}")
    print(f"Patients  {len(analysis.table.patients)} analysed, "
          f"{len(analysis.table.dropped)} left out for missing values")
    print("Status    " + (f"column {used.status!r}" if used.status else
                          f"SMI column {used.smi!r} with the Prado cut-offs"))
    print(f"{'sex':<8}{'n':>5}{'depleted':>10}{'events':>8}  comparison")
    for sex, comparison in analysis.by_sex.items():
        print(f"{sex:<8}{comparison.n:>5}{comparison.n_depleted:>10}{comparison.n_events:>8}  "
              f"{comparison_text(comparison)}")
    print("Wrote     " + ", ".join(str(p) for p in written))
    return 0
