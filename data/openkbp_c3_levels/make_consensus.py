"""Turn the readers' C3 level readings into the training levels CSV.

usage: python make_consensus.py READINGS_DIR REFERENCE_CSV OUT_CSV

A case enters training only when at least two readers agree on its C3 body's middle within
AGREE_SLICES (less than half a vertebra: a whole-level miscount cannot pass), or when its only
reader read it with high confidence. Of three or more readers, the largest agreeing group
counts (ties: none). The cases of REFERENCE_CSV (the real test set) never enter. The consensus
top and bottom are the agreeing readers' means; its confidence their lowest.
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path

AGREE_SLICES = 2
RANK = {"low": 0, "medium": 1, "high": 2}


def readings(folder: Path) -> dict[str, list[dict]]:
    by_case = defaultdict(list)
    for path in sorted(folder.glob("*.csv")):
        for row in csv.DictReader(path.open(newline="")):
            by_case[row["case"]].append(row)
    return by_case


def agreeing(rows: list[dict]) -> list[dict]:
    """The largest group of readings whose middles lie within AGREE_SLICES; [] on a tie."""
    def mid(row):
        return int(row["c3_mid_z_index"])
    groups = [[r for r in rows if 0 <= mid(r) - mid(low) <= AGREE_SLICES] for low in rows]
    size = max(len(g) for g in groups)
    best = {tuple(sorted(r["annotator"] for r in g)) for g in groups if len(g) == size}
    return max(groups, key=len) if size >= 2 and len(best) == 1 else []


def consensus(rows: list[dict]) -> dict | None:
    if len(rows) == 1:
        return rows[0] if rows[0]["confidence"] == "high" else None
    all_mids = sorted(int(r["c3_mid_z_index"]) for r in rows)
    rows = agreeing(rows)
    if not rows:
        return None
    mids = [int(r["c3_mid_z_index"]) for r in rows]
    top = round(sum(int(r["c3_top_z_index"]) for r in rows) / len(rows))
    bottom = round(sum(int(r["c3_bottom_z_index"]) for r in rows) / len(rows))
    confidence = min((r["confidence"] for r in rows), key=RANK.get)
    return {"case": rows[0]["case"], "c3_top_z_index": top, "c3_bottom_z_index": bottom,
            "c3_mid_z_index": "", "confidence": confidence,
            "notes": f"consensus of {len(rows)} readers, middles {sorted(mids)} "
                     f"(all readings: {all_mids})",
            "annotator": "+".join(r["annotator"] for r in rows)}


def main(folder: str, reference: str, out: str) -> None:
    test_cases = {row["case"] for row in csv.DictReader(open(reference, newline=""))}
    by_case = readings(Path(folder))
    kept = [consensus(rows) for case, rows in sorted(by_case.items()) if case not in test_cases]
    kept = [row for row in kept if row is not None]
    columns = ["case", "c3_top_z_index", "c3_bottom_z_index", "c3_mid_z_index", "confidence",
               "notes", "annotator"]
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    read = sum(case not in test_cases for case in by_case)
    print(f"{len(kept)} of {read} read training cases kept in {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
