"""Write docs/columns.md, the reference of every column of the results, from its one definition
in scripts/glueperf/results.py. Run it after changing a column there (tests/test_results.py
fails while the file differs from what this writes):

    .venv/bin/python scripts/write_column_docs.py
"""

from __future__ import annotations

from pathlib import Path

from glueperf.results import DOCS_FILE, column_reference

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    (ROOT / DOCS_FILE).write_text(column_reference(), encoding="utf-8")
    print(f"wrote {DOCS_FILE}")


if __name__ == "__main__":
    main()
