"""What the workflow does as Snakemake starts a run: every side effect of reading the Snakefile,
in one place (rules/common.smk calls ``when_read``, the Snakefile's onstart ``when_started``).

- Snakemake hashes params without importing pandas (glueperf/infra/snakemake_internals.py):
  0.2-0.4 s of every run, no-op reruns included.
- The jobs learn which Snakemake process started them (``SNAKEMAKE_PID``): their fork server
  (glueperf/infra/forkserver.py) ends with it. They learn which Python runs their scripts where
  no conda env does (``PYTHON``: Snakemake's), where the scripts are (``SCRIPTS``;
  glueperf/infra/job.py), and what their fork server is to start with (``SERVER_START``: the
  run's models, whether a child is forked ahead). At onstart they also learn whether this run's
  evaluations run on this host (``GPU_JOBS_HERE``): then the first light job starts the server.
- Exactly one run executes jobs in a directory at a time (glueperf/infra/locks.py): Snakemake's
  own lock lets runs started together through. Taken as the Snakefile is read, before
  Snakemake's lock, for the life of the process, by a command line that runs jobs (not -n,
  --lint, --report, --unlock...), and again at onstart for Snakemake used from Python.
- A run killed outright (SIGKILL, power loss) leaves Snakemake's lock behind, and every later
  run would stop at it: it is removed once the run that took it is gone.
- One directory holds the results of one config (glueperf/infra/resultsdir.py): a run or a
  report with other config files than those that made results/ stops, before it overwrites them
  or reports on other models. A run that executes jobs then claims results/, also when it finds
  nothing to do (and at onstart, for Snakemake used from Python).

Each step's refusal is a GlueperfError, which the workflow shows as Snakemake's own error.
"""

from __future__ import annotations

import json
import os
import sys

from glueperf.fetch import model_location
from glueperf.infra.forkclient import GPU_JOBS_HERE, SERVER_START, SNAKEMAKE_PID
from glueperf.infra.job import PYTHON, SCRIPTS
from glueperf.infra.locks import hold_run_lock
from glueperf.infra.plan import SCRIPTS as SCRIPTS_DIR
from glueperf.infra.plan import evaluation_settings
from glueperf.infra.resultsdir import check_results_config, config_files, record_results_config
from glueperf.infra.snakemake_internals import (
    executes_jobs,
    hash_params_without_importing_pandas,
    makes_report,
    record_lock_owner,
    remove_stale_lock,
)


def when_read(
    config: dict, command_line_config_files, is_main_process: bool, own_python: bool = True
) -> None:
    """As Snakemake reads the Snakefile, once the config has been checked. ``own_python``:
    whether the jobs run in Snakemake's Python (no conda env, no container)."""
    hash_params_without_importing_pandas()
    os.environ[SNAKEMAKE_PID] = str(os.getpid())
    os.environ[SERVER_START] = json.dumps(server_start(config))
    os.environ[SCRIPTS] = str(SCRIPTS_DIR)
    if own_python:
        os.environ[PYTHON] = sys.executable
    else:  # the env's own `python`
        os.environ.pop(PYTHON, None)
    if not is_main_process:
        return
    executes = executes_jobs()
    if executes:
        hold_run_lock()
    stale_lock_note = remove_stale_lock()
    if stale_lock_note:
        print(stale_lock_note, file=sys.stderr)
    files = config_files(command_line_config_files)
    report = makes_report()
    if executes or report:
        check_results_config(files, report=report)
    if executes:
        record_results_config(files, config)


def server_start(config: dict) -> dict:
    """What a job that starts the run's fork server tells it (forkserver.server_start): the
    directories of the config's models (absolute; the server imports the architectures of
    those that exist) and whether it forks a child ahead as soon as it is ready: where any
    evaluation may run off the CPU (its ``evaluation.device``, the model's own or the run's, is
    not ``cpu``), so that the first evaluation finds CUDA started too. A run that evaluates on
    the CPU alone starts no CUDA."""
    models = config["models"]
    return {
        "models": [
            os.path.abspath(model_location(name, entry["source"])) for name, entry in models.items()
        ],
        "ahead": any(
            evaluation_settings(config, name).get("device") not in (None, "cpu") for name in models
        ),
    }


def when_started(config: dict, command_line_config_files, evaluations_here: bool = False) -> None:
    """At onstart, once Snakemake holds its lock and is about to run jobs: the run lock (held
    already when started from the command line), the record that lets a later run remove
    Snakemake's lock should this one be killed, the claim on results/, and whether this run
    evaluates on this host (for the jobs it starts, which inherit the environment)."""
    if evaluations_here:
        os.environ[GPU_JOBS_HERE] = "1"
    hold_run_lock()
    record_lock_owner()
    files = config_files(command_line_config_files)
    check_results_config(files)
    record_results_config(files, config)
