"""The pipeline's figures, all drawn in one process: bar charts of ``model_performance.csv``
(one group of bars per dataset, one bar per evaluation that ran on it, one colour per series)
and the GLUE summary as a table figure. Each is written as a PNG (the report shows it) and in
the vector formats that the config asks for (``plots.vector_formats``): the same figure.

Light to import: the Snakefile reads the registry from here while it is parsed, so matplotlib
is imported only by the functions that draw (pyplot()), and pandas only for type hints.
"""

from __future__ import annotations

import logging
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glueperf import TRUNCATED_WARN_PCT, results
from glueperf.metrics import METRICS, REGRESSION
from glueperf.results import table_name

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BarChart:
    """A bar chart of one column of the performance table.

    ``interval``: the (low, high) columns of a 95 % interval, drawn as error bars; the column is
    then a percentage (or a score x 100) on an axis from 0 (or -100) to 100. ``measured``: the
    value depends on the machine, and the footnote names the device, dtype and threads.
    ``scored``: the value compares predictions with labels, so a cross-task evaluation's bar is
    hatched. ``marks``: another column drawn as a mark on each bar (its legend entry
    ``marks_label``; ``marks_missing``: the footnote's words for bars without one), e.g. p99
    latency over p50's bar. Columns by their names in the table.
    """

    column: str
    ylabel: str
    title: str
    value_format: str
    interval: tuple[str, str] | None = None
    measured: bool = False
    scored: bool = False
    marks: str | None = None
    marks_label: str = ""
    marks_missing: str = ""

    def draw(self, table: pd.DataFrame, summary: pd.DataFrame):
        return grouped_bars(table, self)


class GlueSummaryFigure:
    """The GLUE summary (glue_summary.csv) as a table figure."""

    def draw(self, table: pd.DataFrame, summary: pd.DataFrame):
        return glue_summary_figure(summary, table)


# The bar charts, by file stem (results/plots/<stem>.png), in the order they are drawn.
PLOTS = {
    "score": BarChart(
        table_name("score"),
        "Official score (x 100)",
        "Each task's official GLUE metric (95 % interval)",
        "{:.1f}",
        ("score_ci_low", "score_ci_high"),
        scored=True,
    ),
    "accuracy": BarChart(
        table_name("accuracy_pct"),
        "Accuracy (%)",
        "Accuracy by dataset (95 % Wilson interval)",
        "{:.1f}",
        ("accuracy_ci_low_pct", "accuracy_ci_high_pct"),
        scored=True,
    ),
    "inference_time": BarChart(
        table_name("inference_time_s"),
        "Inference time (s)",
        "Inference time: tokenization + forward passes",
        "{:.2f}",
        measured=True,
    ),
    "memory_usage": BarChart(
        table_name("peak_rss_mb"),
        "Peak process RSS (MiB)",
        "Memory usage: peak resident set size of the evaluation process",
        "{:.0f}",
        measured=True,
    ),
    "throughput": BarChart(
        table_name("throughput_eps"),
        "Throughput (sentences/s)",
        "Throughput: sentences per second of inference time",
        "{:,.0f}",
        measured=True,
    ),
    "latency": BarChart(
        table_name("latency_p50_ms"),
        "Single-request latency (ms)",
        "Single-request latency: p50 bars, p99 marks",
        "{:.1f}",
        measured=True,
        marks=table_name("latency_p99_ms"),
        marks_label="p99",
        marks_missing="too few requests ran for it (latency_note says how many it needs)",
    ),
    "energy": BarChart(
        table_name("energy_j_per_1k"),
        "GPU energy (J per 1,000 sentences)",
        "GPU energy of the offline pass per 1,000 sentences",
        "{:.1f}",
        measured=True,
    ),
}
# The columns that compare predictions with labels: empty for a reason (missing_reason).
SCORED_COLUMNS = tuple(chart.column for chart in PLOTS.values() if chart.scored)
GLUE_SUMMARY = "glue_summary"


@dataclass(frozen=True)
class TradeOff:
    """The official score against a measured column (``column``, by its table name), one panel
    per dataset, one point per evaluation (a model in one dtype); the best choices, the Pareto
    front (no other point scores higher and is better in ``column``: higher where
    ``higher_is_better``, else lower), marked and named in the footnote."""

    column: str
    xlabel: str
    title: str
    higher_is_better: bool
    measure: str  # what the footnote calls the column, with which way is better

    def draw(self, table: pd.DataFrame, summary: pd.DataFrame):
        return tradeoff_figure(table, self)


TRADE_OFFS = {
    "score_vs_throughput": TradeOff(
        table_name("throughput_eps"),
        "Throughput (sentences/s)",
        "Official score against throughput",
        higher_is_better=True,
        measure="throughput (higher is better)",
    ),
    "score_vs_latency": TradeOff(
        table_name("latency_p99_ms"),
        "p99 single-request latency (ms)",
        "Official score against p99 single-request latency",
        higher_is_better=False,
        measure="p99 latency (lower is better)",
    ),
}
# Every figure the pipeline draws, by stem: the one registry of plot names. One job of rule
# plot_results writes them all; its outputs are made of it (figure_files).
FIGURES = {**PLOTS, **TRADE_OFFS, GLUE_SUMMARY: GlueSummaryFigure()}
ALL_PLOTS = tuple(FIGURES)

PLOTS_DIR = "results/plots"
# Every figure is a PNG, which the report shows; each vector format is written beside it when
# config key plots.vector_formats names it. How each format is written: text kept as text in an
# SVG (searchable, editable in a paper) and embedded as TrueType in a PDF, and no date, so that
# the same figure gives the same bytes; a PNG compressed by Pillow's zlib at level 3, not its
# 6 (about 2/3 of the time, files ~7 % larger). Per format: (rc settings, metadata, savefig's
# other arguments).
RASTER_FORMAT = "png"
VECTOR_FORMATS = ("svg", "pdf")
SAVE_SETTINGS = {
    "png": ({}, {}, {"pil_kwargs": {"compress_level": 3}}),
    "svg": ({"svg.fonttype": "none", "svg.hashsalt": "glueperf"}, {"Date": None}, {}),
    "pdf": ({"pdf.fonttype": 42}, {"CreationDate": None}, {}),
}
DPI = 120

