"""How the evaluations and the light jobs run: in a child of this run's evaluations' fork server
(glueperf/infra/forkserver.py), asked for through glueperf/infra/forkclient.py, started here if
need be. Their scripts import this module; a forked job runs in the server's frame, so the
server's code is theirs too (glueperf/infra/plan.py, ``RUNS_IN``). The results' jobs have
``forkclient.run_post_job`` instead.
"""

from __future__ import annotations

import os
import socket
import sys
import time

from glueperf.infra.forkclient import (
    GPU_JOBS_HERE,
    JOBS,
    POST,
    forked_job,
    server_address,
    start_in_background,
    start_server,
    try_connect,
)
from glueperf.infra.locks import lock_file

# How long a job waits for the server it started to accept it.
START_TIMEOUT_S = 300.0


def run_job(function, job, log_path, server_imports=None, ahead=False) -> None:
    """Run ``function(job)`` as ``run_script`` does, in a child of this run's fork server
    (started here if need be), and exit with its status; in this process where there is none.
    ``server_imports(job, cwd)``: modules for the server to import first; ``ahead``: whether
    the child forked ahead may run it (glueperf/infra/forkserver.py), or a function of the job
    that says so. The server calls both, on the job it is sent: this process never reads the
    job's description."""
    address = server_address()
    connection = address and connect(address)
    forked_job(connection, function, job, log_path, server_imports, ahead)


def run_light_job(function, job, log_path) -> None:
    """``run_job`` for a job that needs none of the server's imports: forked when this run's
    server is ready, else run here at once (starting the server in the background, for the
    evaluations to come, where they run on this host), or forked from the results' server where
    that one is ready."""
    address = server_address()
    connection = address and try_connect(address)
    if connection is None and address and os.environ.get(GPU_JOBS_HERE) == "1":
        start_in_background(address, JOBS)
        results_server = server_address(POST)  # started by that one, ready sooner
        connection = results_server and try_connect(results_server)
    forked_job(connection, function, job, log_path, None)


def connect(address: str) -> socket.socket | None:
    """A connection to the evaluations' server at ``address``, which is started if it is not
    running; None if it cannot be started (its log says why)."""
    connection = try_connect(address)
    if connection:
        return connection
    # One process starts the server and hands it the start lock, which the server keeps until
    # it accepts jobs: the others wait for it here, then connect.
    starting = lock_file(f"{address}.start", wait=True)
    try:
        connection = try_connect(address)
        if connection:
            return connection
        server = start_server(address, starting, JOBS)
        deadline = time.monotonic() + START_TIMEOUT_S
        while server.poll() is None and time.monotonic() < deadline:
            connection = try_connect(address)
            if connection:
                return connection
            time.sleep(0.02)
    finally:
        os.close(starting)
    log = f"{address}.log"
    why = f"see {log}" if os.path.exists(log) else "its Snakemake has ended"
    print(
        f"glueperf: the fork server did not start ({why}); this job imports for itself",
        file=sys.stderr,
    )
    return None
