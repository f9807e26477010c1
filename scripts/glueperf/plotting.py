"""Bar charts of ``model_performance.csv``: datasets on the x axis, one bar colour per model."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# What each plot shows: file stem -> (column, y-axis label, title, value format, CI columns).
PLOTS = {
    "accuracy": (
        "Accuracy (%)",
        "Accuracy (%)",
        "Accuracy by dataset (95 % Wilson interval)",
        "{:.1f}",
        ("accuracy_ci_low_pct", "accuracy_ci_high_pct"),
    ),
    "inference_time": (
        "Inference Time (seconds)",
        "Inference time (s)",
        "Inference time: tokenization + forward passes",
        "{:.2f}",
        None,
    ),
    "memory_usage": (
        "Memory Usage (MB)",
        "Peak process RSS (MiB)",
        "Memory usage: peak resident set size of the evaluation process",
        "{:.0f}",
        None,
    ),
}

# A log axis once the largest bar is this many times the smallest.
LOG_SCALE_RATIO = 100


def grouped_bars(
    table: pd.DataFrame, column: str, ylabel: str, title: str, value_format: str, interval=None
):
    """A figure with one group of bars per dataset and one bar per model, values written on top."""
    datasets = list(dict.fromkeys(table["Dataset"]))
    models = list(dict.fromkeys(table["Model"]))
    width = 0.8 / len(models)
    figure, axes = plt.subplots(
        figsize=(max(6.0, 1.2 * len(datasets) * max(1, len(models)) + 2), 5)
    )
    positions = np.arange(len(datasets))
    for number, model in enumerate(models):
        rows = table[table["Model"] == model].set_index("Dataset").reindex(datasets)
        values = rows[column].to_numpy(dtype=float)
        offsets = positions - 0.4 + width * (number + 0.5)
        errors = None
        if interval is not None:
            low, high = (rows[c].to_numpy(dtype=float) for c in interval)
            errors = np.vstack([values - low, high - values])
        bars = axes.bar(offsets, np.nan_to_num(values), width, label=model, yerr=errors, capsize=3)
        labels = ["n/a" if math.isnan(v) else value_format.format(v) for v in values]
        axes.bar_label(bars, labels=labels, padding=3, fontsize=8)
    finite = table[column].dropna()
    finite = finite[finite > 0]
    if len(finite) and finite.max() / finite.min() >= LOG_SCALE_RATIO:
        axes.set_yscale("log")
    axes.set_xticks(
        positions,
        datasets,
        rotation=30 if len(datasets) > 3 else 0,
        ha="right" if len(datasets) > 3 else "center",
    )
    axes.set_xlabel("Dataset")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.margins(y=0.15)
    if len(models) > 1:
        axes.legend(title="Model", fontsize=8)
    figure.tight_layout()
    return figure


def read_performance_table(path) -> pd.DataFrame:
    """model_performance.csv with only empty cells missing and names kept as text (pandas would
    read a model named 'NA' as missing and a dataset named '2e5' as a number)."""
    names = dict.fromkeys(("Model", "Dataset", "Task"), str)
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=names)


def plot_one(table: pd.DataFrame, stem: str, path) -> None:
    """Write the plot ``stem`` (a key of PLOTS) of the performance table to ``path``."""
    from glueperf.outputs import atomic_path

    column, ylabel, title, value_format, interval = PLOTS[stem]
    figure = grouped_bars(table, column, ylabel, title, value_format, interval)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
