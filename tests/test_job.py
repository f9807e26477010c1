"""A rule's job through its one shell command (glueperf/infra/job.py): what the rule describes is
what the script reads, its Python is Snakemake's where no conda env is used, and the fork server
learns the run's models and whether to fork a child ahead from the workflow
(glueperf/infra/startup.py)."""

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake.iocontainers import InputFiles, OutputFiles, Wildcards

from conftest import REPO, tiny_workflow
from glueperf.infra import startup
from glueperf.infra.job import Job, job_from_command_line, job_params


def named(cls, **values):
    """A Snakemake named list of ``values``, as a job's params functions are given."""
    return cls(fromdict=values)


def test_the_script_reads_back_the_job_its_rule_describes():
    params = job_params(
        "validate_dataset",
        dataset=lambda wildcards: {"task": f"task of {wildcards.dataset}", "columns": ["a", "b"]},
        sha256=None,
        code="abc123",
    )
    assert {"dataset", "sha256", "code", "script", "job"} == set(params)
    assert params["code"] == "abc123"  # each param as given, for Snakemake to compare
    wildcards = named(Wildcards, dataset="sst2")
    inputs = named(InputFiles, data="data/sst2.parquet", model=["m/config.json", "m/w.bin"])
    outputs = named(OutputFiles, summary="results/validated/sst2.json")
    description = params["job"](wildcards, inputs, outputs)

    job = job_from_command_line(["4", "results/logs/x.log", description])
    assert job.input.data == "data/sst2.parquet"
    assert job.input.model == ["m/config.json", "m/w.bin"]
    assert dict(job.output.items()) == {"summary": "results/validated/sst2.json"}
    assert job.wildcards.dataset == "sst2"
    assert job.params.dataset == {"task": "task of sst2", "columns": ["a", "b"]}
    assert job.params.sha256 is None and job.params.code == "abc123"
    assert job.log == ["results/logs/x.log"] and job.threads == 4
    with pytest.raises(AttributeError):
        job.params.missing  # noqa: B018


def test_a_description_longer_than_a_shell_command_may_be_goes_in_a_file(tmp_path, monkeypatch):
    """bash takes a command of at most 128 KiB; past it the job would fail to start with
    "Argument list too long". The table's job of some 4,000 evaluations: its description is
    written to a file named by its content, which the command names; the script reads it."""
    monkeypatch.chdir(tmp_path)  # the run's working directory
    describe = job_params("aggregate_metrics", code="abc")["job"]
    wildcards = named(Wildcards)
    files = [f"results/metrics/model-{n}/float32/dataset.csv" for n in range(4000)]
    outputs = named(OutputFiles, table="results/model_performance.csv")
    inline = describe(wildcards, named(InputFiles, metrics=files[:100]), outputs)
    assert json.loads(inline)["input"]["metrics"] == files[:100]  # fits: on the command line
    long = describe(wildcards, named(InputFiles, metrics=files), outputs)
    assert long.startswith("@") and len(long) < 200
    job = job_from_command_line(["1", "results/logs/aggregate_metrics.log", long])
    assert job.input.metrics == files and job.params.code == "abc"
    assert describe(wildcards, named(InputFiles, metrics=files), outputs) == long  # same file
    other = describe(wildcards, named(InputFiles, metrics=files[1:]), outputs)
    assert other != long and len(list((tmp_path / ".snakemake").rglob("*.json"))) == 2


def test_the_job_sent_to_the_fork_server_is_the_job_its_rule_describes():
    """The job's own process passes its description on unread (as text, in ``message``); the
    server reads the same job from it."""
    description = job_params("hash_model", code="abc")["job"](
        named(Wildcards, model="m"),
        named(InputFiles, model=["m/w.bin"]),
        named(OutputFiles, checksums="resources/checksums/m.json"),
    )
    job = job_from_command_line(["2", "results/logs/hash_model/m.log", description])
    message = job.message()
    assert message[0] == description  # unread: no json in the job's process
    received = Job.from_message(marshal.loads(marshal.dumps(message)))
    assert received.input.model == ["m/w.bin"] and received.params.code == "abc"
    assert received.output.checksums == "resources/checksums/m.json"
    assert received.log == job.log and received.threads == 2
    assert Job.from_message(received.message()).wildcards.model == "m"  # read, then sent on


# What the process Snakemake starts for a job forked from the fork server must not import: each
# costs every job's start (pathlib 0.008 s, the job's frame with its logging 0.023 s).
NOT_IN_A_JOBS_PROCESS = ("json", "pathlib", "subprocess", "logging", "glueperf.infra.script")
JOB_SCRIPTS = (
    "evaluate_model",
    "hash_model",
    "validate_dataset",
    "aggregate_metrics",
    "plot_results",
)


@pytest.mark.parametrize("script", JOB_SCRIPTS)
def test_a_jobs_own_process_imports_only_what_asking_the_server_needs(script):
    """Everything a forked job's own process does before it sends the job: its script's
    imports, reading its command line, the server's address and the message."""
    probe = f"""
import runpy, sys
sys.path.insert(0, {str(REPO / "scripts")!r})
runpy.run_path({str(REPO / "scripts" / f"{script}.py")!r}, run_name="not_main")
from glueperf.infra.forkclient import server_address
from glueperf.infra.job import job_from_command_line
job = job_from_command_line(["1", "x.log", '{{"input": {{}}}}'])
job.message(), server_address()
print(" ".join(name for name in {NOT_IN_A_JOBS_PROCESS!r} if name in sys.modules))
"""
    env = {**os.environ, "GLUEPERF_SNAKEMAKE_PID": str(os.getpid())}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_a_script_run_without_its_arguments_says_what_it_needs():
    with pytest.raises(SystemExit, match="THREADS LOG JOB_JSON"):
        job_from_command_line(["results/logs/x.log"])


def test_the_run_tells_the_server_its_models_and_whether_to_fork_ahead(tmp_path):
    model = tmp_path / "m"
    config = {
        "models": {"a": {"source": str(model)}, "b": {"source": "org/hub-model"}},
        "evaluation": {"device": "cpu"},
    }
    told = startup.server_start(config)
    assert told["models"][0] == str(model) and all(map(os.path.isabs, told["models"]))
    assert told["ahead"] is False  # evaluates on the CPU alone: no CUDA to start ahead
    config["models"]["b"]["evaluation"] = {"device": "auto"}
    assert startup.server_start(config)["ahead"] is True  # one model's own device
    config["evaluation"]["device"] = "cuda"
    del config["models"]["b"]["evaluation"]
    assert startup.server_start(config)["ahead"] is True


def test_a_job_runs_in_snakemakes_python_whatever_python_the_path_finds(tmp_path, tiny_model):
    """Without a conda env, a rule's script runs in the Python that runs Snakemake (as a
    `script:` would), not in the first `python` on the PATH."""
    workflow = tiny_workflow(tmp_path, tiny_model, {"reviews": 20})
    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "python").write_text("#!/bin/sh\necho 'the wrong python' >&2\nexit 3\n")
    (decoy / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{decoy}{os.pathsep}{os.environ['PATH']}"}
    target = "results/validated/reviews.json"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", target],
        cwd=workflow.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "the wrong python" not in result.stderr
    assert json.loads((workflow.root / target).read_text())["n_rows"] == 20
    log = Path(workflow.root, "results/logs/validate_dataset/reviews.log")
    assert log.is_file()
