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
# How many GLUE tasks a summary row has a task-matched score for, written "k of 9".
COVERAGE = "coverage"
# A GLUE average needs this many tasks: the "average" of one task is that task's score, which
# its own column already shows, and would read as a GLUE score.
MIN_TASKS_FOR_AVERAGE = 2

# A cross-task evaluation scored a model on labels of a task it was not trained for: its
# classes were matched to the dataset's through a label_map (how labels.py writes the row's
# label_mapping: "label_map: NEGATIVE->unacceptable, ..."), not by name or by id. The table's
# CROSS_TASK column says so for each row; the GLUE summary, the plots and the report read it.
CROSS_TASK = "cross_task"
LABEL_MAP_PREFIX = "label_map:"

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


def is_cross_task(label_mapping) -> bool:
    """Whether an evaluation is cross-task, from its row's ``label_mapping`` (the one place
    that decides it)."""
    return isinstance(label_mapping, str) and label_mapping.startswith(LABEL_MAP_PREFIX)


def performance_table(
    metrics: pd.DataFrame, tasks: dict[str, str] | None = None, families: dict | None = None
) -> pd.DataFrame:
    """The report's five columns first, then the model, the official metric and score, and every
    other field, in input order, each number rounded to what it can mean (``decimals``), and
    CROSS_TASK (True or False) right after ``label_mapping``, which it is made of.
    ``tasks``: dataset -> the Task label shown for people;
    ``families``: model -> its family (its row in the GLUE summary; default: the model)."""
    metrics = round_for_people(metrics)
    metrics["task"] = [(tasks or {}).get(dataset, "") for dataset in metrics["dataset"]]
    metrics["family"] = [(families or {}).get(model, model) for model in metrics["model"]]
    mappings = metrics.get("label_mapping", pd.Series("", index=metrics.index))
    metrics[CROSS_TASK] = [is_cross_task(mapping) for mapping in mappings]
    renamed = metrics.rename(columns={field: name for name, field in REPORT_COLUMNS.items()})
    first = [name for name in REPORT_COLUMNS if name in renamed.columns]
    rest = [c for c in renamed.columns if c not in first and c != CROSS_TASK]
    after = rest.index("label_mapping") + 1 if "label_mapping" in rest else len(rest)
    return renamed[first + rest[:after] + [CROSS_TASK] + rest[after:]]


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
    column per GLUE dataset it was scored on (the task's official score, x 100), its GLUE
    average and its COVERAGE ("k of 9": the GLUE tasks it has a score for).

    Only task-matched evaluations count: a cross-task one (CROSS_TASK) is no score of the model
    on that task, so it is neither in a column nor in the average. A task scored on several
    datasets (MNLI matched and mismatched, or train and validation) counts once, as their mean.
    The average is left empty below MIN_TASKS_FOR_AVERAGE tasks."""
    glue = table["glue_task"].fillna("").isin(list(GLUE_TASKS)) & table["Score"].notna()
    if CROSS_TASK in table.columns:
        glue &= ~table[CROSS_TASK].astype(bool)
    scored = table[glue]
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
    counts = summary["Model"].map(by_family.size())
    averages = summary["Model"].map(by_family.mean())
    summary[GLUE_AVERAGE] = averages.where(counts >= MIN_TASKS_FOR_AVERAGE).astype(float)
    summary[COVERAGE] = [f"{count} of {len(GLUE_TASKS)}" for count in counts]
    return summary.round(1)
