"""glueperf.plotting: one figure per plot, written as a PNG and in the vector formats asked for,
with title, y-label with units and value labels; a slot only for each evaluation that ran, the
reason where it has no value, cross-task evaluations marked; legible with 20 models and 9
datasets; the GLUE summary with a colour scale, or a plain note when no GLUE task ran."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from glueperf import plotting
from glueperf.aggregate import (
    glue_summary,
    performance_table,
    read_glue_summary,
    read_performance_table,
)
from glueperf.plotting import (
    ALL_PLOTS,
    BEST_CHOICE,
    CROSS_TASK_HATCH,
    CROSS_TASK_LABEL,
    FIGURES,
    MAX_WIDTH,
    NO_GLUE_SUMMARY,
    NO_LABELS,
    NOT_FOR_REGRESSION,
    NOT_MEASURED,
    PLOTS,
    TOO_FEW_REQUESTS,
    TRADE_OFFS,
    UNDEFINED,
    VALUES_LEFT_OUT,
    evaluation_names,
    figure_files,
    footnote_lines,
    grouped_bars,
    missing_reason,
    pareto_front,
    plot_all,
    plot_one,
)

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
    "latency": "ms",
    "energy": "J per 1,000 sentences",
}


def through_csv(frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """A performance table as plot_results.py reads it: through a CSV, NaN as an empty cell."""
    frame.to_csv(folder / "table.csv", index=False)
    return read_performance_table(folder / "table.csv")


def metrics_row(model, dataset, rng, labeled=True, **fields) -> dict:
    """One evaluation's metrics row, as the evaluation jobs write it (the fields plots use)."""
    accuracy = float(rng.uniform(55, 95)) if labeled else math.nan
    return {
        "model": model,
        "dataset": dataset,
        "glue_task": dataset.split("-")[0],
        "metric": "accuracy",
        "score": accuracy,
        "score_ci_low": accuracy - 3,
        "score_ci_high": accuracy + 2,
        "n_rows": 100,
        "n_labeled": 100 if labeled else 0,
        "accuracy_pct": accuracy,
        "accuracy_ci_low_pct": accuracy - 3,
        "accuracy_ci_high_pct": accuracy + 2,
        "pearson": math.nan,
        "inference_time_s": float(rng.uniform(0.5, 3)),
        "throughput_eps": float(rng.uniform(200, 5000)),
        "peak_rss_mb": float(rng.uniform(300, 900)),
        "latency_requests": 1000,
        "latency_p50_ms": (p50 := float(rng.uniform(2, 20))),
        "latency_p99_ms": 1.5 * p50,
        "energy_j_per_1k": float(rng.uniform(10, 100)),
        "label_mapping": "by name: NEGATIVE->negative, POSITIVE->positive",
        **fields,
    }


def table_of(rows, folder: Path) -> pd.DataFrame:
    """The performance table of metrics rows, made and read as the pipeline does."""
    return through_csv(performance_table(pd.DataFrame(rows)), folder)


@pytest.fixture
def table(tmp_path) -> pd.DataFrame:
    """Every model on every dataset; sst2-test has no labels."""
    rng = np.random.default_rng(1)
    return table_of(
        [metrics_row(m, d, rng, labeled=d != UNLABELED) for m in MODELS for d in DATASETS],
        tmp_path,
    )


@pytest.fixture
def own_tasks(tmp_path) -> pd.DataFrame:
    """As issue 25 ran it: three models each on its own task, and the MRPC model on RTE through
    a label_map (a cross-task check); STS-B is a regression (no accuracy), SST-2's test split
    has no labels."""
    rng = np.random.default_rng(2)
    regression = {"metric": "pearson/spearman", "accuracy_pct": math.nan, "label_mapping": ""}
    regression |= {"accuracy_ci_low_pct": math.nan, "accuracy_ci_high_pct": math.nan}
    rows = [
        metrics_row("minilm-sst2", "sst2-validation", rng),
        metrics_row("minilm-sst2", "sst2-test", rng, labeled=False),
        metrics_row("minilm-mrpc", "mrpc-validation", rng, metric="f1/accuracy"),
        metrics_row(
            "minilm-mrpc",
            "rte-validation",
            rng,
            label_mapping="label_map: equivalent->entailment, not_equivalent->not_entailment",
        ),
        metrics_row("minilm-stsb", "stsb-validation", rng, pearson=0.85, **regression),
    ]
    return table_of(rows, tmp_path)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def bar_series(figure) -> list[BarContainer]:
    return [c for axes in figure.axes for c in axes.containers if isinstance(c, BarContainer)]


def bars_of(figure) -> list:
    return [bar for series in bar_series(figure) for bar in series]


def texts(figure) -> list[str]:
    return [t.get_text() for axes in figure.axes for t in axes.texts if t.get_text()]


def legend_texts(figure) -> list[str]:
    return [t.get_text() for legend in figure.legends for t in legend.get_texts()]


# --- files ---------------------------------------------------------------------------------------


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
            "GLUE average": [66.4, math.nan],
            "coverage": ["2 of 9", "1 of 9"],
        }
    )
    frame.to_csv(tmp_path / "summary.csv", index=False)
    return read_glue_summary(tmp_path / "summary.csv")