# The series of a bar chart: one colour and one legend entry each (series_labels).
SERIES_TITLE = "Model"
# The performance table's columns that every figure reads, by their names there.
DATASET, MODEL, METRIC, SCORE = (
    table_name(name) for name in ("dataset", "model", "metric", "score")
)
# A log axis once the largest bar is this many times the smallest (never for percentages).
LOG_SCALE_RATIO = 100
# Layout, in bar slots: each evaluation has a slot one unit wide, its bar BAR_WIDTH of it;
# datasets' groups are GROUP_GAP apart. A slot is SLOT_INCHES wide until the figure would be
# wider than MAX_WIDTH inches; then the slots narrow down to MIN_SLOT_INCHES (room for an
# upright value label), and past that the groups go on in further rows (wrap).
BAR_WIDTH = 0.8
GROUP_GAP = 0.8
SLOT_INCHES, MIN_SLOT_INCHES = 0.45, 0.2
# A group is at least this wide, room for its dataset's name, where the figure has room.
MIN_GROUP_INCHES = 1.3
MARGIN_INCHES = 1.6
# Figure inches: at least MIN_WIDTH and at most MAX_WIDTH wide; HEIGHT tall for one row of
# groups, ROW_HEIGHT a row for several; and the footnote's lines.
MIN_WIDTH, MAX_WIDTH, HEIGHT, ROW_HEIGHT = 6.4, 18.0, 5.0, 3.6
# Legend: rows per column, and inches per column: a fixed part and one per character of names.
LEGEND_ROWS = 22
LEGEND_INCHES, LEGEND_CHAR_INCHES = 0.7, 0.075
# Footnote: 8 pt lines, wrapped at about this many characters per inch of figure width.
NOTE_FONTSIZE, NOTE_LINE_INCHES, NOTE_CHARS_PER_INCH = 8, 0.16, 14
VALUE_FONTSIZE = 8
TICK_ROTATION = 30
# How a cross-task evaluation's bar is marked, and what the mark says.
CROSS_TASK_HATCH = "///"
CROSS_TASK_LABEL = "cross-task (label_map)"
# A missing value's reason, for the empty slot of its bar (missing_reason).
NO_LABELS, NOT_FOR_REGRESSION, UNDEFINED, NOT_MEASURED, TOO_FEW_REQUESTS = (
    "no labels",
    "regression",
    "undefined",
    "not measured",
    "too few requests",
)
# The columns whose missing values have reasons of their own (missing_reason).
LATENCY_COLUMNS = tuple(table_name(name) for name in results.Latency.names())
ENERGY_COLUMNS = tuple(table_name(name) for name in results.Energy.names())
VALUES_LEFT_OUT = "Too many bars to write each value on: the values are in model_performance.csv"
# Listed by name in a footnote, then counted.
SHOWN_IN_NOTE = 3


@cache
def pyplot():
    """matplotlib's pyplot, drawing to files only (no display needed); imported once."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_files(vector_formats: Sequence[str] = ()) -> dict[str, list[str]]:
    """Every figure's files, stem -> [its PNG, then one file per vector format]: the outputs
    of rule plot_results, and what plot_all writes."""
    unknown = [name for name in vector_formats if name not in VECTOR_FORMATS]
    if unknown:
        raise ValueError(f"vector formats {unknown} unknown (known: {list(VECTOR_FORMATS)})")
    return {
        stem: [f"{PLOTS_DIR}/{stem}.{kind}" for kind in (RASTER_FORMAT, *vector_formats)]
        for stem in ALL_PLOTS
    }


def series_labels(table: pd.DataFrame) -> list[str]:
    """The series each row of the performance table belongs to: its colour and legend entry.
    The one place that says what a series is: the model, or "model · dtype" where some model of
    the table ran in several dtypes (glueperf.results.evaluation_labels)."""
    models = table[MODEL].tolist()
    if "dtype" not in table.columns:
        return [str(model) for model in models]
    return results.evaluation_labels(models, table["dtype"].fillna("").tolist())


def is_regression(row) -> bool:
    """Whether the row's dataset is scored by regression metrics (its Metric names them)."""
    names = str(row.get(METRIC, "")).split("/")
    return all(name in METRICS and METRICS[name].kind == REGRESSION for name in names)


def missing_reason(row, column: str) -> str:
    """Why an evaluation that ran has no value in ``column``, in a word or two: no labeled row
    (GLUE test splits), accuracy of a regression task, or a metric undefined on these
    predictions (a correlation of constant predictions); a latency percentile of too few
    requests; energy on a device without NVML's counter ("CPU")."""
    import pandas as pd

    if column in LATENCY_COLUMNS:
        requests = row.get("latency_requests")
        measured = requests is not None and not pd.isna(requests) and int(requests) > 0
        return TOO_FEW_REQUESTS if measured else NOT_MEASURED
    if column in ENERGY_COLUMNS:
        kind = str(row.get("device") or "").split(":")[0]
        return kind.upper() if kind and kind != "cuda" else NOT_MEASURED
    if column not in SCORED_COLUMNS:
        return NOT_MEASURED
    n_labeled = row.get("n_labeled")
    if n_labeled is not None and not pd.isna(n_labeled) and int(n_labeled) == 0:
        return NO_LABELS
    if column != SCORE and is_regression(row):
        return NOT_FOR_REGRESSION
    return UNDEFINED


def cross_task(table: pd.DataFrame) -> np.ndarray:
    """Whether each row is a cross-task evaluation (the table's cross_task column, made by
    glueperf.aggregate; all False for a table written before it existed)."""
    from glueperf.aggregate import CROSS_TASK

    if CROSS_TASK not in table.columns:
        return np.zeros(len(table), dtype=bool)
    return table[CROSS_TASK].fillna(False).astype(bool).to_numpy()


def evaluation_names(table: pd.DataFrame) -> list[str]:
    """'rte-validation (minilm-mrpc)' for each row, for a footnote: one unbreakable piece each
    when wrapped."""
    return [
        f"{dataset}\N{NO-BREAK SPACE}({series.replace(' ', chr(0xA0))})"
        for dataset, series in zip(table[DATASET], series_labels(table), strict=True)
    ]


