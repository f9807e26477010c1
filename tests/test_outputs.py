"""Results are written whole and readable by others, as plain files are."""

from __future__ import annotations

import os

import pandas as pd

from glueperf.outputs import write_csv, write_row


def test_results_get_the_permissions_of_plain_files(tmp_path):
    previous = os.umask(0o022)
    try:
        write_csv(pd.DataFrame({"a": [1]}), tmp_path / "table.csv")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(previous)
    mode = (tmp_path / "table.csv").stat().st_mode & 0o777
    assert mode == plain.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_row_is_written_as_pandas_writes_it_with_missing_values_empty(tmp_path):
    row = {"model": "NA", "n_rows": 3, "accuracy_pct": float("nan"), "score": 1 / 3, "ok": True}
    write_row(row, tmp_path / "row.csv")
    text = (tmp_path / "row.csv").read_text()
    assert text == pd.DataFrame([row]).to_csv(index=False)
    assert text.splitlines()[1] == f"NA,3,,{1 / 3!r},True"
