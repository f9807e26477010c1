"""Checks before any job runs (glueperf.preflight): a wrong model path, and a classifier whose
classes match no dataset's labels, stop the run at start-up naming the config key, with the
message the evaluation would give; a Hub model is checked once fetched, and every evaluation
checks again before it loads the model or claims its device. The checks read config.json files and
parquet footers only (glueperf.parquet_footer, compared with pyarrow here) and import nothing
heavy. How Snakemake reports them is in test_bad_config.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, build_tiny_model, make_sentences
from glueperf import GlueperfError
from glueperf.parquet_footer import key_value_metadata
from glueperf.preflight import check_before_any_job, check_model

SENTIMENTS = {0: "negative", 1: "neutral", 2: "positive"}


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """A classifier of negative, neutral, positive."""
    return build_tiny_model(
        tmp_path_factory.mktemp("models") / "three", num_labels=3, id2label=SENTIMENTS
    )


def never(*args, **kwargs):
    raise AssertionError("a model was loaded or a device claimed before the check")


def write_labeled(path, names=None, labels=(0, 1, 1, 0)):
    """A parquet file of sentences; ``names``: its own ClassLabel names, as the Hub's carry."""
    table = pa.table({"sentence": make_sentences(len(labels)), "label": pa.array(labels)})
    if names is not None:
        label = {"names": list(names), "_type": "ClassLabel"}
        metadata = json.dumps({"info": {"features": {"label": label}}})
        table = table.replace_schema_metadata({"huggingface": metadata})
    pq.write_table(table, path)
    return str(path)


def config_of(model_source, dataset_entries: dict, **model) -> dict:
    return {"models": {"m": {"source": str(model_source), **model}}, "datasets": dataset_entries}


def refusal(config) -> str:
    with pytest.raises(GlueperfError) as caught:
        check_before_any_job(config)
    return str(caught.value)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda model: shutil.rmtree(model), "no such directory"),
        (lambda model: (model / "config.json").unlink(), "no config.json"),
        (lambda model: (model / "tokenizer.json").unlink(), "no tokenizer in the directory"),
        (
            lambda model: (model / "vocab.txt").symlink_to(model.parent / "elsewhere"),
            "symbolic link(s) out of the model directory",
        ),
    ],
    ids=["no-directory", "no-config", "no-tokenizer", "link-out"],
)
def test_a_wrong_model_directory_is_named_by_its_config_key(
    tmp_path, tiny_model, breakage, expected
):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    (tmp_path / "elsewhere").write_text("a file of the host's")
    breakage(model)
    config = config_of(model, {"d": {"path": write_labeled(tmp_path / "d.parquet")}})
    message = refusal(config)
    assert message.startswith(f"config key models.m.source: model '{model}': "), message
    assert expected in message


def evaluation_message(model_dir, path, spec) -> str:
    """What an evaluation says of the model on the file (the model loaded with transformers)."""
    from glueperf.evaluation import check_task_fits
    from glueperf.models import load_model
    from glueperf.validation import load_dataset

    model = load_model(str(model_dir), "float32", "cpu")[0]
    with pytest.raises(GlueperfError) as caught:
        check_task_fits(model, load_dataset(path, spec), spec, path, ("m", "d"))
    return str(caught.value)


def test_classes_that_match_no_label_stop_the_run_with_the_evaluations_message(
    tmp_path, three_classes
):
    from glueperf.tasks import dataset_spec

    entry = {"path": write_labeled(tmp_path / "d.parquet"), "label_names": ["bad", "good"]}
    message = refusal(config_of(three_classes, {"d": entry}))
    assert "model 'm' has classes ['negative', 'neutral', 'positive']" in message
    assert message == evaluation_message(three_classes, entry["path"], dataset_spec("d", entry))
    # A label_map that says which is which lets it run; one naming no class of the model not.
    ok = {"negative": "bad", "neutral": "bad", "positive": "good"}
    check_before_any_job(config_of(three_classes, {"d": entry}, label_map=ok))
    wrong = {**ok, "NEUTRAL": "bad", "happy": "good"}
    assert refusal(config_of(three_classes, {"d": entry}, label_maps={"d": wrong})).startswith(
        "config key models.m.label_maps.d: ['happy'] are not classes of model 'm'"
    )


def test_a_files_own_label_names_are_read_from_its_footer_and_win_over_the_tasks(
    tmp_path, three_classes
):
    """RTE's task names are entailment, not_entailment; this file says its own."""
    own = write_labeled(tmp_path / "own.parquet", ["negative", "neutral", "positive"])
    check_before_any_job(config_of(three_classes, {"d": {"path": own, "glue_task": "sst2"}}))
    plain = write_labeled(tmp_path / "plain.parquet")
    message = refusal(config_of(three_classes, {"d": {"path": plain, "glue_task": "sst2"}}))
    assert "dataset 'd' has labels ['negative', 'positive']" in message
    assert "the class counts differ (3 vs 2): ['neutral'] match no label" in message


def test_a_regression_model_on_a_classification_dataset_stops_the_run(tmp_path):
    regression = build_tiny_model(tmp_path / "regression", num_labels=1)
    path = write_labeled(tmp_path / "d.parquet", ["no", "yes"])
    assert "is a regression model (one output, a score)" in refusal(
        config_of(regression, {"d": {"path": path}})
    )


