"""The performance table and the GLUE summary as HTML pages, which the Snakemake report shows in
the page (a CSV it only offers as a download). Each cell is the CSV's own text, so a number
reads as the CSV rounded it; nothing is computed again.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

from glueperf.outputs import atomic_path

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 12px; color: #222; }
h1 { font-size: 16px; margin: 0 0 4px; }
p { margin: 4px 0 10px; max-width: 70em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 3px 7px; white-space: nowrap; background: #fff; }
th { background: #f2f2f2; position: sticky; top: 0; }
th:first-child, td:first-child { position: sticky; left: 0; }
th:first-child { z-index: 1; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fafafa; }
tbody tr.flagged td { background: repeating-linear-gradient(135deg, #fff 0 6px, #e6e6e6 6px 9px); }
td.empty { color: #aaa; }
"""


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def html_table(csv_path, title: str, note: str = "", flagged: tuple[str, str] | None = None) -> str:
    """The CSV file as an HTML page: ``title``, a ``note`` under it, then the table, each cell as
    the CSV writes it (numbers aligned right, an empty cell shown as '–'). ``flagged``:
    (column, what it means): rows whose column holds True are striped, and the note says why.
    """
    with open(csv_path, newline="") as stream:
        header, *rows = list(csv.reader(stream))
    flag_at = header.index(flagged[0]) if flagged and flagged[0] in header else None
    marked = [flag_at is not None and row[flag_at] == "True" for row in rows]
    notes = [note] if note else []
    if any(marked):
        notes.append(f"Striped rows: {flagged[1]} ({flagged[0]} True).")
    if not rows:
        notes.append("No rows.")
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(text)}</p>" for text in notes),
        "<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header),
        "</tr></thead><tbody>",
    ]
    for row, mark in zip(rows, marked, strict=True):
        cells = "".join(table_cell(cell) for cell in row)
        lines.append(f'<tr class="flagged">{cells}</tr>' if mark else f"<tr>{cells}</tr>")
    lines.append("</tbody></table></body></html>")
    return "\n".join(lines) + "\n"


def table_cell(cell: str) -> str:
    if not cell:
        return '<td class="empty">–</td>'
    kind = ' class="number"' if is_number(cell) else ""
    return f"<td{kind}>{html.escape(cell)}</td>"


def write_html_table(csv_path, target, title: str, **options) -> None:
    """html_table of ``csv_path`` written to ``target``, atomically."""
    with atomic_path(target) as path:
        Path(path).write_text(html_table(csv_path, title, **options), encoding="utf-8")
