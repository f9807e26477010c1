"""The pipeline on a real SLURM cluster, through snakemake-executor-plugin-slurm and
profiles/slurm: a one-node cluster (munged, slurmctld and slurmd from Debian's munge and
slurm-wlm) is started on this machine, the tiny workflow runs on it, and its predictions and
metrics must equal those of a local run of the same workflow.

What the SLURM run changes in profiles/slurm, and why (see `slurm_test_profile`):
- evaluate_model asks for gpu=0 instead of 1: this node has no GPU (and no GPU gres), so a
  GPU job could never be scheduled. It asks for 1 CPU, 1000 MB and 10 minutes, and runs with
  1 thread, like the local run with --cores 1, so that both compute the same floats.
- The partition and account placeholders are filled in, as a user would.
- slurm-status-command: squeue. No accounting daemon runs here (slurmdbd, which needs a
  MySQL/MariaDB server): with AccountingStorageType=accounting_storage/none, `sacct` answers
  "Slurm accounting storage is disabled", and the plugin, which asks sacct whenever the program
  is installed, then never learns that a job ended (tried: the run hangs). squeue is the
  plugin's own mode for clusters without slurmdbd; it sees finished jobs while slurmctld keeps
  them, MinJobAge=600 s here (the plugin wants at least 3 x the first status-check delay).
- A wrapper `srun` first on PATH sets SLURM_CONF again: inside a job, the slurm-jobstep plugin
  starts the rule with `srun` after removing every SLURM_* variable, SLURM_CONF included. A real
  cluster's slurm.conf sits in /etc/slurm or comes from slurmctld (configless); this test
  leaves /etc alone.

The cluster harness is tests/slurm_cluster.py; it is stopped at the end, whatever happens.
Without the SLURM and munge programs the test is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import QUALITY_FIELDS, REPO, Workflow, planned_threads, tiny_workflow, write_dataset
from slurm_cluster import PARTITION, Cluster, find_programs

ACCOUNT = "glueperf-test"
MEM_MB = 1000
QUALITY = ["n_rows", "n_labeled", *QUALITY_FIELDS, "device"]


@pytest.fixture
def slurm_cluster(tmp_path, monkeypatch):
    programs = find_programs()
    cluster = Cluster(tmp_path / "slurm", programs)
    try:
        cluster.start()
        # Snakemake and everything it starts (sbatch, squeue; the jobs, which inherit the
        # environment) talk to this cluster.
        monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
        monkeypatch.setenv("PATH", f"{cluster.bin}{os.pathsep}{os.environ['PATH']}")
        yield cluster
    finally:
        cluster.stop()


def slurm_test_profile(workflow: Workflow) -> Path:
    """profiles/slurm of the workflow copy with this machine's overrides (module docstring)."""
    profile = yaml.safe_load((workflow.root / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    profile["default-resources"].update(slurm_partition=PARTITION, slurm_account=ACCOUNT)
    evaluate = profile["set-resources"]["evaluate_model"]
    assert evaluate["gpu"] == 1
    evaluate.update(gpu=0, cpus_per_task=1, mem_mb=MEM_MB, runtime=10)
    assert list(profile["set-resources"]) == ["evaluate_model"]  # the one rule sent to SLURM
    profile["set-threads"] = {"evaluate_model": 1}
    profile["slurm-status-command"] = "squeue"
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["slurm-keep-successful-logs"] = True
    path = workflow.root / "profiles" / "slurm-test" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path.parent


def test_pipeline_on_slurm_equals_local_run(slurm_cluster, workflow, tiny_model, tmp_path):
    data = tmp_path / "data"
    config = {
        "models": {"tiny": {"source": str(tiny_model)}},
        "datasets": {
            "labeled": {
                "path": str(write_dataset(data / "labeled.parquet", n=40, seed=1)),
                "task": "Sentiment analysis",
            },
            "hidden": {
                "path": str(write_dataset(data / "hidden.parquet", n=24, seed=2, labeled=False)),
                "task": "Sentiment analysis",
            },
        },
        "evaluation": {"device": "cpu"},
    }
    local = Workflow(tmp_path / "local")
    local.write_config(config)
    local.snakemake()

    workflow.write_config(config)
    profile = slurm_test_profile(workflow)
    try:
        run = workflow.snakemake("--workflow-profile", str(profile), timeout=400)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{slurm_cluster.log_tail()}") from None
    assert "has been submitted with SLURM jobid" in run.stdout + run.stderr

    # One SLURM job per evaluation, with the profile's requests; the local rules (the model's
    # checksums among them) stayed local.
    jobs = slurm_cluster.jobs()
    assert sorted(job["comment"] for job in jobs) == [
        "rule_evaluate_model_wildcards_tiny_float32_hidden",
        "rule_evaluate_model_wildcards_tiny_float32_labeled",
    ], jobs
    for job in jobs:
        assert job["state"] == "COMPLETED", jobs
        assert (job["partition"], job["account"]) == (PARTITION, ACCOUNT), jobs
        assert (job["memory"], job["cpus"]) == (f"{MEM_MB}M", "1"), jobs

    for dataset in config["datasets"]:
        name = f"tiny/float32/{dataset}"
        pd.testing.assert_frame_equal(
            pd.read_parquet(workflow.root / f"results/predictions/{name}.parquet"),
            pd.read_parquet(local.root / f"results/predictions/{name}.parquet"),
            check_exact=False,
            rtol=1e-6,
            obj=f"predictions {name}",
        )
        pd.testing.assert_frame_equal(
            pd.read_csv(workflow.root / f"results/metrics/{name}.csv")[QUALITY],
            pd.read_csv(local.root / f"results/metrics/{name}.csv")[QUALITY],
            obj=f"metrics {name}",
        )
    table = "results/model_performance.csv"
    columns = ["Dataset", "Accuracy (%)"]
    pd.testing.assert_frame_equal(
        pd.read_csv(workflow.root / table)[columns], pd.read_csv(local.root / table)[columns]
    )
    for plot in ("accuracy", "inference_time", "memory_usage"):
        assert (workflow.root / f"results/plots/{plot}.png").stat().st_size > 0


# --- the profiles themselves (no cluster needed) ------------------------------------------------


def read_profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def test_default_profile_leaves_the_gpus_to_the_device_locks():
    # No global gpu limit: each evaluation takes a free device itself (glueperf/infra/devices.py),
    # so `--cores N` uses every GPU of the host (tests/test_devices.py).
    assert "gpu" not in read_profile("default").get("resources", {})


def test_slurm_profile_asks_for_one_gpu_and_the_rules_threads(tmp_path, tiny_model):
    profile = read_profile("slurm")
    assert profile["executor"] == "slurm"
    evaluate = profile["set-resources"]["evaluate_model"]
    assert (evaluate["gpu"], evaluate["gpu_manufacturer"]) == (1, "nvidia")
    # The threads Snakemake gives the rule on a submit host without GPUs (as this machine).
    workflow = tiny_workflow(tmp_path, tiny_model, {"alpha": 5})
    assert planned_threads(workflow, "auto") == {f"evaluate_model={evaluate['cpus_per_task']}"}
    assert evaluate["mem_mb"] > 0 and evaluate["runtime"] > 0
    # a global `resources: gpu=...` would cap the GPU jobs of the whole cluster
    assert "resources" not in profile


def test_cheap_rules_run_on_the_submit_host_and_evaluations_on_the_cluster():
    text = (REPO / "Snakefile").read_text()
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", text, re.M)
    assert block, "the Snakefile has no localrules: block"
    local = set(re.findall(r"\w+", block.group(1)))
    assert {"validate_dataset", "hash_model", "aggregate_metrics", "plot_results"} <= local
    assert "evaluate_model" not in local
