"""Survival by muscle status, per sex: Kaplan-Meier curves, log-rank test, Cox hazard ratio.

This is the outcome analysis that motivates measuring muscle at C3 (Naser et al. 2022):
does depleted skeletal muscle go with shorter survival? Men and women are analysed apart
because the Prado cut-offs that define depletion differ by sex. The input is a clinical
table as exported from a spreadsheet, so the reader accepts its usual spellings and refuses,
with the rows named, anything it would otherwise have to guess. pandas, lifelines and
matplotlib are imported where the analysis needs them: a bad table is refused at once.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import textwrap
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..fileio import staged_outputs, write_figure_atomic, write_text_atomic
from ..measures import muscle_status, parse_sex

if TYPE_CHECKING:
    import pandas as pd

SEXES = {"M": "male", "F": "female"}
# What write_survival writes, survival.json (the sign of a finished analysis) first.
OUTPUT_FILES = ("survival.json", *(f"km_{name}.png" for name in SEXES.values()))
MISSING_TEXT = {"", "na", "n/a", "nan", "none", "null", "-", "?", "unknown"}
EVENT_CODES = {"1": True, "dead": True, "died": True, "deceased": True,
               "0": False, "alive": False, "censored": False}
STATUS_WORDS = {"depleted": "depleted", "sarcopenic": "depleted", "sarcopenia": "depleted",
                "not depleted": "normal", "non depleted": "normal", "normal": "normal",
                "not sarcopenic": "normal", "non sarcopenic": "normal"}
_LISTED_ROWS = 12  # rows named in a message before "and N more"


@dataclass(frozen=True)
class SurvivalColumns:
    """Which table columns hold what, named as in the table's first line."""

    time: str
    event: str
    sex: str
    status: str | None = None  # a depleted / normal column ...
    smi: str | None = None  # ... or the L3 SMI, classified with the Prado cut-offs
    patient_id: str | None = None  # names rows in messages; default: the first column


@dataclass(frozen=True)
class PatientOutcome:
    patient_id: str
    line: int  # line of the table file, as a spreadsheet numbers it
    sex: str  # "M" or "F"
    depleted: bool
    time: float
    event: bool  # True: the event (death) was observed; False: censored


@dataclass(frozen=True)
class OutcomeTable:
    patients: list[PatientOutcome]
    dropped: list[str]  # rows left out for missing values, described for the user
    columns: SurvivalColumns  # with the names as found in the table


@dataclass(frozen=True)
class GroupComparison:
    """Depleted against normal muscle in one sex. None marks a figure that cannot be had."""

    n: int
    n_depleted: int
    n_events: int
    logrank_p: float | None
    hazard_ratio: float | None  # depleted vs normal
    hr_ci95: tuple[float, float] | None
    reason: str | None = None  # why a figure is missing, or why to read it with care


@dataclass(frozen=True)
class SurvivalAnalysis:
    by_sex: dict[str, GroupComparison]  # keys "male", "female"
    table: OutcomeTable

    def as_json(self) -> dict:
        return {sex: asdict(comparison) for sex, comparison in self.by_sex.items()}


def read_outcome_table(path: str | Path, columns: SurvivalColumns,
                       drop_missing: bool = False) -> OutcomeTable:
    """One PatientOutcome per row, or an InputError naming every row that cannot be used.

    Rows with a missing value in a used column are refused (or, with ``drop_missing``, left
    out and listed); values that cannot be read are always refused.
    """
    header, rows = read_table_csv(Path(path))
    columns = _resolve_columns(columns, header)
    patients, missing, unreadable = [], [], []
    for line, row in rows:
        patient_id = row[columns.patient_id].strip() or "no id"
        try:
            patients.append(_patient(row, line, patient_id, columns))
        except _MissingValues as gap:
            missing.append(f"line {line} ({patient_id}): no {', '.join(gap.columns)}")
        except InputError as error:
            unreadable.append(f"line {line} ({patient_id}): {str(error).rstrip('.')}")
    if unreadable:
        raise InputError(f"{len(unreadable)} rows of {Path(path).name} have values that cannot "
                         f"be read: {_listing(unreadable)}. Correct them in the table.")
    if missing and not drop_missing:
        raise InputError(f"{len(missing)} rows of {Path(path).name} have missing values in the "
                         f"columns used: {_listing(missing)}. Fill them in, or leave these "
                         "patients out with --drop-missing.")
    if not patients:
        raise InputError(f"{Path(path).name} has no patient with all the values needed.")
    return OutcomeTable(patients, missing, columns)