def plot_paths(folder, formats=()) -> dict:
    return {
        stem: [folder / Path(path).name for path in paths]
        for stem, paths in figure_files(formats).items()
    }


def test_figure_files_are_a_png_then_each_vector_format_for_every_figure():
    assert figure_files() == {stem: [f"results/plots/{stem}.png"] for stem in ALL_PLOTS}
    assert figure_files(["pdf", "svg"])["score"] == [
        "results/plots/score.png",
        "results/plots/score.pdf",
        "results/plots/score.svg",
    ]
    assert list(figure_files()) == list(FIGURES) == [*PLOTS, *TRADE_OFFS, "glue_summary"]
    with pytest.raises(ValueError, match="eps"):
        figure_files(["eps"])


def test_plot_all_draws_every_plot_and_the_glue_summary(table, summary, tmp_path):
    paths = plot_paths(tmp_path / "plots")
    figures_before = set(plt.get_fignums())
    plot_all(table, summary, paths)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"{stem}.png" for stem in ALL_PLOTS
    )  # and no temporary file
    for (path,) in paths.values():
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert matplotlib.image.imread(path).std() > 0
    assert set(plt.get_fignums()) == figures_before  # every figure is closed


def svg_texts(path: Path) -> list[str]:
    """The text elements of an SVG, as written (svg.fonttype 'none': text kept as text)."""
    root = ElementTree.parse(path).getroot()
    return ["".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")]


def lines(texts) -> set[str]:
    return {line for text in texts for line in text.get_text().split("\n") if line}


def figure_texts(figure) -> tuple[set[str], set[str]]:
    """The lines of text a reader must find in the figure (titles, axis labels, dataset names,
    values, reasons, legend, footnote), and every line of text the figure holds."""
    figure.canvas.draw()
    needed = lines(figure.texts) | lines(t for g in figure.legends for t in g.get_texts())
    for axes in figure.axes:
        needed |= lines([axes.title, axes.xaxis.label, axes.yaxis.label, *axes.texts])
        low, high = sorted(axes.get_xlim())
        shown = [
            label
            for label, tick in zip(axes.get_xticklabels(), axes.get_xticks(), strict=True)
            if low <= tick <= high  # an automatic axis has ticks beyond its ends, not drawn
        ]
        needed |= lines(shown if high > 1 else [])
    return needed, lines(figure.findobj(matplotlib.text.Text))


@pytest.mark.parametrize("stem", ALL_PLOTS)
def test_vector_files_hold_the_same_figure_as_the_png(own_tasks, tmp_path, stem):
    figure = FIGURES[stem].draw(own_tasks, glue_summary(own_tasks))
    drawn = {"texts": figure_texts(figure), "inches": tuple(figure.get_size_inches())}
    paths = plot_paths(tmp_path / "plots", ["svg", "pdf"])
    plotting.save(figure, paths[stem])
    png, svg, pdf = paths[stem]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # The SVG's text is the figure's text: every title, label, value, reason and note.
    needed, held = drawn["texts"]
    assert needed and needed <= set(svg_texts(svg)) <= held
    # And the same page: the PNG's pixels at DPI, the SVG's points at 72 per inch.
    height, width = matplotlib.image.imread(png).shape[:2]
    root = ElementTree.parse(svg).getroot()
    points = (float(root.get("width").removesuffix("pt")), float(root.get("height")[:-2]))
    assert (round(width / plotting.DPI, 1), round(height / plotting.DPI, 1)) == tuple(
        round(i, 1) for i in drawn["inches"]
    )
    assert tuple(round(p / 72, 1) for p in points) == tuple(round(i, 1) for i in drawn["inches"])


@pytest.mark.parametrize("stem", ["score", "score_vs_throughput", "glue_summary"])
def test_save_draws_the_figure_as_matplotlib_s_own_savefig_does(own_tasks, tmp_path, stem):
    """save draws a laid-out figure once per file (no layout pass first) and compresses the
    PNG less: the same pixels, the same SVG bytes, a PNG that reads back."""
    summary = glue_summary(own_tasks)
    ours, theirs = (FIGURES[stem].draw(own_tasks, summary) for _ in range(2))
    plotting.save(ours, [tmp_path / "ours.png", tmp_path / "ours.svg"])
    settings, metadata, _ = plotting.SAVE_SETTINGS["svg"]
    theirs.savefig(tmp_path / "theirs.png", dpi=plotting.DPI)
    with plt.rc_context(settings):
        theirs.savefig(tmp_path / "theirs.svg", dpi=plotting.DPI, metadata=metadata)
    assert (tmp_path / "ours.png").read_bytes()[:8] == PNG_SIGNATURE
    assert np.array_equal(
        matplotlib.image.imread(tmp_path / "ours.png"),
        matplotlib.image.imread(tmp_path / "theirs.png"),
    )
    assert (tmp_path / "ours.svg").read_bytes() == (tmp_path / "theirs.svg").read_bytes()


def test_tight_layout_measuring_once_lays_out_as_matplotlib_does():
    """plotting.tight_layout measures each Axes once where matplotlib measures it twice: the
    same positions, in a grid of panels and in rows of bars, and nothing left patched."""
    models = [f"model-{k:02d}" for k in range(20)]
    rect = (0, 0.12, 0.8, 0.93)
    for draw in (
        lambda: grouped_bars(many_table(9, models), PLOTS["score"]),
        lambda: FIGURES["score_vs_throughput"].draw(many_table(6, MODELS[:2]), None),
    ):
        ours, theirs = draw(), draw()
        assert len(ours.axes) > 1
        plotting.tight_layout(ours, rect)
        theirs.tight_layout(rect=rect)
        for one, other in zip(ours.axes, theirs.axes, strict=True):
            assert one.get_position().bounds == other.get_position().bounds
            assert "get_tightbbox" not in vars(one)


def test_the_same_figure_writes_the_same_vector_bytes(own_tasks, tmp_path):
    """No date and no random ids in the files: a rerun on the same table changes nothing."""
    summary = glue_summary(own_tasks)
    first, second = (plot_paths(tmp_path / name, ["svg", "pdf"]) for name in ("a", "b"))
    plot_all(own_tasks, summary, first)
    plot_all(own_tasks, summary, second)
    for stem in ALL_PLOTS:
        for one, other in zip(first[stem][1:], second[stem][1:], strict=True):
            assert one.read_bytes() == other.read_bytes(), one.name


def test_a_dropped_format_is_removed_and_others_are_kept(table, summary, tmp_path):
    folder = tmp_path / "plots"
    plot_all(table, summary, plot_paths(folder, ["svg", "pdf"]))
    (folder / "notes.svg").write_text("<svg/>")  # not a figure's: left alone
    plot_all(table, summary, plot_paths(folder, ["pdf"]))
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        ["notes.svg"] + [f"{stem}.{kind}" for stem in ALL_PLOTS for kind in ("png", "pdf")]
    )


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
    assert matplotlib.image.imread(paths[second][0]).std() > 0
    assert not paths[third][0].exists()
    assert set(plt.get_fignums()) == figures_before


