"""Prepared models (glueperf.prepared): traced once, loaded with torch alone, and predicting
exactly what the transformers model predicts; anything that does not fit falls back to it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, build_tiny_model, make_sentences, write_dataset
from glueperf.checksums import local_checksums
from glueperf.engine import Batching, Engine
from glueperf.models import ALIGNMENT, load_model
from glueperf.prepared import (
    META,
    MODEL_FILE,
    TORCHSCRIPT,
    TRANSFORMERS,
    load_prepared,
    load_source,
    prepared_checksums,
    trace_source,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("prepared-models")
    return {
        "bert": build_tiny_model(base / "bert", initializer_range=0.5),
        "roberta": build_tiny_model(base / "roberta", architecture="roberta"),
        "regression": build_tiny_model(base / "regression", num_labels=1, initializer_range=0.5),
    }


def prepare(model_dir: str, dtype: str, device: str, out_dir, checksums=None) -> dict:
    """Trace a model as rule prepare_model does (glueperf/infra/prepare_job.py): loaded on the
    CPU, then traced on ``device``; what was recorded in its prepared.json."""
    return trace_source(load_source(model_dir, dtype, checksums=checksums), device, out_dir)


def run(model, tokenizer, texts, pairs):
    return Engine(model, tokenizer, "cpu", Batching(batch_tokens=256)).run(texts, pairs)


@pytest.mark.parametrize("kind", ["bert", "roberta", "regression"])
@pytest.mark.parametrize("with_pairs", [False, True])
def test_a_prepared_model_predicts_exactly_what_the_model_predicts(
    models, tmp_path, kind, with_pairs
):
    meta = prepare(str(models[kind]), "float32", "cpu", tmp_path / "prepared")
    assert meta["format_used"] == TORCHSCRIPT, meta.get("why")
    # One file holds the weights once, whatever the sets of inputs traced.
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == sorted(
        [META, MODEL_FILE, "tokenizer.json"]
    )
    prepared, tokenizer, loaded = load_prepared(tmp_path / "prepared", "float32", "cpu")
    model, own_tokenizer, own_loaded = load_model(str(models[kind]), "float32", "cpu")
    assert loaded == own_loaded
    texts = make_sentences(300, seed=5)
    pairs = make_sentences(300, seed=6) if with_pairs else None
    got, expected = run(prepared, tokenizer, texts, pairs), run(model, own_tokenizer, texts, pairs)
    assert got.n_batches > 2 and got.padded_tokens > got.token_counts.sum()  # padded batches
    assert np.array_equal(got.predictions, expected.predictions)
    assert np.array_equal(got.probabilities, expected.probabilities, equal_nan=True)
    assert np.array_equal(got.token_counts, expected.token_counts)
    if kind != "regression":
        assert len(set(expected.predictions.tolist())) == 2


def test_the_models_weights_lie_aligned_as_the_traces_do_so_that_every_cpu_computes_alike(
    models, tmp_path
):
    """Why the test above holds on every CPU, not only on this one: a BLAS kernel's rounding can
    depend on its operands' alignment, and transformers leaves weights at their offsets in the
    mapped safetensors file (a regression head's last bits differed on another CPU)."""
    prepare(str(models["regression"]), "float32", "cpu", tmp_path / "prepared")
    prepared = load_prepared(tmp_path / "prepared", "float32", "cpu")[0]
    model = load_model(str(models["regression"]), "float32", "cpu")[0]
    for module in (model, prepared._module):
        tensors = [*module.parameters(), *module.buffers()]
        assert tensors and all(t.data_ptr() % ALIGNMENT == 0 for t in tensors)


def test_token_types_are_traced_only_for_a_model_that_takes_them(models, tmp_path):
    bert = prepare(str(models["bert"]), "float32", "cpu", tmp_path / "bert")
    roberta = prepare(str(models["roberta"]), "float32", "cpu", tmp_path / "roberta")
    assert ["input_ids", "attention_mask", "token_type_ids"] in bert["variants"]
    assert roberta["variants"] == [["input_ids"], ["input_ids", "attention_mask"]]


@pytest.mark.parametrize(
    "change",
    [{"dtype": "bfloat16"}, {"device_type": "cuda"}, {"torch_version": "1.0"}],
    ids=["dtype", "device", "torch"],
)
def test_a_prepared_model_made_for_something_else_is_not_used(models, tmp_path, caplog, change):
    prepare(str(models["bert"]), "float32", "cpu", tmp_path / "prepared")
    meta_path = tmp_path / "prepared" / META
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), **change}))
    with caplog.at_level(logging.INFO, logger="glueperf.prepared"):
        assert load_prepared(tmp_path / "prepared", "float32", "cpu") is None
    assert "loading it with transformers" in caplog.text and str(change)[1:-1] in caplog.text


