"""Fetching pinned Hub inputs: the real huggingface_hub client against a Hub stand-in on
127.0.0.1 (tests/hub_server.py), through the pipeline's fetch rules."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from hub_server import FakeHub, point_hub_client_at

from conftest import Workflow, build_tiny_model, reference_predictions, write_dataset
from glueperf import GlueperfError
from glueperf.checksums import weights_sha256
from glueperf.fetch import fetch_model, is_hub_model, parse_dataset_url, select_model_files

DATA_URL = "hf://datasets/acme/glue/sst2/validation-00000-of-00001.parquet"


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_select_model_files_prefers_safetensors_and_skips_other_frameworks():
    paths = [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "rust_model.ot",
        "onnx/model.onnx",
        "tokenizer.json",
        "vocab.txt",
        "README.md",
    ]
    assert select_model_files(paths) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
    ]
    assert "pytorch_model.bin" in select_model_files(["config.json", "pytorch_model.bin"])


def test_hub_ids_and_dataset_urls_are_told_apart(tmp_path, monkeypatch):
    assert is_hub_model("distilbert/distilbert-base-uncased-finetuned-sst-2-english")
    assert not is_hub_model(str(tmp_path)) and not is_hub_model("./models/mine")
    (tmp_path / "models").mkdir()
    assert not is_hub_model(str(tmp_path / "models" / "missing"))
    monkeypatch.chdir(tmp_path)
    assert not is_hub_model("models/missing")  # a local folder, so a local path
    assert is_hub_model("acme/missing")
    assert parse_dataset_url("hf://datasets/nyu-mll/glue@abc123/cola/x.parquet") == (
        "nyu-mll/glue",
        "cola/x.parquet",
        "abc123",
    )
    with pytest.raises(GlueperfError, match="hf://datasets/OWNER/NAME"):
        parse_dataset_url("hf://models/nyu-mll/glue/x.parquet")


def test_weights_fingerprint_is_the_file_hash_or_a_listing_hash_for_shards():
    assert weights_sha256({"model.safetensors": "ab", "config.json": "cd"}) == "ab"
    sharded = weights_sha256({"a.safetensors": "1", "b.safetensors": "2", "config.json": "3"})
    assert sharded == hashlib.sha256(b"1  a.safetensors\n2  b.safetensors\n").hexdigest()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with FakeHub() as server:
        point_hub_client_at(server.url, tmp_path / "hf-home", monkeypatch)
        yield server


def test_unreachable_hub_fails_fast_with_offline_advice(tmp_path, monkeypatch):
    # The discard port: nothing listens there.
    point_hub_client_at("http://127.0.0.1:9", tmp_path / "hf-home", monkeypatch)
    started = time.monotonic()
    with pytest.raises(GlueperfError, match="unreachable or offline.*HF_HUB_OFFLINE"):
        fetch_model("acme/tiny", None, tmp_path / "model")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "model").exists()


def test_unknown_revision_is_named(hub, tmp_path, varied_model):
    hub.add_model_dir("acme/tiny", varied_model)
    with pytest.raises(GlueperfError, match="revision 'v9'.*revision not found"):
        fetch_model("acme/tiny", "v9", tmp_path / "model")


def test_pipeline_fetches_pinned_inputs_and_reruns_only_what_a_revision_change_affects(
    hub, tmp_path, varied_model, monkeypatch
):
    first_commit = hub.add_model_dir("acme/tiny", varied_model)
    data = write_dataset(tmp_path / "source" / "validation.parquet", n=30, seed=4)
    data_commit = hub.repo("datasets", "acme/glue").commit(
        {"sst2/validation-00000-of-00001.parquet": data.read_bytes()}
    )
    workflow = Workflow(tmp_path / "workflow")
    config = {
        "models": {"tiny": {"source": "acme/tiny", "revision": first_commit}},
        "datasets": {"val": {"path": DATA_URL, "task": "Sentiment analysis"}},
    }
    workflow.write_config(config)
    workflow.snakemake()
    root = workflow.root

    # What was fetched is the pinned commit, byte for byte, with its checksums recorded.
    model_provenance = json.loads((root / "resources/provenance/models/tiny.json").read_text())
    assert model_provenance["commit"] == first_commit
    for name, checksum in model_provenance["sha256"].items():
        assert (
            checksum == sha256(root / "resources/models/tiny" / name) == sha256(varied_model / name)
        )
    data_provenance = json.loads((root / "resources/provenance/datasets/val.json").read_text())
    assert data_provenance["commit"] == data_commit
    assert sha256(root / "resources/datasets/val.parquet") == sha256(data)

    row = pd.read_csv(root / "results/metrics/tiny/float32/val.csv").iloc[0]
    assert row["model_commit"] == first_commit and row["dataset_commit"] == data_commit
    assert row["dataset_sha256"] == sha256(data)
    assert row["model_weights_sha256"] == sha256(varied_model / "model.safetensors")
    predictions = pd.read_parquet(root / "results/predictions/tiny/float32/val.parquet")
    sentences = pd.read_parquet(data)["sentence"].tolist()
    expected = reference_predictions(varied_model, sentences)["prediction"]
    assert predictions["prediction"].tolist() == expected.tolist()

    # A new revision refetches the model and reruns its evaluation; the dataset stays put.
    other = build_tiny_model(tmp_path / "other", initializer_range=0.5, num_labels=3)
    second_commit = hub.add_model_dir("acme/tiny", other)
    config["models"]["tiny"]["revision"] = second_commit
    workflow.write_config(config)
    assert workflow.planned_jobs() == {
        "fetch_model": 1,
        "evaluate_model": 1,
        "aggregate_metrics": 1,
        "plot_results": 1,
    }

    # Prefetched, the run needs no Hub at all.
    workflow.snakemake("prefetch")
    hub_requests = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    workflow.snakemake()
    assert len(hub.requests) == hub_requests
    row = pd.read_csv(root / "results/metrics/tiny/float32/val.csv").iloc[0]
    assert row["model_commit"] == second_commit


def test_local_paths_bypass_downloads(workflow, tiny_model, tmp_path):
    data = write_dataset(tmp_path / "local.parquet", n=10)
    workflow.write_config(
        {
            "models": {"tiny": {"source": str(tiny_model)}},
            "datasets": {"local": {"path": str(data), "task": "Sentiment analysis"}},
        }
    )
    jobs = workflow.planned_jobs()
    assert "fetch_model" not in jobs and "fetch_dataset" not in jobs
    assert workflow.snakemake("-n", "prefetch").returncode == 0


def test_config_sha256_pins_the_dataset_content(workflow, tiny_model, tmp_path):
    data = write_dataset(tmp_path / "local.parquet", n=10)
    wrong = "0" * 64
    workflow.write_config(
        {
            "models": {"tiny": {"source": str(tiny_model)}},
            "datasets": {
                "local": {"path": str(data), "task": "Sentiment analysis", "sha256": wrong}
            },
        }
    )
    result = workflow.snakemake(check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"sha256 is {sha256(data)}, but the config expects {wrong}" in output
    assert not (workflow.root / "results/validated/local.json").exists()
    shutil.rmtree(workflow.root / "results", ignore_errors=True)