# --- what the bar charts show --------------------------------------------------------------------


@pytest.mark.parametrize("stem", list(PLOTS))
def test_grouped_bars_has_title_units_and_one_bar_series_per_model(table, stem):
    chart = PLOTS[stem]
    figure = grouped_bars(table, chart)
    (axes,) = figure.axes
    assert axes.get_title() == chart.title and chart.title
    unit = re.search(r"\(([^)]+)\)\s*$", axes.get_ylabel())
    assert unit and unit.group(1) == UNITS[stem], axes.get_ylabel()
    ticks = [label.get_text() for label in axes.get_xticklabels()]
    # Under the official score each dataset names its metric.
    assert ticks == [d + "\naccuracy" if stem == "score" else d for d in DATASETS]

    series = bar_series(figure)
    assert [s.get_label() for s in series] == MODELS
    assert legend_texts(figure) == MODELS + [chart.marks_label] * bool(chart.marks)
    labels = texts(figure)
    for model, bars in zip(MODELS, series, strict=True):
        assert len(bars) == len(DATASETS)  # every model ran on every dataset
        values = table[table["Model"] == model].set_index("Dataset")[chart.column]
        for bar, dataset in zip(bars, DATASETS, strict=True):
            value = values[dataset]
            if math.isnan(value):
                assert bar.get_height() == 0 and dataset == UNLABELED
            else:
                assert bar.get_height() == pytest.approx(value)
                assert chart.value_format.format(value) in labels
    unlabeled_quality = chart.scored
    assert len(labels) == len(table) - len(MODELS) * unlabeled_quality + unlabeled_quality


def test_slots_only_for_evaluations_that_ran(own_tasks):
    """Issue 25: each model on its own task gives one bar per evaluation, not a slot for every
    model in every dataset's group."""
    for chart in PLOTS.values():
        figure = grouped_bars(own_tasks, chart)
        assert len(bars_of(figure)) == len(own_tasks) == 5
        (axes,) = figure.axes
        centres = axes.get_xticks()
        for dataset, centre in zip(own_tasks["Dataset"], centres, strict=True):
            # The dataset's one bar stands under its name.
            (bar,) = [
                b for b in bars_of(figure) if abs(b.get_x() + b.get_width() / 2 - centre) < 0.5
            ]
            model = own_tasks.loc[own_tasks["Dataset"] == dataset, "Model"].item()
            assert bar.get_facecolor() == next(
                s.patches[0].get_facecolor() for s in bar_series(figure) if s.get_label() == model
            )
        assert "n/a" not in texts(figure)


def test_a_missing_value_says_why(own_tasks):
    accuracy = grouped_bars(own_tasks, PLOTS["accuracy"])
    assert sorted(t for t in texts(accuracy) if not t[0].isdigit()) == [
        NO_LABELS,
        NOT_FOR_REGRESSION,
    ]
    score = grouped_bars(own_tasks, PLOTS["score"])
    assert [t for t in texts(score) if not t[0].isdigit()] == [NO_LABELS]  # STS-B has a score
    for stem in ("inference_time", "memory_usage", "throughput"):
        assert all(t[0].isdigit() for t in texts(grouped_bars(own_tasks, PLOTS[stem])))