def read_table_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Column names and (line, row) pairs; spreadsheet exports in UTF-8 (BOM) or Windows
    encoding, separated by commas, semicolons or tabs, blank rows skipped."""
    if not path.is_file():
        raise InputError(f"{path} {'is a folder' if path.is_dir() else 'does not exist'}: "
                         "check the path to the clinical table.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = _windows_text(path)
    if "\0" in text:
        raise InputError(f"{path} is not a text table (it holds binary data): export the "
                         "clinical table as CSV.")
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        raise InputError(f"{path.name} is empty: export the clinical table with its header.")
    rows = []
    for row in reader:
        if any((value or "").strip() for key, value in row.items() if key is not None):
            rows.append((reader.line_num, {k: v or "" for k, v in row.items() if k is not None}))
    return list(reader.fieldnames), rows


def _windows_text(path: Path) -> str:
    try:
        return path.read_text(encoding="cp1252")
    except UnicodeDecodeError:
        raise InputError(f"{path} is neither UTF-8 nor Windows text: export the clinical table "
                         "as CSV.") from None


def _resolve_columns(columns: SurvivalColumns, header: list[str]) -> SurvivalColumns:
    """The given names as spelled in the header (spacing and case may differ)."""
    def find(name: str | None, role: str) -> str | None:
        return None if name is None else resolve_column(name, header, role)

    return SurvivalColumns(
        time=find(columns.time, "time"), event=find(columns.event, "event"),
        sex=find(columns.sex, "sex"), status=find(columns.status, "status"),
        smi=find(columns.smi, "SMI"),
        patient_id=find(columns.patient_id, "id") if columns.patient_id else header[0])


def resolve_column(name: str, header: list[str], role: str) -> str:
    """A column by its exact name, else by the unique name equal up to spacing and case.

    Column titles such as 'Survival  (months)' (two spaces) are easy to mistype.
    """
    if name in header:
        return name
    matches = [column for column in header if _squash(column) == _squash(name)]
    if len(matches) == 1:
        return matches[0]
    close = difflib.get_close_matches(name, header, n=5, cutoff=0.5)
    hint = ("did you mean " + ", ".join(repr(c) for c in close) + "?") if close else \
        "the table's columns are " + ", ".join(repr(c) for c in header[:30]) + "."
    raise InputError(f"no {role} column named {name!r}: {hint} Quote names with spaces.")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


class _MissingValues(Exception):
    def __init__(self, columns: list[str]) -> None:
        super().__init__(", ".join(columns))
        self.columns = columns


def _patient(row: dict[str, str], line: int, patient_id: str,
             columns: SurvivalColumns) -> PatientOutcome:
    used = [c for c in (columns.time, columns.event, columns.sex, columns.status, columns.smi)
            if c is not None]
    sex = None if is_missing(row[columns.sex]) else parse_sex(row[columns.sex])
    absent = [c for c in used if is_missing(row[c]) or (c == columns.sex and sex is None)]
    if absent:
        raise _MissingValues(absent)
    if columns.status is not None:
        status = parse_muscle_status(row[columns.status])
    else:
        status = muscle_status(parse_number(row[columns.smi], columns.smi), sex)
    time = parse_number(row[columns.time], columns.time)
    if time < 0:
        raise InputError(f"{columns.time} is negative ({time:g})")
    return PatientOutcome(patient_id, line, sex, status == "depleted", time,
                          parse_event(row[columns.event]))


def is_missing(text: str) -> bool:
    return text.strip().casefold() in MISSING_TEXT


def parse_number(text: str, column: str) -> float:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise InputError(f"{column} {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(f"{column} {text!r} is not a number")
    return value


def parse_event(text: str) -> bool:
    """True when the event (death) happened: 1, Dead, Died, Deceased; 0, Alive, Censored."""
    key = text.strip().casefold()
    key = {"1.0": "1", "0.0": "0"}.get(key, key)
    if key not in EVENT_CODES:
        raise InputError(f"event {text!r} not understood: use 1/0 or Dead/Alive")
    return EVENT_CODES[key]


def parse_muscle_status(text: str) -> str:
    """'depleted' or 'normal' from spellings such as 'SM depleted' or 'SM not depleted'."""
    key = re.sub(r"[\s_-]+", " ", text.strip().casefold())
    key = re.sub(r"^(sm|skeletal muscle)\s+", "", key)
    if key not in STATUS_WORDS:
        raise InputError(f"muscle status {text!r} not understood: use depleted or normal "
                         "(or 'SM depleted' / 'SM not depleted')")
    return STATUS_WORDS[key]


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_LISTED_ROWS])
    more = len(items) - _LISTED_ROWS
    return shown + (f"; and {more} more" if more > 0 else "")


def compare_muscle_groups(patients: list[PatientOutcome], sex_name: str) -> GroupComparison:
    """Log-rank p and Cox hazard ratio (depleted vs normal) for one sex's patients."""
    n = len(patients)
    n_depleted = sum(p.depleted for p in patients)
    n_events = sum(p.event for p in patients)
    reason = _why_no_comparison(n, n_depleted, n_events, sex_name)
    if reason:
        return GroupComparison(n, n_depleted, n_events, None, None, None, reason)
    from lifelines.statistics import logrank_test

    frame = _frame(patients)
    depleted = frame["depleted"] == 1
    p_value = logrank_test(frame.time[depleted], frame.time[~depleted],
                           frame.event[depleted], frame.event[~depleted]).p_value
    hazard_ratio, ci95, reason = _cox_hazard_ratio(frame)
    return GroupComparison(n, n_depleted, n_events, float(p_value), hazard_ratio, ci95, reason)


