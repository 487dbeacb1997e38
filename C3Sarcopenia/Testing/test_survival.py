"""Survival by muscle status through the command line, checked against lifelines used directly.

The real table is the TCIA HNSCC clinical table (215 patients). Its survival, censor, sex,
status and SMI columns are complete; 'Disease-free interval (months)' has three blanks
(HNSCC-01-0029, -0055, -0213), which serve as the real case of missing values.
"""

import json

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.statistics import logrank_test

from C3SarcopeniaLib.cli import main
from conftest import SHARED

HNSCC = SHARED / "hnscc" / "hnscc_clinical.csv"
TIME, EVENT, SEX = "Survival  (months)", "Overall Survival Censor", "Sex"
STATUS, SMI = "PreRT Skeletal Muscle status", "Pre-RT L3 Skeletal Muscle Index (cm2/m2)"
PRADO = {"Male": 52.4, "Female": 38.5}  # Prado et al. 2008, cm^2/m^2

needs_hnscc = pytest.mark.skipif(not HNSCC.is_file(), reason="shared HNSCC table not present")


def expected_by_sex(time, event, sex, depleted) -> dict:
    """n, n_depleted, log-rank p and Cox HR (95 % CI) per sex, straight from lifelines."""
    frame = pd.DataFrame({"time": np.asarray(time, float), "event": np.asarray(event, int),
                          "depleted": np.asarray(depleted, int), "sex": list(sex)})
    expected = {}
    for label, name in (("Male", "male"), ("Female", "female")):
        group = frame[frame.sex == label].drop(columns="sex")
        dep, nor = group[group.depleted == 1], group[group.depleted == 0]
        cox = CoxPHFitter().fit(group, duration_col="time", event_col="event")
        expected[name] = {
            "n": len(group), "n_depleted": len(dep),
            "logrank_p": logrank_test(dep.time, nor.time, dep.event, nor.event).p_value,
            "hazard_ratio": float(np.exp(cox.params_["depleted"])),
            "hr_ci95": list(np.exp(cox.confidence_intervals_.loc["depleted"]))}
    return expected


def assert_matches(written: dict, expected: dict) -> None:
    for sex, figures in expected.items():
        got = written[sex]
        assert (got["n"], got["n_depleted"]) == (figures["n"], figures["n_depleted"])
        assert got["logrank_p"] == pytest.approx(figures["logrank_p"], rel=1e-6)
        assert got["hazard_ratio"] == pytest.approx(figures["hazard_ratio"], rel=1e-5)
        assert got["hr_ci95"] == pytest.approx(figures["hr_ci95"], rel=1e-5)


def run_survival(table, out, *columns) -> int:
    return main(["survival", str(table), *columns, "--out", str(out)])