@pytest.mark.parametrize(
    ("fields", "column", "reason"),
    [
        ({"n_labeled": 0}, "Accuracy (%)", NO_LABELS),
        ({"n_labeled": 0, "Metric": "pearson/spearman"}, "Score", NO_LABELS),
        ({"n_labeled": 40, "Metric": "pearson/spearman"}, "Accuracy (%)", NOT_FOR_REGRESSION),
        ({"n_labeled": 40, "Metric": "pearson"}, "Accuracy (%)", NOT_FOR_REGRESSION),
        # A correlation of constant predictions has no value.
        ({"n_labeled": 40, "Metric": "pearson/spearman"}, "Score", UNDEFINED),
        ({"n_labeled": 40, "Metric": "f1/accuracy"}, "Score", UNDEFINED),
    ],
)
def test_missing_reason_comes_from_the_row(fields, column, reason):
    assert missing_reason(pd.Series({"Metric": "accuracy", **fields}), column) == reason


def test_one_reason_for_neighbouring_empty_slots_of_a_dataset(table):
    figure = grouped_bars(table, PLOTS["accuracy"])
    (reason,) = [t for t in figure.axes[0].texts if t.get_text() == NO_LABELS]
    # Over the middle of the unlabeled dataset's three empty slots.
    assert reason.xy[0] == pytest.approx(figure.axes[0].get_xticks()[1])


def test_a_cross_task_evaluation_is_marked_on_the_figure(own_tasks):
    for stem in ("score", "accuracy"):
        figure = grouped_bars(own_tasks, PLOTS[stem])
        hatched = [bar for bar in bars_of(figure) if bar.get_hatch()]
        (bar,) = hatched
        assert bar.get_hatch() == CROSS_TASK_HATCH
        rte = own_tasks.loc[own_tasks["Dataset"] == "rte-validation", PLOTS[stem].column].item()
        assert bar.get_height() == pytest.approx(rte)
        assert CROSS_TASK_LABEL in legend_texts(figure)
        (note,) = figure.texts
        assert "cross-task" in note.get_text()
        assert "rte-validation (minilm-mrpc)" in " ".join(note.get_text().split())
    # Time and memory mean the same whatever the labels: no mark there.
    figure = grouped_bars(own_tasks, PLOTS["inference_time"])
    assert not [bar for bar in bars_of(figure) if bar.get_hatch()]
    assert CROSS_TASK_LABEL not in legend_texts(figure)


def test_a_model_in_several_dtypes_makes_every_series_model_and_dtype(own_tasks):
    """One model in two precisions: every series is "model · dtype" (series_labels, the one
    place that decides), in the bars and the legend; with one dtype per model, the model."""
    assert plotting.series_labels(own_tasks.assign(dtype="float32")) == own_tasks["Model"].tolist()
    own_tasks["dtype"] = ["float32", "bfloat16", "float32", "float32", "float32"]
    own_tasks["Model"] = ["minilm-sst2"] * 2 + own_tasks["Model"].tolist()[2:]
    figure = grouped_bars(own_tasks, PLOTS["throughput"])
    assert [s.get_label() for s in bar_series(figure)] == [
        "minilm-sst2 · float32",
        "minilm-sst2 · bfloat16",
        "minilm-mrpc · float32",
        "minilm-stsb · float32",
    ]
    assert legend_texts(figure)[:4] == [s.get_label() for s in bar_series(figure)]


def test_accuracy_bars_carry_the_interval(table):
    figure = grouped_bars(table, PLOTS["accuracy"])
    series = bar_series(figure)
    assert all(bars.errorbar is not None for bars in series)
    # The error bar of the first labeled bar spans the interval [low, high].
    segments = series[0].errorbar.lines[2][0].get_segments()
    row = table[(table["Model"] == MODELS[0]) & (table["Dataset"] == DATASETS[0])].iloc[0]
    (_, low), (_, high) = segments[0]
    assert (low, high) == pytest.approx((row["accuracy_ci_low_pct"], row["accuracy_ci_high_pct"]))


def test_a_model_missing_a_dataset_gets_no_slot(table):
    narrowed = table[~((table["Model"] == "gamma") & (table["Dataset"] == "cola-validation"))]
    figure = grouped_bars(narrowed, PLOTS["memory_usage"])
    gamma = bar_series(figure)[2]
    assert len(gamma) == 2 and len(bars_of(figure)) == 8
    assert all(t[0].isdigit() for t in texts(figure))  # no placeholder where nothing ran


@pytest.mark.parametrize(("spread", "scale"), [(1000.0, "log"), (10.0, "linear")])
def test_log_axis_only_for_values_spanning_orders_of_magnitude(table, spread, scale):
    column = "Inference Time (seconds)"
    table[column] = np.linspace(1.0, spread, len(table))
    axes = grouped_bars(table, PLOTS["inference_time"]).axes[0]
    assert axes.get_yscale() == scale


def test_single_model_needs_no_legend(table):
    one = table[table["Model"] == "alpha"]
    figure = grouped_bars(one, PLOTS["inference_time"])
    assert len(bar_series(figure)) == 1
    assert figure.legends == []


