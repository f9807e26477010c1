"""The pipeline's figures: bar charts of ``model_performance.csv`` (datasets on the x axis, one
bar colour per model) and the GLUE summary as a table figure, all drawn in one process.

Light to import: the Snakefile reads PLOTS from here while it is parsed, so matplotlib is
imported only by the functions that draw (pyplot()), and pandas only for type hints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from glueperf import TRUNCATED_WARN_PCT

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# What each bar chart shows: file stem -> (column, y-axis label, title, value format, CI columns).
# The stems are the bar charts the pipeline draws (results/plots/<stem>.png), in this order; the
# plotting rule's outputs are made from them (rules/common.smk: plot_outputs).
PLOTS = {
    "score": (
        "Score",
        "Official score (x 100)",
        "Each task's official GLUE metric (95 % interval)",
        "{:.1f}",
        ("score_ci_low", "score_ci_high"),
    ),
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
    "throughput": (
        "throughput_eps",
        "Throughput (sentences/s)",
        "Throughput: sentences per second of inference time",
        "{:,.0f}",
        None,
    ),
}
# The GLUE summary table as a figure (results/plots/glue_summary.png), drawn after the PLOTS.
GLUE_SUMMARY = "glue_summary"
# Every figure the pipeline draws, by stem: one job of rule plot_results writes them all.
ALL_PLOTS = (*PLOTS, GLUE_SUMMARY)
# Plots of measurements that depend on the machine: their footnote names the device and dtype.
MEASURED = ("inference_time", "memory_usage", "throughput")

# A log axis once the largest bar is this many times the smallest (never for percentages).
LOG_SCALE_RATIO = 100
# Figure size in inches: each dataset's group of bars gets GROUP_INCHES per model (at least
# MIN_GROUP_INCHES), the whole figure at least MIN_WIDTH and at most MAX_WIDTH wide.
GROUP_INCHES = 0.5
MIN_GROUP_INCHES = 1.0
MIN_WIDTH, MAX_WIDTH, HEIGHT = 6.4, 30.0, 5.0
# Tick labels are rotated once there are more datasets than this.
ROTATE_TICKS_AFTER = 3
TICK_ROTATION = 30


@cache
def pyplot():
    """matplotlib's pyplot, drawing to files only (no display needed); imported once."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_width(n_datasets: int, n_models: int) -> float:
    """Inches: grows with the number of bars, so that bars and their labels keep their size."""
    group = max(MIN_GROUP_INCHES, GROUP_INCHES * n_models + 0.3)
    return min(MAX_WIDTH, max(MIN_WIDTH, 1.6 + group * n_datasets))


def footnote(table: pd.DataFrame, measured: bool) -> str:
    """The model when there is only one (no legend then) and, for time and memory, the device
    and dtype that the figures were measured on."""
    parts = []
    models = list(dict.fromkeys(table["Model"]))
    if len(models) == 1:
        parts.append(f"Model: {models[0]}")
    if measured and "device_name" in table.columns:
        setups = [
            f"{row.device_name} ({row.device}, {row.dtype})"
            if "device" in table.columns and "dtype" in table.columns
            else str(row.device_name)
            for row in table.itertuples()
        ]
        parts.append("Measured on " + "; ".join(dict.fromkeys(setups)))
    parts += truncation_warnings(table, several_models=len(models) > 1)
    return " · ".join(parts)


def truncation_warnings(table: pd.DataFrame, several_models: bool, shown: int = 3) -> list[str]:
    """'⚠ sst2-train: 12.0 % of rows truncated' for each run over TRUNCATED_WARN_PCT."""
    if "truncated_pct" not in table.columns:  # a table from before the column existed
        return []
    flagged = table[table["truncated_pct"] > TRUNCATED_WARN_PCT]
    warnings = [
        f"⚠ {row.Dataset}{f' ({row.Model})' if several_models else ''}: "
        f"{row.truncated_pct:.1f} % of rows truncated"
        for row in flagged.itertuples()
    ]
    if len(warnings) > shown:
        warnings = warnings[:shown] + [f"⚠ {len(warnings) - shown} more runs truncated rows"]
    return warnings


