"""A model's own code never runs unless its config entry trusts it, nothing is read from standard
input, pickled weights are read only with torch.load(weights_only=True), and the metrics row
records which weights format was loaded and whether the model's code was trusted.

One pipeline run, with "y" piped to Snakemake's standard input (the answer transformers' prompt
"Do you wish to run the custom code? [y/N]" would take), holds: a model directory with code of
its own, untrusted and (a copy) trusted; one with .bin weights; one whose .bin pickle would run a
shell command; the plain tiny model on a device this machine lacks (mps).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from conftest import REPO, Workflow, write_dataset
from glueperf import GlueperfError
from glueperf.evaluation import resolve_device
from glueperf.models import load_model

CUSTOM_CODE = """
from pathlib import Path
from types import SimpleNamespace

Path({marker!r}).write_text("the model's own code ran")
from transformers import BertConfig, BertForSequenceClassification


class OwnConfig(BertConfig):
    model_type = "ownbert"


class OwnForSequenceClassification(BertForSequenceClassification):
    config_class = OwnConfig
"""


def with_own_code(tiny_model: Path, target: Path, marker: Path) -> Path:
    """The tiny model, but its config.json sends transformers to a module in the directory."""
    shutil.copytree(tiny_model, target)
    config = json.loads((target / "config.json").read_text())
    config.update(
        model_type="ownbert",
        architectures=["OwnForSequenceClassification"],
        auto_map={
            "AutoConfig": "own.OwnConfig",
            "AutoModelForSequenceClassification": "own.OwnForSequenceClassification",
        },
    )
    (target / "config.json").write_text(json.dumps(config))
    (target / "own.py").write_text(CUSTOM_CODE.format(marker=str(marker)))
    return target


def with_pickled_weights(tiny_model: Path, target: Path, payload=None) -> Path:
    """The tiny model with its weights in PyTorch's pickle format (pytorch_model.bin); with a
    ``payload``, the pickle holds that object instead of tensors."""
    from safetensors.torch import load_file

    shutil.copytree(tiny_model, target)
    weights = load_file(target / "model.safetensors")
    (target / "model.safetensors").unlink()
    torch.save(weights if payload is None else {"x": payload}, target / "pytorch_model.bin")
    return target


class RunsAShellCommand:
    """Unpickled without weights_only, this object runs `touch MARKER`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("untrusted")
    markers = {name: base / f"{name}.ran" for name in ("own_code", "trusted_code", "pickle")}
    models = {
        "own_code": with_own_code(tiny_model, base / "own_code", markers["own_code"]),
        "trusted_code": with_own_code(tiny_model, base / "trusted_code", markers["trusted_code"]),
        "pickled": with_pickled_weights(tiny_model, base / "pickled"),
        "evil_pickle": with_pickled_weights(
            tiny_model, base / "evil_pickle", RunsAShellCommand(markers["pickle"])
        ),
    }
    config_models = {name: {"source": str(path)} for name, path in models.items()}
    config_models["trusted_code"]["trust_remote_code"] = True
    config_models["plain"] = {"source": str(tiny_model)}
    config_models["on_mps"] = {"source": str(tiny_model), "evaluation": {"device": "mps"}}
    workflow = Workflow(base / "workflow")
    data = write_dataset(base / "data" / "alpha.parquet", n=12)
    workflow.write_config(
        {
            "models": config_models,
            "datasets": {"alpha": {"path": str(data), "task": "Sentiment analysis"}},
            "evaluation": {"device": "cpu"},
        }
    )
    env = {**os.environ, "HF_HOME": str(base / "hf-home")}  # transformers caches modules there
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--keep-going"],
        cwd=workflow.root,
        input="y\n" * 20,  # a yes to every question anyone might ask
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    results = workflow.root / "results"

    def log(model):
        return (results / "logs" / "evaluate_model" / model / "float32" / "alpha.log").read_text()

    def row(model):
        return pd.read_csv(results / "metrics" / model / "float32" / "alpha.csv").iloc[0]

    return {
        "rc": result.returncode,
        "output": result.stdout + result.stderr,
        "markers": markers,
        "models": models,
        "log": log,
        "row": row,
        "results": results,
    }


def assert_refused(run, model, *expected):
    """Each expected text on the console and in the job's log, no traceback, no metrics."""
    output, log = run["output"], run["log"](model)
    for text in expected:
        assert text in output, output
        assert text in log, log
    assert "Traceback" not in log, log
    assert not (run["results"] / "metrics" / model).exists()


def test_the_run_fails_for_the_refused_models(untrusted):
    assert untrusted["rc"] != 0, untrusted["output"]


def test_a_models_own_code_does_not_run_without_trust_even_with_yes_on_stdin(untrusted):
    source = untrusted["models"]["own_code"]
    assert not untrusted["markers"]["own_code"].exists()
    assert_refused(
        untrusted,
        "own_code",
        f"glueperf error: model '{source}' comes with code of its own",
        "models.<name>.trust_remote_code: true",
    )


