"""Results are written whole and readable by others, as plain files are."""

from __future__ import annotations

import os

import pandas as pd

from glueperf.outputs import write_csv


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
