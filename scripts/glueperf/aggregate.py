"""Merge one-row metrics files into the report table ``model_performance.csv``, and summarize
the GLUE tasks as papers do (``glue_summary.csv``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from glueperf import GlueperfError, results
from glueperf.tasks import GLUE_TASKS

# model_performance.csv's first columns, by their names there: the notebook's five, spelled
# exactly as in its CSV, then the model, its dtype, and each task's official metric and score.
REPORT_COLUMNS = {results.table_name(field): field for field in results.FIRST_IN_TABLE}
DATASET, SCORE = results.table_name("dataset"), results.table_name("score")
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
CROSS_TASK = results.COLUMNS["cross_task"].name
LABEL_MAP_PREFIX = "label_map:"

# Columns holding names, read as written: pandas would read a model or dataset named 'NA',
# 'null' or 'None' as missing, and one named '2e5' as a number; in the metrics files and by
# their names in the table.
NAME_COLUMNS = results.names_of_kind(results.NAME)
TABLE_NAME_COLUMNS = results.names_of_kind(results.NAME, table=True)
# Counts stay whole numbers even when empty (an unlabeled dataset's, a CPU's GPU index).
COUNT_COLUMNS = results.names_of_kind(results.COUNT)


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
    metrics: pd.DataFrame,
    tasks: dict[str, str] | None = None,
    families: dict | None = None,
    agreement: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The report's five columns first, then the model, its dtype, the official metric and
    score, then every other column in the order glueperf/results.py defines (columns it does
    not know last, in input order), each number rounded to what it can mean (its decimals
    there); the table's own columns added: CROSS_TASK (True or False), each dataset's Task
    label for people (``tasks``: dataset -> label), each model's family (``families``: model ->
    its row in the GLUE summary; default the model) and the ``agreement`` columns (``agreement``
    of the rows, made by ``agreement``; empty without)."""
    metrics = metrics.copy()
    metrics["task"] = [(tasks or {}).get(dataset, "") for dataset in metrics["dataset"]]
    metrics["family"] = [(families or {}).get(model, model) for model in metrics["model"]]
    mappings = metrics.get("label_mapping", pd.Series("", index=metrics.index))
    metrics[CROSS_TASK] = [is_cross_task(mapping) for mapping in mappings]
    for name in results.Agreement.names():
        metrics[name] = math.nan if agreement is None else agreement[name].to_numpy()
    metrics = round_for_people(metrics)
    known = [name for name in results.COLUMNS if name in metrics.columns]
    order = list(results.FIRST_IN_TABLE) + known + list(metrics.columns)
    order = [name for name in dict.fromkeys(order) if name in metrics.columns]
    return metrics[order].rename(columns=results.table_name_of)


def round_for_people(metrics: pd.DataFrame) -> pd.DataFrame:
    """A copy of the metrics rows with each floating-point column rounded to its decimals."""
    rounded = metrics.copy()
    for name in rounded.columns:
        places = results.decimals(name)
        if places is not None and pd.api.types.is_float_dtype(rounded[name]):
            rounded[name] = rounded[name].round(places)
    return rounded


# --- agreement with float32 ----------------------------------------------------------------------


def agreement(metrics: pd.DataFrame, predictions) -> pd.DataFrame:
    """The Agreement columns (glueperf/results.py) of each metrics row, in its order: for a row
    in another dtype than float32 whose model was evaluated in float32 on the same dataset, how
    far its predictions agree with float32's (``agreement_of``) and its score minus float32's;
    empty (NaN) otherwise. ``predictions(model, dtype, dataset)``: that evaluation's predictions
    table (read only for the rows compared)."""
    found = pd.DataFrame(math.nan, index=metrics.index, columns=list(results.Agreement.names()))
    if "dtype" not in metrics.columns:
        return found
    keys = list(zip(metrics["model"], metrics["dtype"], metrics["dataset"], strict=True))
    position = {key: i for i, key in enumerate(keys)}
    for i, (model, dtype, dataset) in enumerate(keys):
        reference = position.get((model, results.REFERENCE_DTYPE, dataset))
        if dtype == results.REFERENCE_DTYPE or reference is None:
            continue
        compared = agreement_of(
            predictions(model, dtype, dataset),
            predictions(model, results.REFERENCE_DTYPE, dataset),
            f"{model} ({dtype} against {results.REFERENCE_DTYPE}) on {dataset}",
            metrics["score"].iloc[i] - metrics["score"].iloc[reference],
        )
        found.iloc[i] = list(compared.values().values())
    return found


