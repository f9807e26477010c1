"""Every GLUE task: sentence pairs, regression, label names matched by name, task settings."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import build_tiny_model, make_sentences
from glueperf import GlueperfError
from glueperf.engine import Batching, ChunkTokenizer, Engine
from glueperf.labels import map_labels, model_class_names
from glueperf.tasks import GLUE_TASKS, DatasetSpec, dataset_spec
from glueperf.validation import DatasetError, load_dataset, summarize
from reference import notebook_loop


@pytest.fixture(scope="module")
def bert_pair_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("models") / "bert", initializer_range=0.5)


@pytest.fixture(scope="module")
def roberta_pair_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("models") / "roberta", architecture="roberta")


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory):
    return build_tiny_model(
        tmp_path_factory.mktemp("models") / "regression", num_labels=1, initializer_range=0.5
    )


def load(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return model, tokenizer


def pairs_of(n, seed=0):
    return make_sentences(n, seed=seed), make_sentences(n, seed=seed + 100)


# --- pair encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("model_fixture", ["bert_pair_model", "roberta_pair_model"])
def test_pair_encoding_equals_the_tokenizers_own_pair_call(model_fixture, request):
    _, tokenizer = load(request.getfixturevalue(model_fixture))
    first, second = pairs_of(300, seed=1)
    max_length = 16  # short enough that many pairs are truncated (longest first)
    ids, types, n_truncated = ChunkTokenizer(tokenizer, max_length)(first, second)
    expected = tokenizer(first, second, truncation=True, max_length=max_length)
    assert ids == expected["input_ids"]
    if "token_type_ids" in tokenizer.model_input_names:  # BERT: 0 for a, 1 for b
        assert types == expected["token_type_ids"]
        assert any(1 in row for row in types)
    else:  # RoBERTa: <s> a </s></s> b </s>, no token types
        assert types is None
        assert ids[0][0] == tokenizer.bos_token_id and ids[0].count(tokenizer.sep_token_id) == 3
    untruncated = tokenizer(first, second)["input_ids"]
    assert n_truncated == sum(len(row) > max_length for row in untruncated) > 0


def test_single_texts_pass_no_token_types(bert_pair_model):
    _, tokenizer = load(bert_pair_model)
    ids, types, _ = ChunkTokenizer(tokenizer, 64)(make_sentences(5))
    assert types is None and ids == tokenizer(make_sentences(5))["input_ids"]


@pytest.mark.parametrize("overlap", [False, True])
def test_engine_on_pairs_equals_the_notebook_loop_with_pairs(bert_pair_model, overlap):
    model, tokenizer = load(bert_pair_model)
    first, second = pairs_of(1500, seed=2)
    labels = np.zeros(len(first), dtype=np.int64)
    engine = Engine(model, tokenizer, "cpu", Batching(batch_tokens=512), overlap=overlap)
    result = engine.run(first, second)
    expected = notebook_loop(model, tokenizer, first, labels, "cpu", pairs=second)
    assert len(set(expected.tolist())) == 2, "the test model must predict both classes"
    assert np.array_equal(result.predictions, expected)
    assert result.n_batches > 2
    # The second text matters: the same first texts alone are predicted otherwise.
    assert not np.array_equal(engine.run(first).predictions, result.predictions)


def test_engine_on_a_regression_model_returns_its_raw_scores(regression_model):
    model, tokenizer = load(regression_model)
    first, second = pairs_of(400, seed=4)
    result = Engine(model, tokenizer, "cpu", Batching(batch_tokens=256)).run(first, second)
    expected = notebook_loop(model, tokenizer, first, np.zeros(400), "cpu", pairs=second)
    assert result.predictions.dtype == np.float32
    np.testing.assert_allclose(result.predictions, expected, rtol=1e-4, atol=1e-5)
    assert len(np.unique(result.predictions)) > 100  # scores, not class ids
    assert np.isnan(result.probabilities).all()


# --- label mapping -----------------------------------------------------------------------------

MNLI = list(GLUE_TASKS["mnli"].label_names)


def test_classes_are_matched_by_name_whatever_their_order_and_case():
    mapping = map_labels("m", ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"], "d", MNLI)
    # model class 0 (contradiction) is GLUE's 2, and so on
    assert mapping.to_dataset.tolist() == [2, 1, 0]
    assert mapping.apply(np.array([0, 2, 1, 0])).tolist() == [2, 0, 1, 2]
    assert mapping.how == "by name" and "CONTRADICTION->contradiction" in mapping.description


def test_generic_names_are_compared_by_id_when_the_counts_agree():
    mapping = map_labels("m", ["LABEL_0", "LABEL_1", "LABEL_2"], "d", MNLI)
    assert mapping.to_dataset.tolist() == [0, 1, 2] and mapping.how == "by id"
    with pytest.raises(GlueperfError, match=r"class counts differ \(2 vs 3\)") as caught:
        map_labels("m", ["LABEL_0", "LABEL_1"], "d", MNLI)
    assert "'LABEL_0', 'LABEL_1'" in str(caught.value) and "'entailment'" in str(caught.value)


def test_names_that_do_not_match_are_an_error_naming_both_lists():
    with pytest.raises(GlueperfError) as caught:
        map_labels("sst2-model", ["NEGATIVE", "POSITIVE"], "cola", ["unacceptable", "acceptable"])
    message = str(caught.value)
    assert "['NEGATIVE', 'POSITIVE']" in message and "['unacceptable', 'acceptable']" in message
    assert "label_map" in message


def test_an_extra_class_is_named_and_no_label_map_pairs_classes_by_position():
    """A 3-class model on 2-class data: the names that match are filled in, the extra class is
    left to the user; it was said "the names do not match" and `neutral: positive` offered."""
    with pytest.raises(GlueperfError) as caught:
        map_labels("m", ["negative", "neutral", "positive"], "d", ["negative", "positive"])
    message = str(caught.value)
    assert "the class counts differ (3 vs 2): ['neutral'] match no label by name" in message
    assert "names do not match" not in message
    assert (
        "models.m.label_maps.d: {negative: negative, neutral: <one of negative, positive>, "
        "positive: positive}" in message
    )


def test_names_that_match_nothing_are_offered_no_pairing_to_paste():
    """MRPC's names on RTE: `not_equivalent: entailment`, pasted, gave a plausible wrong number."""
    rte = list(GLUE_TASKS["rte"].label_names)
    with pytest.raises(GlueperfError) as caught:
        map_labels("m", ["not_equivalent", "equivalent"], "rte", rte)
    message = str(caught.value)
    assert "['not_equivalent', 'equivalent'] match no label by name" in message
    choice = "<one of entailment, not_entailment>"
    assert f"{{not_equivalent: {choice}, equivalent: {choice}}}" in message
    assert "not_equivalent: entailment" not in message
    assert "models.m.label_map for every dataset" in message
    assert "datasets.rte.label_map for every model" in message