def test_reading_the_table_keeps_names_that_look_like_missing_values(table, tmp_path):
    renamed = table.replace({"alpha": "NA", "sst2-test": "None", "cola-validation": "2e5"})
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    again = read_performance_table(tmp_path / "renamed.csv")
    assert list(dict.fromkeys(again["Model"])) == ["NA", "beta", "gamma"]
    assert list(dict.fromkeys(again["Dataset"])) == ["sst2-validation", "None", "2e5"]
    assert again["Accuracy (%)"].isna().sum() == len(MODELS)  # the unlabeled rows only
    axes = grouped_bars(again, PLOTS["accuracy"]).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["sst2-validation", "None", "2e5"]
    assert bar_series(axes.figure)[0].get_label() == "NA"


# --- readable with many models and datasets, and edge values -------------------------------------


def many_table(n_datasets: int, models) -> pd.DataFrame:
    """n_datasets x models, with long dataset names and values over three orders of magnitude."""
    rng, measured = np.random.default_rng(3), np.random.default_rng(4)
    rows = []
    for model in models:
        for number in range(n_datasets):
            accuracy = float(rng.uniform(40, 100))
            rows.append(
                {
                    "Dataset": f"glue-task{number:02d}-validation",
                    "Inference Time (seconds)": float(10 ** rng.uniform(-1, 2.5)),
                    "Memory Usage (MB)": float(rng.uniform(800, 3000)),
                    "Accuracy (%)": accuracy,
                    "Model": model,
                    "accuracy_ci_low_pct": accuracy - 3,
                    "accuracy_ci_high_pct": min(100.0, accuracy + 2),
                    "throughput_eps": float(10 ** rng.uniform(2, 4.5)),
                    # From a generator of their own: the other columns' values stay.
                    "latency_p50_ms": (p50 := float(10 ** measured.uniform(0, 2))),
                    "latency_p99_ms": 2 * p50,
                    "energy_j_per_1k": float(measured.uniform(5, 500)),
                    "Metric": "mcc",
                    "Score": accuracy - 50,
                    "score_ci_low": accuracy - 53,
                    "score_ci_high": accuracy - 48,
                    "n_labeled": 100,
                }
            )
    return pd.DataFrame(rows)


def assert_legible(figure, n_bars: int) -> None:
    """Every bar drawn; no text runs into another or out of the figure; the legend beside the
    plots, over none of them."""
    renderer = figure.canvas.get_renderer()
    assert len(bars_of(figure)) == n_bars
    assert figure.get_figwidth() <= MAX_WIDTH
    canvas = figure.bbox
    for axes in figure.axes:
        ticks = axes.get_xticklabels()
        boxes = [t.get_window_extent(renderer) for t in ticks]
        if ticks and ticks[0].get_rotation():
            # Slanted names are parallel blocks of text: neighbours lie the tick spacing times
            # sin(rotation) apart, which must exceed a block's height.
            rows = ticks[0].get_text().count("\n") + 1
            height = 1.2 * rows * ticks[0].get_fontsize() * figure.dpi / 72
            spacing = min(b.x1 - a.x1 for a, b in zip(boxes, boxes[1:], strict=False))
            assert spacing * math.sin(math.radians(ticks[0].get_rotation())) > height
        else:
            assert not plotting.overlapping(boxes), [t.get_text() for t in ticks]
        labels = [t for t in axes.texts if t.get_text()]
        assert not plotting.overlapping(t.get_window_extent(renderer) for t in labels)
        for artist in [*ticks, *labels]:
            box = artist.get_window_extent(renderer)
            assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 + 1, artist
    for legend in figure.legends:
        box = legend.get_window_extent(renderer)
        assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 + 1
        assert all(not box.overlaps(axes.bbox) for axes in figure.axes)
    if figure.texts:  # the footnote, under the plots
        note = figure.texts[0].get_window_extent(renderer)
        assert all(note.y1 <= axes.get_tightbbox(renderer).y0 + 1 for axes in figure.axes)


@pytest.mark.parametrize("stem", list(PLOTS))
def test_many_datasets_stay_readable(stem):
    wide = many_table(12, MODELS)
    few = grouped_bars(wide[wide["Dataset"].isin(wide["Dataset"].unique()[:3])], PLOTS[stem])
    figure = grouped_bars(wide, PLOTS[stem])
    # The figure grows with the number of bars instead of squeezing them.
    assert figure.get_figwidth() >= 2 * few.get_figwidth()
    (axes,) = figure.axes
    ticks = axes.get_xticklabels()
    assert len(ticks) == 12
    assert all(t.get_rotation() == 30 and t.get_horizontalalignment() == "right" for t in ticks)
    assert len([t for t in axes.texts if t.get_text()]) == 12 * len(MODELS)  # one per bar
    assert_legible(figure, 12 * len(MODELS))