def test_a_label_maps_entry_for_a_dataset_the_model_skips_is_refused(tmp_path, tiny_model):
    datasets = {name: {"path": write_labeled(tmp_path / f"{name}.parquet")} for name in "ab"}
    config = config_of(tiny_model, datasets, datasets=["a"], label_maps={"b": {"LABEL_0": "x"}})
    assert refusal(config).startswith(
        "config key models.m.label_maps.b: model 'm' does not run on a dataset 'b'"
    )


def test_a_hub_model_is_checked_once_fetched_and_a_hub_file_once_its_names_are_known(
    tmp_path, monkeypatch, three_classes
):
    monkeypatch.chdir(tmp_path)
    hub_file = {"path": "hf://datasets/nyu-mll/glue/sst2/validation.parquet", "glue_task": "sst2"}
    config = {
        "models": {"m": {"source": "owner/three-classes"}},
        "datasets": {"d": hub_file},
    }
    check_before_any_job(config)  # nothing fetched: nothing to check yet
    shutil.copytree(three_classes, tmp_path / "resources" / "models" / "m")
    check_model(config, "m")  # the file's own names could still be the model's
    (tmp_path / "resources" / "datasets").mkdir()
    write_labeled(tmp_path / "resources" / "datasets" / "d.parquet", ["negative", "positive"])
    assert "['neutral'] match no label" in refusal(config)


def test_an_evaluation_checks_its_model_and_dataset_before_it_claims_its_device(
    tmp_path, monkeypatch, three_classes
):
    from glueperf import fetch
    from glueperf.infra import devices, evaluate_job

    monkeypatch.setattr(devices, "claim_device", never)
    monkeypatch.setattr(fetch, "provenance_fields", lambda *inputs: {})
    path = write_labeled(tmp_path / "d.parquet", ["bad", "good"])
    job = types.SimpleNamespace(
        params=types.SimpleNamespace(
            settings={"device": "cpu"},
            model={"model_dir": str(three_classes), "trust_remote_code": False},
            dataset={"label_names": ["bad", "good"], "label_names_from_config": True},
        ),
        wildcards=types.SimpleNamespace(model="m", dtype="float32", dataset="d"),
        input=types.SimpleNamespace(data=path, summary=None, model_provenance=None),
    )
    with pytest.raises(GlueperfError, match="the class counts differ"):
        evaluate_job.evaluate_job(job)


def test_the_checks_import_nothing_heavy(tmp_path, three_classes):
    """They run on every Snakemake invocation, no-op reruns included."""
    path = write_labeled(tmp_path / "d.parquet", ["negative", "neutral", "positive"])
    config = config_of(three_classes, {"d": {"path": path}})
    probe = f"""
import sys
sys.path.insert(0, {str(REPO / "scripts")!r})
from glueperf.preflight import check_before_any_job
check_before_any_job({config!r})
heavy = ("numpy", "pyarrow", "pandas", "torch", "transformers")
print(sorted(m for m in heavy if m in sys.modules))
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# --- parquet footers without pyarrow -----------------------------------------------------------


def test_a_footers_key_value_metadata_is_read_as_pyarrow_reads_it(tmp_path):
    n = 300
    table = pa.table(
        {
            "sentence": make_sentences(n),
            "label": pa.array(np.arange(n) % 2),
            "score": pa.array(np.linspace(0, 5, n)),
            "flag": pa.array([True, False, None] * (n // 3)),
            "small": pa.array(np.arange(n) % 100, pa.int8()),
        }
    ).replace_schema_metadata({"huggingface": '{"info": {}}', "x" * 300: "é" * 1000})
    cases = {
        "many row groups": {"row_group_size": 7},
        "one row group": {},
        "dictionary": {"use_dictionary": True, "compression": "zstd"},
        "no schema stored": {"store_schema": False},
    }
    for name, options in cases.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path, **options)
        assert key_value_metadata(path) == (pq.ParquetFile(path).metadata.metadata or {}), name
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "none.parquet")
    assert b"huggingface" not in key_value_metadata(tmp_path / "none.parquet")


def test_what_is_not_a_readable_parquet_footer_is_unknown(tmp_path):
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), whole)
    (tmp_path / "cut.parquet").write_bytes(whole.read_bytes()[:-3])
    (tmp_path / "text.parquet").write_text("sentence,label\na,1\n")
    garbled = bytearray(whole.read_bytes())
    footer_start = len(garbled) - 8 - int.from_bytes(garbled[-8:-4], "little")
    garbled[footer_start + 2 : footer_start + 30] = b"\xff" * 28  # in its schema
    (tmp_path / "garbled.parquet").write_bytes(bytes(garbled))
    for name in ("cut", "text", "garbled", "absent"):
        assert key_value_metadata(tmp_path / f"{name}.parquet") is None, name
    os.mkfifo(tmp_path / "fifo.parquet")  # opened, it would wait for a writer
    for special in (tmp_path / "fifo.parquet", "/dev/zero", tmp_path):
        assert key_value_metadata(special) is None, special
