"""Bad config: a wrong type, an empty list, a name that is not one path component, a target that
names a model or dataset the config lacks: each stops the run at start-up, before any job,
naming the key (more in test_pipeline.py, test_strict_input.py and
test_meaningless_settings.py)."""

from __future__ import annotations

import pytest

from bad_input import ints, run_snakemake, texts, write_table


@pytest.fixture
def small(tmp_path, tiny_model):
    path = write_table(tmp_path / "alpha.parquet", sentence=texts(4), label=ints([0, 1, 1, 0]))
    return {
        "models": {"tiny": {"source": str(tiny_model)}},
        "datasets": {"alpha": {"path": str(path), "task": "Sentiment analysis"}},
        "evaluation": {"device": "cpu"},
    }


@pytest.mark.parametrize(
    ("change", "target", "expected"),
    [
        (
            lambda c: c["models"]["tiny"].update(evaluation={"max_length": "long"}),
            None,
            ["'long' is not of type 'integer'", "max_length"],
        ),
        (
            lambda c: c["models"]["tiny"].update(datasets=[]),
            None,
            ["[] should be non-empty", "datasets"],
        ),
        (
            lambda c: c["datasets"].update({"bad name": c["datasets"]["alpha"]}),
            None,
            ["'bad name' does not match"],
        ),
        (lambda c: None, "results/metrics/ghost/alpha.csv", ["model 'ghost' is not defined"]),
        (lambda c: None, "results/metrics/tiny/ghost.csv", ["dataset 'ghost' is not defined"]),
    ],
    ids=[
        "model-override-wrong-type",
        "empty-dataset-list",
        "name-not-allowed",
        "target-names-undefined-model",
        "target-names-undefined-dataset",
    ],
)
def test_config_errors_stop_the_run_at_start_up_naming_the_key(
    workflow, small, change, target, expected
):
    change(small)
    workflow.write_config(small)
    result = run_snakemake(workflow, "--cores", "1", "-n", *([target] if target else []))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, output
    assert not (workflow.root / "results").exists()
