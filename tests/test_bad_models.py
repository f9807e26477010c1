"""Bad models: load_model refuses each kind of broken model directory with one line naming the
source and what is wrong (no such directory, not a sequence classifier, no tokenizer, no
config.json, no weights, a classifier head missing from the weights), never sends a path-like
source to the Hub, and labels outside a model's classes are named with their rows. How the
pipeline reports them is in test_bad_input_pipeline.py."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bad_input import MODEL_FAULTS, make_bad_models
from glueperf import GlueperfError
from glueperf.evaluation import check_labels_fit
from glueperf.models import load_model
from glueperf.validation import DatasetError


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, tiny_model):
    return make_bad_models(tmp_path_factory.mktemp("bad-models"), tiny_model)


@pytest.mark.parametrize("name", MODEL_FAULTS)
def test_load_model_names_the_source_and_what_is_missing(bad_models, name):
    source = str(bad_models[name])
    with pytest.raises(GlueperfError) as caught:
        load_model(source, "float32", "cpu")
    message = str(caught.value)
    assert f"model '{source}'" in message
    for text in MODEL_FAULTS[name]:
        assert text in message
    assert "\n" not in message


def test_a_checkpoint_without_its_classifier_weights_is_refused(tmp_path, tiny_model):
    """A classifier config over an encoder's weights: the head would be random."""
    from safetensors.torch import load_file, save_file

    target = tmp_path / "headless"
    shutil.copytree(tiny_model, target)
    weights = load_file(target / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith("classifier.")}
    save_file({k: v.contiguous() for k, v in kept.items()}, target / "model.safetensors")
    with pytest.raises(
        GlueperfError, match=r"classifier\.(bias|weight).*missing from the checkpoint"
    ):
        load_model(str(target), "float32", "cpu")


def test_a_path_like_source_that_does_not_exist_is_not_sent_to_the_hub(tmp_path):
    for source in ["./models/absent", str(tmp_path / "absent"), "~/absent-model"]:
        with pytest.raises(GlueperfError, match="no such directory"):
            load_model(source, "float32", "cpu")


def test_labels_outside_the_models_classes_are_named(tmp_path):
    labels = np.array([0, 1, -1, 2, 1, 0, 0, 1, 7, 1])
    with pytest.raises(DatasetError) as caught:
        check_labels_fit(labels, 2, tmp_path / "d.parquet", "label", "some/model")
    message = str(caught.value)
    assert "[2, 7]" in message and "'some/model'" in message and "rows 3, 8" in message
    check_labels_fit(np.array([0, 1, -1]), 3, tmp_path / "d.parquet", "label", "m")  # fits


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda tokenizer: tokenizer["model"].update(type="Nope"),
            "tokenizer.json is refused by the tokenizers library (data did not match any variant",
        ),
        (
            lambda tokenizer: tokenizer["model"].update(vocab=["a", "b"]),
            "tokenizer.json is refused by the tokenizers library (invalid type: sequence",
        ),
        (None, "tokenizer.json is not valid JSON (Expecting"),
    ],
    ids=["model-type", "vocab-list", "not-json"],
)
def test_a_tokenizer_file_that_cannot_be_parsed_is_named(tmp_path, tiny_model, change, expected):
    """The Rust parser's errors are plain Exceptions, which ended as "unexpected error"."""
    import json

    target = shutil.copytree(tiny_model, tmp_path / "model")
    tokenizer = json.loads((target / "tokenizer.json").read_text())
    if change is None:
        (target / "tokenizer.json").write_text(json.dumps(tokenizer)[:-20])
    else:
        change(tokenizer)
        (target / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(GlueperfError) as caught:
        load_model(str(target), "float32", "cpu")
    message = str(caught.value)
    assert message.startswith(f"model '{target}': ") and expected in message, message
    assert "line 1 column" in message and "\n" not in message
