"""Input that used to pass silently, or fail with a message naming the wrong thing: config files
with a key written twice, that are not a mapping or not YAML; names and values with a trailing
newline; sentences made of control characters; column names that occur twice; a FIFO or a device
where a parquet file should be. Each is one clear error naming the file (and the key, column or
rows), at start-up for the config, in the dataset's validation job otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import Workflow, make_sentences
from glueperf.infra.configfile import ConfigFileError, read_config_file
from glueperf.validation import DatasetError, read_table, summarize

GOOD_CONFIG = """\
models:
  tiny:
    source: {model}
datasets:
  alpha:
    path: {data}
    task: Sentiment analysis
evaluation:
  device: cpu
"""


def write_table(path, **columns):
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture
def small(workflow: Workflow, tmp_path, tiny_model):
    data = write_table(
        tmp_path / "alpha.parquet",
        sentence=pa.array(make_sentences(4)),
        label=pa.array([0, 1, 1, 0], pa.int64()),
    )
    text = GOOD_CONFIG.format(model=tiny_model, data=data)
    (workflow.root / "config.yaml").write_text(text)
    return workflow, text


def dry_run(workflow: Workflow, *args):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "-n", *args],
        cwd=workflow.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def test_the_good_config_passes(small):
    workflow, _ = small
    rc, output = dry_run(workflow)
    assert rc == 0, output


def test_a_key_written_twice_in_the_config_is_named_with_file_and_lines(small):
    workflow, text = small
    twice = text.replace("  device: cpu\n", "  device: cpu\n  dtype: float32\n  device: cuda\n")
    (workflow.root / "config.yaml").write_text(twice)
    rc, output = dry_run(workflow)
    assert rc != 0
    expected = "config file config.yaml: key 'device' occurs twice in one mapping (lines 9 and 11)"
    assert expected in output, output


def test_a_key_written_twice_in_a_configfile_given_on_the_command_line_is_named(small):
    workflow, _ = small
    extra = workflow.root / "extra.yaml"
    extra.write_text(
        "datasets:\n  alpha: {path: a.parquet, task: x}\n  alpha: {path: b, task: y}\n"
    )
    rc, output = dry_run(workflow, "--configfile", str(extra))
    assert rc != 0
    assert f"config file {extra}: key 'alpha' occurs twice in one mapping (lines 2 and 3)" in (
        output
    ), output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("- models\n- datasets\n", "must be a mapping of keys at the top level"),
        ("", "must be a mapping of keys at the top level"),
        ("models: [a\n", "not valid YAML"),
    ],
    ids=["a-list", "empty", "not-yaml"],
)
def test_a_config_that_is_not_a_mapping_names_the_file(small, content, expected):
    workflow, _ = small
    (workflow.root / "config.yaml").write_text(content)
    rc, output = dry_run(workflow)
    assert rc != 0
    assert f"config file config.yaml: {expected}" in output, output


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["datasets"].update({"beta\n": c["datasets"]["alpha"]}),
        lambda c: c["models"].update({"tiny\n": c["models"]["tiny"]}),
        lambda c: c["evaluation"].update(device="cpu\n"),
        lambda c: c["datasets"]["alpha"].update(sha256="0" * 64 + "\n"),
        lambda c: c["datasets"]["alpha"].update(path=c["datasets"]["alpha"]["path"] + "\n"),
    ],
    ids=["dataset-name", "model-name", "device", "sha256", "path"],
)
def test_a_trailing_newline_does_not_pass_the_schema(small, change):
    workflow, text = small
    config = yaml.safe_load(text)
    change(config)
    workflow.write_config(config)
    rc, output = dry_run(workflow)
    assert rc != 0
    assert "does not match" in output and "\\n'" in output, output
    assert "Traceback" not in output


# --- datasets: in the validation job of each, on the console and in its log --------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("strict-data")
    fifo = base / "pipe.parquet"
    os.mkfifo(fifo)
    texts = make_sentences(6)
    texts[1], texts[4] = "\x00\x01\x02", "\x1b\t\x7f\x85"
    duplicated = pa.Table.from_arrays(
        [pa.array(make_sentences(2)), pa.array(make_sentences(2)), pa.array([0, 1], pa.int64())],
        ["sentence", "sentence", "label"],
    )
    pq.write_table(duplicated, base / "twice.parquet")
    files = {
        "control": write_table(
            base / "control.parquet", sentence=pa.array(texts), label=pa.array([0] * 6, pa.int64())
        ),
        "twice": base / "twice.parquet",
        "fifo": fifo,
        "zero": "/dev/zero",
    }
    return {name: str(path) for name, path in files.items()}


# dataset -> what its one line says after "glueperf error: {path}"
DATASET_FAULTS = {
    "control": ", column 'sentence': text is empty or only whitespace / invisible characters",
    "twice": ", column 'sentence': column name(s) ['sentence'] occur more than once",
    "fifo": ": is a FIFO (named pipe), not a regular parquet file",
    "zero": ": is a character device, not a regular parquet file",
}


@pytest.fixture(scope="module")
def validated(tmp_path_factory, bad_files, tiny_model):
    workflow = Workflow(tmp_path_factory.mktemp("strict") / "workflow")
    workflow.write_config(
        {
            "models": {"tiny": {"source": str(tiny_model)}},
            "datasets": {
                name: {"path": path, "task": "Sentiment analysis"}
                for name, path in bad_files.items()
            },
            "evaluation": {"device": "cpu"},
        }
    )
    targets = [f"results/validated/{name}.json" for name in bad_files]
    result = workflow.snakemake("--keep-going", *targets, check=False, timeout=300)
    return workflow, result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("dataset", DATASET_FAULTS)
def test_a_bad_dataset_file_is_one_clear_line_in_its_validation_job(validated, bad_files, dataset):
    workflow, rc, output = validated
    assert rc != 0
    expected = f"glueperf error: {bad_files[dataset]}{DATASET_FAULTS[dataset]}"
    assert expected in output, output
    log = (workflow.root / "results" / "logs" / "validate_dataset" / f"{dataset}.log").read_text()
    assert expected in log and "Traceback" not in log, log
    assert not (workflow.root / "results" / "validated" / f"{dataset}.json").exists()


def test_control_characters_are_named_with_their_rows(bad_files):
    with pytest.raises(DatasetError, match=r"'\\x00\\x01\\x02'.*\(rows 1, 4\)"):
        summarize(bad_files["control"])


def test_a_column_name_that_occurs_twice_is_named_not_called_unreadable(bad_files):
    with pytest.raises(DatasetError) as caught:
        read_table(bad_files["twice"])
    assert "column 'sentence'" in str(caught.value)
    assert "not a readable parquet file" not in str(caught.value)


def test_a_config_file_read_strictly_names_key_and_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a:\n  b: 1\n  c: 2\n  b: 3\n")
    with pytest.raises(ConfigFileError, match=rf"config file {path}: key 'b'.*lines 2 and 4"):
        read_config_file(path)
    path.write_text("a:\n  b: 1\nc: {b: 2}\n")  # the same key in two mappings is fine
    assert read_config_file(path) == {"a": {"b": 1}, "c": {"b": 2}}
