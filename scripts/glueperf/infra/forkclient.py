"""The jobs' side of the fork servers (glueperf/infra/forkserver.py): whether a job runs forked,
where a run's servers listen, asking one for a child, and starting one; the results' jobs' way
in (``run_post_job``; the evaluations' and light jobs' is glueperf/infra/jobs_client.py).

The standard library alone, and little of it: the process Snakemake starts for a job imports
this and little more (about 0.03 s of start, paid by every job), also in the lean envs of the
table's and the plots' jobs. So json and subprocess are imported only where a server is started,
the job's frame only where the job runs in this process (``run_here``), and each job module
imports what its function needs inside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import marshal
import os
import socket
import struct
import sys

from glueperf.clock import JOB_STARTED
from glueperf.infra.locks import directory_problem, lock_file

SNAKEMAKE_PID = "GLUEPERF_SNAKEMAKE_PID"
SWITCH = "GLUEPERF_FORK_SERVER"
# Set (to "1") by the run's start when evaluations run on this host: light jobs start the server.
GPU_JOBS_HERE = "GLUEPERF_GPU_JOBS_HERE"
# Set as the Snakefile is read (glueperf.infra.startup.server_start): JSON of the run's model
# directories (``models``: the server imports their architectures) and whether the server forks a
# child ahead as soon as it is ready (``ahead``).
SERVER_START = "GLUEPERF_SERVER_START"
# The servers of a run (what each imports: forkserver.ROLES): the evaluations' (and light
# jobs'), and the results' (the table's and the plots'); the modules a Python must have for each.
JOBS, POST = "jobs", "post"
# The servers' code, which a server runs by name: a forked job runs in its frame, so it is the
# job's code too, though the job's own process never imports it (glueperf/infra/plan.py).
SERVER_MODULE = "glueperf.infra.forkserver"
NEEDED = {JOBS: ("torch", "transformers"), POST: ("pandas", "matplotlib")}
# In the server, torch asks NVML whether CUDA is there, which opens no CUDA context.
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
# What a child forked ahead of a role's next job starts before the job comes (forkserver.py:
# ChildAhead): a function of the run's model directories that returns None where there is
# nothing to start, else what it started, whose ``accepts(request)`` says whether a job may use
# it. Named to the server as it starts, by the job that starts it.
AHEAD = {JOBS: "glueperf.infra.evaluate_job:start_ahead"}
# Set to "0" in the jobs' environment, the server forks no child ahead.
AHEAD_SWITCH = "GLUEPERF_FORK_AHEAD"
STATUS = struct.Struct("!i")
LENGTH = struct.Struct("!Q")


def forked() -> bool:
    """Whether this process is a job forked from the fork server (the metrics row says so)."""
    return JOB_STARTED in os.environ


def run_models() -> list[str]:
    """The directories of the run's models that exist (absolute): the config's, as the workflow
    gave them to its jobs (``SERVER_START``)."""
    return [directory for directory in server_start()["models"] if os.path.isdir(directory)]


def ahead_at_start() -> bool:
    """Whether the run's server forks a child ahead as soon as it is ready: where any of the
    config's evaluations may run off the CPU, so that the first evaluation finds CUDA started
    too (``SERVER_START``, from glueperf.infra.startup.server_start)."""
    return bool(server_start()["ahead"])


def server_start() -> dict:
    """What the workflow told its jobs of the server to start: ``models``, ``ahead``; no
    models and no child ahead where it told them nothing (a script run by hand)."""
    import json  # only where a job starts a server

    told = os.environ.get(SERVER_START)
    return json.loads(told) if told else {"models": [], "ahead": False}


def run_post_job(function, job, log_path) -> None:
    """``jobs_client.run_job`` for the jobs that make the results of the evaluations (the
    table, the plots): forked from this run's results server (``POST``) when it runs or is
    starting, else run here. The evaluations' server starts it as it starts itself, so that its
    imports overlap its own, before any evaluation runs."""
    address = server_address(POST)
    forked_job(address and connect_when_started(address), function, job, log_path, None)


def forked_job(connection, function, job, log_path, server_imports, ahead=False) -> None:
    """The job run in a child through ``connection`` to the server, exiting with its status;
    in this process when there is no connection, or the server forked no child. ``ahead``:
    whether a child forked ahead of the job may run it, or a function of the job that says so
    (``jobs_client.run_job``)."""
    from glueperf.clock import process_start_s

    if connection is None:
        run_here(function, job, log_path)
        return
    request = {
        "function": qualified_name(function),
        "server_imports": server_imports and qualified_name(server_imports),
        "ahead": qualified_name(ahead) if callable(ahead) else bool(ahead),
        "job": job.message(),
        "log": str(log_path),
        "cwd": os.getcwd(),
        "environ": {**os.environ, JOB_STARTED: repr(process_start_s())},
    }
    payload = marshal.dumps(request)
    sys.stdout.flush()
    sys.stderr.flush()
    socket.send_fds(connection, [LENGTH.pack(len(payload))], standard_streams())
    connection.sendall(payload)
    child = receive_status(connection)
    if child is None:  # the server declined it (see serve): nothing ran yet
        connection.close()
        print(
            "glueperf: the fork server forked no child (its log says why); this job runs in its "
            "own process",
            file=sys.stderr,
        )
        run_here(function, job, log_path)
        return
    status = receive_status(connection)
    if status is None:
        print(
            f"glueperf: the job's process {child} ended without an exit status (killed?); "
            f"its log: {log_path}",
            file=sys.stderr,
        )
        status = 1
    sys.exit(status)


def run_here(function, job, log_path) -> None:
    """The job in this process, as its script runs it. The frame is imported here, not with
    this module: it costs a job that is forked 0.02 s."""
    from glueperf.infra.script import run_script

    run_script(lambda: function(job), log_path)


def standard_streams() -> list[int]:
    """This process's stdin, stdout and stderr, for the child to take; /dev/null for any that
    is closed (a Snakemake started without standard input)."""
    streams = []
    for stream in (0, 1, 2):
        try:
            os.fstat(stream)
        except OSError:
            stream = os.open(os.devnull, os.O_RDWR)
        streams.append(stream)
    return streams


def server_address(role: str = JOBS) -> str | None:
    """This run's server's socket for this Python, module path and ``role`` (a key of ROLES);
    None when jobs are not to be forked (outside Snakemake, turned off, or not on Linux)."""
    owner = os.environ.get(SNAKEMAKE_PID)
    # Linux only: macOS forbids much of its system frameworks (Metal, for MPS) after a fork.
    if not owner or os.environ.get(SWITCH, "1") == "0" or sys.platform != "linux":
        return None
    directory = socket_directory()
    if directory is None:
        return None
    key = hashlib.sha256("\0".join([sys.executable, *search_path(), owner]).encode()).hexdigest()
    return os.path.join(directory, f"{owner}-{key[:12]}{'' if role == JOBS else f'-{role}'}.sock")


def socket_directory() -> str | None:
    """Where this user's servers listen: a directory only they may enter, since whoever can
    connect has the server run code as them (also checked on every connection). None if it is
    not theirs alone."""
    directory = f"/tmp/glueperf-forkserver-{os.getuid()}"
    return None if directory_problem(directory, private=True) else directory


def search_path() -> list[str]:
    return [os.path.abspath(entry) for entry in sys.path]


def connect_when_started(address: str) -> socket.socket | None:
    """A connection to the server at ``address`` when it runs, or once it has started where it
    is being started; None where neither (nothing is started here)."""
    connection = try_connect(address)
    if connection:
        return connection
    starting = lock_file(f"{address}.start")
    if starting is not None:  # nobody is starting it
        os.close(starting)
        return None
    os.close(lock_file(f"{address}.start", wait=True))  # the server lets go once it accepts
    return try_connect(address)


def start_in_background(address: str, role: str = JOBS) -> None:
    """Start the ``role`` server at ``address`` without waiting for it, unless it is being
    started or running already, or this Python lacks what it serves (a light job's own
    environment)."""
    from importlib.util import find_spec

    if not all(find_spec(name) for name in NEEDED[role]):
        return
    starting = lock_file(f"{address}.start")
    if starting is None:  # being started
        return
    try:
        running = try_connect(address)
        if running:
            running.close()
        else:
            start_server(address, starting, role)
    finally:
        os.close(starting)  # the server holds its own copy until it accepts jobs


def start_server(address: str, start_lock: int, role: str = JOBS) -> object:
    """The server process (a ``subprocess.Popen``) for ``address``, given the start lock's
    descriptor to keep until it accepts jobs (or ends), and its ``role`` (what it imports).
    The evaluations' server is also given the run's model directories, whose architectures it
    imports, and whether it forks a child ahead as soon as it is ready (the run's evaluations
    may run off the CPU): ``run_models``, ``ahead_at_start``."""
    # Above the standard streams (the lock is fd 0 in a job started without standard input),
    # which the server's own take.
    start_lock = fcntl.fcntl(start_lock, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        return spawn_server(address, start_lock, role)
    finally:
        os.close(start_lock)


def server_settings(role: str) -> dict[str, str]:
    """What the server's environment sets over the jobs': torch's CUDA check through NVML, and
    for the results' server matplotlib drawing to files alone."""
    return {NVML_CHECK: "1", **({"MPLBACKEND": "Agg"} if role == POST else {})}


