"""glueperf.infra.plan: the rules' inputs, params and threads as functions of the config, without
Snakemake (tests/test_reruns.py checks what a whole pipeline reruns after each kind of change).
"""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError

from conftest import REPO, write_dataset
from glueperf.infra import plan

SCRIPTS = {
    "validate_dataset": "validate_dataset.py",
    "hash_model": "hash_model.py",
    "evaluate_model": "evaluate_model.py",
    "aggregate_metrics": "aggregate_metrics.py",
    "plot_results": "plot_results.py",
}


@pytest.fixture
def scripts(tmp_path):
    """A copy of scripts/ to edit."""
    return shutil.copytree(REPO / "scripts", tmp_path / "scripts")


def fingerprints(scripts) -> dict[str, str]:
    plan.package_imports.cache_clear()  # files edited since the last call
    return {rule: plan.code_fingerprint(script, scripts) for rule, script in SCRIPTS.items()}


@pytest.mark.parametrize(
    ("module", "changed"),
    [
        ("plotting.py", {"plot_results"}),
        ("aggregate.py", {"aggregate_metrics", "plot_results"}),
        # the provenance of the row (where the fork server finds the run's models, the
        # workflow tells it as it starts: glueperf/infra/startup.py, no job's code)
        ("fetch.py", {"evaluate_model"}),
        ("engine.py", {"evaluate_model"}),
        ("validation.py", {"validate_dataset", "evaluate_model"}),
        ("checksums.py", {"validate_dataset", "hash_model", "evaluate_model"}),
        # imported only inside a function of the fork server, by every job through run_script
        ("infra/script.py", set(SCRIPTS)),
        # how the scripts, each run by the one job command, read their job
        ("infra/job.py", set(SCRIPTS)),
        # a rule's script itself (Snakemake's shell: command is the same for every rule)
        ("../validate_dataset.py", {"validate_dataset"}),
    ],
)
def test_a_changed_module_changes_the_code_of_exactly_the_rules_that_import_it(
    scripts, module, changed
):
    before = fingerprints(scripts)
    path = scripts / "glueperf" / module
    original = path.read_bytes()
    path.write_bytes(original + b"# edited\n")
    after = fingerprints(scripts)
    assert {rule for rule in SCRIPTS if after[rule] != before[rule]} == changed
    path.write_bytes(original)  # put back as it was, whatever its time: nothing changed
    assert fingerprints(scripts) == before


def parsed_imports(code: str) -> set[str]:
    """What Python's parser says ``code`` imports (absolute names), for comparison."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_scanned_imports_of_every_script_and_module_are_the_parsers():
    files = sorted((REPO / "scripts").rglob("*.py"))
    assert len(files) > 30
    for path in files:
        code = path.read_text()
        scanned = {name for name in plan.imported_names(code) if name.startswith("glueperf")}
        parsed = {name for name in parsed_imports(code) if name.startswith("glueperf")}
        assert scanned == parsed, path


def test_imports_in_every_form_are_scanned():
    code = """
import os, glueperf.alpha as a  # one
from glueperf import beta, gamma as g
from . import relative
from .delta import nothing


def f():
    from glueperf.epsilon import (  # why
        zeta,
        eta as e,  # a comment
    )
    x = "import glueperf.ignored"
    if x:
        import glueperf.theta
