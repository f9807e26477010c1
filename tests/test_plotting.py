"""glueperf.plotting: one PNG per plot, with title, y-label with units, value labels and one bar
series per model; a dataset without labels shows 'n/a' instead of a made-up accuracy."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from glueperf.aggregate import read_glue_summary, read_performance_table
from glueperf.plotting import ALL_PLOTS, PLOTS, footnote, grouped_bars, plot_all, plot_one

MODELS = ["alpha", "beta", "gamma"]
DATASETS = ["sst2-validation", "sst2-test", "cola-validation"]
UNLABELED = "sst2-test"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The unit each plot's y-label must state, in parentheses.
UNITS = {
    "accuracy": "%",
    "score": "x 100",
    "inference_time": "s",
    "memory_usage": "MiB",
    "throughput": "sentences/s",
}


@pytest.fixture
def table(tmp_path) -> pd.DataFrame:
    """A performance table as plot_results.py reads it: through a CSV, NaN as an empty cell."""
    rng = np.random.default_rng(1)
    rows = []
    for model in MODELS:
        for dataset in DATASETS:
            labeled = dataset != UNLABELED
            accuracy = float(rng.uniform(55, 95)) if labeled else math.nan
            rows.append(
                {
                    "Dataset": dataset,
                    "Task": "Sentiment analysis",
                    "Inference Time (seconds)": float(rng.uniform(0.5, 3)),
                    "Memory Usage (MB)": float(rng.uniform(300, 900)),
                    "throughput_eps": float(rng.uniform(200, 5000)),
                    "Accuracy (%)": accuracy,
                    "Model": model,
                    "accuracy_ci_low_pct": accuracy - 3 if labeled else math.nan,
                    "accuracy_ci_high_pct": accuracy + 2 if labeled else math.nan,
                    "Metric": "accuracy",
                    "Score": accuracy,
                    "score_ci_low": accuracy - 3 if labeled else math.nan,
                    "score_ci_high": accuracy + 2 if labeled else math.nan,
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    return read_performance_table(tmp_path / "table.csv")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("stem", list(PLOTS))
def test_plot_one_writes_a_png(table, tmp_path, stem):
    path = tmp_path / "plots" / f"{stem}.png"
    figures_before = set(plt.get_fignums())
    plot_one(table, stem, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert set(plt.get_fignums()) == figures_before  # the figure is closed


@pytest.fixture
def summary(tmp_path) -> pd.DataFrame:
    """A GLUE summary as plot_results.py reads it; beta did not run CoLA."""
    frame = pd.DataFrame(
        {
            "Model": ["alpha", "beta"],
            "SST-2 (sst2-validation)": [91.2, 88.0],
            "CoLA (cola-validation)": [41.5, math.nan],
            "GLUE average": [66.4, 88.0],
            "tasks": [2, 1],
        }
    )
    frame.to_csv(tmp_path / "summary.csv", index=False)
    return read_glue_summary(tmp_path / "summary.csv")


def plot_paths(folder) -> dict:
    return {stem: folder / f"{stem}.png" for stem in ALL_PLOTS}


def test_plot_all_draws_every_plot_and_the_glue_summary(table, summary, tmp_path):
    paths = plot_paths(tmp_path / "plots")
    figures_before = set(plt.get_fignums())
    plot_all(table, summary, paths)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"{stem}.png" for stem in [*PLOTS, "glue_summary"]
    )  # and no temporary file
    for path in paths.values():
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert matplotlib.image.imread(path).std() > 0
    assert set(plt.get_fignums()) == figures_before  # every figure is closed


@pytest.mark.parametrize("change", ["missing", "unknown"])
def test_plot_all_wants_exactly_every_plot(table, summary, tmp_path, change):
    paths = plot_paths(tmp_path / "plots")
    if change == "missing":
        del paths["throughput"]
    else:
        paths["other"] = tmp_path / "plots" / "other.png"
    with pytest.raises(ValueError, match="plot_all draws"):
        plot_all(table, summary, paths)
    assert not (tmp_path / "plots").exists()  # checked before anything is drawn


def test_a_failing_plot_leaves_no_half_written_png(table, summary, tmp_path, monkeypatch):
    """One process draws every figure: a failure while writing one leaves that file absent (not
    cut short), no temporary file and no open figure; the figures written before stay whole."""
    from matplotlib.figure import Figure

    save = Figure.savefig

    def fail_on_the_third(figure, path, **kwargs):
        if len(written) == 2:
            Path(path).write_bytes(PNG_SIGNATURE + b"cut short")
            raise OSError("disk full")
        written.append(path)
        return save(figure, path, **kwargs)

    written = []
    monkeypatch.setattr(Figure, "savefig", fail_on_the_third)
    paths = plot_paths(tmp_path / "plots")
    figures_before = set(plt.get_fignums())
    with pytest.raises(OSError, match="disk full"):
        plot_all(table, summary, paths)
    first, second, third = ALL_PLOTS[:3]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        [f"{first}.png", f"{second}.png"]
    )
    assert matplotlib.image.imread(paths[second]).std() > 0
    assert not paths[third].exists()
    assert set(plt.get_fignums()) == figures_before


@pytest.mark.parametrize("stem", list(PLOTS))
def test_grouped_bars_has_title_units_and_one_bar_series_per_model(table, stem):
    column, ylabel, title, value_format, interval = PLOTS[stem]
    figure = grouped_bars(table, column, ylabel, title, value_format, interval)
    (axes,) = figure.axes
    assert axes.get_title() == title and title
    unit = re.search(r"\(([^)]+)\)\s*$", axes.get_ylabel())
    assert unit and unit.group(1) == UNITS[stem], axes.get_ylabel()
    ticks = [label.get_text() for label in axes.get_xticklabels()]
    # Under the official score each dataset names its metric.
    assert ticks == [d + "\naccuracy" if stem == "score" else d for d in DATASETS]

    series = [c for c in axes.containers if isinstance(c, BarContainer)]
    assert [s.get_label() for s in series] == MODELS
    legend = axes.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == MODELS

    texts = [t.get_text() for t in axes.texts]
    assert len(texts) == len(MODELS) * len(DATASETS)  # one value label per bar
    for model, bars in zip(MODELS, series, strict=True):
        assert len(bars) == len(DATASETS)
        values = table[table["Model"] == model].set_index("Dataset")[column].reindex(DATASETS)
        for dataset, bar, value in zip(DATASETS, bars, values, strict=True):
            if math.isnan(value):
                assert bar.get_height() == 0
                assert dataset == UNLABELED
            else:
                assert bar.get_height() == pytest.approx(value)
                assert value_format.format(value) in texts


def test_a_dataset_without_labels_is_marked_not_available(table):
    column, ylabel, title, value_format, interval = PLOTS["accuracy"]
    axes = grouped_bars(table, column, ylabel, title, value_format, interval).axes[0]
    texts = [t.get_text() for t in axes.texts]
    assert texts.count("n/a") == len(MODELS)  # one per model, on the unlabeled dataset
    assert "0.0" not in texts and "nan" not in texts


def test_accuracy_bars_carry_the_interval(table):
    column, ylabel, title, value_format, interval = PLOTS["accuracy"]
    axes = grouped_bars(table, column, ylabel, title, value_format, interval).axes[0]
    series = [c for c in axes.containers if isinstance(c, BarContainer)]
    assert all(bars.errorbar is not None for bars in series)
    # The error bar of the first labeled bar spans the interval [low, high].
    segments = series[0].errorbar.lines[2][0].get_segments()
    row = table[(table["Model"] == MODELS[0]) & (table["Dataset"] == DATASETS[0])].iloc[0]
    (_, low), (_, high) = segments[0]
    assert (low, high) == pytest.approx((row["accuracy_ci_low_pct"], row["accuracy_ci_high_pct"]))


def test_a_model_missing_a_dataset_gets_no_made_up_bar(table):
    narrowed = table[~((table["Model"] == "gamma") & (table["Dataset"] == "cola-validation"))]
    column, ylabel, title, value_format, _ = PLOTS["memory_usage"]
    axes = grouped_bars(narrowed, column, ylabel, title, value_format).axes[0]
    gamma = [c for c in axes.containers if isinstance(c, BarContainer)][2]
    assert gamma[2].get_height() == 0
    assert [t.get_text() for t in axes.texts].count("n/a") == 1


@pytest.mark.parametrize(("spread", "scale"), [(1000.0, "log"), (10.0, "linear")])
def test_log_axis_only_for_values_spanning_orders_of_magnitude(table, spread, scale):
    column = "Inference Time (seconds)"
    table[column] = np.linspace(1.0, spread, len(table))
    _, ylabel, title, value_format, _ = PLOTS["inference_time"]
    axes = grouped_bars(table, column, ylabel, title, value_format).axes[0]
    assert axes.get_yscale() == scale


def test_single_model_needs_no_legend(table):
    column, ylabel, title, value_format, interval = PLOTS["inference_time"]
    one = table[table["Model"] == "alpha"]
    axes = grouped_bars(one, column, ylabel, title, value_format, interval).axes[0]
    assert len([c for c in axes.containers if isinstance(c, BarContainer)]) == 1
    assert axes.get_legend() is None


def test_reading_the_table_keeps_names_that_look_like_missing_values(table, tmp_path):
    renamed = table.replace({"alpha": "NA", "sst2-test": "None", "cola-validation": "2e5"})
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    again = read_performance_table(tmp_path / "renamed.csv")
    assert list(dict.fromkeys(again["Model"])) == ["NA", "beta", "gamma"]
    assert list(dict.fromkeys(again["Dataset"])) == ["sst2-validation", "None", "2e5"]
    assert again["Accuracy (%)"].isna().sum() == len(MODELS)  # the unlabeled rows only
    column, ylabel, title, value_format, interval = PLOTS["accuracy"]
    axes = grouped_bars(again, column, ylabel, title, value_format, interval).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["sst2-validation", "None", "2e5"]
    assert [c.get_label() for c in axes.containers if isinstance(c, BarContainer)][0] == "NA"


# --- readable with many datasets, and edge values -----------------------------------------------


def many_datasets_table(n_datasets: int = 12, models=MODELS) -> pd.DataFrame:
    """n_datasets x models, with long dataset names and values over three orders of magnitude."""
    rng = np.random.default_rng(3)
    rows = []
    for model in models:
        for number in range(n_datasets):
            accuracy = float(rng.uniform(40, 100))
            rows.append(
                {
                    "Dataset": f"glue-task{number:02d}-validation",
                    "Task": "Sentiment analysis",
                    "Inference Time (seconds)": float(10 ** rng.uniform(-1, 2.5)),
                    "Memory Usage (MB)": float(rng.uniform(800, 3000)),
                    "Accuracy (%)": accuracy,
                    "Model": model,
                    "accuracy_ci_low_pct": accuracy - 3,
                    "accuracy_ci_high_pct": min(100.0, accuracy + 2),
                    "throughput_eps": float(10 ** rng.uniform(2, 4.5)),
                    "Metric": "mcc",
                    "Score": accuracy - 50,
                    "score_ci_low": accuracy - 53,
                    "score_ci_high": accuracy - 48,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("stem", list(PLOTS))
def test_many_datasets_stay_readable(stem):
    wide = many_datasets_table(12)
    column, ylabel, title, value_format, interval = PLOTS[stem]
    few = grouped_bars(wide[wide["Dataset"].isin(wide["Dataset"].unique()[:3])], *PLOTS[stem])
    figure = grouped_bars(wide, column, ylabel, title, value_format, interval)
    # The figure grows with the number of bars instead of squeezing them.
    few_width, width = few.get_figwidth(), figure.get_figwidth()
    assert width >= 2.5 * few_width, (few_width, width)
    (axes,) = figure.axes
    renderer = figure.canvas.get_renderer()

    ticks = axes.get_xticklabels()
    assert len(ticks) == 12
    assert all(t.get_rotation() == 30 and t.get_horizontalalignment() == "right" for t in ticks)
    # Rotated labels are parallel lines; neighbours are apart by the tick spacing times
    # sin(rotation), which must exceed the height of a line of text.
    anchors = [t.get_window_extent(renderer).x1 for t in ticks]
    spacing = min(b - a for a, b in zip(anchors, anchors[1:], strict=False))
    line_height = ticks[0].get_fontsize() * figure.dpi / 72
    assert spacing * math.sin(math.radians(30)) > 1.5 * line_height

    # One value label per bar, none running into another, all inside the figure.
    labels = [t for t in axes.texts if t.get_text()]
    assert len(labels) == 12 * len(MODELS)
    boxes = [t.get_window_extent(renderer) for t in labels]
    overlaps = [
        (labels[i].get_text(), labels[j].get_text())
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]
    assert not overlaps
    canvas = figure.bbox
    for artist in [*ticks, *labels, axes.get_legend()]:
        box = artist.get_window_extent(renderer)
        assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 + 1, artist
    # The legend sits outside the axes, where it hides no bar.
    assert axes.get_legend().get_window_extent(renderer).x0 >= axes.bbox.x1


def test_crowded_value_labels_turn_upright():
    eight = [f"model-{k}" for k in range(8)]
    figure = grouped_bars(many_datasets_table(12, models=eight), *PLOTS["memory_usage"])
    (axes,) = figure.axes
    assert figure.get_figwidth() <= 30
    labels = [t for t in axes.texts if t.get_text()]
    assert labels and all(t.get_rotation() == 90 for t in labels)
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_accuracy_axis_is_0_to_100_percent_and_never_logarithmic(table):
    table.loc[table["Accuracy (%)"].notna(), "Accuracy (%)"] = 0.5
    table.loc[0, "Accuracy (%)"] = 99.0
    axes = grouped_bars(table, *PLOTS["accuracy"]).axes[0]
    assert axes.get_yscale() == "linear"
    low, high = axes.get_ylim()
    assert low == 0 and high > 100
    assert max(axes.get_yticks()) == 100


@pytest.mark.parametrize("accuracy", [100.0, 0.0])
def test_accuracy_of_0_or_100_percent_is_plotted(table, tmp_path, accuracy):
    # Rounding in an interval written by the metrics can put 100 % a hair above its upper end:
    # the error bar below/above must then be 0, not a negative length that matplotlib refuses.
    labeled = table["Accuracy (%)"].notna()
    table.loc[labeled, "Accuracy (%)"] = accuracy
    table.loc[labeled, "accuracy_ci_low_pct"] = min(accuracy, 72.2)
    table.loc[labeled, "accuracy_ci_high_pct"] = 99.99999999999999 if accuracy else 27.8
    plot_one(table, "accuracy", tmp_path / "accuracy.png")
    axes = grouped_bars(table, *PLOTS["accuracy"]).axes[0]
    series = [c for c in axes.containers if isinstance(c, BarContainer)]
    (_, low), (_, high) = series[0].errorbar.lines[2][0].get_segments()[0]
    assert low <= accuracy <= high


def test_not_available_is_written_on_a_log_axis_too(table):
    column = "Inference Time (seconds)"
    table[column] = np.linspace(0.01, 100.0, len(table))
    table.loc[table["Dataset"] == UNLABELED, column] = math.nan  # e.g. a pair that was not run
    axes = grouped_bars(table, *PLOTS["inference_time"]).axes[0]
    assert axes.get_yscale() == "log"
    not_available = [t for t in axes.texts if t.get_text() == "n/a"]
    assert len(not_available) == len(MODELS)
    renderer = axes.figure.canvas.get_renderer()
    for text in not_available:  # drawn just above the axis, within the axes
        box = text.get_window_extent(renderer)
        assert axes.bbox.y0 <= box.y0 <= axes.bbox.y0 + 20


def test_footnote_names_a_single_model_and_the_device_of_measured_plots(table, tmp_path):
    table["device"], table["device_name"], table["dtype"] = "cuda", "NVIDIA H100", "bfloat16"
    one = table[table["Model"] == "alpha"]
    assert footnote(one, measured=False) == "Model: alpha"
    assert footnote(one, measured=True) == "Model: alpha · Measured on NVIDIA H100 (cuda, bfloat16)"
    assert footnote(table, measured=False) == ""  # several models: the legend names them
    figure = grouped_bars(one, *PLOTS["memory_usage"], note=footnote(one, measured=True))
    assert [t.get_text() for t in figure.texts] == [footnote(one, measured=True)]
