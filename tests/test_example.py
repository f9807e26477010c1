"""The README's offline example, run exactly as written in a copy of the repository whose .venv is
the environment running these tests (what the README's set-up command makes), with the Hub out
of reach: config/example.yaml is also the pipeline's small test config, run by CI. Then, in that
directory, a run and a report with another config stop instead of overwriting its results."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, Workflow
from glueperf.plotting import PLOTS

README = (REPO / "README.md").read_text()


def offline_commands() -> str:
    """The bash block that follows the README's "Offline, with no Hub" paragraph."""
    after = README.split("**Offline, with no Hub**", 1)[1]
    return re.search(r"```bash\n(.*?)```", after, re.S).group(1)


def sh(root: Path, command: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",  # the Hub out of reach: nothing may need it
        "HF_HOME": str(root / ".hf-home"),
    }
    return subprocess.run(
        ["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    root = Workflow(tmp_path_factory.mktemp("example") / "clone").root
    shutil.copytree(REPO / "config", root / "config")
    (root / ".venv").symlink_to(Path(sys.prefix))
    ran = sh(root, offline_commands())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (root / "console.txt").write_text(ran.stdout + ran.stderr)  # for people to read: see below
    return root


def test_the_readme_shows_one_command_that_makes_and_runs_the_example():
    commands = [line for line in offline_commands().splitlines() if line.strip()]
    assert commands == [
        ".venv/bin/python scripts/make_example.py && "
        ".venv/bin/snakemake --cores 1 --configfile config/example.yaml"
    ]


def test_the_example_evaluates_its_model_on_both_files(example):
    table = pd.read_csv(example / "results" / "model_performance.csv")
    assert table[["Model", "Dataset"]].values.tolist() == [
        ["tiny-bert", "reviews-validation"],
        ["tiny-bert", "reviews-test"],
    ]
    assert table["n_rows"].tolist() == [200, 100]
    validation, test = table["Accuracy (%)"]
    assert 0 <= validation <= 100 and pd.isna(test)  # the test file's labels are hidden
    assert table["label_mapping"][0].startswith("by name: negative->negative")
    for plot in PLOTS:
        assert (example / "results" / "plots" / f"{plot}.png").stat().st_size > 0


def test_the_runs_console_is_readable(example):
    """No line as long as a list of every module (the rules' code is a params digest), no
    "Shell command: None" of each script rule, and no "config file is extended" where the
    --configfile replaces config.yaml."""
    console = (example / "console.txt").read_text()
    assert "rule evaluate_model:" in console
    assert max(len(line) for line in console.splitlines()) < 500  # 821 with the modules as inputs
    assert "Shell command" not in console and "is extended by" not in console


def test_the_example_is_made_where_git_ignores_it(example):
    assert (example / "example" / "tiny-bert" / "config.json").is_file()
    assert "/example/" in (REPO / ".gitignore").read_text().splitlines()


def test_results_record_the_config_that_made_them(example):
    recorded = yaml.safe_load((example / "results" / "config.yaml").read_text())
    assert recorded["config_files"] == ["config/example.yaml"]
    assert list(recorded["config"]["models"]) == ["tiny-bert"]


def test_a_run_of_another_config_stops_before_overwriting_them(example):
    table = (example / "results" / "model_performance.csv").read_bytes()
    ran = sh(example, ".venv/bin/snakemake --cores 1")  # config.yaml: the Hub model
    assert ran.returncode != 0
    output = " ".join((ran.stdout + ran.stderr).split())
    assert "results/ holds the results of config/example.yaml" in output
    assert "this run's config is config.yaml" in output and "--directory DIR" in output
    assert (example / "results" / "model_performance.csv").read_bytes() == table
    # Stopped at start-up: nothing fetched (resources/ holds only the example model's checksums).
    assert sorted(p.name for p in (example / "resources").iterdir()) == ["checksums"]


def test_a_report_needs_the_runs_configfile(example):
    ran = sh(example, ".venv/bin/snakemake --report report.html")
    assert ran.returncode != 0
    assert "--report report.html --configfile config/example.yaml" in ran.stdout + ran.stderr
    assert not (example / "report.html").exists()
    ran = sh(example, ".venv/bin/snakemake --report report.html --configfile config/example.yaml")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (example / "report.html").stat().st_size > 0


def test_the_same_config_goes_on(example):
    ran = sh(example, ".venv/bin/snakemake --cores 1 --configfile config/example.yaml")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Nothing to be done" in ran.stdout + ran.stderr
