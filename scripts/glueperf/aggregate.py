"""Merge one-row metrics files into the report table ``model_performance.csv``."""

from __future__ import annotations

import pandas as pd

from glueperf import GlueperfError

# The notebook's five columns, spelled exactly as in its CSV, and the metric each comes from.
REPORT_COLUMNS = {
    "Dataset": "dataset",
    "Task": "task",
    "Inference Time (seconds)": "inference_time_s",
    "Memory Usage (MB)": "peak_rss_mb",
    "Accuracy (%)": "accuracy_pct",
}


# Columns holding names, read as written: pandas would read a model or dataset named 'NA',
# 'null' or 'None' as missing, and one named '2e5' as a number.
NAME_COLUMNS = ("model", "dataset", "task")
# Counts that stay whole numbers even when empty for an unlabeled dataset (not 20.0).
COUNT_COLUMNS = ("n_rows", "n_labeled", "correct", "n_tokens", "n_truncated", "n_batches")


def read_csv(path) -> pd.DataFrame:
    """A metrics file: only an empty cell is missing, names stay text, counts stay integers."""
    types = {**dict.fromkeys(NAME_COLUMNS, str), **dict.fromkeys(COUNT_COLUMNS, "Int64")}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=types)


def read_metrics(paths) -> pd.DataFrame:
    """Concatenate metrics files, each of exactly one row."""
    frames = []
    for path in paths:
        frame = read_csv(path)
        if len(frame) != 1:
            raise GlueperfError(
                f"{path}: a metrics file must hold exactly one row, found {len(frame)}"
            )
        frames.append(frame)
    if not frames:
        raise GlueperfError("no metrics files to aggregate")
    return pd.concat(frames, ignore_index=True)


def performance_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """The report's five columns first, then the model and every other field, in input order."""
    renamed = metrics.rename(columns={field: name for name, field in REPORT_COLUMNS.items()})
    renamed = renamed.rename(columns={"model": "Model"})
    first = [*REPORT_COLUMNS, "Model"]
    return renamed[first + [c for c in renamed.columns if c not in first]]
