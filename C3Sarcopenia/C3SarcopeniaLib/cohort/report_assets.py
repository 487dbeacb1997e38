"""The review report's page: its style and plain script (no library, no server), and the
data of the cases embedded as JSON. report_page.py fills it in."""

from __future__ import annotations

import html
import json

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.rules { color: #555; font-size: .9em; margin: .2em 0; }
.controls { display: flex; flex-wrap: wrap; gap: .6em; align-items: center; margin: .8em 0;
            position: sticky; top: 0; background: #fff; padding: .4em 0; z-index: 1; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .5em; text-align: left;
         vertical-align: top; }
th[data-sort] { cursor: pointer; user-select: none; white-space: nowrap; }
th[data-sort].sorted-up::after { content: " \\25B2"; }
th[data-sort].sorted-down::after { content: " \\25BC"; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
img.thumb { max-width: 200px; max-height: 200px; display: block; }
ul.warnings { margin: 0; padding-left: 1.1em; font-size: .85em; }
.error { color: #a00; font-size: .85em; }
.tier { display: inline-block; padding: .1em .4em; border-radius: 3px; font-size: .85em; }
.tier-1 { background: #f4b6b6; } .tier-2 { background: #f8cfa0; } .tier-3 { background: #f8e3a0; }
.tier-4 { background: #e9f0a0; } .tier-5 { background: #cde6f7; } .tier-6 { background: #e6e6e6; }
tr.review-accept { background: #eef8ee; } tr.review-needs_correction { background: #fdeeee; }
input.note { width: 14em; }
"""

SCRIPT = """
"use strict";
const data = JSON.parse(document.getElementById("report-data").textContent);
const tierLabel = Object.fromEntries(data.tiers.map(t => [t.key, t.label]));
const reviewLabel = {"accept": "accept", "needs_correction": "needs correction"};
let marks = loadMarks();
let sortKey = "priority", sortUp = true;

function loadMarks() {
  // The page's own marks (batch --review-marks) and the browser's: the later one wins.
  const merged = Object.assign({}, data.marks);
  let stored = {};
  try { stored = JSON.parse(localStorage.getItem(data.storage_key) || "{}"); } catch (e) {}
  for (const [id, mark] of Object.entries(stored)) {
    if (!merged[id] || (mark.reviewed_at || "") >= (merged[id].reviewed_at || "")) {
      merged[id] = mark;
    }
  }
  return merged;
}

function storeMarks() {
  try { localStorage.setItem(data.storage_key, JSON.stringify(marks)); } catch (e) {}
  updateCounts();
}

const sorters = {
  priority: c => c.order, case_id: c => c.case_id, slice_k: c => c.slice_k,
  csa_cm2: c => c.csa_cm2, smi_cm2_m2: c => c.smi_cm2_m2, status: c => c.status,
  review: c => (marks[c.case_id] || {}).review || "",
};

function compare(a, b) {
  const x = sorters[sortKey](a), y = sorters[sortKey](b);
  if (x === y) return a.order - b.order;
  if (x === null || x === "") return 1;  // empty cells last, either way
  if (y === null || y === "") return -1;
  const order = typeof x === "number" ? x - y
    : String(x).localeCompare(String(y), undefined, {numeric: true});
  return sortUp ? order : -order;
}

function shown(c) {
  const text = document.getElementById("filter-text").value.trim().toLowerCase();
  const tier = document.getElementById("filter-priority").value;
  const status = document.getElementById("filter-status").value;
  const review = document.getElementById("filter-review").value;
  const mark = (marks[c.case_id] || {}).review || "unmarked";
  const haystack = [c.case_id, c.error, ...c.warnings].join(" ").toLowerCase();
  return (!text || haystack.includes(text)) && (!tier || c.flags.includes(tier)
    || (tier === "none" && c.flags.length === 0)) && (!status || c.status === status)
    && (!review || mark === review);
}

function cell(row, text, className) {
  const td = row.insertCell();
  if (text !== null && text !== undefined) td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fixed(value, digits) { return value === null ? "" : value.toFixed(digits); }

function render() {
  const body = document.querySelector("#cases tbody");
  body.replaceChildren();
  const cases = data.cases.filter(shown).sort(compare);
  for (const c of cases) {
    const row = body.insertRow();
    row.dataset.case = c.case_id;
    const mark = marks[c.case_id] || {};
    row.className = mark.review ? "review-" + mark.review : "";
    const picture = cell(row, null, "thumb");
    if (c.thumbnail) {
      const img = document.createElement("img");
      img.className = "thumb"; img.src = c.thumbnail; img.alt = "C3 slice of " + c.case_id;
      img.loading = "lazy";
      picture.append(img);
    }
    cell(row, c.case_id, "case");
    cell(row, c.slice_k, "number slice");
    const csa = cell(row, fixed(c.csa_cm2, 1), "number csa");
    if (c.csa_range) csa.title = "usual range " + c.csa_range + " cm²";
    cell(row, fixed(c.smi_cm2_m2, 1), "number smi");
    cell(row, c.status + (c.sex ? " (" + c.sex + ")" : ""), "status");
    const warnings = cell(row, null, "warnings");
    if (c.warnings.length) {
      const list = document.createElement("ul"); list.className = "warnings";
      for (const w of c.warnings) { const item = document.createElement("li");
        item.textContent = w; list.append(item); }
      warnings.append(list);
    }
    cell(row, c.error, "error");
    const priority = cell(row, null, "priority");
    const badge = document.createElement("span");
    badge.className = "tier tier-" + c.rank; badge.textContent = c.rank + " " + tierLabel[c.tier];
    badge.title = c.flags.map(f => tierLabel[f]).join("; ") + (c.muscle_disagreement === null
      ? "" : " (muscle fold disagreement " + c.muscle_disagreement.toFixed(2) + ")");
    priority.append(badge);
    reviewControls(cell(row, null, "review"), c.case_id, mark);
  }
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.classList.toggle("sorted-up", th.dataset.sort === sortKey && sortUp);
    th.classList.toggle("sorted-down", th.dataset.sort === sortKey && !sortUp);
  }
  updateCounts(cases.length);
}

function reviewControls(td, caseId, mark) {
  const choice = document.createElement("select");
  choice.className = "review-choice";
  choice.add(new Option("not reviewed", ""));
  for (const value of data.reviews) choice.add(new Option(reviewLabel[value], value));
  choice.value = mark.review || "";
  const note = document.createElement("input");
  note.className = "note"; note.placeholder = "note"; note.value = mark.note || "";
  const changed = () => {
    if (!choice.value) { delete marks[caseId]; }
    else { marks[caseId] = {case_id: caseId, review: choice.value, note: note.value.trim(),
                            reviewed_at: new Date().toISOString()}; }
    td.parentElement.className = choice.value ? "review-" + choice.value : "";
    storeMarks();
  };
  choice.addEventListener("change", changed);
  note.addEventListener("change", () => { if (choice.value) changed(); });
  td.append(choice, " ", note);
}

let lastShown = data.cases.length;
function updateCounts(n) {
  if (n !== undefined) lastShown = n;
  const marked = Object.keys(marks).length;
  document.getElementById("counts").textContent =
    data.cases.length + " cases, " + lastShown + " shown, " + marked + " reviewed";
}

function csvField(text) {
  text = String(text === undefined || text === null ? "" : text);
  return /[",\\r\\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function marksCsv() {
  const lines = ["case_id,review,note,reviewed_at"];
  for (const id of Object.keys(marks).sort()) {
    const m = marks[id];
    lines.push([id, m.review, m.note, m.reviewed_at].map(csvField).join(","));
  }
  return lines.join("\\r\\n") + "\\r\\n";
}

function saveMarks() {
  const blob = new Blob([marksCsv()], {type: "text/csv"});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "review_marks.csv";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function setUp() {
  document.title = data.title;
  document.getElementById("title").textContent = data.title;
  const rules = document.getElementById("rules");
  for (const rule of data.rules) { const p = document.createElement("p");
    p.className = "rules"; p.textContent = rule; rules.append(p); }
  const tiers = document.getElementById("filter-priority");
  for (const t of data.tiers) tiers.add(new Option(t.rank + " " + t.label, t.key));
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      sortUp = th.dataset.sort === sortKey ? !sortUp : true;
      sortKey = th.dataset.sort; render();
    });
  }
  for (const id of ["filter-text", "filter-priority", "filter-status", "filter-review"]) {
    document.getElementById(id).addEventListener("input", render);
  }
  document.getElementById("save-marks").addEventListener("click", saveMarks);
  render();
}
setUp();
"""

BODY = """
<h1 id="title"></h1>
<div id="rules"></div>
<div class="controls">
  <input id="filter-text" type="search" placeholder="case, warning or error contains">
  <select id="filter-priority"><option value="">every priority</option></select>
  <select id="filter-status">
    <option value="">every status</option><option value="failed">failed</option>
    <option value="depleted">depleted</option><option value="normal">normal</option>
    <option value="unknown">unknown (clinical fields missing)</option>
  </select>
  <select id="filter-review">
    <option value="">reviewed or not</option><option value="unmarked">not reviewed</option>
    <option value="accept">accept</option><option value="needs_correction">needs correction</option>
  </select>
  <button id="save-marks" type="button">Save marks (CSV)</button>
  <span id="counts"></span>
</div>
<table id="cases">
  <thead><tr>
    <th>C3 slice</th><th data-sort="case_id">case</th><th data-sort="slice_k">slice k</th>
    <th data-sort="csa_cm2">CSA (cm²)</th><th data-sort="smi_cm2_m2">SMI (cm²/m²)</th>
    <th data-sort="status">status</th><th>warnings</th><th>error</th>
    <th data-sort="priority">priority</th><th data-sort="review">review</th>
  </tr></thead>
  <tbody></tbody>
</table>
"""


def page_html(data: dict) -> str:
    """The whole page; the data as JSON that cannot end the <script> element holding it."""
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>\n"
            f"<title>{html.escape(data['title'])}</title>\n<style>{STYLE}</style></head>\n"
            f"<body>{BODY}\n<script type='application/json' id='report-data'>{payload}"
            f"</script>\n<script>{SCRIPT}</script>\n</body></html>\n")
