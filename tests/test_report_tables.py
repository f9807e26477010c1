"""glueperf.report_tables: the performance table and the GLUE summary as HTML pages that the
report shows in the page, each cell the CSV's own text (so the same rounding)."""

from __future__ import annotations

import csv
import math
from html.parser import HTMLParser

import pandas as pd

from glueperf.aggregate import CROSS_TASK, glue_summary, performance_table
from glueperf.report_tables import html_table, write_html_table


class Cells(HTMLParser):
    """The header cells, and each row's cells with its class, of an HTML table."""

    def __init__(self):
        super().__init__()
        self.header: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []
        self.paragraphs: list[str] = []
        self.cell: list[str] | None = None
        self.in_paragraph = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append((dict(attrs).get("class", ""), []))
        elif tag in ("td", "th"):
            self.cell = []
        self.in_paragraph |= tag == "p"

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            text = "".join(self.cell)
            (self.header if tag == "th" else self.rows[-1][1]).append(text)
            self.cell = None
        self.in_paragraph &= tag != "p"

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        elif self.in_paragraph:
            self.paragraphs.append(data)


def parse(page: str) -> Cells:
    cells = Cells()
    cells.feed(page)
    cells.rows = [(kind, row) for kind, row in cells.rows if row]  # the header's row is apart
    return cells


def performance(tmp_path):
    """A performance table with unrounded numbers, an unlabeled row, a cross-task row and a
    name that needs escaping, written as the aggregation writes it."""
    metrics = pd.DataFrame(
        [
            {
                "model": "m<1>",
                "dataset": "sst2-validation",
                "glue_task": "sst2",
                "score": 89.33486238532,
                "accuracy_pct": 89.33486238532,
                "inference_time_s": 7.3179497349999565,
                "label_mapping": "by name: NEGATIVE->negative, POSITIVE->positive",
            },
            {
                "model": "m<1>",
                "dataset": "sst2-test",
                "glue_task": "sst2",
                "score": math.nan,
                "accuracy_pct": math.nan,
                "inference_time_s": 0.1234567,
                "label_mapping": "by name: NEGATIVE->negative, POSITIVE->positive",
            },
            {
                "model": "m<1>",
                "dataset": "cola-validation",
                "glue_task": "cola",
                "score": 2.0499999,
                "accuracy_pct": 69.1,
                "inference_time_s": 0.5,
                "label_mapping": "label_map: NEGATIVE->unacceptable, POSITIVE->acceptable",
            },
        ]
    )
    table = performance_table(metrics)
    table.to_csv(tmp_path / "model_performance.csv", index=False)
    return table, tmp_path / "model_performance.csv"


def test_each_cell_is_the_csvs_own_text(tmp_path):
    _, path = performance(tmp_path)
    with open(path, newline="") as stream:
        header, *rows = list(csv.reader(stream))
    page = parse(html_table(path, "model_performance.csv"))
    assert page.header == header
    assert [cells for _, cells in page.rows] == [
        [cell or "–" for cell in row] for row in rows
    ]  # an empty cell shown as a dash
    # The CSV's rounding: a hundredth of a percent, a millisecond.
    first = dict(zip(page.header, page.rows[0][1], strict=True))
    assert (first["Score"], first["Inference Time (seconds)"]) == ("89.33", "7.318")
    assert first["Model"] == "m<1>"  # escaped in the page, shown as written


def test_cross_task_rows_are_striped_and_the_page_says_why(tmp_path):
    _, path = performance(tmp_path)
    page = parse(html_table(path, "t", flagged=(CROSS_TASK, "cross-task evaluations")))
    assert [kind for kind, _ in page.rows] == ["", "", "flagged"]
    assert any("Striped rows: cross-task evaluations" in p for p in page.paragraphs)
    plain = parse(html_table(path, "t"))
    assert [kind for kind, _ in plain.rows] == ["", "", ""]


def test_an_empty_glue_summary_says_so(tmp_path):
    table, _ = performance(tmp_path)
    summary = glue_summary(table.assign(glue_task=""))
    summary.to_csv(tmp_path / "glue_summary.csv", index=False)
    write_html_table(tmp_path / "glue_summary.csv", tmp_path / "glue_summary.html", "s", note="n")
    page = parse((tmp_path / "glue_summary.html").read_text())
    assert page.header == ["Model", "GLUE average", "coverage"] and page.rows == []
    assert page.paragraphs == ["n", "No rows."]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary
