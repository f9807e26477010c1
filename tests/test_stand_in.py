"""The early start's stand-in (glueperf/evaluation.py: ``warm_up_stand_in``): a one-layer copy
of the model's architecture, built from its config on the device, warmed up through the engine's
forward pass before the claim, so that the held device does not pay a process's first-launch
costs; and the device let go before the scoring (``evaluate``'s ``done_with_device``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import build_tiny_model, make_sentences, write_dataset
from glueperf import evaluation
from glueperf.engine import Batching, Engine
from glueperf.evaluation import (
    EarlyStart,
    ModelHandle,
    Settings,
    StandIn,
    evaluate,
    read_data,
    warm_up_stand_in,
)
from glueperf.models import stand_in


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_stand_in_is_the_models_architecture_with_one_layer_in_its_dtype(tmp_path, dtype):
    directory = build_tiny_model(tmp_path / "model", num_labels=3)
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    assert model.config.num_hidden_layers > 1
    copy = stand_in(str(directory), dtype, "cpu")
    assert type(copy) is type(model) and not copy.training
    assert copy.config.num_hidden_layers == 1 and len(copy.bert.encoder.layer) == 1
    assert copy.config.num_labels == 3 and copy.config._attn_implementation == "sdpa"
    assert {p.dtype for p in copy.parameters()} == {getattr(torch, dtype)}


def test_a_distilbert_stand_in_has_one_layer_too(tmp_path):
    """DistilBERT names its depth n_layers: the stand-in must still have one layer."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=50, dim=16, hidden_dim=32, n_layers=3, n_heads=2)
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path)
    copy = stand_in(str(tmp_path), "float32", "cpu")
    assert isinstance(copy, DistilBertForSequenceClassification)
    assert len(copy.distilbert.transformer.layer) == 1


def test_forward_ids_gives_the_engines_predictions_for_the_same_ids(varied_model):
    """The stand-in's warm-up runs the engine's own forward pass on ids given as they are: on the
    real model it predicts what the engine predicts from the texts, padded rows included."""
    tokenizer = AutoTokenizer.from_pretrained(varied_model)
    model = AutoModelForSequenceClassification.from_pretrained(varied_model).eval()
    engine = Engine(model, tokenizer, "cpu", Batching())
    sentences = make_sentences(12)
    expected = engine.run(sentences).predictions
    rows = [tokenizer(sentence)["input_ids"] for sentence in sentences]
    assert len({len(row) for row in rows}) > 1  # one batch, padded
    np.testing.assert_array_equal(engine.forward_ids(rows), expected)


def test_warming_up_a_stand_in_runs_it_padded_and_unpadded(tiny_model, monkeypatch):
    shapes = []
    forward = Engine.forward_ids

    def recorded(self, rows):
        shapes.append(sorted({len(row) for row in rows}))
        return forward(self, rows)

    monkeypatch.setattr(Engine, "forward_ids", recorded)
    assert warm_up_stand_in(StandIn(str(tiny_model)), "cpu") > 0
    assert shapes == [[3, 5], [4]]  # a batch with a mask, then one without


def test_a_stand_in_that_cannot_be_built_is_logged_and_left_out(tmp_path, caplog):
    """A speed-up only: an evaluation whose stand-in fails goes on (its own warm-up pays)."""
    with caplog.at_level(logging.INFO, logger="glueperf.evaluation"):
        seconds = warm_up_stand_in(StandIn(str(tmp_path / "no such model")), "cpu")
    assert seconds >= 0
    assert "no stand-in warm-up before the claim" in caplog.text


def test_an_early_start_warms_up_the_stand_in_after_cuda_and_adds_its_seconds(monkeypatch):
    calls = []
    monkeypatch.setattr(evaluation, "start_device", lambda device: calls.append("start") or 0.25)

    def warm(model, device):
        calls.append(("stand-in", model.model_dir, model.dtype, device))
        return 0.5

    monkeypatch.setattr(evaluation, "warm_up_stand_in", warm)
    model = StandIn("models/m", "bfloat16")
    assert EarlyStart("cuda", model).seconds() == 0.75
    assert calls == ["start", ("stand-in", "models/m", "bfloat16", "cuda")]
    calls.clear()
    monkeypatch.setenv("GLUEPERF_STAND_IN", "0")  # the switch that compares without it
    assert EarlyStart("cuda", model).seconds() == 0.25
    assert calls == ["start"]


def test_an_early_start_after_one_begun_ahead_neither_restarts_cuda_nor_repeats_its_stand_in(
    monkeypatch,
):
    """In a child forked ahead of its job, CUDA started and a stand-in of the run's first
    model was warmed up before the job came: the job's early start waits for that one, and
    warms up its own stand-in only for another model or dtype; its seconds add up."""
    calls = []
    monkeypatch.setattr(evaluation, "start_device", lambda device: calls.append("start") or 0.25)
    monkeypatch.setattr(
        evaluation, "warm_up_stand_in", lambda model, device: calls.append(model.dtype) or 0.5
    )
    ahead = EarlyStart("cuda", StandIn("models/m"))
    assert EarlyStart("cuda", StandIn("models/m"), after=ahead).seconds() == 0.75
    assert calls == ["start", "float32"]
    calls.clear()
    assert EarlyStart("cuda", StandIn("models/m", "bfloat16"), after=ahead).seconds() == 1.25
    assert calls == ["bfloat16"]
    with pytest.raises(ValueError, match="started on cuda"):
        EarlyStart("cuda:1", StandIn("models/m"), after=ahead)


def test_a_failed_cuda_start_runs_no_stand_in(monkeypatch):
    def fails(device):
        raise RuntimeError("CUDA error: no CUDA-capable device is detected")

    monkeypatch.setattr(evaluation, "start_device", fails)
    monkeypatch.setattr(evaluation, "warm_up_stand_in", pytest.fail)
    with pytest.raises(RuntimeError, match="no CUDA-capable device"):
        EarlyStart("cuda", StandIn("models/m")).seconds()


def test_the_device_is_let_go_once_measured_before_the_scoring(tmp_path, tiny_model, monkeypatch):
    """``done_with_device`` is called once, after the last work on the device (the latency
    phase) and before the scores, which need only the host."""
    events = []
    scores, latency = evaluation.task_scores, evaluation.measure_latency

    def scored(*args, **kwargs):
        events.append("scores")
        return scores(*args, **kwargs)

    def timed(*args, **kwargs):
        events.append("latency")
        return latency(*args, **kwargs)

    monkeypatch.setattr(evaluation, "task_scores", scored)
    monkeypatch.setattr(evaluation, "measure_latency", timed)
    data = write_dataset(tmp_path / "d.parquet", n=20)
    settings = Settings(device="cpu")
    measured = evaluate(
        read_data(data), ModelHandle(str(tiny_model)), settings, None, lambda: events.append("go")
    )
    assert events == ["latency", "go", "scores"]
    assert measured.quality.values()["n_labeled"] == 20


def test_building_a_stand_in_leaves_torchs_default_dtype_alone(tmp_path, monkeypatch):
    """torch's default dtype is the process's: the stand-in, built in a thread while the
    evaluation loads its model under the model's dtype, must neither set nor restore it."""
    directory = build_tiny_model(tmp_path / "model")
    changes = []
    set_default = torch.set_default_dtype
    monkeypatch.setattr(torch, "set_default_dtype", lambda d: changes.append(d) or set_default(d))
    copy = stand_in(str(directory), "bfloat16", "cpu")
    assert changes == []
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
