"""GPU-side jobs forked from a server that has done their imports: torch is imported once per
Snakemake run and host, not once per job.

Each ``prepare_model`` and ``evaluate_model`` job is its own Python process that would import
torch, numpy, pyarrow, tokenizers and the engine before any work: about 2 s on a GPU host, most
of a small evaluation, paid again by every job (BENCHMARKS.md). Instead, the job's process (the
one Snakemake started) asks this run's fork server for a child: a copy of a process that has
imported all that and started nothing (no CUDA, no threads). The child takes the job's standard
streams, working directory and environment, runs the job's function as the script would have
(``glueperf.infra.script.run_script``: its log, its locks, its errors) and reports its exit status,
which the job's process exits with. The job is still a process of its own: its own CUDA
context, device lock, memory peak and exit status; it dies if the job's process is killed.

- One server per Snakemake process (``SNAKEMAKE_PID``, set by the workflow when it is parsed),
  Python and module path: started by the first job that needs it, it exits once that Snakemake
  has ended (or after ``IDLE_S`` without a job). Inside a SLURM job, the job's own Snakemake
  is the owner, so a server never serves two allocations.
- ``startup_s`` still runs from the start of the job's own process (``JOB_STARTED``).
- The memory peak (``peak_rss_mb``) is the child's, over its life: the imports' memory comes
  with the fork; pages of the libraries that the child never touches are not counted, as they
  would be in a process that loaded them itself.
- Snakemake's ``benchmark:`` file measures the job's own process, which only waits: its seconds
  are the job's, its memory and CPU columns are not the evaluation's (the metrics row has those).
- Anything that keeps the server from starting, ``GLUEPERF_FORK_SERVER=0``, and any system but
  Linux make the job run in its own process as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from importlib import import_module
from pathlib import Path

from glueperf.infra.locks import directory_problem, lock_file
from glueperf.measure import JOB_STARTED

SNAKEMAKE_PID = "GLUEPERF_SNAKEMAKE_PID"
SWITCH = "GLUEPERF_FORK_SERVER"
# What the GPU-side jobs import (glueperf/infra/evaluate_job.py and prepare_job.py, inside their
# functions); transformers is left to prepare_model and to models that are not prepared.
PRELOAD = (
    "torch",
    "numpy",
    "pyarrow.parquet",
    "tokenizers",
    "psutil",
    "glueperf.evaluation",
    "glueperf.prepared",
    "glueperf.fetch",
    "glueperf.outputs",
    "glueperf.infra.script",
    "snakemake.script",  # the job's ``snakemake`` object is unpickled with it
)
IDLE_S = 3600.0
START_TIMEOUT_S = 300.0
STATUS = struct.Struct("!i")
LENGTH = struct.Struct("!Q")


def forked() -> bool:
    """Whether this process is a job forked from the fork server (the metrics row says so)."""
    return JOB_STARTED in os.environ


def run_job(function, snakemake, log_path) -> None:
    """Run ``function(snakemake)`` as ``run_script`` does, in a child of this run's fork server
    (started here if need be), and exit with its status; in this process where there is none."""
    from glueperf.infra.script import run_script
    from glueperf.measure import process_start_s

    address = server_address()
    connection = address and connect(address)
    if connection is None:
        run_script(lambda: function(snakemake), log_path)
        return
    request = {
        "function": f"{function.__module__}:{function.__qualname__}",
        "snakemake": snakemake,
        "log": str(log_path),
        "cwd": os.getcwd(),
        "environ": {**os.environ, JOB_STARTED: repr(process_start_s())},
    }
    payload = pickle.dumps(request)
    sys.stdout.flush()
    sys.stderr.flush()
    socket.send_fds(connection, [LENGTH.pack(len(payload))], standard_streams())
    connection.sendall(payload)
    child = receive_status(connection)
    status = receive_status(connection)
    if status is None:
        print(
            f"glueperf: the job's process {child} ended without an exit status (killed?); "
            f"its log: {log_path}",
            file=sys.stderr,
        )
        status = 1
    sys.exit(status)


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


def server_address() -> str | None:
    """This run's server's socket for this Python and module path; None when jobs are not to
    be forked (outside Snakemake, turned off, or not on Linux)."""
    owner = os.environ.get(SNAKEMAKE_PID)
    # Linux only: macOS forbids much of its system frameworks (Metal, for MPS) after a fork.
    if not owner or os.environ.get(SWITCH, "1") == "0" or sys.platform != "linux":
        return None
    directory = socket_directory()
    if directory is None:
        return None
    key = hashlib.sha256(json.dumps([sys.executable, search_path(), owner]).encode()).hexdigest()
    return str(directory / f"{owner}-{key[:12]}.sock")


def socket_directory() -> Path | None:
    """Where this user's servers listen: a directory only they may enter, since whoever can
    connect has the server run code as them (also checked on every connection). None if it is
    not theirs alone."""
    directory = Path("/tmp") / f"glueperf-forkserver-{os.getuid()}"
    return None if directory_problem(directory, private=True) else directory


def search_path() -> list[str]:
    return [os.path.abspath(entry) for entry in sys.path]


def connect(address: str) -> socket.socket | None:
    """A connection to the server at ``address``, which is started if it is not running; None if
    it cannot be started (its log says why)."""
    connection = try_connect(address)
    if connection:
        return connection
    # One job starts the server; the others wait for it here, then connect.
    starting = lock_file(f"{address}.start", wait=True)
    try:
        connection = try_connect(address)
        if connection:
            return connection
        with open(f"{address}.log", "w") as log:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
                    "from glueperf.infra.forkserver import serve; "
                    "serve(sys.argv[2], int(sys.argv[3]))",
                    json.dumps(search_path()),
                    address,
                    os.environ[SNAKEMAKE_PID],
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=True,  # not in the job's process group: it outlives the job
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while server.poll() is None and time.monotonic() < deadline:
            connection = try_connect(address)
            if connection:
                return connection
            time.sleep(0.02)
    finally:
        os.close(starting)
    log = Path(f"{address}.log")
    why = f"see {log}" if log.exists() else "its Snakemake has ended"
    print(
        f"glueperf: the fork server did not start ({why}); this job imports for itself",
        file=sys.stderr,
    )
    return None


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


# --- the server ------------------------------------------------------------------------------


def serve(address: str, owner: int) -> None:
    """Import what the jobs need, then fork a child for each connection until the owning
    Snakemake has ended (or nothing came for IDLE_S)."""
    for name in PRELOAD:
        try:
            import_module(name)
        except ImportError as error:
            print(f"fork server: {name} not preloaded: {error}", flush=True)
    owner_started = started(owner)
    if owner_started is None:  # nothing to serve: no log to keep either
        remove_files(address)
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound under another name and renamed: the address accepts only once the imports are done.
    staging = f"{address}.{os.getpid()}"
    listener.bind(staging)
    listener.listen(64)
    os.replace(staging, address)
    print(f"fork server {os.getpid()} ready at {address}", flush=True)
    last_job = time.monotonic()
    try:
        while time.monotonic() - last_job < IDLE_S:
            if started(owner) != owner_started:  # ended (or its number taken by another)
                break
            ready, _, _ = select.select([listener], [], [], 0.5)
            reap()
            if ready:
                connection, _ = listener.accept()
                if not same_user(connection):
                    connection.close()
                    continue
                sys.stdout.flush()
                child = os.fork()
                if child == 0:
                    listener.close()
                    run_child(connection)  # never returns
                connection.close()
                last_job = time.monotonic()
    finally:
        remove_files(address)


def remove_files(address: str) -> None:
    """The socket, its start lock and the server's log."""
    for leftover in (address, f"{address}.start", f"{address}.log"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)