def column_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """A column as floats; all NaN for a table from before the column existed."""
    if column not in table.columns:
        return np.full(len(table), np.nan)
    return table[column].to_numpy(dtype=float)


def setups(table: pd.DataFrame) -> str:
    """What the measurements were made on, each setup once: 'Measured on NVIDIA H100 (cuda,
    bfloat16, 4 threads)', the tokenizer's threads too where they differ from torch's; the
    dtypes of one device and threads together ('cuda, float32/bfloat16, 4 threads')."""
    dtypes: dict[tuple, list[str]] = {}
    for _, row in table.iterrows():
        threads = []
        count = row.get("torch_threads")
        if count is not None and not pd_missing(count):
            threads.append(f"{int(count)} thread{'s' if int(count) != 1 else ''}")
            tokenizer = row.get("tokenizer_threads")
            if tokenizer is not None and not pd_missing(tokenizer) and tokenizer != count:
                threads[-1] += f", tokenizer {int(tokenizer)}"
        device = str(row["device"]) if "device" in table.columns else ""
        kinds = dtypes.setdefault((str(row["device_name"]), device, tuple(threads)), [])
        if "dtype" in table.columns and str(row["dtype"]) not in kinds:
            kinds.append(str(row["dtype"]))
    texts = []
    for (name, device, threads), kinds in dtypes.items():
        details = [part for part in (device, "/".join(kinds), *threads) if part]
        texts.append(f"{name} ({', '.join(details)})" if details else name)
    return "Measured on " + "; ".join(texts)


