"""What Snakemake reruns after a change, read from dry runs (`snakemake -n`) after one full run.

Models: m1 runs on every dataset, m2 only on alpha and has its own copy of the model files.
Each test changes one thing, checks the planned jobs, and the fixture puts everything back
(files, contents and modification times), so every test starts from a finished run.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workflow, make_sentences, write_dataset

# One job each: the tables (model_performance.csv and glue_summary.csv, each with its HTML page),
# then every plot.
AFTER_EVALUATION = {"aggregate_metrics": 1, "plot_results": 1}
PLOT_JOBS = [("plot_results", None, None)]
MODELS_ON = {"alpha": ["m1", "m2"], "beta": ["m1"]}


class Pipeline:
    def __init__(self, workflow: Workflow, config: dict, base):
        self.workflow, self.config, self.base = workflow, config, base

    def change_config(self, change) -> None:
        config = copy.deepcopy(self.config)
        change(config)
        self.workflow.write_config(config)

    def jobs(self):
        """(rule, model, dataset) of every planned job, with the counts as Snakemake sums them."""
        counted, listed = self.workflow.dry_run()
        assert sum(counted.values()) == len(listed)
        return sorted((rule, w.get("model"), w.get("dataset")) for rule, w in listed), counted


def evaluations(pairs):
    return [("evaluate_model", model, dataset) for model, dataset in pairs]


def hashes(models):
    """The local models whose files are hashed again (rule hash_model): when their files
    change, or the code that hashes them; not for any evaluation setting."""
    return [("hash_model", model, None) for model in models]


def downstream():
    return sorted([("aggregate_metrics", None, None), *PLOT_JOBS])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model) -> Pipeline:
    base = tmp_path_factory.mktemp("reruns")
    m2_model = shutil.copytree(tiny_model, base / "m2-model")
    data = {}
    for number, name in enumerate(["alpha", "beta"]):
        n = 12 + number
        data[name] = write_dataset(
            base / "data" / f"{name}.parquet", n=n, seed=number, text=make_sentences(n, seed=9)
        )
    config = {
        "models": {
            "m1": {"source": str(tiny_model)},
            "m2": {"source": str(m2_model), "datasets": ["alpha"]},
        },
        "datasets": {
            name: {"path": str(path), "task": "Sentiment analysis", "label_names": ["no", "yes"]}
            for name, path in data.items()
        },
        "evaluation": {"device": "cpu"},
    }
    workflow = Workflow(base / "workflow")
    workflow.write_config(config)
    workflow.snakemake()
    return Pipeline(workflow, config, base)


def snapshot(paths):
    return {path: (path.read_bytes(), os.stat(path).st_mtime_ns) for path in paths}


def restore(kept) -> None:
    """Put back each file of a snapshot: its content and modification time."""
    for path, (content, mtime_ns) in kept.items():
        path.write_bytes(content)
        os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def pipeline(finished):
    """The finished run; whatever a test changes is put back afterwards."""
    root, base = finished.workflow.root, finished.base
    kept = snapshot(
        [root / "config.yaml"]
        + sorted((root / "scripts").rglob("*.py"))
        + sorted((base / "m2-model").iterdir())
        + sorted((base / "data").iterdir())
    )
    before = set(base.iterdir())
    yield finished
    restore(kept)
    for path in set(base.iterdir()) - before:  # new data or model folders beside the workflow
        shutil.rmtree(path)


def test_a_finished_run_has_nothing_to_do(pipeline):
    assert pipeline.jobs() == ([], {})
    assert "Nothing to be done" in pipeline.workflow.snakemake("-n").stdout


def assert_only_the_dataset_branch_reruns(pipeline, dataset):
    """Its validation, the evaluations of the models on it, then aggregation and plots."""
    jobs, counted = pipeline.jobs()
    assert counted == {
        "validate_dataset": 1,
        "evaluate_model": len(MODELS_ON[dataset]),
        **AFTER_EVALUATION,
    }
    assert jobs == sorted(
        [("validate_dataset", None, dataset)]
        + evaluations((m, dataset) for m in MODELS_ON[dataset])
        + downstream()
    )


@pytest.mark.parametrize("dataset", ["alpha", "beta"])
def test_moving_a_dataset_file_reruns_that_dataset(pipeline, dataset):
    moved = pipeline.base / "elsewhere" / f"{dataset}.parquet"
    moved.parent.mkdir()
    shutil.copy2(pipeline.config["datasets"][dataset]["path"], moved)  # same content and mtime
    pipeline.change_config(lambda c: c["datasets"][dataset].update(path=str(moved)))
    assert_only_the_dataset_branch_reruns(pipeline, dataset)


@pytest.mark.parametrize("dataset", ["alpha", "beta"])
def test_changing_a_text_column_reruns_that_dataset(pipeline, dataset):
    pipeline.change_config(lambda c: c["datasets"][dataset].update(text_columns=["text"]))
    assert_only_the_dataset_branch_reruns(pipeline, dataset)


def test_rewriting_a_dataset_file_reruns_that_dataset(pipeline):
    write_dataset(Path(pipeline.config["datasets"]["beta"]["path"]), n=13, seed=5)
    jobs, _ = pipeline.jobs()
    assert jobs == sorted(
        [("validate_dataset", None, "beta")] + evaluations([("m1", "beta")]) + downstream()
    )


@pytest.mark.parametrize(
    ("model", "setting"),
    [
        ("m1", {"batch_tokens": 999}),
        ("m2", {"batch_tokens": 999}),
        ("m1", {"max_length": 16}),
        ("m1", {"dtype": "bfloat16"}),
    ],
)
def test_a_models_own_evaluation_setting_reruns_only_that_models_evaluations(
    pipeline, model, setting
):
    """Nothing is prepared per setting any more (no traces): its files are not hashed again."""
    pipeline.change_config(lambda c: c["models"][model].update(evaluation=setting))
    jobs, counted = pipeline.jobs()
    pairs = [(model, d) for d, models in MODELS_ON.items() if model in models]
    assert counted == {"evaluate_model": len(pairs), **AFTER_EVALUATION}
    assert jobs == sorted(evaluations(pairs) + downstream())


def test_a_models_setting_equal_to_the_default_changes_nothing(pipeline):
    pipeline.change_config(lambda c: c["models"]["m1"].update(evaluation={"device": "cpu"}))
    assert pipeline.jobs() == ([], {})


@pytest.mark.parametrize(
    "setting",
    [{"batch_tokens": 999}, {"latency": {"requests": 5}}, {"threads": 1}],
    ids=["batching", "latency", "threads"],
)
def test_a_top_level_evaluation_setting_reruns_every_evaluation(pipeline, setting):
    """Not the models' checksums, which none of them changes."""
    pipeline.change_config(lambda c: c["evaluation"].update(setting))
    jobs, _ = pipeline.jobs()
    pairs = [(m, d) for d, models in MODELS_ON.items() for m in models]
    assert jobs == sorted(evaluations(pairs) + downstream())