def test_an_explicit_label_map_decides():
    mapping = map_labels(
        "m",
        ["NEGATIVE", "POSITIVE"],
        "cola",
        ["unacceptable", "acceptable"],
        {"negative": "unacceptable", "POSITIVE": "acceptable"},
    )
    assert mapping.to_dataset.tolist() == [0, 1] and mapping.how == "label_map"
    with pytest.raises(GlueperfError, match=r"\['NEUTRAL'\] are not classes of model"):
        map_labels("m", ["NEGATIVE", "POSITIVE"], "d", ["a", "b"], {"NEUTRAL": "a"})
    with pytest.raises(GlueperfError, match=r"no dataset label for the model's class\(es\)"):
        map_labels("m", ["NEGATIVE", "POSITIVE"], "d", ["a", "b"], {"NEGATIVE": "a"})
    with pytest.raises(GlueperfError, match=r"\['c'\] are not labels of dataset"):
        map_labels(
            "m", ["NEGATIVE", "POSITIVE"], "d", ["a", "b"], {"NEGATIVE": "a", "POSITIVE": "c"}
        )


def test_model_class_names_fill_in_generic_names():
    assert model_class_names({"0": "no", 1: "yes"}, 3) == ["no", "yes", "LABEL_2"]


# --- task settings and dataset files -----------------------------------------------------------


def test_a_glue_task_sets_the_defaults_and_the_entry_overrides_them():
    mrpc = dataset_spec("d", {"path": "x", "glue_task": "mrpc"})
    assert mrpc.text_columns == ("sentence1", "sentence2") and mrpc.is_pair
    assert mrpc.label_names == ("not_equivalent", "equivalent")
    assert mrpc.metrics == ("f1", "accuracy") and not mrpc.regression
    assert dataset_spec("d", {"path": "x", "glue_task": "stsb"}).regression
    custom = dataset_spec(
        "d", {"path": "x", "glue_task": "mrpc", "text_columns": ["a", "b"], "metrics": ["mcc"]}
    )
    assert custom.text_columns == ("a", "b") and custom.metrics == ("mcc",)
    plain = dataset_spec("d", {"path": "x"})
    assert plain.text_columns == ("sentence",) and plain.metrics == ("accuracy",)
    assert plain.label_names is None
    with pytest.raises(GlueperfError, match="label_names: given for a regression dataset"):
        dataset_spec("d", {"path": "x", "glue_task": "stsb", "label_names": ["a", "b"]})