@pytest.mark.parametrize("stem", list(PLOTS))
def test_twenty_models_on_nine_datasets_stay_legible(stem):
    models = [
        f"model-{k:02d}-{['bert-base', 'roberta-base', 'minilm-l12'][k % 3]}" for k in range(20)
    ]
    figure = grouped_bars(many_table(9, models), PLOTS[stem])
    assert_legible(figure, 20 * 9)
    # In rows of datasets on the same scale, not one strip too wide to read.
    assert len(figure.axes) > 1
    assert len({axes.get_ylim() for axes in figure.axes}) == 1
    assert figure.get_figwidth() / figure.get_figheight() < 2
    # Twenty colours, each model its own, named once in the legend (then the chart's marks).
    assert legend_texts(figure) == models + [PLOTS[stem].marks_label] * bool(PLOTS[stem].marks)
    colours = {s.get_label(): s.patches[0].get_facecolor() for s in bar_series(figure)}
    assert len(set(colours.values())) == 20
    values = [t for t in texts(figure) if t[0].isdigit() or t[0] == "-"]
    assert len(values) == 180 and all(
        t.get_rotation() == 90 for a in figure.axes for t in a.texts if t.get_text()
    )


def test_values_too_crowded_to_write_are_left_out_and_the_footnote_says_so():
    # 150 bars in one dataset's group: narrower than an upright value label.
    models = [f"m{k}" for k in range(150)]
    figure = grouped_bars(many_table(1, models), PLOTS["memory_usage"])
    assert texts(figure) == []
    assert VALUES_LEFT_OUT in figure.texts[0].get_text()
    assert_legible(figure, 150)


def test_crowded_value_labels_turn_upright():
    twenty = [f"model-{k}" for k in range(20)]
    figure = grouped_bars(many_table(3, twenty), PLOTS["memory_usage"])
    labels = [t for axes in figure.axes for t in axes.texts if t.get_text()]
    assert len(labels) == 60 and all(t.get_rotation() == 90 for t in labels)
    assert_legible(figure, 60)


def test_accuracy_axis_is_0_to_100_percent_and_never_logarithmic(table):
    table.loc[table["Accuracy (%)"].notna(), "Accuracy (%)"] = 0.5
    table.loc[0, "Accuracy (%)"] = 99.0
    axes = grouped_bars(table, PLOTS["accuracy"]).axes[0]
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
    series = bar_series(grouped_bars(table, PLOTS["accuracy"]))
    (_, low), (_, high) = series[0].errorbar.lines[2][0].get_segments()[0]
    assert low <= accuracy <= high


def test_a_reason_is_written_on_a_log_axis_too(table):
    column = "Inference Time (seconds)"
    table[column] = np.linspace(0.01, 100.0, len(table))
    table.loc[table["Dataset"] == UNLABELED, column] = math.nan
    axes = grouped_bars(table, PLOTS["inference_time"]).axes[0]
    assert axes.get_yscale() == "log"
    (reason,) = [t for t in axes.texts if t.get_text() == "not measured"]
    renderer = axes.figure.canvas.get_renderer()
    box = reason.get_window_extent(renderer)  # drawn just above the axis, within the axes
    assert axes.bbox.y0 <= box.y0 <= axes.bbox.y0 + 20


def test_footnote_names_a_single_model_and_the_device_of_measured_plots(table):
    table["device"], table["device_name"], table["dtype"] = "cuda", "NVIDIA H100", "bfloat16"
    one = table[table["Model"] == "alpha"]
    assert footnote_lines(one, PLOTS["accuracy"]) == ["Model: alpha"]
    assert footnote_lines(one, PLOTS["memory_usage"]) == [
        "Model: alpha · Measured on NVIDIA H100 (cuda, bfloat16)"
    ]
    assert footnote_lines(table, PLOTS["accuracy"]) == []  # several models: the legend names them
    figure = grouped_bars(one, PLOTS["memory_usage"])
    assert [t.get_text() for t in figure.texts] == [
        "Model: alpha · Measured on NVIDIA H100 (cuda, bfloat16)"
    ]


# --- the GLUE summary figure ---------------------------------------------------------------------


def test_the_glue_summary_has_a_colour_scale_and_the_coverage(summary, table):
    figure = FIGURES["glue_summary"].draw(table, summary)
    table_axes, colour_bar = figure.axes
    assert "official score x 100" in colour_bar.get_xlabel()
    assert colour_bar.get_xlim() == (0, 100)
    cells = [t.get_text() for t in table_axes.texts]
    assert [c for c in cells if c.endswith("of 9")] == ["2 of 9", "1 of 9"]
    assert cells.count("–") == 2  # beta: no CoLA, and no average of one task
    assert [t.get_text() for t in table_axes.get_yticklabels()] == ["alpha", "beta"]


def test_no_glue_task_gives_a_plain_note_not_an_empty_table(own_tasks, tmp_path):
    nothing = glue_summary(own_tasks.assign(glue_task=""))
    assert len(nothing) == 0
    figure = FIGURES["glue_summary"].draw(own_tasks.assign(glue_task=""), nothing)
    assert figure.axes == []  # nothing drawn that could read as a table or a failure
    words = " ".join(t.get_text() for t in figure.texts)
    assert NO_GLUE_SUMMARY in words and "No GLUE task was scored" in words
    # Only a cross-task GLUE evaluation: the note says it was left out.
    crossed = own_tasks[own_tasks["Dataset"] == "rte-validation"]
    figure = FIGURES["glue_summary"].draw(crossed, glue_summary(crossed))
    words = " ".join(" ".join(t.get_text().split()) for t in figure.texts)
    assert "left out" in words and "rte-validation (minilm-mrpc)" in words
    paths = plot_paths(tmp_path / "plots")
    plot_all(own_tasks, nothing, paths)
    assert matplotlib.image.imread(paths["glue_summary"][0]).std() > 0