def test_a_model_whose_trace_differs_falls_back_to_transformers(
    models, tmp_path, monkeypatch, caplog
):
    import glueperf.prepared as prepared_module

    def differs(*args):
        raise ValueError("the trace differs from the model")

    monkeypatch.setattr(prepared_module, "_check", differs)
    with caplog.at_level(logging.WARNING, logger="glueperf.prepared"):
        meta = prepare(str(models["bert"]), "float32", "cpu", tmp_path / "prepared")
    assert meta["format_used"] == TRANSFORMERS and "differs" in meta["why"]
    assert not (tmp_path / "prepared" / MODEL_FILE).exists()
    assert load_prepared(tmp_path / "prepared", "float32", "cpu") is None
    assert "load it with transformers" in caplog.text


def test_a_model_that_cannot_be_loaded_is_left_to_its_evaluations(tmp_path):
    """Its evaluations name the problem in their own logs, as for any bad model: preparing it
    records why and writes no trace, and fails nothing."""
    meta = prepare(str(tmp_path / "absent"), "float32", "cpu", tmp_path / "prepared")
    assert meta["format_used"] == TRANSFORMERS and "no such directory" in meta["why"]
    assert [p.name for p in (tmp_path / "prepared").iterdir()] == [META]
    assert load_prepared(tmp_path / "prepared", "float32", "cpu") is None


def test_a_trace_that_cannot_be_loaded_falls_back_to_transformers(models, tmp_path, caplog):
    prepare(str(models["bert"]), "float32", "cpu", tmp_path / "prepared")
    (tmp_path / "prepared" / MODEL_FILE).write_bytes(b"not a TorchScript archive")
    with caplog.at_level(logging.WARNING, logger="glueperf.prepared"):
        assert load_prepared(tmp_path / "prepared", "float32", "cpu") is None
    assert "could not be loaded" in caplog.text and "using transformers" in caplog.text


def test_an_evaluation_of_a_prepared_model_imports_neither_transformers_nor_pandas(
    models, tmp_path
):
    """Their imports cost an evaluation job more than its work on small data (BENCHMARKS.md):
    validating, reading, evaluating with the trace and writing the predictions need neither.
    (pyarrow imports pandas by itself in to_numpy() and pa.array(), so those are not used.)"""
    prepare(str(models["regression"]), "float32", "cpu", tmp_path / "prepared")
    data = tmp_path / "scores.parquet"
    write_dataset(data, n=30, label=np.linspace(0, 5, 30).astype(np.float32))
    probe = f"""
import sys
sys.path.insert(0, {str(REPO / "scripts")!r})
from glueperf.evaluation import ModelHandle, Settings, evaluate, read_data, write_predictions
from glueperf.tasks import DatasetSpec
from glueperf.validation import summarize
spec = DatasetSpec(regression=True, metrics=("pearson", "spearman"))
summarize({str(data)!r}, spec)
measured = evaluate(
    read_data({str(data)!r}, spec),
    ModelHandle({str(models["regression"])!r}, prepared_dir={str(tmp_path / "prepared")!r}),
    Settings(device="cpu"),
)
write_predictions(measured.predictions, {str(tmp_path / "predictions.parquet")!r})
print(measured.loading.model_format, "pandas" in sys.modules, "transformers" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [TORCHSCRIPT, "False", "False"]
    written = pq.ParquetFile(tmp_path / "predictions.parquet").read()
    assert written.num_rows == 30 and written.column("score").type == pa.float32()


def test_a_prepared_model_records_the_checksums_of_its_files_once_for_every_evaluation(
    models, tmp_path
):
    meta = prepare(str(models["bert"]), "float32", "cpu", tmp_path / "local")
    assert meta["model_sha256"] == local_checksums(models["bert"])
    assert prepared_checksums(tmp_path / "local") == meta["model_sha256"]
    # A fetched model's checksums (its provenance) are recorded as they are, not computed again.
    fetched = {"model.safetensors": "0" * 64}
    assert (
        prepare(str(models["bert"]), "float32", "cpu", tmp_path / "fetched", checksums=fetched)[
            "model_sha256"
        ]
        == fetched
    )
    assert prepared_checksums(tmp_path / "nothing-here") is None
