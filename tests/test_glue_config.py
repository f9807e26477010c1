"""config/glue.yaml as shipped: every GLUE validation split, fetched through the real Hub client
from a Hub stand-in serving the real GLUE files at the pinned commit, scored by each task's
official metric and summarized; and on ../shared's real models, the reference figures."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hub_server import FakeHub, point_hub_client_at
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import REPO, SHARED, Workflow, build_tiny_model, requires_shared
from glueperf.aggregate import COVERAGE, GLUE_AVERAGE
from glueperf.tasks import GLUE_TASKS

pytestmark = requires_shared

GLUE_COMMIT = "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c"
# QQP validation is not in ../shared (see its data/glue/SOURCES.md).
UNAVAILABLE = ("qqp",)
# A checkpoint that orders MNLI's classes otherwise than GLUE, as many do.
MNLI_REVERSED = ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]


def glue_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "glue.yaml").read_text())
    for name, entry in list(config["datasets"].items()):
        if entry["glue_task"] in UNAVAILABLE:
            del config["datasets"][name]
    config["models"] = {
        name: entry
        for name, entry in config["models"].items()
        if set(entry["datasets"]) <= set(config["datasets"])
    }
    config["evaluation"]["device"] = "cpu"
    return config


def shared_file(url: str):
    """hf://datasets/nyu-mll/glue/TASK/SPLIT-00000-of-00001.parquet -> ../shared's copy."""
    task, name = url.split("/")[-2:]
    return SHARED / "data" / "glue" / task / name.replace("-00000-of-00001", "")