def pd_missing(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def listed(items: list[str], shown: int = SHOWN_IN_NOTE) -> str:
    """'a, b, c and 2 more'."""
    if len(items) <= shown:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f" and {len(items) - shown} more"


def no_values_note(table: pd.DataFrame, column: str) -> str:
    """Why no evaluation has a value in ``column``: each reason (missing_reason) with the
    evaluations it holds for."""
    reasons: dict[str, list[str]] = {}
    for name, (_, row) in zip(evaluation_names(table), table.iterrows(), strict=True):
        reasons.setdefault(missing_reason(row, column), []).append(name)
    held = [f"{reason}: {listed(names)}" for reason, names in reasons.items()]
    return "No evaluation has a value to plot.\n" + "\n".join(held)


def footnote_lines(table: pd.DataFrame, chart: BarChart) -> list[str]:
    """What the figure alone must say: the series when there is only one (no legend then), for
    measurements the device, dtype and threads, the bars without a mark and why, for scores the
    cross-task evaluations (hatched), and runs that truncated many sentences."""
    series = list(dict.fromkeys(series_labels(table)))
    first = []
    if len(series) == 1:
        first.append(f"{SERIES_TITLE}: {series[0]}")
    if chart.measured and "device_name" in table.columns:
        first.append(setups(table))
    lines = [" · ".join(first)] if first else []
    names = evaluation_names(table)
    if chart.marks:
        values, marks = column_values(table, chart.column), column_values(table, chart.marks)
        unmarked = [
            name
            for name, value, mark in zip(names, values, marks, strict=True)
            if not math.isnan(value) and math.isnan(mark)
        ]
        if unmarked:
            lines.append(f"No {chart.marks_label} mark: {chart.marks_missing}: {listed(unmarked)}")
    if chart.scored:
        crossed = cross_task(table)
        if crossed.any():
            names = [name for name, cross in zip(names, crossed, strict=True) if cross]
            lines.append(
                "Hatched: cross-task, the model's classes taken for another task's labels "
                f"through a label_map, not a score on that task: {listed(names)}"
            )
    lines += truncation_warnings(table, several_models=len(series) > 1)
    return lines


def truncation_warnings(table: pd.DataFrame, several_models: bool) -> list[str]:
    """'⚠ sst2-train: 12.0 % of rows truncated' for each run over TRUNCATED_WARN_PCT."""
    if "truncated_pct" not in table.columns:  # a table from before the column existed
        return []
    flagged = (table["truncated_pct"] > TRUNCATED_WARN_PCT).to_numpy()
    names = evaluation_names(table) if several_models else table[DATASET].tolist()
    warnings = [
        f"⚠ {name}: {pct:.1f} % of rows truncated"
        for name, pct, flag in zip(names, table["truncated_pct"], flagged, strict=True)
        if flag
    ]
    if len(warnings) > SHOWN_IN_NOTE:
        more = len(warnings) - SHOWN_IN_NOTE
        warnings = warnings[:SHOWN_IN_NOTE] + [f"⚠ {more} more runs truncated rows"]
    return warnings


def wrapped(lines: list[str], width_inches: float) -> str:
    """The footnote's lines, each wrapped to the figure's width."""
    width = max(40, int(width_inches * NOTE_CHARS_PER_INCH))
    return "\n".join(
        textwrap.fill(line, width, subsequent_indent="  ", break_on_hyphens=False) for line in lines
    )


def overlapping(boxes) -> bool:
    """Whether any two of the boxes (matplotlib Bboxes) overlap."""
    boxes = list(boxes)
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def palette(n: int) -> list:
    """n colours, one per series: tab10's up to 10; then tab20's dark shades before its light
    ones, so that neighbouring bars differ in hue; then tab20b's and tab20c's, repeated."""
    plt = pyplot()
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    tab20 = plt.get_cmap("tab20")
    colours = [tab20(i) for i in range(0, 20, 2)] + [tab20(i) for i in range(1, 20, 2)]
    colours += [plt.get_cmap(name)(i) for name in ("tab20b", "tab20c") for i in range(20)]
    return [colours[i % len(colours)] for i in range(n)]


@dataclass(frozen=True)
class Group:
    """One dataset's bars: the rows of the table that ran on it, in series order."""

    dataset: str
    rows: list[int]


def groups_of(table: pd.DataFrame, series: list[str]) -> list[Group]:
    """A slot for each evaluation that ran (each row), grouped by dataset in the table's order:
    none for a model that did not run on a dataset."""
    order = {name: i for i, name in enumerate(dict.fromkeys(series))}
    dataset_of = table[DATASET].tolist()
    return [
        Group(
            dataset,
            sorted(
                (i for i, d in enumerate(dataset_of) if d == dataset),
                key=lambda i: order[series[i]],
            ),
        )
        for dataset in dict.fromkeys(dataset_of)
    ]


def units(groups: Sequence[Group]) -> float:
    """Width of a row of groups, in slots."""
    return sum(len(g.rows) for g in groups) + GROUP_GAP * (len(groups) - 1)


def wrap(groups: list[Group], room_inches: float) -> tuple[list[list[Group]], float]:
    """The groups in rows of bars, and the inches of a slot: one row, its slots SLOT_INCHES
    wide or narrower down to MIN_SLOT_INCHES; past that as few rows as slots of MIN_SLOT_INCHES
    need, the groups spread evenly over them (in order), every row at the widest one's scale."""
    total = units(groups)
    if total * MIN_SLOT_INCHES <= room_inches:
        # Room under each group for its dataset's name, where there is room at all.
        slot = max(SLOT_INCHES, MIN_GROUP_INCHES * len(groups) / total)
        return [groups], min(slot, room_inches / total)
    count = math.ceil(total * MIN_SLOT_INCHES / room_inches)
    # The narrowest row width (in slots) that fits the groups in `count` rows.
    low, high = max(len(g.rows) for g in groups), total
    while high - low > 0.05:
        middle = (low + high) / 2
        if len(fill_rows(groups, middle)) <= count:
            high = middle
        else:
            low = middle
    rows = fill_rows(groups, high)
    return rows, min(SLOT_INCHES, room_inches / max(units(row) for row in rows))


def fill_rows(groups: list[Group], width: float) -> list[list[Group]]:
    rows: list[list[Group]] = [[]]
    for group in groups:
        if rows[-1] and units([*rows[-1], group]) > width:
            rows.append([])
        rows[-1].append(group)
    return rows


def legend_inches(names: list[str], extra: list[str]) -> tuple[int, float]:
    """Columns and inches of the legend: the series when there are several, and the ``extra``
    entries (the cross-task mark when a bar has it, a chart's marks)."""
    entries = (len(names) if len(names) > 1 else 0) + len(extra)
    if not entries:
        return 0, 0.0
    columns = math.ceil(entries / LEGEND_ROWS)
    longest = max(len(n) for n in [*names, *extra])
    return columns, columns * (LEGEND_INCHES + LEGEND_CHAR_INCHES * longest)


def grouped_bars(table: pd.DataFrame, chart: BarChart):
    """The bar chart ``chart`` of the performance table: one group of bars per dataset, one bar
    per evaluation that ran on it, its value written on top; where it has no value, the reason
    (missing_reason); a cross-task evaluation's bar hatched where the chart is ``scored``.
    Many bars: narrower, and past a width, in several rows of groups on the same scales. Without
    any value, a note saying why (``no_values_note``)."""
    table = table.reset_index(drop=True)
    values = column_values(table, chart.column)
    if not np.isfinite(values).any():
        return note_figure(chart.title, no_values_note(table, chart.column))
    series = series_labels(table)
    names = list(dict.fromkeys(series))
    crossed = cross_task(table) & chart.scored
    marked = chart.marks is not None and bool(np.isfinite(column_values(table, chart.marks)).any())
    extra = [CROSS_TASK_LABEL] * bool(crossed.any()) + [chart.marks_label] * marked
    legend_columns, legend_width = legend_inches(names, extra)
    groups = groups_of(table, series)
    rows, slot = wrap(groups, MAX_WIDTH - MARGIN_INCHES - legend_width)
    widest = max(units(row) for row in rows)
    width = max(MIN_WIDTH, MARGIN_INCHES + legend_width + slot * widest)
    lines = footnote_lines(table, chart)
    note = wrapped(lines, width)
    note_inches = NOTE_LINE_INCHES * (note.count("\n") + 1) + 0.1 if note else 0.0
    row_inches = HEIGHT if len(rows) == 1 else ROW_HEIGHT
    plt = pyplot()
    figure, grid = plt.subplots(
        len(rows),
        1,
        figsize=(width, row_inches * len(rows) + note_inches),
        sharey=True,
        squeeze=False,
    )
    colours = dict(zip(names, palette(len(names)), strict=True))
    drawn = Drawn()
    for axes, row in zip(grid[:, 0], rows, strict=True):
        draw_row(axes, table, row, widest, chart, series, colours, crossed, drawn)
    bottom = 0
    if chart.interval is not None:
        low = np.nanmin(table[list(chart.interval)].to_numpy(dtype=float), initial=0)
        bottom = -100 if low < 0 or (values < 0).any() else 0
        grid[0, 0].set_ylim(bottom, 112)  # room for the labels above 100 %
        grid[0, 0].set_yticks(range(bottom, 101, 20))
    else:
        shown = values if not marked else np.r_[values, column_values(table, chart.marks)]
        finite = shown[np.isfinite(shown) & (shown > 0)]
        if len(finite) and finite.max() / finite.min() >= LOG_SCALE_RATIO:
            grid[0, 0].set_yscale("log")
        for axes in grid[:, 0]:
            axes.margins(y=0.15)
        if not np.isfinite(shown).any():  # only reasons: no scale to read
            grid[0, 0].set_ylim(0, 1)
            grid[0, 0].set_yticks([])
    first, last = grid[0, 0], grid[-1, 0]
    first.set_title(chart.title)
    last.set_xlabel("Dataset")
    handles = [cross_task_patch()] if crossed.any() else []
    if marked:
        handles.append(marks_handle(chart.marks_label))
    if len(names) > 1:
        handles = [series_patch(name, colours[name]) for name in names] + handles
    legend = None
    if handles:
        # Right of the plots, on the figure: over the bars it would hide bars and their values.
        legend = figure.legend(
            handles=handles,
            title=SERIES_TITLE if len(names) > 1 else None,
            fontsize=8,
            loc="upper right",
            bbox_to_anchor=(0.995, 0.99),
            ncols=legend_columns,
        )
    note_text = None
    if note:
        note_text = figure.text(
            0.01, 0.01, note, fontsize=NOTE_FONTSIZE, color="0.35", ha="left", va="bottom"
        )
    settle(figure, drawn, chart.interval is not None, bottom, note_text, legend)
    return figure


@dataclass
class Drawn:
    """The texts drawn on the bars, which must not run into each other (settle)."""

    values: list = field(default_factory=list)
    reasons: list = field(default_factory=list)


def draw_row(axes, table, row: list[Group], widest, chart, series, colours, crossed, drawn):
    """One row of groups: the bars of each series (one BarContainer per series in the row),
    the values on them, the reasons in empty slots, the datasets under them."""
    column, interval = chart.column, chart.interval
    values = column_values(table, column)
    marks = None if chart.marks is None else column_values(table, chart.marks)
    x = np.zeros(len(table))
    centres, start = [], 0.0
    for group in row:
        x[group.rows] = start + np.arange(len(group.rows))
        centres.append(start + (len(group.rows) - 1) / 2)
        start += len(group.rows) + GROUP_GAP
    members = [i for group in row for i in group.rows]
    for name in dict.fromkeys(series[i] for i in sorted(members)):
        rows = [i for i in members if series[i] == name]
        errors = None
        if interval is not None:
            low, high = (table[c].to_numpy(dtype=float)[rows] for c in interval)
            # Lengths below and above the value; a rounding step outside [low, high] is 0.
            errors = np.clip(np.vstack([values[rows] - low, high - values[rows]]), 0.0, None)
        bars = axes.bar(
            x[rows],
            np.nan_to_num(values[rows]),
            BAR_WIDTH,
            color=colours[name],
            label=name,
            yerr=errors,
            capsize=2,
        )
        if marks is not None:
            axes.plot(x[rows], marks[rows], **MARK_STYLE)
        for bar, index in zip(bars, rows, strict=True):
            if crossed[index]:
                bar.set_hatch(CROSS_TASK_HATCH)
                bar.set_hatchcolor("black")
                bar.set_hatch_linewidth(0.6)
        labels = ["" if math.isnan(v) else chart.value_format.format(v) for v in values[rows]]
        for text in axes.bar_label(bars, labels=labels, padding=2, fontsize=VALUE_FONTSIZE):
            if text.get_text():
                drawn.values.append(text)
            else:
                text.remove()
    for group in row:
        drawn.reasons += reason_labels(axes, table, group, x, values, column)
    axes.set_xticks(centres, tick_labels(table, [g.dataset for g in row], column))
    axes.set_xlim(-0.5 - GROUP_GAP / 2, widest - 0.5 + GROUP_GAP / 2)
    axes.set_ylabel(chart.ylabel)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)


