"""Settings that make the numbers meaningless are refused, and truncation that changes what the
model judged is flagged: a max_length that leaves nothing but special tokens stops the run at
start-up; a run with more than TRUNCATED_WARN_PCT of its rows truncated says so in its metrics
row (truncated_pct), in its log and on the console, and under every plot."""

from __future__ import annotations

import logging
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, WORDS, Workflow, write_dataset
from glueperf import TRUNCATED_WARN_PCT
from glueperf.engine import Batching
from glueperf.evaluation import ModelHandle, Settings, evaluate, read_data
from glueperf.plotting import PLOTS, footnote_lines


@pytest.mark.parametrize("where", ["top-level", "model"])
def test_a_max_length_that_leaves_only_special_tokens_is_refused_at_start_up(
    workflow: Workflow, tmp_path, tiny_model, where
):
    data = write_dataset(tmp_path / "alpha.parquet", n=6)
    config = {
        "models": {"tiny": {"source": str(tiny_model)}},
        "datasets": {"alpha": {"path": str(data), "task": "Sentiment analysis"}},
        "evaluation": {"device": "cpu"},
    }
    if where == "model":
        config["models"]["tiny"]["evaluation"] = {"max_length": 4}
    else:
        config["evaluation"]["max_length"] = 4
    workflow.write_config(config)
    result = workflow.snakemake("-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "4 is less than the minimum of 8" in output and "max_length" in output, output


def evaluate_on(tmp_path, model, sentences, max_length=512):
    data = write_dataset(tmp_path / "d.parquet", n=len(sentences))
    frame = pd.read_parquet(data)
    frame["sentence"] = sentences
    frame.to_parquet(data, index=False)
    settings = Settings(device="cpu", batching=Batching(max_length=max_length))
    return evaluate(read_data(data), ModelHandle(str(model)), settings).fields()


def test_a_run_with_many_truncated_rows_is_flagged_in_its_row_and_log(tmp_path, tiny_model, caplog):
    long = " ".join(WORDS * 4)  # far beyond the tiny model's 64 positions
    sentences = [long] * 3 + ["good movie"] * 7
    with caplog.at_level(logging.WARNING, logger="glueperf"):
        row = evaluate_on(tmp_path, tiny_model, sentences)
    assert row["n_truncated"] == 3 and row["truncated_pct"] == pytest.approx(30.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("30.0 % of rows (3 of 10)" in w and "max_length 64" in w for w in warnings)


def test_a_run_without_truncation_is_not_flagged(tmp_path, tiny_model, caplog):
    with caplog.at_level(logging.WARNING, logger="glueperf"):
        row = evaluate_on(tmp_path, tiny_model, ["good movie", "bad film"] * 5)
    assert row["truncated_pct"] == 0.0
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_plots_carry_a_warning_for_each_run_with_many_truncated_rows():
    table = pd.DataFrame(
        {
            "Model": ["m1", "m1", "m2"],
            "Dataset": ["sst2-train", "cola", "sst2-train"],
            "truncated_pct": [12.0, TRUNCATED_WARN_PCT / 2, 0.0],
        }
    )
    accuracy = PLOTS["accuracy"]
    assert footnote_lines(table[table["Model"] == "m1"], accuracy) == [
        "Model: m1",
        "⚠ sst2-train: 12.0 % of rows truncated",
    ]
    assert footnote_lines(table, accuracy) == [
        "⚠ sst2-train\N{NO-BREAK SPACE}(m1): 12.0 % of rows truncated"
    ]
    assert footnote_lines(table.drop(columns="truncated_pct"), accuracy) == []


SCRIPT = """
import logging, sys
sys.path.insert(0, {scripts!r})
from glueperf.infra.script import run_script

run_script(lambda: logging.getLogger("glueperf.evaluation").warning("many rows cut"), {log!r})
"""


def test_a_scripts_warning_reaches_the_console_as_well_as_the_log(tmp_path):
    log = tmp_path / "job.log"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(scripts=str(REPO / "scripts"), log=str(log))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "glueperf warning: many rows cut" in result.stderr
    assert "WARNING glueperf.evaluation: many rows cut" in log.read_text()