def read_result(out) -> dict:
    for name in ("km_male.png", "km_female.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((out / "survival.json").read_text(), parse_constant=reject_non_json)


def reject_non_json(constant: str):
    raise AssertionError(f"survival.json holds {constant}, which is not JSON")


@pytest.fixture(scope="module")
def hnscc():
    return pd.read_csv(HNSCC, encoding="utf-8-sig")


@needs_hnscc
def test_hnscc_by_recorded_status_matches_lifelines(tmp_path, hnscc, capsys):
    status = run_survival(HNSCC, tmp_path, "--time", TIME, "--event", EVENT, "--sex", SEX,
                          "--status", STATUS)
    assert status == 0
    assert "215 analysed" in capsys.readouterr().out
    expected = expected_by_sex(hnscc[TIME], hnscc[EVENT], hnscc[SEX],
                               hnscc[STATUS] == "SM depleted")
    assert_matches(read_result(tmp_path), expected)


@needs_hnscc
def test_hnscc_by_smi_with_prado_cutoffs_matches_lifelines(tmp_path, hnscc):
    status = run_survival(HNSCC, tmp_path, "--time", TIME, "--event", EVENT, "--sex", SEX,
                          "--smi", SMI)
    assert status == 0
    depleted = hnscc[SMI] < hnscc[SEX].map(PRADO)
    assert_matches(read_result(tmp_path), expected_by_sex(hnscc[TIME], hnscc[EVENT],
                                                          hnscc[SEX], depleted))


@needs_hnscc
def test_missing_values_are_listed_then_dropped_on_request(tmp_path, hnscc, capsys):
    columns = ("--time", "Disease-free interval (months)", "--event", EVENT, "--sex", SEX,
               "--status", STATUS)
    assert run_survival(HNSCC, tmp_path / "refused", *columns) == 2
    message = capsys.readouterr().err
    for line, patient in ((30, "HNSCC-01-0029"), (56, "HNSCC-01-0055"), (214, "HNSCC-01-0213")):
        assert f"line {line} ({patient})" in message
    assert "--drop-missing" in message
    assert not (tmp_path / "refused" / "survival.json").exists()

    assert run_survival(HNSCC, tmp_path / "dropped", *columns, "--drop-missing") == 0
    assert "3 left out" in capsys.readouterr().out
    kept = hnscc.dropna(subset=["Disease-free interval (months)"])
    expected = expected_by_sex(kept["Disease-free interval (months)"], kept[EVENT], kept[SEX],
                               kept[STATUS] == "SM depleted")
    assert_matches(read_result(tmp_path / "dropped"), expected)


@needs_hnscc
def test_mistyped_column_is_refused_with_close_names(tmp_path, capsys):
    status = run_survival(HNSCC, tmp_path, "--time", "Survival months", "--event", EVENT,
                          "--sex", SEX, "--status", STATUS)
    assert status == 2
    assert "'Survival  (months)'" in capsys.readouterr().err


SYNTHETIC = [  # months, vital status, sex, status: a small cohort in clinic spellings
    (3.0, "Dead", "M", "SM depleted"), (5.5, "Dead", "M", "normal"),
    (8.0, "Alive", "M", "Depleted"), (9.0, "Dead", "M", "depleted"),
    (12.0, "Dead", "M", "SM not depleted"), (14.0, "Dead", "M", "depleted"),
    (20.0, "Alive", "M", "Normal"), (26.0, "Dead", "M", "depleted"),
    (30.0, "Alive", "M", "normal"),
    (4.0, "Dead", "F", "depleted"), (6.0, "Dead", "F", "normal"),
    (7.0, "Alive", "F", "depleted"), (10.0, "Dead", "F", "normal"),
    (15.0, "Dead", "F", "depleted"), (22.0, "Alive", "F", "normal"),
    (28.0, "Dead", "F", "depleted"),
]


def write_synthetic(path, rows=SYNTHETIC) -> None:
    """A BOM-prefixed CSV whose first column is the time, so a kept BOM would hide it."""
    lines = ["Follow up (months),Vital status,Patient sex,Muscle status"]
    lines += [f"{t},{e},{s},{m}" for t, e, s, m in rows]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")


def test_dead_alive_and_m_f_spellings_with_bom(tmp_path):
    write_synthetic(tmp_path / "cohort.csv")
    status = run_survival(tmp_path / "cohort.csv", tmp_path / "out",
                          "--time", "Follow up (months)", "--event", "Vital status",
                          "--sex", "Patient sex", "--status", "Muscle status")
    assert status == 0
    time, event, sex, muscle = zip(*SYNTHETIC)
    expected = expected_by_sex(time, [e == "Dead" for e in event],
                               ["Male" if s == "M" else "Female" for s in sex],
                               ["not" not in m and "normal" not in m.lower() for m in muscle])
    assert_matches(read_result(tmp_path / "out"), expected)


def test_group_without_comparison_gives_reason_not_numbers(tmp_path):
    rows = [r for r in SYNTHETIC if r[2] == "M"] + [(6.0, "Dead", "F", "normal"),
                                                     (11.0, "Alive", "F", "normal")]
    write_synthetic(tmp_path / "cohort.csv", rows)
    assert run_survival(tmp_path / "cohort.csv", tmp_path / "out",
                        "--time", "Follow up (months)", "--event", "Vital status",
                        "--sex", "Patient sex", "--status", "Muscle status") == 0
    female = read_result(tmp_path / "out")["female"]
    assert (female["n"], female["n_depleted"]) == (2, 0)
    assert female["logrank_p"] is None and female["hazard_ratio"] is None
    assert "normal muscle" in female["reason"]


def test_separated_groups_give_log_rank_but_no_hazard_ratio(tmp_path):
    rows = [r for r in SYNTHETIC if r[2] == "M"] + [
        (4.0, "Dead", "F", "depleted"), (9.0, "Dead", "F", "depleted"),
        (12.0, "Alive", "F", "normal"), (20.0, "Alive", "F", "normal")]
    write_synthetic(tmp_path / "cohort.csv", rows)
    assert run_survival(tmp_path / "cohort.csv", tmp_path / "out",
                        "--time", "Follow up (months)", "--event", "Vital status",
                        "--sex", "Patient sex", "--status", "Muscle status") == 0
    female = read_result(tmp_path / "out")["female"]
    assert 0 < female["logrank_p"] < 1
    assert female["hazard_ratio"] is None and female["hr_ci95"] is None
    assert "complete separation" in female["reason"]


def test_unreadable_values_are_listed(tmp_path, capsys):
    rows = SYNTHETIC[:-2] + [(22.0, "Lost", "F", "normal"), (28.0, "Dead", "F", "weak")]
    write_synthetic(tmp_path / "cohort.csv", rows)
    assert run_survival(tmp_path / "cohort.csv", tmp_path / "out",
                        "--time", "Follow up (months)", "--event", "Vital status",
                        "--sex", "Patient sex", "--status", "Muscle status") == 2
    message = capsys.readouterr().err
    assert "line 16" in message and "'Lost'" in message
    assert "line 17" in message and "'weak'" in message
