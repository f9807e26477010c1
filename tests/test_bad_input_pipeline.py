"""Bad input: every bad dataset, model or config stops its own branch of the pipeline with one
clear line naming the file (or config key), the column and the offending rows or values; nothing
half-written is left; and with --keep-going every unaffected dataset is still evaluated, right.

One pipeline run (``--keep-going --cores 2``) holds every bad dataset and bad model beside two
good but awkward datasets (odd whitespace and scripts; long sentences under other column names),
with the Hub pointed at a closed port. The same run shows that two evaluations do not run at once
(each takes both cores here; the device lock that keeps them apart with more cores is tested in
tests/test_devices.py). Unit tests cover the same errors without Snakemake
(test_bad_models.py), and hypothesis fuzzes the validator
(test_bad_datasets.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bad_input import (
    MAX_POSITIONS,
    MODEL_FAULTS,
    ints,
    make_bad_models,
    offline_hub_env,
    run_snakemake,
    texts,
    write_table,
)
from conftest import WORDS, Workflow, make_sentences, reference_predictions


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, tiny_model):
    return make_bad_models(tmp_path_factory.mktemp("bad-models"), tiny_model)


# --- bad datasets ------------------------------------------------------------------------------

ODD_TEXTS = [
    "good\tmovie",  # tab
    "bad\u00a0film",  # no-break space
    "great\u200bplot",  # zero-width space inside a word
    "happy 😀 actors",  # emoji
    "電影 很 好 good story",  # CJK
    "naïve café story",  # accents (precomposed)
    "cafe\u0301 plot",  # combining accent
    "  leading and trailing spaces  ",
    "line\nbreak sad",
    "\u3000ideographic space love",
    "🎬🍿",  # emoji only
    "zero\u200dwidth joiner",
    "\ufeffbyte order mark terrible",
    "right-to-left \u05e9\u05dc\u05d5\u05dd bad",
    "\r\nwindows line end\r\n",
]


def long_sentences(n: int, seed: int) -> list[str]:
    """Every third sentence far beyond 64 tokens, the rest short."""
    rng = np.random.default_rng(seed)
    words = rng.integers(80, 200, n)
    words[1::3] = rng.integers(2, 12, len(words[1::3]))
    words[2::3] = rng.integers(2, 12, len(words[2::3]))
    return [" ".join(rng.choice(WORDS, size=k)) for k in words]


def make_datasets(data: Path) -> dict[str, dict]:
    """name -> config entry (and what is wrong with it, if anything)."""
    rng = np.random.default_rng(11)
    odd = ODD_TEXTS + make_sentences(15, seed=4)
    n_long = 24
    good_file = write_table(data / "plain.parquet", sentence=texts(6), label=ints([0, 1] * 3))
    truncated = data / "truncated.parquet"
    truncated.write_bytes(good_file.read_bytes()[: good_file.stat().st_size // 2])
    (data / "table.parquet").write_text("sentence,label\ngood movie,1\n")
    empty_texts = make_sentences(8, seed=5)
    empty_texts[1], empty_texts[3], empty_texts[4], empty_texts[6] = "", " \t", "\u200b", "\xa0"
    null_texts = make_sentences(7, seed=6)
    null_texts[2] = null_texts[5] = None
    task = {"task": "Sentiment analysis"}
    return {
        # good, but awkward
        "odd_text": {
            "path": write_table(
                data / "odd_text.parquet",
                sentence=pa.array(odd, pa.string()),
                label=ints(rng.integers(0, 2, len(odd))),
                idx=pa.array(np.arange(len(odd))[::-1] * 7 + 1000, pa.int32()),
            ),
            **task,
        },
        "long_custom": {
            "path": write_table(
                data / "long_custom.parquet",
                text=pa.array(long_sentences(n_long, seed=12), pa.string()),
                target=ints(rng.integers(0, 2, n_long)),
                sentence=texts(n_long, seed=13),  # a decoy under the default name
            ),
            "text_columns": ["text"],
            "label_column": "target",
            **task,
        },
        # bad
        "missing_file": {"path": data / "nowhere" / "missing.parquet", **task},
        "not_parquet": {"path": data / "table.parquet", **task},
        "truncated": {"path": truncated, **task},
        "no_text_column": {
            "path": write_table(data / "no_text.parquet", text=texts(3), label=ints([0, 1, 0])),
            **task,
        },
        "no_label_column": {
            "path": write_table(data / "no_label.parquet", sentence=texts(3)),
            **task,
        },
        "null_text": {
            "path": write_table(
                data / "null_text.parquet",
                sentence=pa.array(null_texts, pa.string()),
                label=ints([0] * 7),
            ),
            **task,
        },
        "number_text": {
            "path": write_table(
                data / "number_text.parquet", sentence=ints([3, 1, 4]), label=ints([0, 1, 0])
            ),
            **task,
        },
        "empty_text": {
            "path": write_table(
                data / "empty_text.parquet",
                sentence=pa.array(empty_texts, pa.string()),
                label=ints([1] * 8),
            ),
            **task,
        },
        "float_labels": {
            "path": write_table(
                data / "float_labels.parquet",
                sentence=texts(3),
                label=pa.array([0.0, 1.0, 0.5], pa.float64()),
            ),
            **task,
        },
        "zero_rows": {
            "path": write_table(data / "zero_rows.parquet", sentence=texts(0), label=ints([])),
            **task,
        },
        "duplicate_idx": {
            "path": write_table(
                data / "duplicate_idx.parquet",
                sentence=texts(6),
                label=ints([0] * 6),
                idx=pa.array([0, 1, 2, 3, 1, 5], pa.int32()),
            ),
            **task,
        },
        "labels_outside": {
            "path": write_table(
                data / "labels_outside.parquet",
                sentence=texts(10, seed=8),
                label=ints([0, 1, -1, 2, 1, 0, 0, 1, 7, 1]),
            ),
            **task,
        },
        "hub_file": {"path": "hf://datasets/glueperf-test/absent/data.parquet", **task},
    }


GOOD = ["odd_text", "long_custom"]
# dataset -> (rule that fails, what its one line says after "glueperf error: ")
DATASET_FAULTS = {
    "missing_file": ("validate_dataset", ["{path}: file not found"]),
    "not_parquet": ("validate_dataset", ["{path}: not a readable parquet file"]),
    "truncated": ("validate_dataset", ["{path}: not a readable parquet file"]),
    "no_text_column": (
        "validate_dataset",
        ["{path}: required column(s) ['sentence'] missing", "text_column"],
    ),
    "no_label_column": ("validate_dataset", ["{path}: required column(s) ['label'] missing"]),
    "null_text": ("validate_dataset", ["{path}, column 'sentence': text is null (rows 2, 5)"]),
    "number_text": (
        "validate_dataset",
        ["{path}, column 'sentence': text must be strings, found type int64"],
    ),
    "empty_text": (
        "validate_dataset",
        ["{path}, column 'sentence': text is empty", "(rows 1, 3, 4, 6)"],
    ),
    "float_labels": (
        "validate_dataset",
        ["{path}, column 'label': labels of a classification dataset must be integers", "double"],
    ),
    "zero_rows": ("validate_dataset", ["{path}: no rows"]),
    "duplicate_idx": (
        "validate_dataset",
        ["{path}, column 'idx': idx values are not unique ([1] occur", "(rows 1, 4)"],
    ),
    "labels_outside": (
        "evaluate_model",
        ["{path}, column 'label': labels [2, 7] are outside the 2 classes", "(rows 3, 8)"],
    ),
    "hub_file": ("fetch_dataset", ["'{path}'", "unreachable", "HF_HUB_OFFLINE"]),
}
# Bad models in the pipeline run, each on odd_text only (every kind is unit-tested in
# test_bad_models.py: an evaluation costs seconds of imports even when it fails at once). A
# missing directory, config.json or tokenizer stops the run at start-up instead
# (test_bad_config.py, test_preflight.py).
PIPELINE_MODEL_FAULTS = ["base_bert"]
HUB_MODEL = "glueperf-test/absent-model"


class BadRun:
    def __init__(self, workflow, config, result, model_dir):
        self.workflow, self.config, self.model_dir = workflow, config, model_dir
        self.results = workflow.root / "results"
        self.output = result.stdout + result.stderr
        self.returncode = result.returncode

    def path(self, dataset: str) -> str:
        return self.config["datasets"][dataset]["path"]

    def log(self, rule: str, model: str, dataset: str) -> str:
        name = {
            "validate_dataset": f"validate_dataset/{dataset}.log",
            "evaluate_model": f"evaluate_model/{model}/float32/{dataset}.log",
            "fetch_dataset": f"fetch_dataset/{dataset}.log",
            "fetch_model": f"fetch_model/{model}.log",
        }[rule]
        return (self.results / "logs" / name).read_text()


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, varied_model, bad_models) -> BadRun:
    base = tmp_path_factory.mktemp("bad-input")
    datasets = make_datasets(base / "data")
    for spec in datasets.values():
        spec["path"] = str(spec["path"])
    models = {"tiny": {"source": str(varied_model), "datasets": list(datasets)}}
    for name in PIPELINE_MODEL_FAULTS:
        models[name] = {"source": str(bad_models[name]), "datasets": ["odd_text"]}
    models["hub_model"] = {"source": HUB_MODEL, "datasets": ["odd_text"]}
    config = {"models": models, "datasets": datasets, "evaluation": {"device": "cpu"}}
    workflow = Workflow(base / "workflow")
    workflow.write_config(config)
    result = run_snakemake(
        workflow, "--cores", "2", "--keep-going", env=offline_hub_env(base / "hf-home")
    )
    return BadRun(workflow, config, result, varied_model)


def test_the_run_fails(bad_run):
    assert bad_run.returncode != 0, bad_run.output


@pytest.mark.parametrize("dataset", DATASET_FAULTS)
def test_a_bad_dataset_is_named_with_its_column_and_rows_on_the_console_and_in_the_log(
    bad_run, dataset
):
    rule, expected = DATASET_FAULTS[dataset]
    path = bad_run.path(dataset)
    lines = [line for line in bad_run.output.splitlines() if "glueperf error: " in line]
    line = next((line for line in lines if path in line), None)
    assert line is not None, f"no 'glueperf error' line names {path}:\n{bad_run.output}"
    log = bad_run.log(rule, "tiny", dataset)
    for text in expected:
        text = text.format(path=path)
        assert text in line, line
        assert text in log, log
    assert "Traceback" not in log  # one clear line, not a traceback


@pytest.mark.parametrize("model", PIPELINE_MODEL_FAULTS)
def test_a_bad_model_is_named_on_the_console_and_in_the_log(bad_run, model):
    source = bad_run.config["models"][model]["source"]
    line = f"glueperf error: model '{source}'"
    assert line in bad_run.output
    log = bad_run.log("evaluate_model", model, "odd_text")
    assert line in log and "Traceback" not in log
    for text in MODEL_FAULTS[model]:
        assert text in log


def test_an_unreachable_hub_model_is_named_with_offline_advice(bad_run):
    log = bad_run.log("fetch_model", "hub_model", "odd_text")
    assert HUB_MODEL in log and "HF_HUB_OFFLINE" in log
    assert f"model '{HUB_MODEL}'" in bad_run.output


def test_affected_branches_leave_no_output(bad_run):
    results = bad_run.results
    for dataset, (rule, _) in DATASET_FAULTS.items():
        if rule != "evaluate_model":
            assert not (results / "validated" / f"{dataset}.json").exists(), dataset
        assert not list(results.glob(f"metrics/*/*/{dataset}.csv")), dataset
        assert not list(results.glob(f"predictions/*/*/{dataset}.parquet")), dataset
    for model in [*PIPELINE_MODEL_FAULTS, "hub_model"]:
        assert not list(results.glob(f"metrics/{model}/*/*"))
        assert not list(results.glob(f"predictions/{model}/*/*"))
    assert not (results / "model_performance.csv").exists()
    # No temporary file of an interrupted write, anywhere.
    leftovers = [p for p in bad_run.workflow.root.rglob("*.tmp") if ".snakemake" not in p.parts]
    assert not leftovers
    # Nothing fetched (the Hub is unreachable); only the checksums of the good local models.
    resources = bad_run.workflow.root / "resources"
    fetched = [p for p in resources.rglob("*") if p.is_file() and "checksums" not in p.parts]
    assert not fetched


def test_unaffected_datasets_are_evaluated(bad_run):
    for dataset in GOOD:
        row = pd.read_csv(bad_run.results / "metrics" / "tiny" / "float32" / f"{dataset}.csv")
        assert len(row) == 1 and row["n_rows"].iloc[0] > 0
    validated = sorted(p.stem for p in (bad_run.results / "validated").glob("*.json"))
    assert validated == sorted([*GOOD, "labels_outside"])


def good_predictions(bad_run, dataset):
    spec = bad_run.config["datasets"][dataset]
    frame = pd.read_parquet(spec["path"])
    text_column = spec.get("text_columns", ["sentence"])[0]
    predictions = pd.read_parquet(
        bad_run.results / "predictions" / "tiny" / "float32" / f"{dataset}.parquet"
    )
    reference = reference_predictions(bad_run.model_dir, frame[text_column].tolist())
    return frame, predictions, reference


def test_odd_whitespace_and_scripts_are_evaluated_like_one_sentence_at_a_time(bad_run):
    frame, predictions, reference = good_predictions(bad_run, "odd_text")
    assert predictions["idx"].tolist() == frame["idx"].tolist()
    assert predictions["prediction"].tolist() == reference["prediction"].tolist()
    np.testing.assert_allclose(predictions["probability"], reference["probability"], atol=1e-5)
    assert predictions["n_tokens"].tolist() == reference["n_tokens"].tolist()


def test_long_sentences_are_truncated_and_counted_and_other_columns_are_read(bad_run):
    frame, predictions, reference = good_predictions(bad_run, "long_custom")
    assert predictions["label"].tolist() == frame["target"].tolist()
    assert predictions["prediction"].tolist() == reference["prediction"].tolist()
    assert predictions["n_tokens"].tolist() == reference["n_tokens"].tolist()
    assert predictions["n_tokens"].max() == MAX_POSITIONS
    row = pd.read_csv(bad_run.results / "metrics" / "tiny" / "float32" / "long_custom.csv").iloc[0]
    assert row["max_length"] == MAX_POSITIONS  # 512 asked, capped at the model's maximum
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bad_run.model_dir)
    full = [len(tokenizer(text)["input_ids"]) for text in frame["text"]]
    assert row["n_truncated"] == sum(n > MAX_POSITIONS for n in full) == len(frame) // 3


# --- fault 16: one GPU, one evaluation at a time ------------------------------------------------


def job_spans(output: str) -> list[tuple[str, int, int]]:
    """(rule, start, end) of every job, as positions in the order of Snakemake's messages."""
    starts, spans, rule = {}, [], None
    for position, line in enumerate(output.splitlines()):
        words = line.strip().split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and words[1].endswith(":"):
            rule = words[1][:-1]
        elif line.strip().startswith("Error in rule "):
            rule = line.strip().split()[3].rstrip(":")
        elif words[:1] == ["jobid:"] and rule is not None:
            jobid = int(words[1])
            if jobid in starts:  # the error report of a running job
                spans.append((rule, starts.pop(jobid), position))
            else:
                starts[jobid] = position
            rule = None
        elif line.startswith("Finished jobid: "):
            jobid = int(words[2])
            spans.append((line.split("Rule: ")[1].rstrip(")"), starts.pop(jobid), position))
    return spans


def most_at_once(spans, rule=None) -> int:
    events = sorted(
        [(start, 1) for r, start, _ in spans if rule in (None, r)]
        + [(end, -1) for r, _, end in spans if rule in (None, r)]
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_two_evaluations_never_run_at_once_even_with_two_cores(bad_run):
    spans = job_spans(bad_run.output)
    evaluations = [span for span in spans if span[0] == "evaluate_model"]
    assert len(evaluations) == 2 + 1 + len(PIPELINE_MODEL_FAULTS)  # good, labels_outside, models
    assert most_at_once(spans, "evaluate_model") == 1
    assert most_at_once(spans) == 2  # yet two jobs did run at once: --cores 2 was in force
