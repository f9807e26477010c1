"""glueperf.infra.resultsdir: results/ holds the results of one config. A run with other config
files that finds results there stops with a message naming both and how to proceed; the same files
(edited or not) go on. The pipeline-level behaviour is in tests/test_example.py."""

from __future__ import annotations

import pytest
import yaml

from glueperf.infra.resultsdir import (
    RECORD,
    ResultsOfAnotherConfig,
    check_results_config,
    config_files,
    record_results_config,
)

CONFIG = {"models": {"m": {"source": "models/m"}}, "datasets": {"d": {"path": "d.parquet"}}}


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A working directory whose results/ was made by a run of config/example.yaml."""
    monkeypatch.chdir(tmp_path)
    record_results_config(["config/example.yaml"], CONFIG)
    (tmp_path / "results" / "model_performance.csv").write_text("Dataset\nd\n")
    return tmp_path / "results"


def test_the_record_holds_the_files_and_the_configuration(results):
    recorded = yaml.safe_load((results / "config.yaml").read_text())
    assert recorded == {"config_files": ["config/example.yaml"], "config": CONFIG}


def test_the_config_files_are_named_as_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_files([]) == ["config.yaml"]
    assert config_files([tmp_path / "config" / "mine.yaml"]) == ["config/mine.yaml"]
    assert config_files(["./mine.yaml"]) == ["mine.yaml"]


def test_the_same_config_files_go_on_also_when_edited(results):
    check_results_config(["config/example.yaml"])  # no error


@pytest.mark.parametrize("files", [["config.yaml"], ["mine.yaml"], ["config/example.yaml", "x"]])
def test_other_config_files_stop_naming_both_and_what_to_do(results, files):
    with pytest.raises(ResultsOfAnotherConfig) as caught:
        check_results_config(files)
    message = str(caught.value)
    assert "results/ holds the results of config/example.yaml" in message
    assert str(RECORD) in message and f"this run's config is {' '.join(files)}" in message
    assert "would overwrite results/model_performance.csv" in message
    assert "--directory DIR" in message and "mv results results-old" in message
    assert "`.venv/bin/snakemake --cores 1 --configfile config/example.yaml`" in message


def test_a_report_with_other_config_files_says_which_to_give(results):
    with pytest.raises(ResultsOfAnotherConfig) as caught:
        check_results_config(["config.yaml"], report=True)
    assert "`.venv/bin/snakemake --report report.html --configfile config/example.yaml`" in str(
        caught.value
    )


def test_the_default_config_is_given_back_without_configfile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record_results_config(["config.yaml"], CONFIG)
    (tmp_path / "results" / "metrics" / "m").mkdir(parents=True)
    (tmp_path / "results" / "metrics" / "m" / "d.csv").write_text("model\nm\n")  # metrics only
    with pytest.raises(ResultsOfAnotherConfig, match=r"`\.venv/bin/snakemake --cores 1`\."):
        check_results_config(["mine.yaml"])


def test_a_run_that_left_no_results_claims_nothing(tmp_path, monkeypatch):
    # E.g. the default config run offline: it failed at its Hub model and wrote no metrics.
    monkeypatch.chdir(tmp_path)
    record_results_config(["config.yaml"], CONFIG)
    (tmp_path / "results" / "logs").mkdir()
    check_results_config(["config/example.yaml"])  # no error


def test_results_from_before_the_record_are_anyones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "model_performance.csv").write_text("Dataset\nd\n")
    check_results_config(["mine.yaml"])  # no error
