"""Merge one-row metrics files into the report table ``model_performance.csv``, and summarize
the GLUE tasks as papers do (``glue_summary.csv``)."""

from __future__ import annotations

import pandas as pd

from glueperf import GlueperfError
from glueperf.tasks import GLUE_TASKS

# The notebook's five columns, spelled exactly as in its CSV, and the metric each comes from;
# then the model and each task's official metric and score.
REPORT_COLUMNS = {
    "Dataset": "dataset",
    "Task": "task",
    "Inference Time (seconds)": "inference_time_s",
    "Memory Usage (MB)": "peak_rss_mb",
    "Accuracy (%)": "accuracy_pct",
    "Model": "model",
    "Metric": "metric",
    "Score": "score",
}
GLUE_AVERAGE = "GLUE average"

# Columns holding names, read as written: pandas would read a model or dataset named 'NA',
# 'null' or 'None' as missing, and one named '2e5' as a number.
NAME_COLUMNS = ("model", "dataset", "task", "glue_task", "metric", "family")
TABLE_NAME_COLUMNS = ("Model", "Dataset", "Task", "glue_task", "Metric", "family")
# Counts that stay whole numbers even when empty for an unlabeled dataset (not 20.0).
COUNT_COLUMNS = ("n_rows", "n_labeled", "correct", "n_tokens", "n_truncated", "n_batches")

# Decimals that model_performance.csv keeps of each measured number: what the number can mean,
# not every digit of a float (7.3179497349999565 s). By field, else by the field's unit suffix;
# other columns, and whole numbers, are written as they are. The per-run metrics files keep
# full precision. Seconds to the millisecond, MiB to a tenth, percentages and scores (x 100) to
# a hundredth, correlations and F1 (from -1 or 0 to 1) to 4 decimals.
DECIMALS_BY_FIELD = {
    **dict.fromkeys(("score", "score_ci_low", "score_ci_high"), 2),
    **dict.fromkeys(("mcc", "macro_f1", "f1", "pearson", "spearman"), 4),
}
DECIMALS_BY_SUFFIX = {"_s": 3, "_mb": 1, "_pct": 2, "_eps": 1}


def _read(path, names) -> pd.DataFrame:
    """Only an empty cell is missing, names stay text, counts stay integers."""
    types = {**dict.fromkeys(names, str), **dict.fromkeys(COUNT_COLUMNS, "Int64")}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=types)


def read_csv(path) -> pd.DataFrame:
    """A metrics file."""
    return _read(path, NAME_COLUMNS)


def read_performance_table(path) -> pd.DataFrame:
    """model_performance.csv."""
    return _read(path, TABLE_NAME_COLUMNS)


def read_glue_summary(path) -> pd.DataFrame:
    """glue_summary.csv."""
    return _read(path, ("Model",))


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


def performance_table(
    metrics: pd.DataFrame, tasks: dict[str, str] | None = None, families: dict | None = None
) -> pd.DataFrame:
    """The report's five columns first, then the model, the official metric and score, and every
    other field, in input order, each number rounded to what it can mean (``decimals``).
    ``tasks``: dataset -> the Task label shown for people;
    ``families``: model -> its family (its row in the GLUE summary; default: the model)."""
    metrics = round_for_people(metrics)
    metrics["task"] = [(tasks or {}).get(dataset, "") for dataset in metrics["dataset"]]
    metrics["family"] = [(families or {}).get(model, model) for model in metrics["model"]]
    renamed = metrics.rename(columns={field: name for name, field in REPORT_COLUMNS.items()})
    first = [name for name in REPORT_COLUMNS if name in renamed.columns]
    return renamed[first + [c for c in renamed.columns if c not in first]]


def decimals(field: str) -> int | None:
    """How many decimals the performance table keeps of a metrics field (None: as it is)."""
    if field in DECIMALS_BY_FIELD:
        return DECIMALS_BY_FIELD[field]
    for suffix, places in DECIMALS_BY_SUFFIX.items():
        if field.endswith(suffix):
            return places
    return None


def round_for_people(metrics: pd.DataFrame) -> pd.DataFrame:
    """A copy of the metrics rows with each floating-point field rounded to its decimals."""
    rounded = metrics.copy()
    for field in rounded.columns:
        places = decimals(field)
        if places is not None and pd.api.types.is_float_dtype(rounded[field]):
            rounded[field] = rounded[field].round(places)
    return rounded


def glue_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model family (a model is its own family unless the config says otherwise), one
    column per GLUE dataset it was scored on (the task's official score, x 100), and the GLUE
    average over its tasks: a task scored on several datasets (MNLI matched and mismatched, or
    train and validation) counts once, as their mean."""
    scored = table[table["glue_task"].fillna("").isin(list(GLUE_TASKS)) & table["Score"].notna()]
    order = {name: i for i, name in enumerate(GLUE_TASKS)}
    columns = sorted(
        dict.fromkeys(zip(scored["glue_task"], scored["Dataset"], strict=True)),
        key=lambda pair: order[pair[0]],
    )
    summary = pd.DataFrame({"Model": list(dict.fromkeys(scored["family"]))})
    for task, dataset in columns:
        scores = scored[scored["Dataset"] == dataset].groupby("family")["Score"].mean()
        summary[f"{GLUE_TASKS[task].title} ({dataset})"] = summary["Model"].map(scores)
    per_task = scored.groupby(["family", "glue_task"], sort=False)["Score"].mean()
    by_family = per_task.groupby(level="family", sort=False)
    summary[GLUE_AVERAGE] = summary["Model"].map(by_family.mean())
    summary["tasks"] = summary["Model"].map(by_family.size()).astype("Int64")
    return summary.round(1)
