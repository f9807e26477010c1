"""Every place where the workflow relies on Snakemake's internals, each kept for what it pays.

Written against Snakemake 9.27.1 (requirements.txt); tests/test_snakemake_internals.py fails
when an internal used here changes, naming what to review.

- Params hashed without pandas (``hash_params_without_importing_pandas``): Snakemake 9 imports
  pandas whenever it is installed, only to ask of each rule's params whether it is a DataFrame,
  Series or Index before hashing it (``PersistenceBase._serialize_param``): 0.2 s on a fast host
  and about twice that on the GPU hosts of BENCHMARKS.md, in every run, no-op reruns included.
  A value can only be a pandas object once pandas is imported, so asking only then gives the
  same hashes, and so the same reruns, without the import.
- What the command line asks for (``executes_jobs``, ``makes_report``), read with Snakemake's
  own parser: the run lock (glueperf/infra/locks.py) must be taken while the Snakefile is read,
  before Snakemake takes its own lock, when nothing yet says whether this run will execute jobs.
  ``NOT_EXECUTING`` mirrors the branches of ``snakemake.cli.args_to_api`` that run no job.
- Snakemake's directory lock after a run that was killed outright (``remove_stale_lock``), see
  below: without it every later run stops until someone runs ``snakemake --unlock``.
- Whether a run executes a rule's jobs on this host (``runs_jobs_here``), read at onstart from
  the workflow's executor and DAG: the fork server is started early only for evaluations that
  will use it (glueperf/infra/forkserver.py), never on a cluster's login node.
- The scheduler's last timer (``cancel_scheduler_timers``): after each pass Snakemake's job
  scheduler arms a ``threading.Timer`` of its --max-jobs-per-timespan window (1 s by default),
  not a daemon thread, so every run that ran a job outlived its last job by about a second
  (1.2 s on the H100 host of BENCHMARKS.md), waiting for it. At onsuccess and onerror nothing
  is scheduled any more: the timers are cancelled and the run ends at once. A shorter window
  (``--max-jobs-per-timespan 100/100ms``) is no cure: with it Snakemake 9.27.1 never exited.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import threading
from pathlib import Path

# --- params hashed without pandas ------------------------------------------------------------

# Snakemake's internals that the patch relies on; without them it leaves Snakemake as it is.
SERIALIZERS = ("_serialize_param", "_serialize_param_pandas", "_serialize_param_builtin")


def _param_serializer(persistence):
    if "pandas" in sys.modules:
        return persistence._serialize_param_pandas
    return persistence._serialize_param_builtin


def hash_params_without_importing_pandas() -> bool:
    """Make Snakemake serialize params with pandas only once pandas is imported. Returns
    whether it applied (a Snakemake without these internals keeps its own behaviour)."""
    from snakemake.persistence import PersistenceBase

    if not all(hasattr(PersistenceBase, name) for name in SERIALIZERS):
        return False
    PersistenceBase._serialize_param = property(_param_serializer)
    return True


# --- what the command line asks for ----------------------------------------------------------

# Snakemake options (argparse names) under which an invocation runs no job: it plans, lists,
# draws, reports or cleans up metadata, and never takes the run lock.
NOT_EXECUTING = (
    "dryrun",
    "lint",
    "list_target_rules",
    "list_rules",
    "print_compilation",
    "containerize",
    "generate_unit_tests",
    "dag",
    "rulegraph",
    "filegraph",
    "d3dag",
    "unlock",
    "cleanup_metadata",
    "conda_cleanup_envs",
    "conda_create_envs_only",
    "list_conda_envs",
    "cleanup_shadow",
    "container_cleanup_images",
    "list_changes",
    "list_input_changes",
    "list_params_changes",
    "list_untracked",
    "summary",
    "detailed_summary",
    "archive",
)
# These run no job either, but they change results/: they take the run lock, as a run does.
DELETING = ("delete_all_output", "delete_temp_output")


def command_line(argv=None):
    """This process's snakemake command line as Snakemake's parser reads it; None when it is
    not one (Snakemake used from Python), or it cannot be read."""
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]) if argv else Path()
    if program.name != "snakemake" and program.parent.name != "snakemake":
        return None
    return _parsed(tuple(argv[1:]))


@functools.cache
def _parsed(arguments: tuple[str, ...]):
    from contextlib import redirect_stderr

    from snakemake.cli import get_argument_parser

    try:
        with open(os.devnull, "w") as null, redirect_stderr(null):
            return get_argument_parser().parse_args(list(arguments))
    except (SystemExit, Exception):
        return None


def executes_jobs(argv=None) -> bool | None:
    """Whether the snakemake command line of this process runs jobs; None when it is not one
    (Snakemake used from Python), or it cannot be read."""
    args = command_line(argv)
    if args is None:
        return None
    if getattr(args, "report", None) and not getattr(args, "report_after_run", False):
        return False
    return not any(getattr(args, name, None) for name in NOT_EXECUTING)


def makes_report(argv=None) -> bool:
    """Whether this process is a ``snakemake --report`` command line (which runs no jobs)."""
    args = command_line(argv)
    return bool(args is not None and getattr(args, "report", None))


# --- where a run's jobs run --------------------------------------------------------------------


def runs_jobs_here(workflow, rule: str) -> bool:
    """Whether this run executes jobs of ``rule`` on this host: its executor is the local one
    (not a cluster's) and its DAG has such jobs to run. For onstart, when both are known."""
    dag = getattr(workflow, "dag", None)
    if not getattr(workflow, "local_exec", False) or not hasattr(dag, "needrun_jobs"):
        return False
    return any(job.rule.name == rule for job in dag.needrun_jobs())


# --- Snakemake's directory lock after a run that was killed -----------------------------------
#
# Snakemake locks the files a run will write in ``.snakemake/locks`` and removes the lock when it
# ends, also on Ctrl-C; a run killed outright leaves it behind, and every later run stops with
# "Directory cannot be locked" until someone runs ``snakemake --unlock``. The lock does not say
# who holds it, so the workflow records its own owner beside it once the run has started
# (``onstart``, after Snakemake has taken the lock): host, process id and the process's start
# time. A later run removes the lock only when that owner is a process of this host that no
# longer exists, and only when no lock file is newer than the record (a run that has locked but
# not yet started is left alone). Anything else, a live run or a run on another host sharing the
# directory, keeps its lock.

OWNER_FILE = "glueperf-lock-owner.json"
SNAKEMAKE_LOCKS = "locks"  # FilePersistence._lockdir, under .snakemake


def record_lock_owner(snakemake_dir=".snakemake") -> None:
    """Called by the running Snakemake process once it holds the lock."""
    import psutil

    directory = Path(snakemake_dir)
    directory.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    owner = {"host": socket.gethostname(), "pid": me.pid, "started": me.create_time()}
    temporary = directory / f".{OWNER_FILE}.{me.pid}.tmp"
    temporary.write_text(json.dumps(owner) + "\n")
    os.replace(temporary, directory / OWNER_FILE)


def remove_stale_lock(snakemake_dir=".snakemake") -> str | None:
    """Remove the lock of a dead run recorded by ``record_lock_owner``; say what was removed."""
    directory = Path(snakemake_dir)
    locks = sorted((directory / SNAKEMAKE_LOCKS).glob("*.lock"))
    record = directory / OWNER_FILE
    if not locks or not record.is_file():
        return None
    try:
        owner = json.loads(record.read_text())
        host, pid, started = owner["host"], int(owner["pid"]), float(owner["started"])
        recorded_at = record.stat().st_mtime
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or is_running(pid, started):
        return None
    if any(lock.stat().st_mtime > recorded_at for lock in locks):
        return None  # taken after the record was written: by a run that has not started yet
    for lock in locks:
        lock.unlink(missing_ok=True)
    record.unlink(missing_ok=True)
    return (
        f"glueperf: removed the Snakemake lock of an earlier run (process {pid}) that ended "
        "without unlocking (killed?); its unfinished jobs run again (rerun-incomplete)"
    )


def is_running(pid: int, started: float) -> bool:
    """Whether the process that had ``pid`` and started at ``started`` still exists."""
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists but cannot be inspected: assume it is the owner
        return True


# What the job scheduler's timer calls (JobScheduler._schedule_reevalutation, Snakemake 9.27.1).
SCHEDULER_TIMER = "JobScheduler._schedule_reevalutation.<locals>.<lambda>"


def cancel_scheduler_timers() -> int:
    """Cancel the job scheduler's pending timers (see above); how many there were. Only for
    the end of a run: while it runs, they wake the scheduler for jobs held back by its rate
    limit."""
    timers = [
        thread
        for thread in threading.enumerate()
        if isinstance(thread, threading.Timer)
        and getattr(thread.function, "__qualname__", "") == SCHEDULER_TIMER
    ]
    for timer in timers:
        timer.cancel()
    return len(timers)
