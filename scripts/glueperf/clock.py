"""When a job began: the clock of process start times, and a job's age on it (its start-up and
imports, ``startup_s``). Standard library alone on Linux: the fork server's clients, which
every job's process imports, need nothing more."""

from __future__ import annotations

import os
import time

# No pathlib: every job's own process imports this (glueperf/infra/forkclient.py).
PROC_STAT = "/proc/self/stat"
# When the job began, on now_s()'s clock, for a job that runs in another process than the one
# started for it (a child of the fork server, glueperf/infra/forkserver.py): set by what runs it.
JOB_STARTED = "GLUEPERF_JOB_STARTED"


def now_s() -> float:
    """The clock that process start times are read in: seconds since boot on Linux."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if os.path.exists(PROC_STAT) else time.time()


def process_start_s(pid: int | None = None) -> float:
    """When a process started, on ``now_s()``'s clock. On Linux the kernel's own record, to its
    tick (10 ms); not psutil's ``create_time()``, which adds the boot time that the kernel
    states in whole seconds, so that every process's age came out up to 1 s too long."""
    if os.path.exists(PROC_STAT):
        with open(f"/proc/{pid or 'self'}/stat") as file:
            stat = file.read()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
        return ticks / os.sysconf("SC_CLK_TCK")
    import psutil

    return psutil.Process(pid).create_time()


def job_age_s() -> float:
    """Seconds since the job began: since its process started, or, for a job run in a child of
    the fork server (glueperf/infra/forkserver.py), since the process Snakemake started for it."""
    started = os.environ.get(JOB_STARTED)
    return now_s() - (float(started) if started else process_start_s())
