"""Every dev person in one searchable table: what each seed answered and what the probes found.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lib.report.reading import details, load_data, prediction_rows, vanilla_runs

PEOPLE_LEGEND = (
    "**written**: where the biography writes the place: inside the window span corruption "
    "shows (*window*), after it (*later*), or nowhere (*absent*); **finetune only** and "
    "**pretrain, finetune**: each seed's answer in seed order, separated by ·, a right one "
    "marked ✓; **name probe**, **bio probe**: one mark per seed of the pretrained model, ✓ where "
    "the probe completes the person's place, ✗ where it does not, – where it was not asked "
    "(the place is not in the window).")


def people_table(profile: str, root: Path | None = None) -> pd.DataFrame:
    """One row per dev person of `profile`: gold place, where the biography writes it
    (`PEOPLE_LEGEND`), each vanilla run's answer (seed by seed, a right one marked ✓), and the
    probes' outcomes. Short column names keep the table on the page; the legend spells them out."""
    from lib.core.data import biography_index, prefix_window
    from lib.report.analysis import LOCATIONS, locate, probe_table
    from lib.runs.profiles import get_profile, world_for

    runs = {kind: vanilla_runs(profile, kind, root) for kind in ("finetune", "pretrain_finetune", "pretrain")}
    first = (runs["pretrain_finetune"] or runs["finetune"])[0]
    people = prediction_rows(first, root)[["name", "gold"]]
    world = world_for(get_profile(profile), load_data())
    window = prefix_window(get_profile(profile).block_size)
    biographies = biography_index(world.corpus, list(people["name"]))
    where = locate(people.to_dict("records"), biographies, window)
    short = {LOCATIONS[0]: "window", LOCATIONS[1]: "later", LOCATIONS[2]: "absent"}
    table = pd.DataFrame({"person": people["name"], "born in": people["gold"],
                          "written": [short[w] for w in where]})
    labels = {"finetune": "finetune only", "pretrain_finetune": "pretrain, finetune"}
    for kind, label in labels.items():
        answers = []
        for record in runs[kind]:
            rows = prediction_rows(record, root)
            if list(rows["name"]) != list(people["name"]):
                raise ValueError(f"{record['run_id']} asks other people than {first['run_id']}")
            answers.append([f"✓ {p}" if ok else p
                            for p, ok in zip(rows["prediction"], rows["correct"], strict=True)])
        if answers:
            table[label] = [" · ".join(per_seed) for per_seed in zip(*answers, strict=True)]
    mark = {True: "✓", False: "✗", None: "–"}
    for probe in ("name", "bio"):
        marks = []
        for record in runs["pretrain"]:
            probes = probe_table(details(record, root).get("probe", [])).set_index("name")
            marks.append([mark[None if person not in probes.index
                               or probes.at[person, f"{probe}_probe"] is None
                               else bool(probes.at[person, f"{probe}_probe"])]
                          for person in people["name"]])
        if marks:
            table[f"{probe} probe"] = ["".join(per_seed) for per_seed in zip(*marks, strict=True)]
    return table


_SEARCH_SCRIPT = """
<script>
(function () {
  var box = document.getElementById("%(id)s-search");
  var table = document.getElementById("%(id)s");
  var count = document.getElementById("%(id)s-count");
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  function show() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.textContent.toLowerCase();
      var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.style.display = keep ? "" : "none";
      shown += keep ? 1 : 0;
    });
    count.textContent = shown + " of " + rows.length + " people";
  }
  box.addEventListener("input", show);
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, column) {
    cell.style.cursor = "pointer";
    cell.title = "sort by this column";
    cell.addEventListener("click", function () {
      var up = cell.getAttribute("data-order") !== "up";
      cell.setAttribute("data-order", up ? "up" : "down");
      rows.sort(function (a, b) {
        var x = a.cells[column].textContent, y = b.cells[column].textContent;
        return (up ? 1 : -1) * x.localeCompare(y);
      });
      rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
    });
  });
  show();
})();
</script>
"""


def searchable_html(table: pd.DataFrame, element_id: str = "people") -> str:
    """`table` as HTML with a search box (every word must occur in a row) and columns sorted
    by a click: plain inline JavaScript, nothing fetched, so it works in an offline copy."""
    body = table.to_html(index=False, table_id=element_id, border=0, escape=True,
                         classes="people-table")
    return (f'<p><input id="{element_id}-search" type="search" placeholder="search: a name, a '
            f'place, &#10003; ..." style="width: 100%; padding: 0.3em; font-size: 1em">'
            f'<br><span id="{element_id}-count"></span></p>'
            f'<style>#{element_id} {{width: 100%; table-layout: auto}} #{element_id} th, '
            f'#{element_id} td {{padding: 0.2em 0.35em; white-space: normal}}</style>'
            f'<div style="max-height: 36em; overflow-y: auto; font-size: 0.8em">{body}</div>'
            + _SEARCH_SCRIPT % {"id": element_id})
