"""The whole pipeline, run by Snakemake in a temporary copy of the workflow on tiny inputs.

One run for the module: two models (one narrowed to one dataset, truncating sentences, in
float32 and bfloat16, its threads pinned) on three tiny parquet files (one with its own column
names and some -1 labels, one unlabeled). Its float32 predictions are checked against
transformers run one sentence at a time, unpadded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from conftest import (
    QUALITY_FIELDS,
    Workflow,
    make_sentences,
    reference_predictions,
    write_dataset,
)
from glueperf import results
from glueperf.plotting import ALL_PLOTS

DOCUMENTED_FIELDS = (
    "model dataset n_rows n_labeled correct accuracy_pct mcc macro_f1 inference_time_s "
    "model_load_s tokenize_s forward_s throughput_eps peak_rss_mb gpu_peak_allocated_mb "
    "gpu_peak_reserved_mb device_name dtype batch_tokens max_length torch_version "
    "transformers_version"
).split()
PREDICTION_COLUMNS = ["idx", "label", "prediction", "probability", "n_tokens"]
REPORT_COLUMNS = [
    "Dataset",
    "Task",
    "Inference Time (seconds)",
    "Memory Usage (MB)",
    "Accuracy (%)",
]

# model -> datasets it runs on; "narrow" names one dataset and truncates at NARROW_MAX_LENGTH.
PAIRS = {"wide": ["alpha", "beta", "gamma"], "narrow": ["alpha"]}
NARROW_MAX_LENGTH = 8
# "narrow" also runs in bfloat16, and with its threads pinned (the run has --cores 1).
NARROW_DTYPES = ["float32", "bfloat16"]
NARROW_THREADS = 2
BATCH_TOKENS = 48  # small, so that batches are many and padded


class PipelineRun:
    """The module's one finished pipeline run: its workflow, config, data files and model."""

    def __init__(self, workflow: Workflow, config: dict, data: dict, model_dir, console: str):
        self.workflow, self.config, self.data, self.model_dir = workflow, config, data, model_dir
        self.results = workflow.root / "results"
        self.console = console  # Snakemake's output

    def path(self, template: str, model: str, dataset: str, dtype: str) -> Path:
        return self.workflow.root / template.format(model=model, dtype=dtype, dataset=dataset)

    def metrics(self, model: str, dataset: str, dtype: str = "float32") -> pd.DataFrame:
        return pd.read_csv(self.path(results.METRICS_PATH, model, dataset, dtype))

    def raw_metrics(self, model: str, dataset: str, dtype: str = "float32") -> list[dict]:
        with open(self.path(results.METRICS_PATH, model, dataset, dtype), newline="") as stream:
            return list(csv.DictReader(stream))

    def predictions(self, model: str, dataset: str, dtype: str = "float32") -> pd.DataFrame:
        return pd.read_parquet(self.path(results.PREDICTIONS_PATH, model, dataset, dtype))

    def settings(self, model: str) -> dict:
        return {**self.config["evaluation"], **self.config["models"][model].get("evaluation", {})}


@pytest.fixture(scope="module")
def run(tmp_path_factory, varied_model) -> PipelineRun:
    base = tmp_path_factory.mktemp("pipeline")
    n_beta = 30
    rng = np.random.default_rng(7)
    beta_labels = rng.integers(0, 2, n_beta)
    beta_labels[::4] = -1  # partly labeled
    data = {
        "alpha": write_dataset(base / "data" / "alpha.parquet", n=40, seed=1),
        # Own column names; the default columns hold other values, so reading them shows.
        "beta": write_dataset(
            base / "data" / "beta.parquet",
            n=n_beta,
            seed=2,
            text=make_sentences(n_beta, seed=22),
            target=beta_labels,
        ),
        "gamma": write_dataset(base / "data" / "gamma.parquet", n=25, seed=3, labeled=False),
    }
    config = {
        "models": {
            # A revision means nothing for a local directory: it must not be recorded.
            "wide": {"source": str(varied_model), "revision": "0123abc"},
            "narrow": {
                "source": str(varied_model),
                "datasets": ["alpha"],
                "evaluation": {
                    "max_length": NARROW_MAX_LENGTH,
                    "dtype": NARROW_DTYPES,
                    "threads": NARROW_THREADS,
                },
            },
        },
        "datasets": {
            "alpha": {"path": str(data["alpha"]), "task": "Sentiment analysis"},
            "beta": {
                "path": str(data["beta"]),
                "task": "Other task",
                "text_columns": ["text"],
                "label_column": "target",
            },
            "gamma": {"path": str(data["gamma"]), "task": "Sentiment analysis"},
        },
        "evaluation": {"device": "cpu", "dtype": "float32", "batch_tokens": BATCH_TOKENS},
    }
    workflow = Workflow(base / "workflow")
    workflow.write_config(config)
    finished = workflow.snakemake()
    return PipelineRun(workflow, config, data, varied_model, finished.stdout + finished.stderr)