def reason_labels(axes, table, group: Group, x, values, column) -> list:
    """For each run of neighbouring empty slots of the group with the same reason, the reason
    once, just above the axis (where a log axis also has room), over the run's slots."""
    runs: list[tuple[str, list[int]]] = []
    for row in group.rows:
        reason = missing_reason(table.iloc[row], column) if math.isnan(values[row]) else ""
        if runs and runs[-1][0] == reason:
            runs[-1][1].append(row)
        else:
            runs.append((reason, [row]))
    return [
        axes.annotate(
            reason,
            (float(np.mean(x[members])), 0),
            xycoords=axes.get_xaxis_transform(),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=VALUE_FONTSIZE,
            color="0.3",
            style="italic",
        )
        for reason, members in runs
        if reason
    ]


def series_patch(name: str, colour):
    """The legend's entry of a series."""
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, label=name)


# A chart's marks (p99 over a latency bar): a black bar across the slot.
MARK_STYLE = {
    "linestyle": "none",
    "marker": "_",
    "markersize": 14,
    "markeredgewidth": 2.5,
    "color": "black",
    "zorder": 3,
}


def marks_handle(label: str):
    """The legend's entry of a chart's marks."""
    from matplotlib.lines import Line2D

    return Line2D([], [], label=label, **MARK_STYLE)


def cross_task_patch():
    """The legend's entry for the hatched bars."""
    from matplotlib.patches import Patch

    return Patch(facecolor="white", edgecolor="0.2", hatch=CROSS_TASK_HATCH, label=CROSS_TASK_LABEL)


def settle(figure, drawn: Drawn, percent: bool, bottom: int, note_text, legend) -> None:
    """Lay the figure out so that no text runs into another: dataset names slanted when they
    would touch, value labels turned upright when they would, and left out (the footnote says
    so) when even upright ones would; room kept for the legend at the right and the footnote
    at the bottom."""
    renderer = figure.canvas.get_renderer()

    def tight():
        inches = figure.get_size_inches() * figure.dpi
        right = 1 - (legend.get_window_extent(renderer).width + 8) / inches[0] if legend else 1
        low = (note_text.get_window_extent(renderer).height + 8) / inches[1] if note_text else 0
        tight_layout(figure, (0, low, right, 1))

    def crowded(texts) -> bool:
        return overlapping(t.get_window_extent(renderer) for t in texts)

    tight()
    ticks = [tick for axes in figure.axes for tick in axes.get_xticklabels()]
    if any(crowded(axes.get_xticklabels()) for axes in figure.axes):
        for tick in ticks:
            tick.set(rotation=TICK_ROTATION, ha="right", rotation_mode="anchor")
        tight()
    labels = drawn.values + drawn.reasons
    if not crowded(labels):
        return
    for text in labels:
        text.set_rotation(90)
    for axes in figure.axes:
        if percent:
            axes.set_ylim(bottom, 125)
        else:
            axes.margins(y=0.3)
    tight()
    # A reason over a run of empty slots reads better across them, where it fits.
    for reason in drawn.reasons:
        reason.set_rotation(0)
        others = [t for t in labels if t is not reason]
        box = reason.get_window_extent(renderer)
        if any(box.overlaps(t.get_window_extent(renderer)) for t in others):
            reason.set_rotation(90)
    if crowded(drawn.values):
        for text in drawn.values:
            text.remove()
        drawn.values.clear()
        if note_text is None:
            note_text = figure.text(
                0.01, 0.01, "", fontsize=NOTE_FONTSIZE, color="0.35", ha="left", va="bottom"
            )
            figure.set_figheight(figure.get_figheight() + 0.1)
        lines = [note_text.get_text()] if note_text.get_text() else []
        note_text.set_text("\n".join([*lines, VALUES_LEFT_OUT]))
        figure.set_figheight(figure.get_figheight() + NOTE_LINE_INCHES)
        tight()


