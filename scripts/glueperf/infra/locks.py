"""The run lock: one run executes jobs in a directory at a time.

Snakemake's own lock is a set of files, checked and then written: runs started together can all
pass it and then run the same jobs and delete each other's temporaries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

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
