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
