"""A dataset or model file whose content changed reruns its branch, also when the new file is
older than the results (moved over the old one, or rewritten and dated back with `touch -d`),
and also for a file over 1 MB, which Snakemake does not checksum. Read from dry runs after one
full run; each test puts back the very file it replaced (same inode, size and time), so every
test starts from a finished run. The last test runs the pipeline for real.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from conftest import Workflow, build_tiny_model, write_dataset

DOWNSTREAM = sorted([("aggregate_metrics", None, None), ("plot_results", None, None)])
A_DAY_AGO = time.time() - 86400


def noise(n: int, seed: int) -> list[str]:
    """Incompressible strings, so that a file of few rows is over 1 MB."""
    rng = np.random.default_rng(seed)
    return [rng.bytes(400).hex() for _ in range(n)]


def write_big(path, seed: int):
    return write_dataset(path, n=1500, seed=seed, noise=noise(1500, seed))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("stale")
    model = shutil.copytree(tiny_model, base / "model")
    data = {
        "small": write_dataset(base / "data" / "small.parquet", n=12, seed=1),
        "big": write_big(base / "data" / "big.parquet", seed=2),
    }
    assert data["big"].stat().st_size > 1_000_000
    workflow = Workflow(base / "workflow")
    workflow.write_config(
        {
            "models": {"m": {"source": str(model)}},
            "datasets": {
                name: {"path": str(path), "task": "Sentiment analysis"}
                for name, path in data.items()
            },
            "evaluation": {"device": "cpu"},
        }
    )
    workflow.snakemake()
    return {"workflow": workflow, "base": base, "model": model, "data": data}


def planned(workflow: Workflow):
    return sorted((rule, w.get("model"), w.get("dataset")) for rule, w in workflow.dry_run()[1])


def dataset_branch(dataset):
    return sorted(
        [("validate_dataset", None, dataset), ("evaluate_model", "m", dataset)] + DOWNSTREAM
    )


def replace_with_older(target, write_new):
    """Move a new file, dated a day back, over ``target``; returns a function that puts the
    original file (inode, size, times) back."""
    kept = target.with_name(target.name + ".original")
    new = target.with_name(target.name + ".new")
    write_new(new)
    os.utime(new, (A_DAY_AGO, A_DAY_AGO))
    os.rename(target, kept)
    os.rename(new, target)
    return lambda: os.replace(kept, target)


def test_a_finished_run_has_nothing_to_do(finished):
    assert planned(finished["workflow"]) == []


@pytest.mark.parametrize("dataset", ["small", "big"])
def test_an_older_file_moved_over_a_dataset_reruns_its_branch(finished, dataset):
    target = finished["data"][dataset]
    writer = {"small": lambda p: write_dataset(p, n=9, seed=7), "big": lambda p: write_big(p, 8)}
    put_back = replace_with_older(target, writer[dataset])
    try:
        assert planned(finished["workflow"]) == dataset_branch(dataset)
    finally:
        put_back()
    assert planned(finished["workflow"]) == []


def test_a_dataset_rewritten_in_place_and_dated_back_reruns_its_branch(finished):
    target = finished["data"]["big"]
    content, stat = target.read_bytes(), target.stat()
    frame = pd.read_parquet(target)
    frame.loc[0, "label"] = 1 - frame.loc[0, "label"]  # one label flipped
    frame.to_parquet(target, index=False)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))  # `touch -d` a second back
    try:
        assert planned(finished["workflow"]) == dataset_branch("big")
    finally:
        target.write_bytes(content)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned(finished["workflow"]) == []


def test_an_older_weights_file_moved_over_a_models_reruns_its_evaluations(finished, tmp_path):
    other = build_tiny_model(tmp_path / "other", initializer_range=0.5)
    put_back = replace_with_older(
        finished["model"] / "model.safetensors",
        lambda p: shutil.copyfile(other / "model.safetensors", p),
    )
    try:
        expected = sorted(
            [("hash_model", "m", None)]
            + [("evaluate_model", "m", d) for d in ("small", "big")]
            + DOWNSTREAM
        )
        assert planned(finished["workflow"]) == expected
    finally:
        put_back()
    assert planned(finished["workflow"]) == []


def test_last_the_table_reports_the_new_rows_after_a_real_run(finished):
    """Leaves the replaced file in place: keep this test last in the module."""
    replace_with_older(finished["data"]["small"], lambda p: write_dataset(p, n=9, seed=7))
    finished["workflow"].snakemake()
    table = pd.read_csv(finished["workflow"].root / "results" / "model_performance.csv")
    assert table.set_index("Dataset").loc["small", "n_rows"] == 9
    assert planned(finished["workflow"]) == []