def test_the_glue_summary_notes_the_cross_task_evaluations_it_leaves_out(own_tasks):
    figure = FIGURES["glue_summary"].draw(own_tasks, glue_summary(own_tasks))
    headers = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert not [h for h in headers if "rte" in h]
    (note,) = figure.texts
    assert "rte-validation (minilm-mrpc)" in " ".join(note.get_text().split())


# --- latency, energy and the trade-offs ---------------------------------------------------------


def latency_table(tmp_path) -> pd.DataFrame:
    """Three evaluations: p50 and p99 measured; p50 alone (too few requests for p99); and
    latency turned off (no request)."""
    rng = np.random.default_rng(5)
    rows = [
        metrics_row("alpha", "sst2-validation", rng, latency_p50_ms=4.0, latency_p99_ms=9.0),
        metrics_row("beta", "sst2-validation", rng, latency_p50_ms=3.0, latency_p99_ms=math.nan),
        metrics_row(
            "gamma",
            "sst2-validation",
            rng,
            latency_requests=0,
            latency_p50_ms=math.nan,
            latency_p99_ms=math.nan,
        ),
    ]
    return table_of(rows, tmp_path)


def test_latency_bars_are_p50_and_marks_are_p99_where_measured(tmp_path):
    figure = grouped_bars(latency_table(tmp_path), PLOTS["latency"])
    (axes,) = figure.axes
    assert [bar.get_height() for bar in bars_of(figure)] == [4.0, 3.0, 0.0]
    marks = [line for line in axes.lines if line.get_marker() == "_"]
    drawn = [(x, y) for line in marks for x, y in line.get_xydata() if not math.isnan(y)]
    assert drawn == [(0.0, 9.0)]  # over alpha's bar alone
    assert [t for t in texts(figure) if not t[0].isdigit()] == [NOT_MEASURED]
    assert legend_texts(figure)[-1] == "p99"
    (note,) = figure.texts
    assert "No p99 mark: too few requests ran for it" in note.get_text()
    assert "sst2-validation (beta)" in " ".join(note.get_text().split())


@pytest.mark.parametrize(
    ("fields", "column", "reason"),
    [
        ({"latency_requests": 30}, "latency_p99_ms", TOO_FEW_REQUESTS),
        ({"latency_requests": 0}, "latency_p50_ms", NOT_MEASURED),
        ({"device": "cpu"}, "energy_j_per_1k", "CPU"),
        ({"device": "cuda"}, "energy_j_per_1k", NOT_MEASURED),
    ],
)
def test_latency_and_energy_say_why_they_are_missing(fields, column, reason):
    assert missing_reason(pd.Series(fields), column) == reason


def test_a_chart_without_any_value_is_a_note_of_why_for_which_evaluations(tmp_path):
    """Energy on a CPU, latency not measured: no empty axes of reasons, one note."""
    rng = np.random.default_rng(6)
    rows = [metrics_row(m, "sst2-validation", rng, energy_j_per_1k=math.nan) for m in MODELS]
    rows[0]["device"] = "cuda"  # a GPU whose counter gave nothing
    table = table_of([{"device": "cpu", **row} for row in rows], tmp_path)
    figure = grouped_bars(table, PLOTS["energy"])
    assert figure.axes == []
    title, note = (" ".join(t.get_text().split()) for t in figure.texts)
    assert title == PLOTS["energy"].title
    names = [" ".join(name.split()) for name in evaluation_names(table)]
    assert note == (
        f"No evaluation has a value to plot. {NOT_MEASURED}: {names[0]} CPU: {names[1]}, {names[2]}"
    )
    table["energy_j_per_1k"] = 1.0
    assert grouped_bars(table, PLOTS["energy"]).axes != []


def test_a_measured_figure_names_the_threads_it_was_measured_with(table):
    table["device"], table["device_name"], table["dtype"] = "cpu", "Xeon", "float32"
    table["torch_threads"], table["tokenizer_threads"] = 4, 4
    assert footnote_lines(table, PLOTS["throughput"]) == [
        "Measured on Xeon (cpu, float32, 4 threads)"
    ]
    table.loc[0, "tokenizer_threads"] = 16
    assert footnote_lines(table, PLOTS["latency"])[0] == (
        "Measured on Xeon (cpu, float32, 4 threads, tokenizer 16); Xeon (cpu, float32, 4 threads)"
    )
    assert footnote_lines(table, PLOTS["score"]) == []  # not measured on a machine


def test_the_precisions_of_one_setup_are_named_together(table):
    """Three dtypes on one GPU: the device once, not once a dtype."""
    table["device"], table["device_name"], table["torch_threads"] = "cuda", "NVIDIA H100", 4
    table["tokenizer_threads"] = 16
    table["dtype"] = [("float32", "bfloat16", "float16")[i % 3] for i in range(len(table))]
    assert footnote_lines(table, PLOTS["latency"])[0] == (
        "Measured on NVIDIA H100 (cuda, float32/bfloat16/float16, 4 threads, tokenizer 16)"
    )