def _why_no_comparison(n: int, n_depleted: int, n_events: int, sex_name: str) -> str | None:
    if n == 0:
        return f"no {sex_name} patients in the table"
    if n_depleted in (0, n):
        group = "depleted" if n_depleted else "normal"
        return f"all {n} {sex_name} patients have {group} muscle: there is nothing to compare"
    if n_events == 0:
        return f"no events (deaths) among the {n} {sex_name} patients"
    return None


def _frame(patients: list[PatientOutcome]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"time": [p.time for p in patients],
                         "event": [int(p.event) for p in patients],
                         "depleted": [int(p.depleted) for p in patients]})


def _cox_hazard_ratio(frame: pd.DataFrame) -> tuple[float | None, tuple[float, float] | None,
                                                     str | None]:
    """Hazard ratio with its 95 % CI; a fit that fails or warns says so instead of misleading.

    When every death of one group comes before any of the other (complete separation) the
    estimate runs off to infinity: no hazard ratio is given then, only the log-rank p.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cox = CoxPHFitter().fit(frame, duration_col="time", event_col="event")
        except ConvergenceError as error:
            return None, None, f"the Cox model did not converge ({_first_sentence(error)})"
    summary = cox.summary.loc["depleted"]
    hazard_ratio = float(summary["exp(coef)"])
    ci95 = (float(summary["exp(coef) lower 95%"]), float(summary["exp(coef) upper 95%"]))
    doubts = [_first_sentence(w.message) for w in caught
              if issubclass(w.category, ConvergenceWarning)]
    if not (np.isfinite([hazard_ratio, *ci95]).all() and ci95[0] > 0):
        return None, None, ("no finite hazard ratio: the deaths fall so unevenly between "
                            "the groups (complete separation) that the Cox model cannot "
                            "estimate it; read the log-rank p")
    return hazard_ratio, ci95, f"Cox model warning: {doubts[0]}" if doubts else None


def _first_sentence(message) -> str:
    text = " ".join(str(message).split())
    return text.split(". ")[0].rstrip(".")


def analyse_survival(table_path: str | Path, columns: SurvivalColumns,
                     drop_missing: bool = False) -> SurvivalAnalysis:
    table = read_outcome_table(table_path, columns, drop_missing)
    by_sex = {name: compare_muscle_groups([p for p in table.patients if p.sex == code], name)
              for code, name in SEXES.items()}
    return SurvivalAnalysis(by_sex, table)


def write_survival(analysis: SurvivalAnalysis, out_dir: str | Path) -> list[Path]:
    """km_male.png, km_female.png, then survival.json: its presence means the folder is done.
    They are written into a staging folder switched in at the end (fileio.staged_outputs)."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    with staged_outputs(out_dir, OUTPUT_FILES) as staging:
        for code, name in SEXES.items():
            patients = [p for p in analysis.table.patients if p.sex == code]
            figure = kaplan_meier_figure(patients, name, analysis.by_sex[name],
                                         analysis.table.columns.time)
            try:
                write_figure_atomic(figure, staging / f"km_{name}.png")
            finally:
                plt.close(figure)
        write_text_atomic(staging / OUTPUT_FILES[0],
                          json.dumps(analysis.as_json(), indent=2, allow_nan=False) + "\n")
    return [out_dir / name for name in (*OUTPUT_FILES[1:], OUTPUT_FILES[0])]


def _pyplot():
    """matplotlib's pyplot drawing off screen (figures go to files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def kaplan_meier_figure(patients: list[PatientOutcome], sex_name: str,
                        comparison: GroupComparison, time_label: str):
    """KM curves (depleted vs normal) with censoring ticks, p and HR, numbers at risk below."""
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    figure, axis = _pyplot().subplots(figsize=(7, 5.5))
    fitters = []
    for depleted, label, colour in ((True, "depleted", "tab:red"), (False, "normal", "tab:blue")):
        group = [p for p in patients if p.depleted == depleted]
        if not group:
            continue
        fitter = KaplanMeierFitter(label=f"{label} muscle (n={len(group)})").fit(
            [p.time for p in group], [p.event for p in group])
        fitter.plot_survival_function(ax=axis, show_censors=True, ci_show=False, color=colour)
        fitters.append(fitter)
    if fitters:
        add_at_risk_counts(*fitters, ax=axis, rows_to_show=["At risk"])
    axis.set_ylim(0, 1.05)
    axis.set_xlabel(time_label.strip())
    axis.set_ylabel("survival probability")
    axis.set_title(f"{sex_name.capitalize()} patients (n={comparison.n})\n"
                   + textwrap.fill(comparison_text(comparison), 64), fontsize=10)
    figure.tight_layout()
    return figure


def comparison_text(comparison: GroupComparison) -> str:
    """'log-rank p = 0.012, HR 1.90 (95% CI 1.10-3.29)', or why these are missing."""
    if comparison.logrank_p is None:
        return comparison.reason or ""
    text = f"log-rank p = {comparison.logrank_p:.3g}"
    if comparison.hazard_ratio is None:
        return f"{text}; {comparison.reason}"
    low, high = comparison.hr_ci95
    return f"{text}, HR {comparison.hazard_ratio:.2f} (95% CI {low:.2f}-{high:.2f})"