def columns_of(run: PipelineRun, dataset: str) -> tuple[str, str]:
    spec = run.config["datasets"][dataset]
    return spec.get("text_columns", ["sentence"])[0], spec.get("label_column", "label")


def dataset_frame(run: PipelineRun, dataset: str) -> pd.DataFrame:
    return pd.read_parquet(run.data[dataset])


@pytest.fixture(scope="module")
def references(run) -> dict:
    """(model, dataset) -> reference predictions, one sentence at a time."""
    found = {}
    for model, datasets in PAIRS.items():
        for dataset in datasets:
            text_column, _ = columns_of(run, dataset)
            found[model, dataset] = reference_predictions(
                run.model_dir,
                dataset_frame(run, dataset)[text_column].tolist(),
                max_length=run.settings(model).get("max_length"),
            )
    return found


def all_pairs():
    return [(model, dataset) for model, datasets in PAIRS.items() for dataset in datasets]


def all_evaluations():
    """(model, dtype, dataset) of every evaluation."""
    return [(m, "float32", d) for m, d in all_pairs()] + [("narrow", "bfloat16", "alpha")]


def test_with_one_core_every_light_job_runs_before_the_first_evaluation(run):
    """Each dataset validated and each model hashed before any device time is spent (and, on a
    GPU host, while the evaluations' fork server imports)."""
    started = re.findall(r"^(?:local)?rule (\w+):$", run.console, flags=re.MULTILINE)
    first = started.index("evaluate_model")
    light = [i for i, rule in enumerate(started) if rule in ("validate_dataset", "hash_model")]
    assert started.count("validate_dataset") == len(run.data) and "hash_model" in started
    assert max(light) < first