"""
    expected = parsed_imports(code)
    assert set(plan.imported_names(code)) == expected
    assert {"glueperf.alpha", "glueperf.epsilon.eta", "glueperf.theta"} <= expected


def test_a_module_no_script_imports_changes_nothing(scripts):
    before = fingerprints(scripts)
    (scripts / "glueperf" / "reference_notes.py").write_text("import glueperf.engine\n")
    (scripts / "glueperf" / "infra" / "__init__.py").touch()  # a time alone is no change
    os.utime(scripts / "glueperf" / "engine.py", (0, 0))
    assert fingerprints(scripts) == before


# --- the config's models and datasets --------------------------------------------------------


@pytest.fixture
def config(tmp_path, tiny_model) -> dict:
    return {
        "models": {
            "local": {"source": str(tiny_model), "trust_remote_code": False},
            "hub": {
                "source": "owner/name",
                "revision": "abc123",
                "trust_remote_code": False,
                "datasets": ["remote"],
                "evaluation": {"device": "cuda", "batch_tokens": 99},
            },
        },
        "datasets": {
            "here": {"path": str(write_dataset(tmp_path / "here.parquet", n=3))},
            "missing": {"path": str(tmp_path / "missing.parquet")},
            "remote": {"path": "hf://datasets/o/n/f.parquet", "task": "Paraphrase"},
        },
        "evaluation": {"device": "cpu", "dtype": "float32", "max_length": 64, "batch_tokens": 8},
    }


def test_every_model_runs_on_its_datasets_or_on_all(config):
    assert plan.evaluation_pairs(config) == [
        ("local", "here"),
        ("local", "missing"),
        ("local", "remote"),
        ("hub", "remote"),
    ]


def test_a_name_the_config_lacks_is_named_with_those_it_has(config):
    with pytest.raises(WorkflowError, match=r"model 'ghost' .* \(defined: \['hub', 'local'\]\)"):
        plan.model_spec(config, "ghost")
    with pytest.raises(WorkflowError, match="dataset 'ghost' is not defined under `datasets`"):
        plan.dataset_file(config, "ghost")
    config["models"]["local"]["datasets"] = ["here", "ghost"]
    with pytest.raises(WorkflowError, match=r"models.local.datasets\[1\]: dataset 'ghost'"):
        plan.check_references(config)


def test_a_hub_file_is_read_from_its_fetched_copy_and_a_missing_file_is_no_input(config):
    assert plan.dataset_file(config, "here") == config["datasets"]["here"]["path"]
    assert plan.dataset_file(config, "missing") == []  # its validation job names it
    assert plan.dataset_file(config, "remote") == "resources/datasets/remote.parquet"
    assert plan.dataset_provenance(config, "here") == []
    assert plan.dataset_provenance(config, "remote") == (
        "resources/provenance/datasets/remote.json"
    )
    assert plan.dataset_fingerprint(config, "remote") is None


def test_a_dataset_file_dated_back_has_another_fingerprint(config):
    path = config["datasets"]["here"]["path"]
    before = plan.dataset_fingerprint(config, "here")
    write_dataset(Path(path), n=4)
    os.utime(path, ns=(before[1], before[1]))  # rewritten, its time put back
    assert plan.dataset_fingerprint(config, "here") != before
    assert plan.dataset_fingerprint(config, "missing") is None


def test_a_hub_model_is_loaded_from_its_fetched_copy_at_its_revision(config, tiny_model):
    assert plan.model_spec(config, "hub") == {
        "source": "owner/name",
        "revision": "abc123",
        "model_dir": "resources/models/hub",
        "trust_remote_code": False,
    }
    assert plan.model_files(config, "hub") == ["resources/models/hub"]
    assert plan.model_provenance(config, "hub") == "resources/provenance/models/hub.json"
    assert plan.model_provenance(config, "local") == "resources/checksums/local.json"
    assert plan.model_fingerprint(config, "hub") is None
    local = plan.model_spec(config, "local")
    assert local["revision"] is None and local["model_dir"] == str(tiny_model)
    assert str(tiny_model / "config.json") in plan.model_files(config, "local")
    assert "config.json" in plan.model_fingerprint(config, "local")
    assert plan.prefetch_targets(config) == [
        "resources/provenance/models/hub.json",
        "resources/provenance/datasets/remote.json",
    ]


def test_a_models_own_settings_override_the_top_level_ones(config):
    assert plan.evaluation_settings(config, "hub")["batch_tokens"] == 99
    assert plan.evaluation_settings(config, "local")["batch_tokens"] == 8
    assert (plan.evaluation_threads(config, "hub"), plan.evaluation_threads(config, "local")) == (
        4,
        8,
    )


def test_each_dtype_of_a_list_is_an_evaluation_of_its_own(config):
    config["models"]["local"]["evaluation"] = {"dtype": ["float32", "bfloat16"]}
    assert plan.dtypes_of(config, "local") == ["float32", "bfloat16"]
    assert plan.dtypes_of(config, "hub") == ["float32"]
    assert plan.evaluations(config) == [
        ("local", "float32", "here"),
        ("local", "bfloat16", "here"),
        ("local", "float32", "missing"),
        ("local", "bfloat16", "missing"),
        ("local", "float32", "remote"),
        ("local", "bfloat16", "remote"),
        ("hub", "float32", "remote"),
    ]
    assert plan.metrics_files(config)[:2] == [
        "results/metrics/local/float32/here.csv",
        "results/metrics/local/bfloat16/here.csv",
    ]
    # Each evaluation's params hold its own dtype alone: bfloat16 added to the list leaves the
    # float32 evaluations' params as they were.
    listed = plan.evaluation_settings(config, "local", "float32")
    config["models"]["local"]["evaluation"] = {"dtype": "float32"}
    assert plan.evaluation_settings(config, "local", "float32") == listed
    config["models"]["local"]["evaluation"] = {"dtype": ["float32", "bfloat16"]}
    assert plan.evaluation_settings(config, "local", "bfloat16")["dtype"] == "bfloat16"
    with pytest.raises(WorkflowError, match=r"dtype 'float16' .* model 'local' .* bfloat16"):
        plan.evaluation_settings(config, "local", "float16")


def test_only_pairs_in_float32_and_another_dtype_have_their_predictions_compared(config):
    assert plan.agreement_files(config) == []  # float32 alone: nothing to compare
    config["models"]["hub"]["evaluation"]["dtype"] = ["bfloat16", "float32"]
    assert plan.agreement_files(config) == [
        "results/predictions/hub/bfloat16/remote.parquet",
        "results/predictions/hub/float32/remote.parquet",
    ]
    config["models"]["hub"]["evaluation"]["dtype"] = ["bfloat16", "float16"]  # no reference
    assert plan.agreement_files(config) == []


def test_pinned_threads_are_the_jobs_threads(config):
    config["evaluation"]["threads"] = 3
    assert (plan.evaluation_threads(config, "hub"), plan.evaluation_threads(config, "local")) == (
        3,
        3,
    )
    config["models"]["local"]["evaluation"] = {"threads": 1}
    assert plan.evaluation_threads(config, "local") == 1


def test_display_labels_and_dataset_settings(config):
    labels = plan.display_labels(config)
    assert labels["families"] == {"local": "local", "hub": "hub"}
    assert labels["tasks"]["remote"] == "Paraphrase"
    assert plan.dataset_settings(config, "remote")["text_columns"]
    config["datasets"]["here"]["metrics"] = ["pearson"]  # a regression metric, a class dataset
    with pytest.raises(WorkflowError, match="here"):
        plan.dataset_settings(config, "here")