def test_the_most_specific_label_map_applies_to_a_model_on_a_dataset():
    sst2_names = {"NEGATIVE": "negative", "POSITIVE": "positive"}
    on_cola = {"NEGATIVE": "unacceptable", "POSITIVE": "acceptable"}
    shared = {"LABEL_NO": "unacceptable", "LABEL_YES": "acceptable"}
    cola = {"path": "x", "glue_task": "cola", "label_map": shared}
    model = {"source": "s", "label_map": sst2_names, "label_maps": {"cola": on_cola}}

    def applied(model_entry):
        spec = dataset_spec("cola", cola, "m", model_entry)
        return spec.label_map, spec.label_map_key

    assert applied(model) == (on_cola, "models.m.label_maps.cola")
    del model["label_maps"]
    assert applied(model) == (sst2_names, "models.m.label_map")
    assert applied({"source": "s"}) == (shared, "datasets.cola.label_map")
    assert applied({"source": "s", "label_maps": {"other": on_cola}}) == (
        shared,
        "datasets.cola.label_map",
    )
    # Validation reads the dataset for no model: no label_map, so none reruns it.
    assert dataset_spec("cola", cola).label_map == {}


def test_a_label_maps_error_names_the_key_it_comes_from():
    with pytest.raises(GlueperfError, match=r"^config key models\.m\.label_maps\.d: \['c'\]"):
        map_labels("m", ["A", "B"], "d", ["a", "b"], {"A": "a", "B": "c"}, "models.m.label_maps.d")


def write_pairs(path, labels, label_type=None, names=None, **columns):
    n = len(labels)
    first, second = pairs_of(n, seed=9)
    table = pa.table(
        {
            "sentence1": pa.array(first),
            "sentence2": pa.array(second),
            "label": pa.array(labels, label_type or pa.int64()),
            **columns,
        }
    )
    if names is not None:  # as the Hub's files carry it
        label = {"names": list(names), "_type": "ClassLabel"}
        metadata = json.dumps({"info": {"features": {"label": label}}})
        table = table.replace_schema_metadata({"huggingface": metadata})
    pq.write_table(table, path)
    return path


def test_a_files_own_label_names_win_over_the_tasks_but_not_over_the_configs(tmp_path):
    path = write_pairs(tmp_path / "d.parquet", [0, 1, 1], names=["no", "yes"])
    task = dataset_spec("d", {"path": "x", "glue_task": "rte"})
    summary = summarize(path, task)
    assert summary["label_names"] == ["no", "yes"] and summary["label_names_from"] == "file"
    assert load_dataset(path, task).label_names == ("no", "yes")
    configured = dataset_spec("d", {"path": "x", "glue_task": "rte", "label_names": ["p", "q"]})
    assert summarize(path, configured)["label_names"] == ["p", "q"]
    plain = write_pairs(tmp_path / "plain.parquet", [0, 1, 1])
    assert summarize(plain, task)["label_names_from"] == "glue task rte"


def test_pairs_are_loaded_in_file_order(tmp_path):
    path = write_pairs(tmp_path / "d.parquet", [0, 1, -1])
    data = load_dataset(path, dataset_spec("d", {"path": "x", "glue_task": "mrpc"}))
    first, second = pairs_of(3, seed=9)
    assert data.texts == first and data.pairs == second
    assert data.labels.tolist() == [0, 1, -1]


def test_a_pair_task_without_its_second_column_names_it(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"sentence1": ["a b", "c"], "label": [0, 1]}), path)
    with pytest.raises(DatasetError) as caught:
        summarize(path, dataset_spec("d", {"path": "x", "glue_task": "mrpc"}))
    message = str(caught.value)
    assert str(path) in message and "['sentence2'] missing for a sentence pair" in message


def test_float_labels_on_a_classification_task_are_refused(tmp_path):
    path = write_pairs(tmp_path / "d.parquet", [0.0, 1.0], pa.float32())
    with pytest.raises(DatasetError, match="column 'label'.*integers.*regression: true"):
        summarize(path, dataset_spec("d", {"path": "x", "glue_task": "rte"}))


