"""Bad config: a wrong type, an empty list, a name that is not one path component, a misspelt
key (one line: file, key path, nearest key), a model directory that is not there, a model whose
classes match no dataset's labels, a target that names a model or dataset the config lacks: each
stops the run at start-up, before any job, naming the key (more in test_pipeline.py,
test_strict_input.py, test_meaningless_settings.py and test_preflight.py)."""

from __future__ import annotations

import copy

import pytest
import yaml

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
        (
            lambda c: c["datasets"]["alpha"].update(glue_tsak="sst2"),
            None,
            [
                "config file config.yaml, key datasets.alpha.glue_tsak: unknown key; did you mean "
                "glue_task?"
            ],
        ),
        (
            lambda c: c["models"]["tiny"].update(source="./absent-model"),
            None,
            ["config key models.tiny.source: model 'absent-model': no such directory"],
        ),
        (
            lambda c: c["datasets"]["alpha"].update(label_names=["bad", "good", "ugly"]),
            None,
            [
                "model 'tiny' has classes ['LABEL_0', 'LABEL_1'] and dataset 'alpha' has labels "
                "['bad', 'good', 'ugly']: the class counts differ (2 vs 3)",
                "models.tiny.label_maps.alpha: {LABEL_0: <one of bad, good, ugly>",
            ],
        ),
        (
            lambda c: None,
            "results/metrics/ghost/float32/alpha.csv",
            ["model 'ghost' is not defined"],
        ),
        (
            lambda c: None,
            "results/metrics/tiny/float32/ghost.csv",
            ["dataset 'ghost' is not defined"],
        ),
    ],
    ids=[
        "model-override-wrong-type",
        "empty-dataset-list",
        "name-not-allowed",
        "misspelt-key",
        "model-directory-missing",
        "classes-match-no-labels",
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
    assert "'description'" not in output  # not the schema (150 lines of it)
    assert not (workflow.root / "results").exists()


def schema_line(tmp_path, *files: dict, command_line: dict | None = None) -> str:
    """The one line said of the schema's objection to ``files`` (merged in order, as Snakemake
    merges --configfile files) and ``command_line`` (--config)."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from conftest import REPO
    from glueperf.infra.configfile import schema_error

    paths, config = [], {}
    for position, data in enumerate(files):
        path = tmp_path / f"config{position}.yaml"
        path.write_text(yaml.safe_dump(data))
        paths.append(str(path))
        config = {**config, **copy.deepcopy(data)}
    config.update(command_line or {})
    with pytest.raises(WorkflowError) as caught:
        validate(config, schema=str(REPO / "schemas" / "config.schema.yaml"))
    return schema_error(caught.value, paths)


def test_a_schema_error_is_one_line_naming_the_file_the_key_path_and_the_nearest_key(tmp_path):
    models = {"models": {"m": {"source": "x", "evaluation": {"max_lenght": 64}}}}
    datasets = {"datasets": {"d": {"path": "d.parquet"}}}
    line = schema_line(tmp_path, datasets, models)
    assert line == (
        f"config file {tmp_path / 'config1.yaml'}, key models.m.evaluation.max_lenght: unknown "
        "key; did you mean max_length?"
    )
    far_off = schema_line(tmp_path, {**models, **datasets, "widgets": {}})
    assert "key widgets: unknown key; allowed here: models, datasets, evaluation" in far_off
    models["models"]["m"]["evaluation"] = {"max_length": 64}
    models["models"]["m"]["datasets"] = ["d", 7]
    assert schema_line(tmp_path, models, datasets).endswith(
        "config0.yaml, key models.m.datasets[1]: 7 is not of type 'string'"
    )
    models["models"]["m"]["datasets"] = ["d"]
    on_command_line = schema_line(tmp_path, models | datasets, command_line={"evaluation": 3})
    assert on_command_line == (
        "config given on the command line (--config), key evaluation: 3 is not of type 'object'"
    )


def test_a_dtype_fitting_neither_form_is_named_by_the_nearer_one(tmp_path):
    """evaluation.dtype is a name or a list of names: a wrong one is told as such, with its
    position in a list, not as fitting "none of the given schemas"."""
    config = {"models": {"m": {"source": "x"}}, "datasets": {"d": {"path": "d.parquet"}}}
    allowed = "is not one of ['float32', 'bfloat16', 'float16']"
    config["evaluation"] = {"dtype": "float64"}
    assert schema_line(tmp_path, config).endswith(f"key evaluation.dtype: 'float64' {allowed}")
    config["evaluation"] = {"dtype": ["float32", "float64"]}
    assert schema_line(tmp_path, config).endswith(f"key evaluation.dtype[1]: 'float64' {allowed}")
    config["evaluation"] = {"dtype": ["float32", "float32"]}
    assert "key evaluation.dtype: ['float32', 'float32'] has non-unique" in schema_line(
        tmp_path, config
    )