def test_validated_summaries(run):
    for dataset, path in run.data.items():
        summary = json.loads((run.results / "validated" / f"{dataset}.json").read_text())
        frame = dataset_frame(run, dataset)
        _, label_column = columns_of(run, dataset)
        assert summary["n_rows"] == len(frame)
        assert summary["n_labeled"] == int((frame[label_column] != -1).sum())
        assert summary["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert summary["label_column"] == label_column


def test_metrics_files_exist_only_for_the_configured_evaluations(run):
    """One per model, dtype and dataset, the dtype a directory level after the model."""
    for kind, suffix in (("metrics", "csv"), ("predictions", "parquet")):
        found = {p.relative_to(run.results / kind) for p in (run.results / kind).rglob("*.*")}
        assert found == {Path(m, t, f"{d}.{suffix}") for m, t, d in all_evaluations()}


@pytest.mark.parametrize(("model", "dataset"), all_pairs())
def test_metrics_file_is_one_row_with_the_documented_fields(run, model, dataset):
    rows = run.raw_metrics(model, dataset)
    assert len(rows) == 1
    row = rows[0]
    missing = [field for field in DOCUMENTED_FIELDS if field not in row]
    assert not missing
    frame = dataset_frame(run, dataset)
    assert (row["model"], row["dataset"]) == (model, dataset)
    assert "task" not in row  # a label for people: the table's, not the measurement's
    assert int(row["n_rows"]) == len(frame)


@pytest.mark.parametrize(("model", "dataset"), all_pairs())
def test_run_settings_and_versions_are_recorded(run, model, dataset):
    import torch
    import transformers

    row = run.metrics(model, dataset).iloc[0]
    settings = run.settings(model)
    assert row["dtype"] == "float32"
    assert list(pd.read_csv(run.path(results.METRICS_PATH, model, dataset, "float32"))) == list(
        results.ROW_COLUMNS
    )
    assert row["batch_tokens"] == BATCH_TOKENS
    assert row["max_length"] == min(settings.get("max_length", 512), 64)  # 64: the model's limit
    assert row["torch_version"] == torch.__version__
    assert row["transformers_version"] == transformers.__version__
    assert isinstance(row["device_name"], str) and row["device_name"]
    raw = run.raw_metrics(model, dataset)[0]
    assert raw["model_source"] == str(run.config["models"][model]["source"])
    assert raw["model_revision"] == ""  # local directories are used as they are
    # hashed once per model by hash_model, as the files are, for all its evaluations
    weights = Path(run.config["models"][model]["source"]) / "model.safetensors"
    assert raw["model_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    checksums = json.loads((run.workflow.root / f"resources/checksums/{model}.json").read_text())
    assert checksums["sha256"]["model.safetensors"] == raw["model_weights_sha256"]


@pytest.mark.parametrize(("model", "dataset"), all_pairs())
def test_time_and_memory_are_measured(run, model, dataset):
    row = run.metrics(model, dataset).iloc[0]
    for field in ("inference_time_s", "model_load_s", "forward_s", "peak_rss_mb"):
        assert math.isfinite(row[field]) and row[field] > 0, field
    assert 0 <= row["tokenize_s"] <= row["inference_time_s"]
    assert row["throughput_eps"] == pytest.approx(row["n_rows"] / row["inference_time_s"])
    # On a CPU there is no GPU memory to report: empty, not 0.
    raw = run.raw_metrics(model, dataset)[0]
    assert raw["gpu_peak_allocated_mb"] == raw["gpu_peak_reserved_mb"] == ""


@pytest.mark.parametrize(("model", "dataset"), all_pairs())
def test_predictions_match_a_one_sentence_at_a_time_reference(run, references, model, dataset):
    predictions = run.predictions(model, dataset)
    reference = references[model, dataset]
    frame = dataset_frame(run, dataset)
    _, label_column = columns_of(run, dataset)
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert predictions["idx"].tolist() == frame["idx"].tolist()
    assert predictions["label"].tolist() == frame[label_column].tolist()
    assert predictions["prediction"].tolist() == reference["prediction"].tolist()
    np.testing.assert_allclose(predictions["probability"], reference["probability"], atol=1e-5)
    assert predictions["n_tokens"].tolist() == reference["n_tokens"].tolist()


def test_the_reference_comparison_is_meaningful(references):
    # Both classes are predicted and some sentences were cut, so a mix-up of rows, of columns
    # or of truncation would show in the comparison above.
    assert set(references["wide", "alpha"]["prediction"]) == {0, 1}
    assert references["narrow", "alpha"]["n_tokens"].max() == NARROW_MAX_LENGTH
    assert references["wide", "alpha"]["n_tokens"].max() > NARROW_MAX_LENGTH


def test_truncated_sentences_are_counted(run, references):
    row = run.metrics("narrow", "alpha").iloc[0]
    untruncated = references["wide", "alpha"]["n_tokens"]
    assert row["n_truncated"] == int((untruncated > NARROW_MAX_LENGTH).sum()) > 0


@pytest.mark.parametrize(("model", "dataset"), [p for p in all_pairs() if p[1] != "gamma"])
def test_quality_is_scored_on_labeled_rows(run, references, model, dataset):
    row = run.metrics(model, dataset).iloc[0]
    labels = run.predictions(model, dataset)["label"].to_numpy()
    reference = references[model, dataset]["prediction"].to_numpy()
    labeled = labels != -1
    correct = int((reference[labeled] == labels[labeled]).sum())
    assert row["n_labeled"] == labeled.sum()
    assert row["correct"] == correct
    assert row["accuracy_pct"] == pytest.approx(100 * correct / labeled.sum())
    assert row["accuracy_ci_low_pct"] <= row["accuracy_pct"] <= row["accuracy_ci_high_pct"]
    tp = int(((reference == 1) & (labels == 1)).sum())
    tn = int(((reference == 0) & (labels == 0)).sum())
    fp = int(((reference == 1) & (labels == 0)).sum())
    fn = int(((reference == 0) & (labels == 1)).sum())
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert row["mcc"] == pytest.approx((tp * tn - fp * fn) / denominator if denominator else 0.0)
    assert 0 <= row["macro_f1"] <= 1


def test_partly_labeled_dataset_scores_only_its_labeled_rows(run):
    row = run.metrics("wide", "beta").iloc[0]
    assert 0 < row["n_labeled"] < row["n_rows"]


def test_unlabeled_dataset_has_empty_quality_fields(run):
    row = run.raw_metrics("wide", "gamma")[0]
    assert row["n_labeled"] == "0"
    for field in QUALITY_FIELDS:
        assert row[field] == "", field  # empty, not 0
    assert float(row["inference_time_s"]) > 0  # time and memory are still measured


def test_performance_table(run):
    table = pd.read_csv(run.results / "model_performance.csv")
    assert list(table.columns[:5]) == REPORT_COLUMNS
    evaluations = zip(table["Model"], table["dtype"], table["Dataset"], strict=True)
    assert sorted(evaluations) == sorted(all_evaluations())
    for _, line in table.iterrows():
        row = run.metrics(line["Model"], line["Dataset"], line["dtype"]).iloc[0]
        assert line["Task"] == run.config["datasets"][line["Dataset"]]["task"]
        # The table keeps milliseconds, tenths of MiB and hundredths of a percent.
        assert line["Inference Time (seconds)"] == pytest.approx(row["inference_time_s"], abs=6e-4)
        assert line["Memory Usage (MB)"] == pytest.approx(row["peak_rss_mb"], abs=0.06)
        if row["n_labeled"]:
            assert line["Accuracy (%)"] == pytest.approx(row["accuracy_pct"], abs=0.006)
        else:
            assert math.isnan(line["Accuracy (%)"])


def test_a_finished_run_with_two_precisions_has_nothing_to_do(run):
    assert run.workflow.dry_run() == ({}, [])


def test_a_precision_other_than_float32_reports_its_agreement_with_float32(run):
    """narrow in bfloat16 on alpha, against narrow in float32 on the same rows: the share of
    rows predicted alike and the score's difference; float32 rows have none."""
    table = pd.read_csv(run.results / "model_performance.csv").set_index(["Model", "dtype"])
    mine, reference = (run.predictions("narrow", "alpha", dtype) for dtype in NARROW_DTYPES[::-1])
    line = table.loc[("narrow", "bfloat16")]
    same = 100 * (mine["prediction"] == reference["prediction"]).mean()
    assert line["agreement_pct"] == pytest.approx(same, abs=0.006)
    scores = [run.metrics("narrow", "alpha", dtype).loc[0, "score"] for dtype in NARROW_DTYPES]
    assert line["score_diff"] == pytest.approx(scores[1] - scores[0], abs=0.006)
    assert math.isnan(line["max_abs_diff"])  # a classification
    float32 = table.xs("float32", level="dtype")
    assert float32[["agreement_pct", "max_abs_diff", "score_diff"]].isna().all().all()


@pytest.mark.parametrize(("model", "dtype", "dataset"), all_evaluations())
def test_latency_is_measured_and_energy_is_empty_on_a_cpu_with_its_reason(
    run, model, dtype, dataset
):
    """The tiny datasets have fewer rows than requests: each row sent once, p99 empty (it needs
    400 requests; p90 40), and the note says both."""
    row = run.metrics(model, dataset, dtype).iloc[0]
    assert row["latency_requests"] == row["n_rows"]
    assert 0 < row["latency_p50_ms"] <= row["latency_max_ms"]
    if row["n_rows"] >= 40:
        assert row["latency_p50_ms"] <= row["latency_p90_ms"] <= row["latency_max_ms"]
    else:
        assert math.isnan(row["latency_p90_ms"]) and "p90 needs 40" in row["latency_note"]
    assert math.isnan(row["latency_p99_ms"]) and "p99 needs 400" in row["latency_note"]
    assert f"the dataset has {row['n_rows']} rows" in row["latency_note"]
    raw = run.raw_metrics(model, dataset, dtype)[0]
    empty = ("energy_j", "energy_j_per_1k", "mean_power_w", "energy_window_s")
    assert [raw[field] for field in empty] == [""] * 4 and raw["energy_passes"] == "0"
    assert "NVML's energy counter is an NVIDIA GPU's, not the cpu's" in raw["energy_note"]


def test_every_row_records_the_threads_it_used(run):
    """--cores 1 caps the job's threads; narrow's evaluation.threads pins them regardless, for
    torch and the tokenizer."""
    for model, dtype, dataset in all_evaluations():
        row = run.metrics(model, dataset, dtype).iloc[0]
        if model == "narrow":
            assert (row["torch_threads"], row["tokenizer_threads"]) == (NARROW_THREADS,) * 2
        else:
            assert row["torch_threads"] == 1 and row["tokenizer_threads"] >= 1


def test_every_plot_is_written(run):
    plots = sorted(p.name for p in (run.results / "plots").iterdir())
    assert plots == sorted(f"{plot}.png" for plot in ALL_PLOTS)
    for name in plots:
        path = run.results / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(path).ndim == 3


def test_every_job_wrote_its_log_and_evaluations_their_benchmark(run):
    logs = run.results / "logs"
    for dataset in run.data:
        assert (logs / "validate_dataset" / f"{dataset}.log").is_file()
    for model, dtype, dataset in all_evaluations():
        assert (logs / "evaluate_model" / model / dtype / f"{dataset}.log").is_file()
        benchmark = pd.read_csv(
            run.results / "benchmarks" / "evaluate_model" / model / dtype / f"{dataset}.tsv",
            sep="\t",
        )
        assert len(benchmark) == 1 and "max_rss" in benchmark.columns
    assert (logs / "aggregate_metrics.log").is_file()
    plotting = (logs / "plot_results.log").read_text()  # one job drew them all, one by one
    for plot in ALL_PLOTS:
        assert f"drew results/plots/{plot}.png" in plotting, plotting


def test_one_job_writes_both_tables_and_one_job_every_plot(workflow, small):
    """The light stages cost one process each (issue 11): one job of aggregate_metrics writes
    both tables and one job of plot_results every figure, not a job per table or per plot."""
    workflow.write_config(small)
    jobs = workflow.planned_outputs()
    tables = {"results/model_performance.csv", "results/glue_summary.csv"}
    tables |= {"results/model_performance.html", "results/glue_summary.html"}  # for the report
    plots = {f"results/plots/{plot}.png" for plot in ALL_PLOTS}
    assert [(rule, set(outputs)) for rule, outputs in jobs if tables & set(outputs)] == [
        ("aggregate_metrics", tables)
    ]
    assert [(rule, set(outputs)) for rule, outputs in jobs if plots & set(outputs)] == [
        ("plot_results", plots)
    ]


# --- configuration and data errors stop the run with a message that names the culprit --------


def small_config(model_dir, data_path) -> dict:
    return {
        "models": {"tiny": {"source": str(model_dir)}},
        "datasets": {"alpha": {"path": str(data_path), "task": "Sentiment analysis"}},
        "evaluation": {"device": "cpu"},
    }


@pytest.fixture
def small(tmp_path, tiny_model):
    return small_config(tiny_model, write_dataset(tmp_path / "alpha.parquet", n=5))


def fails_with(workflow: Workflow, config: dict, *expected: str) -> str:
    workflow.write_config(config)
    result = workflow.snakemake("-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, output
    assert not (workflow.root / "results").exists()
    return output


def test_undefined_dataset_in_a_models_list(workflow, small):
    small["models"]["tiny"]["datasets"] = ["sst3"]
    fails_with(workflow, small, "models.tiny.datasets[0]", "'sst3'", "not defined")


def test_undefined_dataset_later_in_the_list(workflow, small):
    small["models"]["tiny"]["datasets"] = ["alpha", "nope"]
    fails_with(workflow, small, "models.tiny.datasets[1]", "'nope'")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c.update(evalution={}),
            ["key evalution: unknown key; did you mean evaluation?"],
        ),
        (
            lambda c: c["evaluation"].update(batchtokens=5),
            ["key evaluation.batchtokens: unknown key; did you mean batch_tokens?"],
        ),
        (
            lambda c: c["models"]["tiny"].update(dtype="float16"),
            ["key models.tiny.dtype: unknown key; allowed here: source, revision, family"],
        ),
        (
            lambda c: c["evaluation"].update(batch_tokens="big"),
            ["key evaluation.batch_tokens: 'big' is not of type 'integer'"],
        ),
        (
            lambda c: c["datasets"]["alpha"].update(task=3),
            ["key datasets.alpha.task: 3 is not of type 'string'"],
        ),
        (
            lambda c: c["datasets"]["alpha"].pop("path"),
            ["key datasets.alpha: 'path' is a required property"],
        ),
        (
            lambda c: c["evaluation"].update(dtype="float64"),
            ["key evaluation.dtype: 'float64' is not one of ['float32', 'bfloat16', 'float16']"],
        ),
    ],
    ids=[
        "unknown-top-level-key",
        "unknown-evaluation-key",
        "unknown-model-key",
        "wrong-type-integer",
        "wrong-type-string",
        "missing-required-key",
        "value-not-allowed",
    ],
)
def test_config_schema_errors_name_the_key(workflow, small, change, expected):
    """In one line: the config file, the key path, the problem (tests/test_bad_config.py)."""
    change(small)
    fails_with(workflow, small, "config file config.yaml, ", *expected)


def test_a_bad_dataset_stops_the_run_with_one_clear_line(workflow, tiny_model, tmp_path):
    path = write_dataset(tmp_path / "bad.parquet", n=6)
    frame = pd.read_parquet(path)
    frame.loc[[1, 4], "sentence"] = "  "
    frame.to_parquet(path, index=False)
    workflow.write_config(small_config(tiny_model, path))
    result = workflow.snakemake(check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"glueperf error: {path}, column 'sentence': text is empty" in output
    assert "rows 1, 4" in output
    assert not (workflow.root / "results" / "metrics").exists()  # no model was run