def test_nan_scores_on_stsb_are_refused_with_their_rows(tmp_path):
    path = write_pairs(tmp_path / "d.parquet", [1.5, float("nan"), 4.0, None], pa.float32())
    with pytest.raises(DatasetError) as caught:
        summarize(path, dataset_spec("d", {"path": "x", "glue_task": "stsb"}))
    message = str(caught.value)
    assert "column 'label'" in message and "NaN" in message and "rows 1, 3" in message


def test_scores_beyond_float32_are_refused_though_finite_in_float64(tmp_path):
    """Scores are evaluated in float32, where 1e39 is infinite (it was scored: pearson -1)."""
    scores = [1.5, 1e39, 3e38, -2e39, 4.0]
    path = write_pairs(tmp_path / "d.parquet", scores, pa.float64())
    spec = dataset_spec("d", {"path": "x", "glue_task": "stsb"})
    for check in (summarize, load_dataset):
        with pytest.raises(DatasetError) as caught:
            check(path, spec)
        message = str(caught.value)
        assert str(path) in message and "column 'label'" in message and "rows 1, 3" in message
        assert "-2e+39, 1e+39" in message and "float32" in message
        assert "-3.4028235e+38 to 3.4028235e+38" in message
    fine = write_pairs(tmp_path / "fine.parquet", [1.5, 3e38, -3e38], pa.float64())
    assert load_dataset(fine, spec).labels.tolist() == np.float32([1.5, 3e38, -3e38]).tolist()


def test_regression_scores_are_summarized_and_loaded_as_floats(tmp_path):
    path = write_pairs(tmp_path / "d.parquet", [1.5, 4.25, -1.0], pa.float32())
    spec = dataset_spec("d", {"path": "x", "glue_task": "stsb"})
    summary = summarize(path, spec)
    assert summary["n_labeled"] == 2 and summary["score_range"] == [1.5, 4.25]
    assert load_dataset(path, spec).labels.tolist() == [1.5, 4.25, -1.0]


def test_labels_beyond_the_named_classes_are_refused(tmp_path):
    path = write_pairs(tmp_path / "d.parquet", [0, 2, 1, 2], names=["no", "yes"])
    with pytest.raises(DatasetError, match=r"labels \[2\] are not among the 2 classes.*rows 1, 3"):
        summarize(path, DatasetSpec(text_columns=("sentence1", "sentence2")))


# --- a model that does not fit the dataset's task ----------------------------------------------


def fits(model_dir, path, spec):
    from glueperf.evaluation import check_task_fits

    model, _ = load(model_dir)
    return check_task_fits(model, load_dataset(path, spec), spec, path, ("m", "d"))


def test_a_classifier_on_a_regression_dataset_is_refused(tmp_path, bert_pair_model):
    path = write_pairs(tmp_path / "stsb.parquet", [1.5, 4.0], pa.float32())
    with pytest.raises(GlueperfError) as caught:
        fits(bert_pair_model, path, dataset_spec("d", {"path": "x", "glue_task": "stsb"}))
    message = str(caught.value)
    assert "model 'm' is a classifier of 2 classes" in message
    assert "dataset 'd'" in message and str(path) in message and "regression dataset" in message


def test_a_regression_model_on_a_classification_dataset_is_refused(tmp_path, regression_model):
    path = write_pairs(tmp_path / "mrpc.parquet", [0, 1], names=["not_equivalent", "equivalent"])
    with pytest.raises(GlueperfError) as caught:
        fits(regression_model, path, dataset_spec("d", {"path": "x", "glue_task": "mrpc"}))
    message = str(caught.value)
    assert "is a regression model (one output, a score)" in message
    assert "classification dataset (labels ['not_equivalent', 'equivalent'])" in message


def test_a_regression_model_fits_a_regression_dataset(tmp_path, regression_model):
    path = write_pairs(tmp_path / "stsb.parquet", [1.5, 4.0], pa.float32())
    assert (
        fits(regression_model, path, dataset_spec("d", {"path": "x", "glue_task": "stsb"})) is None
    )


def test_class_counts_that_differ_are_refused(tmp_path, bert_pair_model):
    path = write_pairs(tmp_path / "mnli.parquet", [0, 2], names=MNLI)
    with pytest.raises(GlueperfError, match=r"class counts differ \(2 vs 3\)"):
        entry = {"path": "x", "glue_task": "mnli", "text_columns": ["sentence1", "sentence2"]}
        fits(bert_pair_model, path, dataset_spec("d", entry))
