"""A rule's job as its script sees it, and the one shell command that starts the scripts.

The rules of a job per model or dataset run their script, ``scripts/<rule>.py``, through
``shell:`` (``JOB_COMMAND``), not ``script:``: a ``script:`` job's Python unpickles Snakemake's
object for the job, which imports the snakemake package (0.05-0.08 s a job, two thirds of
Snakemake's own cost per job with ``--cores 1``; BENCHMARKS.md). The table's job, whose inputs
grow with the experiment, stays a ``script:`` (``describe`` says why). The command passes the
job's threads, its log and ``params.job``: a JSON description of the job's named input and
output files, wildcards and params, made by ``describe`` from the rule's params
(``job_params``). The script reads it back as a ``Job``, which has the attributes of Snakemake's
object that the jobs use.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

# Set as the Snakefile is read (glueperf.infra.startup): the interpreter of a job that runs
# without a conda env, Snakemake's own as for a `script:` (under --use-conda the variable is
# removed and the env's `python` runs the script), and the folder of the scripts.
PYTHON, SCRIPTS = "GLUEPERF_PYTHON", "GLUEPERF_SCRIPTS"

# The shell command of every rule. Its text is what Snakemake compares for a rule's code
# change, so it holds no path of this machine: those come from the environment. A change to a
# script or its modules reruns the rule through its `code` param
# (glueperf.infra.plan.code_fingerprint).
JOB_COMMAND = (
    '"${{' + PYTHON + ':-python}}" "$' + SCRIPTS + '/{params.script}.py" '
    "{threads} {log:q} {params.job:q}"
)


# What the description may take of the 128 KiB of a shell command (the rest: the command's
# other words and paths).
MAX_DESCRIPTION = 120_000


class Names(dict):
    """Named values, by attribute or by key, as Snakemake's named lists of a job."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Job:
    """What a script knows of its job: ``input``, ``output``, ``params`` and ``wildcards`` by
    name, ``log`` (its files) and ``threads``."""

    def __init__(self, description: dict, log: list[str], threads: int):
        self.input = Names(description["input"])
        self.output = Names(description["output"])
        self.params = Names(description["params"])
        self.wildcards = Names(description["wildcards"])
        self.log = log
        self.threads = threads


def job_params(script: str, **params) -> dict:
    """A rule's params: each as given (Snakemake compares them from run to run), ``script``,
    the name of the rule's script in scripts/, and ``job``, the JSON that ``JOB_COMMAND`` hands
    that script. A param is a value or a function of the job's wildcards, as Snakemake's are."""

    def job(wildcards, input, output):  # noqa: A002 (Snakemake passes it by this name)
        values = {
            name: value(wildcards) if callable(value) else value for name, value in params.items()
        }
        return describe(wildcards, input, output, values)

    return {**params, "script": script, "job": job}


def describe(wildcards, input, output, params: dict) -> str:  # noqa: A002
    """The job as JSON: its named input and output files, its wildcards and its params. Linux
    takes a shell command of at most 128 KiB (one argument of bash): a description that would
    not fit is refused here, as Snakemake builds the job, not by bash as it starts it."""
    description = json.dumps(
        {
            "input": named(input),
            "output": named(output),
            "wildcards": named(wildcards),
            "params": params,
        },
        sort_keys=True,
    )
    if len(shlex.quote(description)) > MAX_DESCRIPTION:
        raise ValueError(
            f"the job's description ({len(description):,} characters: "
            f"{len(named(input))} named inputs, wildcards {named(wildcards)}) is longer than "
            f"a shell command may be ({MAX_DESCRIPTION:,} characters of 128 KiB): a rule "
            "whose inputs grow with the experiment runs as a `script:` (rule aggregate_metrics)"
        )
    return description


def named(values) -> dict:
    """A Snakemake named list as a dict (its files are strings, its lists lists, for JSON)."""
    return dict(values.items())


def job_from_command_line(argv: list[str] | None = None) -> Job:
    """The job that ``JOB_COMMAND`` describes: ``THREADS LOG JOB_JSON``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        sys.exit(
            f"usage: {os.path.basename(sys.argv[0])} THREADS LOG JOB_JSON "
            "(as a rule's shell command passes them)"
        )
    threads, log, description = argv
    return Job(json.loads(description), [log], int(threads))