def test_the_pareto_front_is_the_points_no_other_beats_in_both():
    scores = [90, 89, 80, 95, 80]
    throughput = [100, 300, 200, 50, 200]
    assert pareto_front(scores, throughput, higher_is_better=True).tolist() == [
        True,
        True,
        False,  # 89 at 300 beats it in both
        True,
        False,  # equal to the one before it, and beaten as it is
    ]
    # Latency: lower is better, so the slowest of equal scores is beaten.
    assert pareto_front([80, 80, 70], [5.0, 9.0, 1.0], higher_is_better=False).tolist() == [
        True,
        False,
        True,
    ]


def tradeoff_table(tmp_path) -> pd.DataFrame:
    """On sst2-validation: alpha in float32 and bfloat16, beta (beaten by alpha in bfloat16 in
    score and throughput), gamma (best score, slowest); sst2-test has no labels."""
    rng = np.random.default_rng(7)
    points = [
        ("alpha", "float32", 90.0, 100.0),
        ("alpha", "bfloat16", 89.0, 300.0),
        ("beta", "float32", 80.0, 200.0),
        ("gamma", "float32", 95.0, 50.0),
    ]
    rows = [
        metrics_row(model, "sst2-validation", rng, dtype=dtype, score=score, throughput_eps=speed)
        for model, dtype, score, speed in points
    ]
    rows.append(metrics_row("beta", UNLABELED, rng, labeled=False, dtype="float32"))
    return table_of(rows, tmp_path)


def outlined(points) -> bool:
    """Whether a scatter's points are outlined in black (a best choice)."""
    edges = points.get_edgecolor()
    return len(edges) > 0 and edges[0][:3].tolist() == [0, 0, 0]


def test_the_tradeoff_draws_a_point_per_evaluation_and_outlines_the_best_choices(tmp_path):
    figure = FIGURES["score_vs_throughput"].draw(tradeoff_table(tmp_path), None)
    (axes,) = figure.axes  # sst2-test has no score: no panel
    points = [(tuple(c.get_offsets()[0]), outlined(c)) for c in axes.collections]
    assert sorted(points) == [
        ((50.0, 95.0), True),
        ((100.0, 90.0), True),
        ((200.0, 80.0), False),
        ((300.0, 89.0), True),
    ]
    (front,) = [line for line in axes.lines if line.get_linestyle() == "--"]
    assert front.get_xydata().tolist() == [[50.0, 95.0], [100.0, 90.0], [300.0, 89.0]]
    note = " ".join(" ".join(t.get_text() for t in figure.texts).split())
    assert (
        "sst2-validation: gamma · float32, alpha · float32, alpha · bfloat16" in note
    )  # each series with its dtype: alpha ran in two
    assert "Left out: sst2-test (no labels)" in note
    assert "alpha · bfloat16" in legend_texts(figure) and legend_texts(figure)[-1] == BEST_CHOICE


def test_the_latency_tradeoff_prefers_the_lower_p99_and_names_the_missing(tmp_path):
    table = tradeoff_table(tmp_path)
    table["latency_p99_ms"] = [5.0, 3.0, 4.0, math.nan, math.nan]
    figure = FIGURES["score_vs_latency"].draw(table, None)
    (axes,) = figure.axes
    best = [tuple(c.get_offsets()[0]) for c in axes.collections if outlined(c)]
    assert sorted(best) == [(3.0, 89.0), (5.0, 90.0)]  # beta (4 ms, 80) beaten by 3 ms, 89
    note = " ".join(" ".join(t.get_text() for t in figure.texts).split())
    assert "No point, no latency_p99_ms (too few requests): sst2-validation (gamma · float32)" in (
        note.replace("\N{NO-BREAK SPACE}", " ")
    )


def test_a_tradeoff_without_any_point_is_a_note_saying_why(tmp_path):
    rng = np.random.default_rng(8)
    table = table_of([metrics_row("alpha", UNLABELED, rng, labeled=False)], tmp_path)
    figure = FIGURES["score_vs_throughput"].draw(table, None)
    assert not figure.axes
    assert "sst2-test (no labels)" in " ".join(t.get_text() for t in figure.texts)


def test_figures_drawn_by_several_processes_are_the_same_files(own_tasks, tmp_path):
    """With --cores to spare the rule draws a figure a process: the same bytes, every file."""
    summary = glue_summary(own_tasks)
    alone, forked = (plot_paths(tmp_path / name, ["svg"]) for name in ("alone", "forked"))
    plot_all(own_tasks, summary, alone)
    plot_all(own_tasks, summary, forked, workers=4)
    for stem in ALL_PLOTS:
        for one, other in zip(alone[stem], forked[stem], strict=True):
            assert one.read_bytes() == other.read_bytes(), one.name


def test_a_figure_that_fails_in_a_drawing_process_fails_the_job(table, summary, tmp_path):
    paths = plot_paths(tmp_path / "plots")
    paths["score"] = [tmp_path / "a folder.png"]
    paths["score"][0].mkdir()  # where the figure's file should go
    with pytest.raises(OSError):
        plot_all(table, summary, paths, workers=3)
