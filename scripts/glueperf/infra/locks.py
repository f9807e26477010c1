"""Snakemake's directory lock after a run that was killed (SIGKILL, power loss).

Snakemake locks the files a run will write in ``.snakemake/locks`` and removes the lock when it
ends, also on Ctrl-C; a run killed outright leaves it behind, and every later run stops with
"Directory cannot be locked" until someone runs ``snakemake --unlock``. The lock does not say who
holds it, so the workflow records its own owner beside it once the run has started (``onstart``,
after Snakemake has taken the lock): host, process id and the process's start time. A later run
removes the lock only when that owner is a process of this host that no longer exists, and only
when no lock file is newer than the record (a run that has locked but not yet started is left
alone). Anything else, a live run or a run on another host sharing the directory, keeps its lock.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import psutil

OWNER_FILE = "glueperf-lock-owner.json"


def record_lock_owner(snakemake_dir=".snakemake") -> None:
    """Called by the running Snakemake process once it holds the lock."""
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
    locks = sorted((directory / "locks").glob("*.lock"))
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
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists but cannot be inspected: assume it is the owner
        return True


RUN_LOCK_FILE = "glueperf-run.lock"
# The open lock file of this process's run, held (flock) until the process ends.
_held: list = []


class RunInProgress(Exception):
    """Another run executes jobs in this directory."""


def hold_run_lock(snakemake_dir=".snakemake") -> None:
    """Take the directory's run lock for the rest of this process's life, or raise
    RunInProgress naming the run that holds it.

    Snakemake's own lock is a set of files, checked and then written: runs started together
    can all pass it and then run the same jobs and delete each other's temporaries. An flock
    is atomic, and the kernel drops it when its process ends, however it ends (also SIGKILL),
    so it never goes stale. Its file is never removed: a run that removed it could leave the
    next run locking a new file beside a live run that holds the old one.
    """
    import fcntl

    if _held:
        return
    directory = Path(snakemake_dir)
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / RUN_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise RunInProgress(
            f"another glueperf run (process {holder}) is in progress in this directory "
            f"({Path.cwd()}); wait for it to end, or run in another directory"
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held.append(descriptor)


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


def executes_jobs(argv=None) -> bool | None:
    """Whether the snakemake command line of this process runs jobs; None when it is not one
    (Snakemake used from Python), or it cannot be read."""
    import sys
    from contextlib import redirect_stderr

    argv = sys.argv if argv is None else argv
    program = Path(argv[0]) if argv else Path()
    if program.name != "snakemake" and program.parent.name != "snakemake":
        return None
    from snakemake.cli import get_argument_parser

    try:
        with open(os.devnull, "w") as null, redirect_stderr(null):
            args = get_argument_parser().parse_args(argv[1:])
    except (SystemExit, Exception):
        return None
    if getattr(args, "report", None) and not getattr(args, "report_after_run", False):
        return False
    return not any(getattr(args, name, None) for name in NOT_EXECUTING)