def overlapping(boxes) -> bool:
    """Whether any two of the boxes (matplotlib Bboxes) overlap."""
    boxes = list(boxes)
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def grouped_bars(
    table: pd.DataFrame,
    column: str,
    ylabel: str,
    title: str,
    value_format: str,
    interval=None,
    note: str = "",
):
    """A figure with one group of bars per dataset and one bar per model, values written on top.

    ``interval``: the (low, high) columns of a confidence interval, drawn as error bars; the
    column is then a percentage (or a score x 100) and the axis runs from 0 to 100, or from -100
    where a score (MCC, a correlation) is negative. ``note``: a footnote.
    """
    datasets = list(dict.fromkeys(table["Dataset"]))
    bottom = 0
    if interval is not None and (table[list(interval)].min().min() < 0 or table[column].min() < 0):
        bottom = -100
    models = list(dict.fromkeys(table["Model"]))
    width = 0.8 / len(models)
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(figure_width(len(datasets), len(models)), HEIGHT))
    positions = np.arange(len(datasets))
    value_labels = []
    for number, model in enumerate(models):
        rows = table[table["Model"] == model].set_index("Dataset").reindex(datasets)
        values = rows[column].to_numpy(dtype=float)
        offsets = positions - 0.4 + width * (number + 0.5)
        errors = None
        if interval is not None:
            low, high = (rows[c].to_numpy(dtype=float) for c in interval)
            # Lengths below and above the value; a rounding step outside [low, high] is 0.
            errors = np.clip(np.vstack([values - low, high - values]), 0.0, None)
        bars = axes.bar(offsets, np.nan_to_num(values), width, label=model, yerr=errors, capsize=3)
        labels = ["" if math.isnan(v) else value_format.format(v) for v in values]
        for text, value, offset in zip(
            axes.bar_label(bars, labels=labels, padding=3, fontsize=8), values, offsets, strict=True
        ):
            if math.isnan(value):
                # No value (no labels, or the pair was not run): "n/a" on the axis, which also
                # works on a log axis, where a bar of height 0 has no top.
                text.remove()
                text = axes.annotate(
                    "n/a",
                    (offset, 0),
                    xycoords=axes.get_xaxis_transform(),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
            value_labels.append(text)
    if interval is not None:
        axes.set_ylim(bottom, 112)  # room for the labels above 100 %
        axes.set_yticks(range(bottom, 101, 20))
    else:
        finite = table[column].dropna()
        finite = finite[finite > 0]
        if len(finite) and finite.max() / finite.min() >= LOG_SCALE_RATIO:
            axes.set_yscale("log")
        axes.margins(y=0.15)
    rotate = len(datasets) > ROTATE_TICKS_AFTER
    axes.set_xticks(
        positions,
        tick_labels(table, datasets, column),
        rotation=TICK_ROTATION if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor" if rotate else "default",
    )
    axes.set_xlim(-0.5, len(datasets) - 0.5)
    axes.set_xlabel("Dataset")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    if len(models) > 1:
        # Outside the axes, right of them: over the bars it would hide bars and their values.
        axes.legend(title="Model", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if note:
        figure.text(0.01, 0.01, note, fontsize=8, color="0.35", ha="left", va="bottom")
    figure.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    # Many narrow bars: turn the value labels upright when they would run into each other.
    renderer = figure.canvas.get_renderer()
    if overlapping(t.get_window_extent(renderer) for t in value_labels):
        for text in value_labels:
            text.set_rotation(90)
        if interval is None:
            axes.margins(y=0.3)
        else:
            axes.set_ylim(bottom, 125)
        figure.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    return figure


def tick_labels(table: pd.DataFrame, datasets: list[str], column: str) -> list[str]:
    """Dataset names; under the official score, each with its metric (e.g. 'f1/accuracy')."""
    if column != "Score" or "Metric" not in table.columns:
        return datasets
    metrics = table.dropna(subset=["Metric"]).groupby("Dataset", sort=False)["Metric"].first()
    return [f"{d}\n{metrics[d]}" if d in metrics.index else d for d in datasets]


def plot_glue_summary(summary: pd.DataFrame, path) -> None:
    """The GLUE summary as papers print it: models down, tasks across, the official score (x 100)
    in each cell and the model's GLUE average last; '-' where a model did not run a task."""
    columns = [c for c in summary.columns if c not in ("Model", "tasks")]
    values = summary[columns].to_numpy(dtype=float) if len(summary) else np.empty((0, 0))
    plt = pyplot()
    figure, axes = plt.subplots(
        figsize=(max(MIN_WIDTH, 1.2 * len(columns) + 2.5), 1.2 + 0.45 * max(1, len(summary)))
    )
    axes.imshow(
        np.ma.masked_invalid(values) if values.size else np.zeros((1, 1)),
        cmap="RdYlGn",
        vmin=0,
        vmax=100,
        aspect="auto",
    )
    for (row, col), value in np.ndenumerate(values):
        axes.text(col, row, "-" if math.isnan(value) else f"{value:.1f}", ha="center", va="center")
    axes.set_xticks(range(len(columns)), [c.replace(" (", "\n(") for c in columns], fontsize=8)
    axes.set_yticks(range(len(summary)), summary["Model"].tolist())
    axes.xaxis.tick_top()
    axes.set_title(
        "GLUE summary: official score x 100 per task, and the average over the tasks run"
        if len(summary)
        else "No GLUE dataset (glue_task) was scored",
        fontsize=10,
    )
    figure.tight_layout()
    save(figure, path)


def plot_one(table: pd.DataFrame, stem: str, path) -> None:
    """Write the plot ``stem`` (a key of PLOTS) of the performance table to ``path``."""
    column, ylabel, title, value_format, interval = PLOTS[stem]
    note = footnote(table, measured=stem in MEASURED)
    save(grouped_bars(table, column, ylabel, title, value_format, interval, note), path)


def plot_all(table: pd.DataFrame, summary: pd.DataFrame, paths: Mapping[str, object]) -> None:
    """Every figure: ``paths`` maps each stem of ALL_PLOTS (no other) to its file. The PLOTS are
    drawn from the performance table, GLUE_SUMMARY from the GLUE summary, one after the other;
    each file is written whole or not at all (a failure stops the rest)."""
    if sorted(paths) != sorted(ALL_PLOTS):
        raise ValueError(f"plot_all draws {list(ALL_PLOTS)}, was given {list(paths)}")
    for stem in PLOTS:
        plot_one(table, stem, paths[stem])
        log.info("drew %s", paths[stem])
    plot_glue_summary(summary, paths[GLUE_SUMMARY])
    log.info("drew %s", paths[GLUE_SUMMARY])


def save(figure, path) -> None:
    """Write ``figure`` to ``path`` as a PNG, atomically, and close it, written or not: one
    process draws every figure, so a failed one must not stay open either."""
    from glueperf.outputs import atomic_path

    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=120)
    finally:
        pyplot().close(figure)
