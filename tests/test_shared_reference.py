"""The documented reference on real data: models/minilm-sst2 on SST-2 validation in float32 gets
779 of 872 right (89.3349 %, MCC 0.7874; shared/models/minilm-sst2/MODEL_CARD.md), and the
pipeline's predictions equal transformers run one sentence at a time without padding."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from conftest import SHARED, Workflow, reference_predictions, requires_shared

pytestmark = requires_shared

MODEL = SHARED / "models" / "minilm-sst2"
DATA = SHARED / "data" / "glue" / "sst2" / "validation.parquet"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    workflow = Workflow(tmp_path_factory.mktemp("shared") / "workflow")
    workflow.write_config(
        {
            "models": {"minilm-sst2": {"source": str(MODEL)}},
            "datasets": {"sst2-validation": {"path": str(DATA), "task": "Sentiment analysis"}},
            "evaluation": {"device": "cpu", "dtype": "float32"},
        }
    )
    workflow.snakemake()
    return workflow.root / "results"


@pytest.fixture(scope="module")
def reference():
    return reference_predictions(MODEL, pd.read_parquet(DATA)["sentence"].tolist())


def test_reference_result(results):
    row = pd.read_csv(results / "metrics" / "minilm-sst2" / "float32" / "sst2-validation.csv").iloc[
        0
    ]
    assert row["n_rows"] == 872
    assert row["n_labeled"] == 872
    assert row["correct"] == 779
    assert round(row["accuracy_pct"], 4) == 89.3349
    assert round(row["mcc"], 4) == 0.7874
    assert row["dtype"] == "float32"
    table = pd.read_csv(results / "model_performance.csv")
    assert table.loc[0, "Accuracy (%)"] == 89.33  # the table rounds to what people read


def test_predictions_equal_one_sentence_at_a_time(results, reference):
    predictions = pd.read_parquet(
        results / "predictions" / "minilm-sst2" / "float32" / "sst2-validation.parquet"
    )
    labels = pd.read_parquet(DATA)["label"]
    assert len(predictions) == len(reference) == 872
    assert (predictions["prediction"] == reference["prediction"]).all()
    assert (predictions["n_tokens"] == reference["n_tokens"]).all()
    assert (predictions["probability"] - reference["probability"]).abs().max() < 1e-4
    assert int((reference["prediction"] == labels).sum()) == 779  # the reference itself


def test_probabilities_are_probabilities(results):
    predictions = pd.read_parquet(
        results / "predictions" / "minilm-sst2" / "float32" / "sst2-validation.parquet"
    )
    assert predictions["probability"].between(0.5, 1.0).all()  # of the predicted of two classes
    assert not any(math.isnan(p) for p in predictions["probability"])
