"""What people look at after a run: the console's closing message, the evaluation logs' progress
bar, and the Snakemake report (``snakemake --report report.html``), opened in headless Chromium.

One pipeline run for the module: a tiny model on three tiny parquet files (one unlabeled, one
with a `note` as the config's cross-task datasets have). The report is a JavaScript app, so the
browser tests look at the DOM Chromium rendered, click through it with tests/report_probe.js,
and take a screenshot. Without Chromium they skip, unless CI=true, where they fail.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from conftest import REPO, Workflow, write_dataset
from glueperf.plotting import ALL_PLOTS

NOTE = "Cross-task check on purpose: sentiment labels against acceptability labels."
DATASETS = {
    # name -> (rows, labeled, task, note)
    "sst2-validation": (30, True, "Sentiment analysis", None),
    "sst2-test": (20, False, "Sentiment analysis", "Labels hidden: time and memory only."),
    "cola-validation": (25, True, "Linguistic acceptability", NOTE),
}
MODEL = "tiny"
# A phrase each plot's caption (report/plots/<plot>.rst) must hold: what it measures and how.
PLOT_CAPTIONS = {
    "score": ["official metric", "Wilson for accuracy", "seeded bootstrap"],
    "accuracy": ["95 % Wilson score interval", "cross-task check", "Matthews correlation"],
    "inference_time": ["tokenization plus every forward pass", "loading the model"],
    "memory_usage": ["peak resident set size", "gpu_peak_allocated_mb"],
    "throughput": ["Throughput (sentences/s)", "divided by the"],
    "latency": ["Single-request latency", "99th percentile", "too few requests"],
    "energy": ["GPU energy per 1,000 sentences", "NVML", "says CPU ran on a CPU"],
    "score_vs_throughput": ["Official score against throughput", "Pareto front"],
    "score_vs_latency": ["against p99 single-request latency", "Pareto front"],
    "glue_summary": ["GLUE summary as a figure", "colour bar", "coverage", "glue_summary.csv"],
}
# What every bar chart shares, said once in the report's description (report/workflow.rst).
BAR_CHARTS = "each bar chart has one group of bars per dataset, one bar per model that ran on it"

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,900",
    # Timers (the probe's pauses) run on virtual time: fast, and done before the dump.
    "--virtual-time-budget=30000",
]


class ReportedRun:
    """A finished pipeline run and the report made of it: console, report log and paths."""

    def __init__(self, workflow: Workflow, config: dict, result, report_log: str):
        self.workflow, self.config = workflow, config
        self.console, self.report_log = result.stdout, report_log
        self.results = workflow.root / "results"
        self.report = workflow.root / "report.html"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model) -> ReportedRun:
    base = tmp_path_factory.mktemp("report")
    datasets = {}
    for seed, (name, (rows, labeled, task, note)) in enumerate(DATASETS.items()):
        path = write_dataset(base / "data" / f"{name}.parquet", n=rows, seed=seed, labeled=labeled)
        datasets[name] = {"path": str(path), "task": task, **({"note": note} if note else {})}
    workflow = Workflow(base / "workflow")
    config = {
        "models": {MODEL: {"source": str(tiny_model)}},
        "datasets": datasets,
        "evaluation": {"device": "cpu"},
    }
    workflow.write_config(config)
    result = workflow.snakemake()
    report = workflow.snakemake("--report", "report.html")
    return ReportedRun(workflow, config, result, report.stdout + report.stderr)


# --- console and logs ---------------------------------------------------------------------------


def test_console_names_where_the_results_are(run):
    console = run.console
    assert "glueperf results:" in console
    assert str((run.results / "model_performance.csv").resolve()) in console
    assert str((run.results / "glue_summary.csv").resolve()) in console
    for plot in ALL_PLOTS:
        assert str((run.results / "plots" / f"{plot}.png").resolve()) in console
    assert str((run.results / "metrics").resolve()) in console


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_evaluation_log_shows_a_progress_bar_with_a_rate(run, dataset):
    log = (
        run.results / "logs" / "evaluate_model" / MODEL / "float32" / f"{dataset}.log"
    ).read_text()
    rows = DATASETS[dataset][0]
    # tqdm's closing line, e.g. "100%|██████████| 30/30 [00:00<00:00, 512.3 sentences/s]".
    finished = re.findall(
        rf"100%\|[^|\n]*\| {rows}/{rows} \[[0-9:]+<[0-9:]+, *([0-9.]+) sentences/s\]", log
    )
    assert finished, log
    assert float(finished[-1]) > 0


# --- the report, without a browser --------------------------------------------------------------


def test_report_embeds_every_result(run):
    assert run.report.is_file(), run.report_log
    added = set(re.findall(r"Adding (\S+) \(", run.report_log))
    expected = {f"{plot}.png" for plot in ALL_PLOTS} | {"model_performance.csv"}
    expected |= {"glue_summary.csv"}
    expected |= {"model_performance.html", "glue_summary.html"}  # the tables, shown in the page
    expected |= {f"{dataset}.csv" for dataset in DATASETS}
    assert added == expected, run.report_log
    text = run.report.read_text()
    for plot in ALL_PLOTS:
        assert f"results/plots/{plot}.png" in text


# --- the report in a browser --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    reason = (
        f"no Chromium ({' or '.join(CHROMIUM_NAMES)} on PATH) to open the report in; "
        "install the Debian package 'chromium' (tests/run.sh does, from tests/apt-packages.txt)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: the browser tests must run)")
    pytest.skip(reason)


def browse(chromium: str, profile: Path, page: Path, *action: str) -> subprocess.CompletedProcess:
    """Chromium, headless, on a local file: ``action`` is --dump-dom or --screenshot=PATH."""
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr[-3000:]}"
    return result


class VisibleText(HTMLParser):
    """The text a person sees under <div id="app">: scripts, styles and data left out."""

    def __init__(self):
        super().__init__()
        self.depth = 0  # inside div#app: > 0
        self.hidden = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += tag == "div"
        elif tag == "div" and dict(attrs).get("id") == "app":
            self.depth = 1
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style")
        if self.depth and tag == "div":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and not self.hidden and data.strip():
            self.parts.append(" ".join(data.split()))


@pytest.fixture(scope="module")
def rendered(run, chromium, tmp_path_factory) -> str:
    """The report's first page as Chromium rendered it: the visible text of the app."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    dom = browse(chromium, profile, run.report, "--dump-dom").stdout
    parser = VisibleText()
    parser.feed(dom)
    return " ".join(parser.parts)