def spawn_server(address: str, start_lock: int, role: str) -> object:
    """The server's process (a ``subprocess.Popen``: imported here, as only a job that starts
    a server needs it, as json is)."""
    import json
    import subprocess

    model_dirs, ahead = (run_models(), ahead_at_start()) if role == JOBS else ([], False)
    settings = server_settings(role)
    # What the server needs to fork a child ahead in the jobs' environment before any job came:
    # what starts it, and this job's values of what the server's environment sets.
    start = {
        "ahead": AHEAD.get(role) if ahead else None,
        "jobs_values": {name: os.environ.get(name) for name in settings},
    }
    with open(f"{address}.log", "w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
                f"from {SERVER_MODULE} import serve; "
                "serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]), "
                "sys.argv[6], json.loads(sys.argv[7]))",
                json.dumps(search_path()),
                address,
                os.environ[SNAKEMAKE_PID],
                str(start_lock),
                json.dumps(model_dirs),
                role,
                json.dumps(start),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            env={**os.environ, **settings},
            pass_fds=(start_lock,),
            start_new_session=True,  # not in the job's process group: it outlives the job
        )


def try_connect(address: str) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
    except OSError:  # none yet, or one left by a server that was killed
        connection.close()
        return None
    return connection


def receive_status(connection: socket.socket) -> int | None:
    data = b""
    while len(data) < STATUS.size:
        chunk = connection.recv(STATUS.size - len(data))
        if not chunk:
            return None
        data += chunk
    return STATUS.unpack(data)[0]


def qualified_name(function) -> str:
    return f"{function.__module__}:{function.__qualname__}"
