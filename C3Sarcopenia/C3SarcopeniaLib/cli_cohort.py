"""Sub-commands for a cohort, from a clinical table: survival by muscle status."""

from __future__ import annotations

import argparse

from .measures import SMI_CUTOFF_CM2_M2


def register(subparsers) -> None:
    _add_survival(subparsers)


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
    from .survival import SurvivalColumns, analyse_survival, comparison_text, write_survival

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