def planned(pipeline) -> list[tuple[str, str | None, str | None, str | None]]:
    """(rule, model, dtype, dataset) of every planned job."""
    _, listed = pipeline.workflow.dry_run()
    return sorted((rule, w.get("model"), w.get("dtype"), w.get("dataset")) for rule, w in listed)


def test_adding_a_precision_evaluates_only_that_precision(pipeline):
    """m1 in bfloat16 besides float32: its evaluations in bfloat16, then the tables (which
    compare it with float32) and plots; nothing in float32 again."""
    pipeline.change_config(
        lambda c: c["models"]["m1"].update(evaluation={"dtype": ["float32", "bfloat16"]})
    )
    assert planned(pipeline) == sorted(
        [
            ("evaluate_model", "m1", "bfloat16", "alpha"),
            ("evaluate_model", "m1", "bfloat16", "beta"),
            ("aggregate_metrics", None, None, None),
            ("plot_results", None, None, None),
        ]
    )


@pytest.mark.parametrize(
    "dtype", [["float32"], "float32"], ids=["a-list-of-one", "the-model-naming-the-default"]
)
def test_a_precision_written_otherwise_changes_nothing(pipeline, dtype):
    pipeline.change_config(lambda c: c["models"]["m2"].update(evaluation={"dtype": dtype}))
    assert pipeline.jobs() == ([], {})