def tight_layout(figure, rect) -> None:
    """``figure.tight_layout(rect=rect)``, each Axes measured once: with a rect, matplotlib
    measures every Axes (all its texts) twice over the same unchanged figure, the second time
    only for the spaces between rows, which the first already gave."""
    with ExitStack() as stack:
        for axes in figure.axes:
            stack.enter_context(measured_once(axes))
        figure.tight_layout(rect=rect)


@contextmanager
def measured_once(axes):
    """While in it, ``axes.get_tightbbox`` answers tight_layout's repeated question (the same
    renderer) from its first answer: only for a layout that measures before it moves anything."""
    measure, answers = axes.get_tightbbox, {}

    def once(*args, **kwargs):
        if len(args) != 1 or kwargs != {"for_layout_only": True}:  # not tight_layout's question
            return measure(*args, **kwargs)
        if id(args[0]) not in answers:
            answers[id(args[0])] = measure(*args, **kwargs)
        return answers[id(args[0])]

    axes.get_tightbbox = once
    try:
        yield
    finally:
        del axes.get_tightbbox


def tick_labels(table: pd.DataFrame, datasets: list[str], column: str) -> list[str]:
    """Dataset names; under the official score, each with its metric (e.g. 'f1/accuracy')."""
    if column != SCORE or METRIC not in table.columns:
        return datasets
    metrics = table.dropna(subset=[METRIC]).groupby(DATASET, sort=False)[METRIC].first()
    return [f"{d}\n{metrics[d]}" if d in metrics.index else d for d in datasets]


# The trade-off figures: panels per row, a panel's inches, and how a best choice is marked.
PANELS_PER_ROW, PANEL_WIDTH, PANEL_HEIGHT = 3, 4.2, 3.4
BEST_CHOICE = "best choice (Pareto front)"
POINT_SIZE, BEST_POINT_SIZE = 36, 80


def pareto_front(scores, values, higher_is_better: bool) -> np.ndarray:
    """Whether each point is a best choice: no other point scores at least as high and has at
    least as good a value (higher where ``higher_is_better``, else lower), better in one of the
    two. Equal points are all best or none."""
    scores = np.asarray(scores, dtype=float)
    values = np.asarray(values, dtype=float) * (1 if higher_is_better else -1)
    front = np.ones(len(scores), dtype=bool)
    for i in range(len(scores)):
        at_least = (scores >= scores[i]) & (values >= values[i])
        front[i] = not (at_least & ((scores > scores[i]) | (values > values[i]))).any()
    return front


def tradeoff_figure(table: pd.DataFrame, chart: TradeOff):
    """The trade-off ``chart`` of the performance table: one panel per dataset with a score and
    a value in ``chart.column``, a point per evaluation, coloured by series as the bar charts;
    the best choices (``pareto_front``) larger and outlined, joined by a dashed line, and named
    in the footnote with the datasets left out and why. Without any point, a note saying why."""
    table = table.reset_index(drop=True)
    series = series_labels(table)
    names = list(dict.fromkeys(series))
    colours = dict(zip(names, palette(len(names)), strict=True))
    scores, values = column_values(table, SCORE), column_values(table, chart.column)
    usable = np.isfinite(scores) & np.isfinite(values) & (values > 0)
    datasets = table[DATASET].to_numpy()
    panels = [d for d in dict.fromkeys(datasets) if usable[datasets == d].any()]
    left_out = [
        f"{dataset} ({tradeoff_reason(table, chart, np.flatnonzero(datasets == dataset))})"
        for dataset in dict.fromkeys(datasets)
        if dataset not in panels
    ]
    if not panels:
        return note_figure(
            chart.title, "No evaluation has both a score and a value to plot: " + listed(left_out)
        )
    columns = min(len(panels), PANELS_PER_ROW)
    grid_rows = math.ceil(len(panels) / columns)
    legend_columns, legend_width = legend_inches(names, [BEST_CHOICE])
    # Whole tenths of an inch: whole pixels at DPI, the same size in every format.
    width = math.ceil(10 * max(MIN_WIDTH, PANEL_WIDTH * columns + legend_width)) / 10
    lines = tradeoff_notes(table, chart, series, usable, panels, left_out)
    note = wrapped(lines, width)
    note_inches = NOTE_LINE_INCHES * (note.count("\n") + 1) + 0.1
    height = math.ceil(10 * (PANEL_HEIGHT * grid_rows + note_inches)) / 10
    plt = pyplot()
    figure, grid = plt.subplots(grid_rows, columns, figsize=(width, height), squeeze=False)
    metrics = table.dropna(subset=[METRIC]).groupby(DATASET, sort=False)[METRIC].first()
    for axes, dataset in zip(grid.flat, panels, strict=False):
        members = np.flatnonzero((datasets == dataset) & usable)
        best = pareto_front(scores[members], values[members], chart.higher_is_better)
        for index, on_front in zip(members, best, strict=True):
            axes.scatter(
                values[index],
                scores[index],
                s=BEST_POINT_SIZE if on_front else POINT_SIZE,
                color=colours[series[index]],
                edgecolors="black" if on_front else "none",
                linewidths=1.5,
                zorder=3,
            )
        front = members[best][np.argsort(values[members][best])]
        axes.plot(values[front], scores[front], color="0.45", linewidth=0.8, linestyle="--")
        metric = f"\n{metrics[dataset]}" if dataset in metrics.index else ""
        axes.set_title(f"{dataset}{metric}", fontsize=9)
        axes.set_xlabel(chart.xlabel, fontsize=8)
        axes.set_ylabel("Official score (x 100)", fontsize=8)
        spread = values[members]
        if spread.max() / spread.min() >= LOG_SCALE_RATIO:
            axes.set_xscale("log")
        axes.margins(0.15)
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=8)
    for axes in grid.flat[len(panels) :]:
        axes.remove()
    title = figure.suptitle(chart.title, fontsize=11, x=0.01, ha="left")
    handles = [series_point(name, colours[name]) for name in names] if len(names) > 1 else []
    handles.append(series_point(BEST_CHOICE, "white", best=True))
    legend = figure.legend(
        handles=handles,
        fontsize=8,
        loc="upper right",
        bbox_to_anchor=(0.995, 0.99),
        ncols=legend_columns,
        title=SERIES_TITLE if len(names) > 1 else None,
    )
    text = figure.text(0.01, 0.01, note, fontsize=NOTE_FONTSIZE, color="0.35", va="bottom")
    renderer = figure.canvas.get_renderer()
    pixels_wide, pixels_high = width * figure.dpi, height * figure.dpi
    right = 1 - (legend.get_window_extent(renderer).width + 8) / pixels_wide
    low = (text.get_window_extent(renderer).height + 8) / pixels_high
    top = 1 - (title.get_window_extent(renderer).height + 8) / pixels_high
    tight_layout(figure, (0, low, right, top))
    return figure