def same_user(connection: socket.socket) -> bool:
    """Whether the process at the other end is this user's (Linux says; elsewhere the socket's
    private directory is the only guard)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    _, uid, _ = struct.unpack("3i", credentials)
    return uid == os.getuid()


def started(pid: int) -> float | None:
    """When process ``pid`` started; None if there is none."""
    import psutil

    from glueperf.measure import process_start_s

    try:
        return process_start_s(pid)
    except (OSError, psutil.Error):
        return None


def reap() -> None:
    """Collect the children that have ended (their parent is this server)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run_child(connection: socket.socket) -> None:
    """In the child: become the job (its streams, directory, environment), run its function as
    its script would, send the exit status and exit."""
    status = 1
    try:
        header, streams, _, _ = socket.recv_fds(connection, LENGTH.size, 3)
        payload = receive_exactly(connection, LENGTH.unpack(header)[0])
        for target, stream in zip((0, 1, 2), streams, strict=True):
            os.dup2(stream, target)
            os.close(stream)
        connection.sendall(STATUS.pack(os.getpid()))
        # The job's process gone (Snakemake cancelled the job): this one goes too.
        threading.Thread(target=die_with_job, args=(connection,), daemon=True).start()
        request = pickle.loads(payload)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        module, _, name = request["function"].partition(":")
        function = getattr(import_module(module), name)
        status = run_as_script(function, request["snakemake"], request["log"])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            connection.sendall(STATUS.pack(status))
        finally:
            os._exit(status)


def run_as_script(function, snakemake, log_path) -> int:
    from glueperf.infra.script import run_script

    try:
        run_script(lambda: function(snakemake), log_path)
    except SystemExit as leaving:
        code = leaving.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def receive_exactly(connection: socket.socket, size: int) -> bytes:
    parts, left = [], size
    while left:
        part = connection.recv(min(left, 1 << 20))
        if not part:
            raise ConnectionError("the job's process closed the connection")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def die_with_job(connection: socket.socket) -> None:
    """The job's process sends nothing more: the connection ends when it does."""
    with contextlib.suppress(OSError):
        connection.recv(1)
    os.kill(os.getpid(), signal.SIGKILL)