def test_changing_a_models_files_reruns_that_model(pipeline):
    config_file = Path(pipeline.config["models"]["m2"]["source"]) / "config.json"
    model_config = json.loads(config_file.read_text())
    model_config["id2label"] = {"0": "NO", "1": "YES"}  # still the datasets' labels, by name
    config_file.write_text(json.dumps(model_config))
    jobs, _ = pipeline.jobs()
    assert jobs == sorted(hashes(["m2"]) + evaluations([("m2", "alpha")]) + downstream())


BY_ID = {"LABEL_0": "no", "LABEL_1": "yes"}  # the tiny models' classes, as they are


@pytest.mark.parametrize(
    ("change", "pairs"),
    [
        (lambda c: c["models"]["m2"].update(label_map=BY_ID), [("m2", "alpha")]),
        (lambda c: c["models"]["m1"].update(label_map=BY_ID), [("m1", "alpha"), ("m1", "beta")]),
        (lambda c: c["models"]["m1"].update(label_maps={"beta": BY_ID}), [("m1", "beta")]),
        (
            lambda c: c["datasets"]["alpha"].update(label_map=BY_ID),
            [("m1", "alpha"), ("m2", "alpha")],
        ),
    ],
    ids=["model", "model-on-every-dataset", "model-on-one-dataset", "dataset"],
)
def test_a_label_map_reruns_exactly_the_evaluations_it_applies_to(pipeline, change, pairs):
    """Not the dataset's validation, not the model's checksums, no other model's evaluation."""
    pipeline.change_config(change)
    jobs, _ = pipeline.jobs()
    assert jobs == sorted(evaluations(pairs) + downstream())


def test_adding_a_model_runs_only_its_jobs(pipeline, tiny_model):
    pipeline.change_config(
        lambda c: c["models"].update(m3={"source": str(tiny_model), "datasets": ["beta"]})
    )
    jobs, counted = pipeline.jobs()
    assert counted == {"hash_model": 1, "evaluate_model": 1, **AFTER_EVALUATION}
    assert jobs == sorted(hashes(["m3"]) + evaluations([("m3", "beta")]) + downstream())


def test_adding_a_dataset_runs_only_its_jobs(pipeline):
    path = write_dataset(pipeline.base / "new" / "gamma.parquet", n=7, seed=4)
    pipeline.change_config(
        lambda c: c["datasets"].update(gamma={"path": str(path), "task": "Sentiment analysis"})
    )
    jobs, counted = pipeline.jobs()
    # m2 names its datasets, so only m1 (every dataset) runs on the new one.
    assert counted == {"validate_dataset": 1, "evaluate_model": 1, **AFTER_EVALUATION}
    assert jobs == sorted(
        [("validate_dataset", None, "gamma")] + evaluations([("m1", "gamma")]) + downstream()
    )


def append_comment(path) -> None:
    with open(path, "a") as stream:
        stream.write("# edited\n")


def test_editing_the_plotting_code_reruns_only_the_plots(pipeline):
    append_comment(pipeline.workflow.root / "scripts" / "glueperf" / "plotting.py")
    jobs, counted = pipeline.jobs()
    assert counted == {"plot_results": 1}
    assert jobs == sorted(PLOT_JOBS)


def test_vector_formats_rerun_only_the_plots_and_a_dropped_one_is_removed(pipeline):
    plots = pipeline.workflow.root / "results" / "plots"
    pipeline.change_config(lambda c: c.update(plots={"vector_formats": ["svg"]}))
    assert pipeline.jobs() == (sorted(PLOT_JOBS), {"plot_results": 1})
    pipeline.workflow.snakemake()
    assert sorted(p.suffix for p in plots.glob("score.*")) == [".png", ".svg"]
    assert pipeline.jobs() == ([], {})
    # Back to PNG only: the plots rerun, and the SVG files, now older than the table they
    # would stand for, are gone. The run leaves the results as the fixture made them.
    pipeline.change_config(lambda c: None)
    assert pipeline.jobs() == (sorted(PLOT_JOBS), {"plot_results": 1})
    pipeline.workflow.snakemake()
    assert not list(plots.glob("*.svg"))
    assert pipeline.jobs() == ([], {})