def agreement_of(
    mine: pd.DataFrame, reference: pd.DataFrame, what: str, score_diff: float = math.nan
) -> results.Agreement:
    """How far one evaluation's predictions agree with the reference's, row by row (the same
    dataset file): classification, the share of rows whose predicted class is the same (%);
    regression, the largest difference of the predicted scores; with ``score_diff`` as given.
    ``what`` names the two in an error."""
    if (
        len(mine) != len(reference)
        or not (mine["idx"].to_numpy() == reference["idx"].to_numpy()).all()
    ):
        raise GlueperfError(
            f"the predictions of {what} are not of the same rows (idx) as the reference's: "
            "evaluate both again"
        )
    if "prediction" in mine.columns:
        same = mine["prediction"].to_numpy() == reference["prediction"].to_numpy()
        share = 100.0 * same.mean() if len(same) else math.nan
        return results.Agreement(agreement_pct=share, max_abs_diff=math.nan, score_diff=score_diff)
    difference = np.abs(
        mine["score"].to_numpy(dtype=np.float64) - reference["score"].to_numpy(dtype=np.float64)
    )
    largest = float(difference.max()) if len(difference) else math.nan
    return results.Agreement(agreement_pct=math.nan, max_abs_diff=largest, score_diff=score_diff)


def read_predictions(model: str, dtype: str, dataset: str) -> pd.DataFrame:
    """An evaluation's predictions file (results.PREDICTIONS_PATH)."""
    path = results.PREDICTIONS_PATH.format(model=model, dtype=dtype, dataset=dataset)
    return pd.read_parquet(path)


def glue_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model family (a model is its own family unless the config says otherwise), one
    column per GLUE dataset it was scored on (the task's official score, x 100), its GLUE
    average and its COVERAGE ("k of 9": the GLUE tasks it has a score for).

    Only task-matched evaluations count: a cross-task one (CROSS_TASK) is no score of the model
    on that task, so it is neither in a column nor in the average. A task scored on several
    datasets (MNLI matched and mismatched, or train and validation) counts once, as their mean.
    The average is left empty below MIN_TASKS_FOR_AVERAGE tasks. Where a model ran in several
    dtypes, each family has a row per dtype ("family · dtype"): precisions are never averaged.
    """
    glue = table["glue_task"].fillna("").isin(list(GLUE_TASKS)) & table[SCORE].notna()
    if CROSS_TASK in table.columns:
        glue &= ~table[CROSS_TASK].astype(bool)
    scored = table[glue].copy()
    if "dtype" in scored.columns:
        scored["family"] = results.evaluation_labels(scored["family"], scored["dtype"])
    order = {name: i for i, name in enumerate(GLUE_TASKS)}
    columns = sorted(
        dict.fromkeys(zip(scored["glue_task"], scored[DATASET], strict=True)),
        key=lambda pair: order[pair[0]],
    )
    summary = pd.DataFrame({"Model": list(dict.fromkeys(scored["family"]))})
    for task, dataset in columns:
        scores = scored[scored[DATASET] == dataset].groupby("family")[SCORE].mean()
        summary[f"{GLUE_TASKS[task].title} ({dataset})"] = summary["Model"].map(scores)
    per_task = scored.groupby(["family", "glue_task"], sort=False)[SCORE].mean()
    by_family = per_task.groupby(level="family", sort=False)
    counts = summary["Model"].map(by_family.size())
    averages = summary["Model"].map(by_family.mean())
    summary[GLUE_AVERAGE] = averages.where(counts >= MIN_TASKS_FOR_AVERAGE).astype(float)
    summary[COVERAGE] = [f"{count} of {len(GLUE_TASKS)}" for count in counts]
    return summary.round(1)