def tradeoff_reason(table: pd.DataFrame, chart: TradeOff, rows) -> str:
    """Why a dataset has no point: its first evaluation's reason for a missing score, else for
    a missing value."""
    row = table.iloc[rows[0]]
    if not np.isfinite(column_values(table, SCORE)[rows]).any():
        return missing_reason(row, SCORE)
    return missing_reason(row, chart.column)


def tradeoff_notes(table, chart: TradeOff, series, usable, panels, left_out) -> list[str]:
    """The trade-off figure's footnote: the series when there is only one, the setups measured
    on, the best choices per dataset, and what was left out."""
    scores, values = column_values(table, SCORE), column_values(table, chart.column)
    datasets = table[DATASET].to_numpy()
    first = [f"{SERIES_TITLE}: {series[0]}"] if len(set(series)) == 1 else []
    if "device_name" in table.columns:
        first.append(setups(table))
    lines = [" · ".join(first)] if first else []
    best = []
    for dataset in panels:
        members = np.flatnonzero((datasets == dataset) & usable)
        front = pareto_front(scores[members], values[members], chart.higher_is_better)
        chosen = [series[i] for i in members[front][np.argsort(values[members][front])]]
        best.append(f"{dataset}: {', '.join(chosen)}")
    lines.append(
        "Best choices (outlined, the Pareto front: no other evaluation of the dataset is as good "
        f"in both score and {chart.measure}, and better in one): " + "; ".join(best)
    )
    missing: dict[str, list[str]] = {}
    names = evaluation_names(table)
    for index in np.flatnonzero(np.isin(datasets, panels) & np.isfinite(scores) & ~usable):
        reason = missing_reason(table.iloc[index], chart.column)
        missing.setdefault(reason, []).append(names[index])
    for reason, left in missing.items():
        lines.append(f"No point, no {chart.column} ({reason}): {listed(left)}")
    if left_out:
        lines.append("Left out: " + listed(left_out))
    crossed = [n for n, c in zip(evaluation_names(table), cross_task(table), strict=True) if c]
    if crossed:
        lines.append(
            "Cross-task (classes taken for another task's labels through a label_map): "
            + listed(crossed)
        )
    return lines


def series_point(name: str, colour, best: bool = False):
    """A trade-off legend's entry: a series' point, or the outline of a best choice."""
    from matplotlib.lines import Line2D

    return Line2D(
        [],
        [],
        linestyle="none",
        marker="o",
        markersize=8 if best else 6,
        markerfacecolor=colour,
        markeredgecolor="black" if best else colour,
        markeredgewidth=1.5 if best else 0,
        label=name,
    )


# The GLUE summary figure: cell and header sizes in inches, the colours of the scores, and of a
# task the row has no score for.
CELL_INCHES, ROW_INCHES, HEADER_INCHES, COLOURBAR_INCHES = 1.15, 0.36, 0.9, 0.75
SCORE_COLOURS = "RdYlGn"
NOT_RUN_COLOUR = "0.93"
NOT_RUN = "–"
HEADER_CHARS = 17
NO_GLUE_SUMMARY = "No GLUE summary"


def glue_summary_figure(summary: pd.DataFrame, table: pd.DataFrame):
    """The GLUE summary as papers print it: rows down, tasks across, the official score (x 100)
    in each cell coloured on a scale that a colour bar explains, then the GLUE average and the
    coverage ('k of 9'); NOT_RUN where a row has no score for a task. Without any row (no GLUE
    task was run, or only cross-task), a plain note saying so instead of an empty table."""
    from glueperf.aggregate import COVERAGE, CROSS_TASK, GLUE_AVERAGE, MIN_TASKS_FOR_AVERAGE

    crossed = (cross_task(table) & table["glue_task"].fillna("").ne("")).to_numpy()
    left_out = [name for name, cross in zip(evaluation_names(table), crossed, strict=True) if cross]
    cross_note = (
        f"Cross-task evaluations ({CROSS_TASK}: classes matched through a label_map) are not "
        f"GLUE scores of their model and are left out: {listed(left_out)}"
        if left_out
        else ""
    )
    if not len(summary):
        if cross_note:
            why = "No GLUE task was scored by a model trained for it.\n" + cross_note
        else:
            why = "No GLUE task was scored in this run: no labeled dataset has a glue_task."
        return note_figure(NO_GLUE_SUMMARY, why)
    scores = [c for c in summary.columns if c not in ("Model", COVERAGE)]
    values = summary[scores].to_numpy(dtype=float)
    headers = [header(c) for c in scores] + ["coverage\n(GLUE tasks)"]
    plt = pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    lines = [
        f"{NOT_RUN}: no task-matched score. {GLUE_AVERAGE}: each task once (MNLI matched and "
        f"mismatched as their mean), from {MIN_TASKS_FOR_AVERAGE} tasks; coverage: tasks of "
        "the 9 with a score. A partial average is not comparable with a published GLUE score."
    ]
    if cross_note:
        lines.append(cross_note)
    longest = max(len(str(m)) for m in summary["Model"])
    width = max(MIN_WIDTH, CELL_INCHES * len(headers) + 0.09 * longest + 0.8)
    note = wrapped(lines, width)
    note_inches = NOTE_LINE_INCHES * (note.count("\n") + 1) + 0.1
    height = HEADER_INCHES + ROW_INCHES * len(summary) + COLOURBAR_INCHES + note_inches + 0.4
    figure, axes = plt.subplots(figsize=(width, height))
    colours, norm = plt.get_cmap(SCORE_COLOURS), Normalize(0, 100)
    for (row, col), value in np.ndenumerate(values):
        face = NOT_RUN_COLOUR if math.isnan(value) else colours(norm(value))
        axes.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, facecolor=face, edgecolor="white"))
        dark = not math.isnan(value) and luminance(face) < 0.45
        axes.text(
            col,
            row,
            NOT_RUN if math.isnan(value) else f"{value:.1f}",
            ha="center",
            va="center",
            fontsize=9,
            color="white" if dark else "black",
            weight="bold" if scores[col] == GLUE_AVERAGE and not math.isnan(value) else "normal",
        )
    for row, coverage in enumerate(summary[COVERAGE]):
        axes.text(len(scores), row, str(coverage), ha="center", va="center", fontsize=9)
    # The average apart from the tasks it is made of.
    axes.axvline(len(scores) - 1.5, color="white", linewidth=4)
    axes.set_xlim(-0.5, len(headers) - 0.5)
    axes.set_ylim(len(summary) - 0.5, -0.5)
    axes.set_xticks(range(len(headers)), headers, fontsize=8)
    axes.set_yticks(range(len(summary)), summary["Model"].tolist(), fontsize=9)
    axes.xaxis.tick_top()
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_title("GLUE summary: official score x 100 per task", fontsize=10)
    bar = figure.colorbar(
        ScalarMappable(norm, colours),
        ax=axes,
        location="bottom",
        fraction=COLOURBAR_INCHES / height * 0.5,
        pad=0.04,
        aspect=40,
        shrink=min(1.0, 5.0 / width),
        extend="min" if np.nanmin(values, initial=0) < 0 else "neither",
    )
    negative = " (below 0, as MCC and correlations can be: the colour of 0)"
    bar.set_label("official score x 100" + (negative if np.nanmin(values) < 0 else ""), fontsize=8)
    bar.ax.tick_params(labelsize=8)
    text = figure.text(0.01, 0.01, note, fontsize=NOTE_FONTSIZE, color="0.35", va="bottom")
    renderer = figure.canvas.get_renderer()
    note_height = text.get_window_extent(renderer).height / figure.dpi
    tight_layout(figure, (0, (note_height + 0.08) / height, 1, 1))
    return figure