@pytest.fixture(scope="module")
def probed(run, chromium, tmp_path_factory) -> dict:
    """What the report showed for each result, clicking through it with report_probe.js."""
    folder = tmp_path_factory.mktemp("probe")
    page = folder / "report.html"
    text = run.report.read_text()
    end = text.rindex("</body>")
    script = (REPO / "tests" / "report_probe.js").read_text()
    page.write_text(text[:end] + f"<script>\n{script}\n</script>\n" + text[end:])
    dom = browse(chromium, folder / "profile", page, "--dump-dom").stdout
    found = re.search(r'<pre id="glueperf-probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe wrote nothing: the report's scripts did not run"
    probe = json.loads(html.unescape(found.group(1)))
    assert "error" not in probe, probe.get("error")
    return probe


def test_report_renders_in_chromium(run, rendered):
    # The app drew its menu with the three result categories and the workflow description
    # (written by the report's JavaScript from report/workflow.rst and the config).
    for category in ("1. Plots", "2. Performance table", "3. Per-dataset metrics"):
        assert category in rendered, rendered[:3000]
    assert "glueperf measures how well, how fast and how leanly" in rendered
    assert f"{MODEL} : {run.config['models'][MODEL]['source']}" in rendered  # from the config
    assert NOTE in rendered  # a dataset's note from the config
    assert BAR_CHARTS in rendered  # what every bar chart shares, once
    assert "notes on the datasets, above, apply to every plot" in rendered
    assert "System Message" not in rendered  # docutils' marker of broken reStructuredText


def data_uri_bytes(uri: str) -> bytes:
    return base64.b64decode(uri.split("base64,", 1)[1])


def visit(probe: dict, path: str) -> dict:
    (found,) = [v for v in probe["visits"] if v["path"] == path]
    assert found["row"], found
    return found


@pytest.mark.parametrize("plot", ALL_PLOTS)
def test_report_shows_each_plot_with_its_caption(run, probed, plot):
    seen = visit(probed, f"results/plots/{plot}.png")
    assert seen["category"] == "1. Plots"
    (image,) = seen["images"]
    file = run.results / "plots" / f"{plot}.png"
    assert data_uri_bytes(image["src"]) == file.read_bytes()
    height, width = matplotlib.image.imread(file).shape[:2]
    assert (image["width"], image["height"]) == (width, height)  # decoded by the browser
    assert image["shown_width"] > 100  # and laid out on the page
    for phrase in PLOT_CAPTIONS[plot]:
        assert phrase in seen["info_text"], seen["info_text"]
    assert BAR_CHARTS not in seen["info_text"]  # said once, in the description


def caption(seen: dict) -> str:
    """The caption in a result's info panel: between its DESCRIPTION and SIZE headings."""
    return seen["info_text"].split("DESCRIPTION", 1)[1].split("SIZE", 1)[0].strip()


def test_each_plot_has_a_caption_of_its_own(probed):
    # One job draws every plot: each caption still comes from the plot's own file.
    captions = {plot: caption(visit(probed, f"results/plots/{plot}.png")) for plot in ALL_PLOTS}
    assert all(captions.values()) and len(set(captions.values())) == len(ALL_PLOTS), captions


def test_the_glue_summary_plot_links_to_the_tables_caption(probed):
    seen = visit(probed, "results/plots/glue_summary.png")
    assert seen.get("caption_link") == "glue_summary.csv", seen
    # Following the link shows the table's caption, which says what the scores are.
    table = caption(visit(probed, "results/glue_summary.csv"))
    assert "GLUE average is the mean over the model's task-matched GLUE tasks" in table, table
    assert "results/glue_summary.csv" in seen["linked_info_text"]
    assert table in seen["linked_info_text"], seen["linked_info_text"]


def test_report_offers_the_performance_table_with_its_caption(run, probed):
    seen = visit(probed, "results/model_performance.csv")
    assert seen["category"] == "2. Performance table"
    assert seen["download"]["name"] == "model_performance.csv"
    table = run.results / "model_performance.csv"
    assert data_uri_bytes(seen["download"]["href"]) == table.read_bytes()
    caption = seen["info_text"]
    for phrase in ("Inference Time (seconds)", "Memory Usage (MB)", "cross-task check", NOTE):
        assert phrase in caption, caption


@pytest.mark.parametrize("name", ["model_performance", "glue_summary"])
def test_report_shows_each_table_in_the_page(run, probed, name):
    """Issue 25: the tables readable in the report, not only as downloads, each cell as the
    CSV writes it (the same rounding)."""
    seen = visit(probed, f"results/{name}.html")
    assert seen["category"] == "2. Performance table"
    (frame,) = seen["frames"]
    assert frame["shown_width"] > 500 and frame["shown_height"] > 300  # laid out on the page
    page = data_uri_bytes(frame["src"]).decode()
    assert page == (run.results / f"{name}.html").read_text()
    with open(run.results / f"{name}.csv", newline="") as stream:
        header, *rows = list(csv.reader(stream))
    cells = re.findall(r"<t[dh](?: [^>]*)?>(.*?)</t[dh]>", page)
    assert [html.unescape(c) for c in cells] == header + [c or "–" for row in rows for c in row]
    assert caption(seen) == caption(visit(probed, f"results/{name}.csv"))


def test_report_screenshot_shows_a_table(run, chromium, tmp_path):
    """The performance table, opened as the report opens it, in a frame: drawn, with text."""
    page = tmp_path / "report.html"
    text = run.report.read_text()
    end = text.rindex("</body>")
    path = "results/model_performance.html"
    show = (
        "window.addEventListener('load', () => setTimeout(() => app.setView({content: 'html', "
        f"contentPath: results['{path}'].data_uri, resultPath: '{path}'}}), 300));"
    )
    page.write_text(text[:end] + f"<script>{show}</script>" + text[end:])
    shot = tmp_path / "screenshot.png"
    browse(chromium, tmp_path / "profile", page, f"--screenshot={shot}")
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round()
    darkest = pixels.min(axis=-1)
    table = darkest[60:160, 290:1390]  # right of the menu: the title and the table's rows
    assert (table < 80).mean() > 0.01  # dark text
    assert (abs(table - 221) <= 4).mean() > 0.02  # the cells' grey lines
    assert (table > 240).mean() > 0.5  # on a light page


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_report_offers_each_datasets_metrics_with_its_caption(run, probed, dataset):
    seen = visit(probed, f"results/metrics/{MODEL}/float32/{dataset}.csv")
    assert (seen["category"], seen["subcategory"]) == ("3. Per-dataset metrics", MODEL)
    metrics = run.results / "metrics" / MODEL / "float32" / f"{dataset}.csv"
    assert data_uri_bytes(seen["download"]["href"]) == metrics.read_bytes()
    caption = seen["info_text"]
    assert f"Metrics of model {MODEL} on dataset {dataset}" in caption, caption
    for phrase in ("Matthews correlation", "inference_time_s", "peak_rss_mb"):
        assert phrase in caption, caption
    note = DATASETS[dataset][3]
    if note:
        assert note in caption
    else:
        assert "Note on this dataset" not in caption


def test_report_screenshot_shows_a_plot(run, chromium, probed, tmp_path):
    # The probe ends on the last plot it opened: the screenshot must show it, not a blank page.
    page = tmp_path / "report.html"
    text = run.report.read_text()
    end = text.rindex("</body>")
    script = (REPO / "tests" / "report_probe.js").read_text()
    page.write_text(text[:end] + f"<script>\n{script}\n</script>\n" + text[end:])
    shot = tmp_path / "screenshot.png"
    browse(chromium, tmp_path / "profile", page, f"--screenshot={shot}")
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round()
    assert pixels.shape[:2] == (900, 1400)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, plot, menu: not blank
    # matplotlib's first bar colour (tab:blue, #1f77b4) fills the plot's bars.
    bars = np.all(np.abs(pixels - [31, 119, 180]) <= 2, axis=-1).mean()
    assert bars > 0.01, bars