def test_a_trusted_models_code_runs_and_the_row_says_so(untrusted):
    assert untrusted["markers"]["trusted_code"].exists()
    row = untrusted["row"]("trusted_code")
    assert bool(row["trust_remote_code"]) is True
    assert row["weights_format"] == "safetensors"


def test_pickled_weights_load_in_the_safe_mode_and_the_row_says_so(untrusted):
    row = untrusted["row"]("pickled")
    assert row["weights_format"] == "pytorch-pickle"
    assert bool(row["trust_remote_code"]) is False
    assert "torch.load(weights_only=True)" in untrusted["log"]("pickled")
    plain = untrusted["row"]("plain")
    assert plain["weights_format"] == "safetensors" and bool(plain["trust_remote_code"]) is False


def test_a_pickle_that_would_run_code_is_refused_with_one_clear_line(untrusted):
    source = untrusted["models"]["evil_pickle"]
    assert not untrusted["markers"]["pickle"].exists()
    assert_refused(
        untrusted,
        "evil_pickle",
        f"glueperf error: model '{source}': its weights are a pickle that holds more than tensors",
        "posix.system",
    )


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_a_device_this_machine_lacks_is_named_in_the_log(untrusted):
    assert_refused(untrusted, "on_mps", "glueperf error: evaluation.device is 'mps'")


# --- without Snakemake ----------------------------------------------------------------------


def test_a_models_own_code_is_refused_before_transformers_sees_it(tmp_path, tiny_model):
    marker = tmp_path / "ran"
    source = with_own_code(tiny_model, tmp_path / "own", marker)
    with pytest.raises(GlueperfError, match="comes with code of its own.*trust_remote_code"):
        load_model(str(source), "float32", "cpu")
    assert not marker.exists()


def test_a_classifier_head_of_another_size_than_the_config_is_one_clear_error(tmp_path, tiny_model):
    target = shutil.copytree(tiny_model, tmp_path / "three_labels")
    config = json.loads((target / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    config["label2id"] = {"a": 0, "b": 1, "c": 2}
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(GlueperfError) as caught:
        load_model(str(target), "float32", "cpu")
    message = str(caught.value)
    assert "classifier.weight (checkpoint [2, 32], config [3, 32])" in message
    assert "num_labels" in message and "\n" not in message


@pytest.mark.parametrize("device", ["mps", "cuda", "cuda:7"])
def test_a_device_that_is_not_there_is_a_clear_error(device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(GlueperfError, match=f"evaluation.device is '{device}'"):
        resolve_device(device)


SCRIPT = """
import sys
sys.path.insert(0, {scripts!r})
from glueperf.infra.script import run_script

def main():
    answer = input("Do you wish to run the custom code? [y/N] ")
    print("answered", answer, file=sys.stderr)

run_script(main, {log!r})
"""


def test_a_script_reads_nothing_from_stdin_and_logs_an_unexpected_traceback(tmp_path):
    log = tmp_path / "job.log"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(scripts=str(REPO / "scripts"), log=str(log))],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "answered" not in log.read_text() + result.stderr
    # input() found standard input empty: an unexpected error, whose traceback is in the log.
    assert "Traceback" in log.read_text() and "EOFError" in log.read_text()
    assert "unexpected error EOFError" in result.stderr and str(log) in result.stderr


def test_only_the_files_a_model_is_loaded_from_are_read_and_hashed(tmp_path, tiny_model):
    """A model directory's other files (notes, a link to a file of the host's) are never read:
    rule hash_model records the sha256 of exactly the files transformers loads the model from."""
    from glueperf.infra.hash_job import hash_job

    model = shutil.copytree(tiny_model, tmp_path / "model")
    secret = tmp_path / "secret"
    secret.write_text("not the model's")
    (model / "shadow").symlink_to(secret)
    (model / "notes.md").write_text("how it was trained")
    (model / "runs").mkdir()
    (model / "runs" / "log.json").write_text("{}")
    job = SimpleNamespace(
        params=SimpleNamespace(model={"model_dir": str(model)}),
        output=SimpleNamespace(checksums=tmp_path / "checksums.json"),
    )
    hash_job(job)
    recorded = json.loads((tmp_path / "checksums.json").read_text())
    assert sorted(recorded["sha256"]) == sorted(p.name for p in tiny_model.iterdir())


def test_a_model_file_linked_from_outside_the_directory_is_refused(tmp_path, tiny_model):
    from glueperf.checksums import local_checksums

    model = shutil.copytree(tiny_model, tmp_path / "model")
    outside = tmp_path / "elsewhere" / "tokenizer.json"
    outside.parent.mkdir()
    shutil.move(model / "tokenizer.json", outside)
    (model / "tokenizer.json").symlink_to(outside)
    with pytest.raises(GlueperfError) as caught:
        local_checksums(model)
    message = str(caught.value)
    assert f"tokenizer.json -> {outside}" in message and "out of the model directory" in message
    # A link that stays inside the directory is the model's own file.
    inside = model / "tokenizer.json"
    inside.unlink()
    shutil.move(outside, model / "tokenizer-v2.json")
    inside.symlink_to("tokenizer-v2.json")
    checksums = local_checksums(model)
    assert checksums["tokenizer.json"] == checksums["tokenizer-v2.json"]