def header(column: str) -> str:
    """A GLUE summary column's heading: the task over its dataset, a long name broken at its
    hyphens so that neighbouring headings do not run into each other."""
    task, _, dataset = column.partition(" (")
    if not dataset:
        return task
    return task + "\n" + textwrap.fill("(" + dataset, HEADER_CHARS, break_on_hyphens=True)


def luminance(colour) -> float:
    """Relative luminance of an RGB(A) colour (0 black, 1 white), to pick legible text on it."""
    from matplotlib.colors import to_rgb

    red, green, blue = to_rgb(colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def note_figure(title: str, text: str):
    """A figure that is only a note: a title and a few wrapped lines, no axes."""
    figure = pyplot().figure(figsize=(MIN_WIDTH, 1.6))
    figure.text(0.5, 0.78, title, ha="center", va="center", fontsize=12, weight="bold")
    figure.text(
        0.5, 0.42, wrapped(text.split("\n"), MIN_WIDTH * 1.1), ha="center", va="center", fontsize=9
    )
    return figure


def plot_all(
    table: pd.DataFrame,
    summary: pd.DataFrame,
    paths: Mapping[str, str | Sequence[str]],
    workers: int = 1,
) -> None:
    """Every figure: ``paths`` maps each stem of ALL_PLOTS (no other) to its file, or to its
    files (figure_files: the PNG and vector formats). Drawn one after the other, or by
    ``workers`` processes forked from this one (the rule's threads: at most one a figure), with
    the same bytes; each file is written whole or not at all (a failure stops the rest). A vector
    file of a figure that is no longer asked for (the config dropped its format) is removed
    first: it would show an older table than the PNG beside it."""
    if sorted(paths) != sorted(ALL_PLOTS):
        raise ValueError(f"plot_all draws {list(ALL_PLOTS)}, was given {list(paths)}")
    files = {stem: as_list(paths[stem]) for stem in ALL_PLOTS}
    remove_dropped_formats(files)
    jobs = [(stem, table, summary, files[stem]) for stem in ALL_PLOTS]
    workers = min(workers, len(jobs))
    if workers > 1 and hasattr(os, "fork"):
        import multiprocessing

        # Forked: the children have this process's imports, fonts and settings already.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.starmap(draw_figure, jobs, chunksize=1)
    else:
        for job in jobs:
            draw_figure(*job)


def draw_figure(stem: str, table: pd.DataFrame, summary: pd.DataFrame, files: list[str]) -> None:
    """Figure ``stem`` of FIGURES written to each of ``files``."""
    save(FIGURES[stem].draw(table, summary), files)
    for path in files:
        log.info("drew %s", path)


def as_list(paths) -> list[str]:
    return [str(paths)] if isinstance(paths, str | os.PathLike) else [str(p) for p in paths]


def remove_dropped_formats(files: Mapping[str, list[str]]) -> None:
    for stem_files in files.values():
        png = Path(stem_files[0])
        for kind in VECTOR_FORMATS:
            other = png.with_suffix(f".{kind}")
            if str(other) not in stem_files and other.is_file():
                other.unlink()
                log.info("removed %s: its format is no longer in plots.vector_formats", other)


def plot_one(table: pd.DataFrame, stem: str, paths) -> None:
    """Write the bar chart ``stem`` (a key of PLOTS) of the performance table to ``paths``."""
    save(PLOTS[stem].draw(table, None), as_list(paths))


def save(figure, paths: Sequence) -> None:
    """Write ``figure`` to each of ``paths``, in the format its suffix names, each atomically,
    and close it, written or not: one process draws every figure, so a failed one must not
    stay open either."""
    from glueperf.outputs import atomic_path

    plt = pyplot()
    try:
        # Laid out already: tight_layout leaves a placeholder layout engine, for which savefig
        # would draw the figure once more (to lay it out) before drawing it. None, whatever rc.
        with plt.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
            figure.set_layout_engine(None)
        for path in paths:
            kind = Path(path).suffix.removeprefix(".")
            settings, metadata, options = SAVE_SETTINGS[kind]
            with atomic_path(path) as temporary, plt.rc_context(settings):
                figure.savefig(temporary, format=kind, dpi=DPI, metadata=metadata, **options)
    finally:
        plt.close(figure)