def tiny_model_for(task: str, directory):
    names = GLUE_TASKS[task].label_names
    if names is None:
        return build_tiny_model(directory, num_labels=1, initializer_range=0.5)
    names = MNLI_REVERSED if task == "mnli" else list(names)
    return build_tiny_model(
        directory, num_labels=len(names), id2label=dict(enumerate(names)), initializer_range=0.5
    )


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory):
    config = glue_config()
    root = tmp_path_factory.mktemp("glue-hub")
    with pytest.MonkeyPatch.context() as monkeypatch, FakeHub() as hub:
        point_hub_client_at(hub.url, root / "hf-home", monkeypatch)
        files = {}
        for entry in config["datasets"].values():
            assert entry["revision"] == GLUE_COMMIT
            files[entry["path"].split("nyu-mll/glue/")[1]] = shared_file(entry["path"]).read_bytes()
        hub.repo("datasets", "nyu-mll/glue").commit(files, sha=GLUE_COMMIT)
        models = {}
        for name, entry in config["models"].items():
            task = name.rsplit("-", 1)[1]
            models[name] = tiny_model_for(task, root / "models" / name)
            hub.add_model_dir(entry["source"], models[name])
        workflow = Workflow(root / "workflow")
        (workflow.root / "glue.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        workflow.snakemake("--configfile", "glue.yaml")
    return workflow.root / "results", config, models


def test_every_glue_dataset_is_fetched_at_the_pinned_commit_and_scored(hub_run):
    results, config, _ = hub_run
    table = pd.read_csv(results / "model_performance.csv", keep_default_na=False, na_values=[""])
    assert sorted(table["Dataset"]) == sorted(config["datasets"])
    # config.yaml's own model and datasets are not in the run: --configfile replaces it.
    assert "distilbert-sst2" not in set(table["Model"])
    assert (table["dataset_commit"] == GLUE_COMMIT).all()
    for row in table.itertuples():
        task = GLUE_TASKS[row.glue_task]
        assert row.Metric == "/".join(task.metrics)
        assert row.text_input == ("pair" if len(task.text_columns) == 2 else "single")
        assert row.score_ci_low <= row.Score <= row.score_ci_high
        if task.regression:
            assert math.isnan(row._5) and not math.isnan(row.pearson)  # Accuracy (%) empty
            expected = 50 * (row.pearson + row.spearman)
        else:
            expected = 100 * np.mean(
                [row._5 / 100 if m == "accuracy" else getattr(row, m) for m in task.metrics]
            )
        # From the table's rounded figures (scores and percentages to 2 decimals).
        assert row.Score == pytest.approx(expected, abs=0.02)


def test_mnli_classes_are_matched_by_name(hub_run):
    results, config, models = hub_run
    (name,) = [m for m in config["models"] if m.endswith("-mnli")]
    row = pd.read_csv(results / "metrics" / name / "float32" / "mnli-validation-matched.csv").iloc[
        0
    ]
    assert row["label_mapping"].startswith("by name: CONTRADICTION->contradiction")
    predictions = pd.read_parquet(
        results / "predictions" / name / "float32" / "mnli-validation-matched.parquet"
    )
    data = pd.read_parquet(SHARED / "data" / "glue" / "mnli" / "validation_matched.parquet")
    tokenizer = AutoTokenizer.from_pretrained(models[name])
    model = AutoModelForSequenceClassification.from_pretrained(models[name]).eval()
    first = data.head(40)
    with torch.inference_mode():
        inputs = tokenizer(
            first["premise"].tolist(),
            first["hypothesis"].tolist(),
            padding=True,
            truncation=True,
            max_length=tokenizer.model_max_length,
        )
        logits = model(**{k: torch.tensor(v) for k, v in inputs.items()}).logits
    model_classes = logits.argmax(-1).numpy()
    assert len(set(model_classes)) > 1
    # model class 0 (CONTRADICTION) is GLUE's label 2 (contradiction), and so on
    assert predictions["prediction"].head(40).tolist() == (2 - model_classes).tolist()


def test_the_glue_summary_has_one_row_for_the_family(hub_run):
    results, config, _ = hub_run
    summary = pd.read_csv(results / "glue_summary.csv")
    assert summary["Model"].tolist() == ["bert-base-cased"]
    tasks = {entry["glue_task"] for entry in config["datasets"].values()}
    assert summary.loc[0, COVERAGE] == f"{len(tasks)} of 9" == "8 of 9"
    assert len(summary.columns) == 1 + len(config["datasets"]) + 2
    assert (results / "plots" / "glue_summary.png").stat().st_size > 0
    table = pd.read_csv(results / "model_performance.csv")
    per_task = table.groupby("glue_task")["Score"].mean()
    assert summary.loc[0, GLUE_AVERAGE] == pytest.approx(per_task.mean(), abs=0.05)


# --- the real models of ../shared, on local files ----------------------------------------------


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """config/glue.yaml with `source` and `path` pointed at ../shared, for the tasks it has
    real models of: their documented reference figures."""
    config = glue_config()
    tasks = {"sst2": "minilm-sst2", "mrpc": "minilm-mrpc", "stsb": "minilm-stsb"}
    config["models"] = {
        name: {**entry, "source": str(SHARED / "models" / tasks[name.rsplit("-", 1)[1]])}
        for name, entry in config["models"].items()
        if name.rsplit("-", 1)[1] in tasks
    }
    config["datasets"] = {
        name: {**entry, "path": str(shared_file(entry["path"]))}
        for name, entry in config["datasets"].items()
        if entry["glue_task"] in tasks
    }
    workflow = Workflow(tmp_path_factory.mktemp("glue-shared") / "workflow")
    shutil.copy(REPO / "config.yaml", workflow.root / "config.yaml")
    (workflow.root / "glue.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    workflow.snakemake("--configfile", "glue.yaml")
    return workflow.root / "results"


def metrics(results, model, dataset):
    return pd.read_csv(results / "metrics" / model / "float32" / f"{dataset}.csv").iloc[0]


def test_minilm_mrpc_reproduces_its_reference(shared_run):
    row = metrics(shared_run, "bert-base-cased-mrpc", "mrpc-validation")
    assert (row["correct"], row["n_labeled"]) == (307, 408)
    assert round(row["f1"], 6) == 0.832504
    assert round(row["mcc"], 6) == 0.383801
    assert row["score"] == pytest.approx(50 * (0.832504 + 307 / 408), abs=1e-4)


def test_minilm_stsb_reproduces_its_reference(shared_run):
    row = metrics(shared_run, "bert-base-cased-stsb", "stsb-validation")
    assert round(row["pearson"], 4) == 0.8550 and round(row["spearman"], 4) == 0.8551
    assert math.isnan(row["accuracy_pct"]) and math.isnan(row["correct"])
    predictions = pd.read_parquet(
        shared_run / "predictions" / "bert-base-cased-stsb" / "float32" / "stsb-validation.parquet"
    )
    assert list(predictions.columns) == ["idx", "label", "score", "n_tokens"]
    assert predictions["score"].between(-1, 6).all()


def test_minilm_sst2_still_reproduces_its_reference(shared_run):
    row = metrics(shared_run, "bert-base-cased-sst2", "sst2-validation")
    assert (row["correct"], row["n_labeled"]) == (779, 872)
    # Through the transformers model, as every reference figure here (no TorchScript any more).
    assert row["model_format"] == "transformers"
    assert row["label_mapping"] == "by name: NEGATIVE->negative, POSITIVE->positive"
