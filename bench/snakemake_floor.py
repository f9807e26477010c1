"""Snakemake's own share of a run: the pipeline's job graph for a config, every job doing nothing.

    python bench/snakemake_floor.py CONFIG [--cores 1 16] [--repeats 3] [--shell] [--script]
        [--json FILE]

Writes, in a temporary directory, a Snakefile with the jobs that glueperf's pipeline runs for
CONFIG from empty: hash_model per local model, validate_dataset per dataset, evaluate_model per
model and dataset (4 threads, as on a GPU, after its dataset's validation and its model's
hashing), aggregate_metrics after all, plot_results after it (10 threads, a thread a figure).
Each job starts its Python script as glueperf's rules do (a shell command, with a `log:`;
glueperf/infra/job.py; the table's job a `script:`), which imports what every glueperf job
imports, writes its outputs and does no other work, so its cost is what Snakemake and a job's
Python start cost: what a pipeline of one job per model and dataset pays on top of its work. As
glueperf's Snakefile, it does not wait for Snakemake's last scheduler timer at the end. Prints
the wall seconds of a run from empty with each --cores, the median of --repeats, beside the
one-process ideal's figure when given one (--ideal, seconds). With --shell, the same graph again
with every job a shell command that touches its outputs: no Python started per job, so the
difference is what each job's Python start costs; the rest is Snakemake's own work per job. With
--script, again with every job a Snakemake `script:` (glueperf's rules before they started their
scripts themselves), whose preamble unpickles the job's object, which imports snakemake.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

SNAKEFILE = """\
import os
import sys

sys.path.insert(0, {scripts!r})
from glueperf.infra.job import JOB_COMMAND, PYTHON, SCRIPTS, job_params
from glueperf.infra.snakemake_internals import cancel_scheduler_timers

# As glueperf's start-up sets them (glueperf/infra/startup.py); the job's script is here.
os.environ[PYTHON] = sys.executable
os.environ[SCRIPTS] = workflow.basedir

MODELS = {models!r}
LOCAL = {local!r}
DATASETS = sorted({{d for datasets in MODELS.values() for d in datasets}})
PAIRS = [(m, d) for m, datasets in MODELS.items() for d in datasets]


rule all:
    input:
        "results/plots/done.txt",


rule hash_model:
    output:
        out="resources/checksums/{{model}}.json",
    log:
        "results/logs/hash_model/{{model}}.log",
    params:
        **job_params("job"),
    shell:
        JOB_COMMAND


rule validate_dataset:
    output:
        out="results/validated/{{dataset}}.json",
    log:
        "results/logs/validate_dataset/{{dataset}}.log",
    params:
        **job_params("job"),
    shell:
        JOB_COMMAND


def model_provenance(wildcards):
    return [f"resources/checksums/{{wildcards.model}}.json"] if wildcards.model in LOCAL else []


rule evaluate_model:
    input:
        summary="results/validated/{{dataset}}.json",
        model=model_provenance,
    output:
        out="results/metrics/{{model}}/{{dataset}}.csv",
    log:
        "results/logs/evaluate_model/{{model}}/{{dataset}}.log",
    threads: 4
    params:
        **job_params("job"),
    shell:
        JOB_COMMAND


rule aggregate_metrics:
    input:
        [f"results/metrics/{{m}}/{{d}}.csv" for m, d in PAIRS],
    output:
        out="results/model_performance.csv",
    log:
        "results/logs/aggregate_metrics.log",
    script:
        "script.py"


rule plot_results:
    input:
        "results/model_performance.csv",
    output:
        out="results/plots/done.txt",
    log:
        "results/logs/plot_results.log",
    threads: 10
    params:
        **job_params("job"),
    shell:
        JOB_COMMAND


# As glueperf's Snakefile: no wait for the scheduler's last timer at the end.
onsuccess:
    cancel_scheduler_timers()
"""

# A job as glueperf's rules run it: its script imports the job's description and the fork
# server's client, as every glueperf job does, and writes its outputs.
JOB = """\
import sys

sys.path.insert(0, {scripts!r})  # glueperf's scripts/, where its own scripts run from
from glueperf.infra import forkclient  # noqa: F401
from glueperf.infra.job import job_from_command_line

job = job_from_command_line()
for path in [job.output.out, *job.log]:
    with open(path, "w") as stream:
        stream.write("")
"""
# The same as a Snakemake `script:`.
SCRIPT = """\
for path in [*snakemake.output, *snakemake.log]:  # noqa: F821 (injected by Snakemake)
    with open(path, "w") as stream:
        stream.write("")
"""


def job_graph(config: dict) -> tuple[dict[str, list[str]], list[str]]:
    """Each model's datasets, and the models with a local source (those glueperf hashes)."""
    models = {name: list(entry["datasets"]) for name, entry in config["models"].items()}
    local = [name for name, entry in config["models"].items() if Path(entry["source"]).is_dir()]
    return models, local


PYTHON_JOB = "shell:\n        JOB_COMMAND"
SCRIPT_JOB = 'script:\n        "script.py"'
SHELL_JOB = 'shell:\n        "touch {output} {log}"'


def run_once(directory: Path, cores: int) -> float:
    for produced in ("results", "resources", ".snakemake"):
        shutil.rmtree(directory / produced, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores), "-q"],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--cores", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ideal", type=float, help="the one-process ideal's seconds")
    parser.add_argument("--shell", action="store_true", help="also with shell jobs (see above)")
    parser.add_argument("--script", action="store_true", help="also with `script:` jobs")
    parser.add_argument("--json")
    args = parser.parse_args()
    models, local = job_graph(yaml.safe_load(Path(args.config).read_text()))
    rules = {
        "hash_model": len(local),
        "validate_dataset": len({d for datasets in models.values() for d in datasets}),
        "evaluate_model": sum(map(len, models.values())),
        "aggregate_metrics": 1,
        "plot_results": 1,
    }
    jobs = sum(rules.values())
    figures = {"jobs": jobs, "rules": rules}
    snakefile = SNAKEFILE.format(models=models, local=local, scripts=str(SCRIPTS))
    kinds = {"runs": ("Python scripts started as glueperf's rules start them", snakefile)}
    if args.shell:
        shell = snakefile.replace(PYTHON_JOB, SHELL_JOB).replace(SCRIPT_JOB, SHELL_JOB)
        kinds["runs_shell"] = ("shell commands", shell)
    if args.script:
        kinds["runs_script"] = ("Snakemake `script:`s", snakefile.replace(PYTHON_JOB, SCRIPT_JOB))
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        (directory / "job.py").write_text(JOB.format(scripts=str(SCRIPTS)))
        (directory / "script.py").write_text(SCRIPT)
        for key, (kind, text) in kinds.items():
            (directory / "Snakefile").write_text(text)
            figures[key] = {}
            print(f"{jobs} jobs of no work, {kind}, in the job graph of {args.config}")
            print("| --cores | wall s, from empty | median s | + ideal s |")
            print("|---:|---|---:|---:|")
            for cores in args.cores:
                walls = [run_once(directory, cores) for _ in range(args.repeats)]
                median = statistics.median(walls)
                figures[key][str(cores)] = walls
                ideal = f"{median + args.ideal:.2f}" if args.ideal else ""
                shown = ", ".join(f"{w:.2f}" for w in walls)
                print(f"| {cores} | {shown} | {median:.2f} | {ideal} |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
