"""A rule's job as its script sees it, and the one shell command that starts the scripts.

The rules of a job per model or dataset run their script, ``scripts/<rule>.py``, through
``shell:`` (``JOB_COMMAND``), not ``script:``: a ``script:`` job's Python unpickles Snakemake's
object for the job, which imports the snakemake package (0.05-0.08 s a job, two thirds of
Snakemake's own cost per job with ``--cores 1``; BENCHMARKS.md). The command passes the job's
threads, its log and ``params.job``: a JSON description of the job's named input and output
files, wildcards and params, made by ``describe`` from the rule's params (``job_params``). The
script reads it back as a ``Job``, which has the attributes of Snakemake's object that the jobs
use. A description too long for a command (the table's job, whose inputs grow with the
experiment: about 2,000 evaluations) goes in a file that the command names instead
(``describe``).
"""

from __future__ import annotations

import os
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
# other words and paths); a longer one is written under DESCRIPTIONS (in the working directory,
# named by its content) and the command passes its path after FROM_FILE.
MAX_DESCRIPTION = 120_000
DESCRIPTIONS = os.path.join(".snakemake", "glueperf", "jobs")
FROM_FILE = "@"


class Names(dict):
    """Named values, by attribute or by key, as Snakemake's named lists of a job."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Job:
    """What a script knows of its job: ``input``, ``output``, ``params`` and ``wildcards`` by
    name, ``log`` (its files) and ``threads``. The description may be its JSON text, read on
    first use: the process Snakemake starts for a job forked from the fork server only passes
    it on (``message``), and so imports no json."""

    def __init__(self, description: dict | str, log: list[str], threads: int):
        text = isinstance(description, str)
        self._description = description if text else None
        self._named_lists = None if text else named_lists(description)
        self.log = log
        self.threads = threads

    def _named(self, key: str) -> Names:
        if self._named_lists is None:
            import json

            self._named_lists = named_lists(json.loads(self._description))
        return self._named_lists[key]

    def message(self) -> tuple:
        """The job in plain values (``marshal`` sends them to the fork server): its
        description as it came (text still unread, or the dict), log and threads."""
        description = self._description
        if description is None:
            description = {key: dict(names) for key, names in self._named_lists.items()}
        return description, self.log, self.threads

    @classmethod
    def from_message(cls, message) -> Job:
        description, log, threads = message
        return cls(description, list(log), threads)

    input = property(lambda self: self._named("input"))
    output = property(lambda self: self._named("output"))
    params = property(lambda self: self._named("params"))
    wildcards = property(lambda self: self._named("wildcards"))


def named_lists(description: dict) -> dict[str, Names]:
    return {key: Names(description[key]) for key in ("input", "output", "params", "wildcards")}


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
    takes a shell command of at most 128 KiB (one argument of bash; past it a job fails to start
    with "Argument list too long"): a longer description is written to a file as Snakemake
    builds the job, and FROM_FILE and its path stand for it. The file is named by its content,
    so the command changes exactly when the description does, as an inline one would. It runs in
    Snakemake's process: its imports are made there, not in the jobs' own processes."""
    import hashlib
    import json
    import shlex

    from glueperf.outputs import atomic_path

    description = json.dumps(
        {
            "input": named(input),
            "output": named(output),
            "wildcards": named(wildcards),
            "params": params,
        },
        sort_keys=True,
    )
    if len(shlex.quote(description)) <= MAX_DESCRIPTION:
        return description
    name = f"{hashlib.sha256(description.encode()).hexdigest()[:32]}.json"
    path = os.path.join(DESCRIPTIONS, name)
    if not os.path.isfile(path):
        with atomic_path(path) as staging, open(staging, "w") as file:
            file.write(description)
    return f"{FROM_FILE}{path}"


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
    if description.startswith(FROM_FILE):
        with open(description.removeprefix(FROM_FILE)) as file:
            description = file.read()
    return Job(description, [log], int(threads))