def test_a_changed_table_reruns_only_the_plots(pipeline):
    results = pipeline.workflow.root / "results"
    tables = [results / "model_performance.csv", results / "glue_summary.csv"]
    kept = snapshot(tables)
    try:
        for table in tables:  # either table: the plots are drawn from both
            table.write_bytes(table.read_bytes().replace(b"\n", b"\r\n", 1))  # newer, other bytes
            assert pipeline.jobs() == (sorted(PLOT_JOBS), {"plot_results": 1}), table.name
            restore(kept)
    finally:
        restore(kept)


def test_editing_the_aggregation_code_reruns_aggregate_and_plots(pipeline):
    append_comment(pipeline.workflow.root / "scripts" / "glueperf" / "aggregate.py")
    jobs, counted = pipeline.jobs()
    assert counted == AFTER_EVALUATION


@pytest.mark.parametrize(
    "module",
    # fetch.py too: the evaluation imports it (code= follows the imports)
    ["engine.py", "evaluation.py", "models.py", "labels.py", "metrics.py", "fetch.py"],
)
def test_editing_the_evaluation_code_reruns_every_evaluation(pipeline, module):
    append_comment(pipeline.workflow.root / "scripts" / "glueperf" / module)
    jobs, counted = pipeline.jobs()
    # The fork server, which every forked job's script imports, imports models.py (to import
    # the run's architectures): the light jobs' code holds it too. Where the run's models are,
    # the workflow tells the server (glueperf/infra/startup.py): fetch.py is no light job's code.
    light = {"validate_dataset": 2, "hash_model": 2} if module == "models.py" else {}
    assert counted == {**light, "evaluate_model": 3, **AFTER_EVALUATION}


VALIDATIONS = {"validate_dataset": 2, "evaluate_model": 3, **AFTER_EVALUATION}


@pytest.mark.parametrize(
    ("module", "reruns"),
    [
        ("validation.py", VALIDATIONS),
        ("tasks.py", VALIDATIONS),
        # the models' checksums are taken with the same code as the datasets'
        ("checksums.py", {**VALIDATIONS, "hash_model": 2}),
        # every job that may be forked runs in the fork server's frame, which times the job
        ("clock.py", {**VALIDATIONS, "hash_model": 2}),
        ("infra/forkclient.py", {**VALIDATIONS, "hash_model": 2}),
        ("infra/forkserver.py", {**VALIDATIONS, "hash_model": 2}),
    ],
)
def test_editing_the_validation_code_reruns_from_validation(pipeline, module, reruns):
    append_comment(pipeline.workflow.root / "scripts" / "glueperf" / module)
    _, counted = pipeline.jobs()
    assert counted == reruns


@pytest.mark.parametrize(
    ("change", "reruns"),
    [
        (lambda c: c["datasets"]["alpha"].update(task="Grammaticality"), AFTER_EVALUATION),
        # a note is only in the report's captions, read when the report is made
        (lambda c: c["datasets"]["alpha"].update(note="a caption for people"), {}),
        (lambda c: c["models"]["m1"].update(family="bert-base"), AFTER_EVALUATION),
    ],
    ids=["task", "note", "family"],
)
def test_display_only_fields_rerun_no_evaluation(pipeline, change, reruns):
    pipeline.change_config(change)
    _, counted = pipeline.jobs()
    assert "evaluate_model" not in counted and "validate_dataset" not in counted
    assert counted == reruns


# snakemake as requirements.txt installs it: without the SLURM plugin, which imports pandas
# itself (Snakemake imports every installed executor plugin); says whether pandas was imported.
WITHOUT_SLURM_PLUGIN = """
import pkgutil, runpy, sys
listed = pkgutil.iter_modules
pkgutil.iter_modules = lambda *args, **kwargs: (
    module for module in listed(*args, **kwargs)
    if not module.name.startswith("snakemake_executor_plugin_slurm")
)
sys.argv = ["snakemake", *sys.argv[1:]]
try:
    runpy.run_module("snakemake", run_name="__main__")
finally:
    print("pandas imported:", "pandas" in sys.modules, file=sys.stderr)
"""


def test_a_no_op_rerun_does_not_import_pandas(pipeline):
    """Snakemake would import pandas (0.2 s or more) to hash params; the workflow stops it."""
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SLURM_PLUGIN, "--cores", "1"],
        cwd=pipeline.workflow.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr
    assert "pandas imported: False" in result.stderr
