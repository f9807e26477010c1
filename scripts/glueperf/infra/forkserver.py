"""Jobs forked from a server that has done their imports: torch and transformers are imported
once per Snakemake run and host, not once per job.

Each ``evaluate_model`` job is its own Python process that would import torch, transformers,
numpy, pyarrow, tokenizers and the engine before any work: about 6 s on a GPU host (transformers
alone 4 s), more than most evaluations take, paid again by every job (BENCHMARKS.md). Instead,
the job's process (the one Snakemake started) asks this run's fork server for a child: a copy of
a process that has imported all that and started nothing (no CUDA, no threads). The child takes
the job's standard streams, working directory and environment, runs the job's function as the
script would have (``glueperf.infra.script.run_script``: its log, its locks, its errors) and
reports its exit status, which the job's process exits with. The job is still a process of its
own: its own CUDA context, device lock, memory peak and exit status; it dies if the job's process
is killed.

- One server per Snakemake process (``SNAKEMAKE_PID``, set by the workflow when it is parsed),
  Python and module path: started by the first job that needs it, it exits once that Snakemake
  has ended (or after ``IDLE_S`` without a job). Inside a SLURM job, the job's own Snakemake
  is the owner, so a server never serves two allocations.
- Light jobs (``run_light_job``: validation, a model's checksums) are forked too when the server
  is ready, and otherwise run in their own process at once: they never wait for its imports. In
  a run whose evaluations run on this host (``GPU_JOBS_HERE``, set at the run's start), the first
  of them also starts the server, in the background, so that its imports overlap the light jobs
  instead of delaying the first evaluation (with ``--cores 1`` the server imports on a second
  core meanwhile).
- The server also imports the module of each of the run's models' architectures (transformers
  imports it on a model's first load: two seconds for BERT's on a CPU), once for all their
  evaluations: those whose directory exists when it starts (``run_models``), and any other that
  a job names (``server_imports``) before it is forked; every later child has them.
- The server never touches the GPU: nothing it imports may start CUDA, whose state a forked
  child cannot use. torch's CUDA check uses NVML in it (``PYTORCH_NVML_BASED_CUDA_CHECK``), and
  should the GPU driver be initialized all the same (``gpu_driver_initialized``), the server
  stops serving and the jobs run in their own processes.
- ``startup_s`` still runs from the start of the job's own process (``JOB_STARTED``).
- The memory peak (``peak_rss_mb``) is the child's, over its life: the imports' memory (torch's
  and transformers', as an evaluation that imports them itself has) comes with the fork; pages of
  the libraries' code that the child never touches are not counted, as they would be in a
  process that loaded them itself.
- Snakemake's ``benchmark:`` file measures the job's own process, which only waits: its seconds
  are the job's, its memory and CPU columns are not the evaluation's (the metrics row has those).
- Anything that keeps the server from starting, ``GLUEPERF_FORK_SERVER=0``, and any system but
  Linux make the job run in its own process as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
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
# Set (to "1") by the run's start when evaluations run on this host: light jobs start the server.
GPU_JOBS_HERE = "GLUEPERF_GPU_JOBS_HERE"
# What the jobs import (glueperf/infra/*_job.py, inside their functions).
PRELOAD = (
    "torch",
    "numpy",
    "pyarrow.parquet",
    "tokenizers",
    "psutil",
    "transformers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "glueperf.evaluation",
    "glueperf.fetch",
    "glueperf.outputs",
    "glueperf.infra.script",
    "glueperf.infra.evaluate_job",
    "glueperf.infra.validate_job",
    "glueperf.infra.hash_job",
    "snakemake.script",  # the job's ``snakemake`` object is unpickled with it
)
# Modules a server must have been able to import to serve the evaluations.
NEEDED = ("torch", "transformers")
# In the server, torch asks NVML whether CUDA is there, which opens no CUDA context.
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
IDLE_S = 3600.0
START_TIMEOUT_S = 300.0
STATUS = struct.Struct("!i")
LENGTH = struct.Struct("!Q")


def forked() -> bool:
    """Whether this process is a job forked from the fork server (the metrics row says so)."""
    return JOB_STARTED in os.environ


def run_job(function, snakemake, log_path, server_imports=None) -> None:
    """Run ``function(snakemake)`` as ``run_script`` does, in a child of this run's fork server
    (started here if need be), and exit with its status; in this process where there is none.
    ``server_imports(snakemake, cwd)``: modules for the server to import first (see above)."""
    address = server_address()
    connection = address and connect(address, run_models(snakemake))
    forked_job(connection, function, snakemake, log_path, server_imports)


def run_light_job(function, snakemake, log_path) -> None:
    """``run_job`` for a job that needs none of the server's imports: forked when this run's
    server is ready, else run here at once (starting the server in the background, for the
    evaluations to come, where they run on this host)."""
    address = server_address()
    connection = address and try_connect(address)
    if connection is None and address and os.environ.get(GPU_JOBS_HERE) == "1":
        start_in_background(address, run_models(snakemake))
    forked_job(connection, function, snakemake, log_path, None)


def forked_job(connection, function, snakemake, log_path, server_imports) -> None:
    """The job run in a child through ``connection`` to the server, exiting with its status;
    in this process when there is no connection, or the server forked no child."""
    from glueperf.infra.script import run_script
    from glueperf.measure import process_start_s

    if connection is None:
        run_script(lambda: function(snakemake), log_path)
        return
    request = {
        "function": qualified_name(function),
        "server_imports": server_imports and qualified_name(server_imports),
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
    if child is None:  # the server declined it (see serve): nothing ran yet
        connection.close()
        print(
            "glueperf: the fork server forked no child (its log says why); this job runs in its "
            "own process",
            file=sys.stderr,
        )
        run_script(lambda: function(snakemake), log_path)
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


def run_models(snakemake) -> list[str]:
    """The directories of the run's models that exist (absolute), from the job's config."""
    from glueperf.fetch import model_location

    models = (getattr(snakemake, "config", None) or {}).get("models") or {}
    found = [
        os.path.abspath(model_location(name, entry["source"]))
        for name, entry in models.items()
        if isinstance(entry, dict) and isinstance(entry.get("source"), str)
    ]
    return [directory for directory in found if os.path.isdir(directory)]


def connect(address: str, model_dirs: list[str]) -> socket.socket | None:
    """A connection to the server at ``address``, which is started if it is not running; None if
    it cannot be started (its log says why)."""
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
        server = start_server(address, starting, model_dirs)
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


def start_in_background(address: str, model_dirs: list[str]) -> None:
    """Start the server at ``address`` without waiting for it, unless it is being started or
    running already, or this Python lacks what it serves (a light job's own environment)."""
    from importlib.util import find_spec

    if not all(find_spec(name) for name in NEEDED):
        return
    starting = lock_file(f"{address}.start")
    if starting is None:  # being started
        return
    try:
        running = try_connect(address)
        if running:
            running.close()
        else:
            start_server(address, starting, model_dirs)
    finally:
        os.close(starting)  # the server holds its own copy until it accepts jobs


def start_server(address: str, start_lock: int, model_dirs: list[str]) -> subprocess.Popen:
    """The server process for ``address``, given the start lock's descriptor to keep until it
    accepts jobs (or ends), and the model directories whose architectures it imports."""
    # Above the standard streams (the lock is fd 0 in a job started without standard input),
    # which the server's own take.
    start_lock = fcntl.fcntl(start_lock, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        return spawn_server(address, start_lock, model_dirs)
    finally:
        os.close(start_lock)


def spawn_server(address: str, start_lock: int, model_dirs: list[str]) -> subprocess.Popen:
    with open(f"{address}.log", "w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
                "from glueperf.infra.forkserver import serve; "
                "serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]))",
                json.dumps(search_path()),
                address,
                os.environ[SNAKEMAKE_PID],
                str(start_lock),
                json.dumps(model_dirs),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            env={**os.environ, NVML_CHECK: "1"},
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


# --- the server ------------------------------------------------------------------------------


def serve(
    address: str, owner: int, start_lock: int | None = None, model_dirs: tuple[str, ...] = ()
) -> None:
    """Import what the jobs need (and the architectures of the models in ``model_dirs``), then
    fork a child for each connection until the owning Snakemake has ended (or nothing came for
    IDLE_S); ``start_lock`` is let go once jobs are accepted. A server that finds the GPU driver
    initialized in its process declines every job from then on (each runs in its own process): a
    child could not use CUDA."""
    for name in PRELOAD:
        try:
            import_module(name)
        except ImportError as error:
            print(f"fork server: {name} not preloaded: {error}", flush=True)
    import_architectures(model_dirs)
    declining = refuses_to_fork()
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
    if start_lock is not None:
        os.close(start_lock)
    print(f"fork server {os.getpid()} ready at {address}", flush=True)
    last_job = time.monotonic()
    try:
        while time.monotonic() - last_job < IDLE_S:
            if started(owner) != owner_started:  # ended (or its number taken by another)
                break
            ready, _, _ = select.select([listener], [], [], 0.5)
            reap()
            if not ready:
                continue
            connection, _ = listener.accept()
            last_job = time.monotonic()
            job = receive_job(connection) if same_user(connection) else None
            if job is not None and not declining:
                declining = not prepare_for(job[0])
            if job is None or declining:
                close_job(connection, job)
                continue
            sys.stdout.flush()
            child = os.fork()
            if child == 0:
                listener.close()
                run_child(connection, *job)  # never returns
            close_job(connection, job)
    finally:
        remove_files(address)


def receive_job(connection: socket.socket) -> tuple[dict, list[int]] | None:
    """The job's request and its standard streams, as ``forked_job`` sends them; None for a
    connection that sends none within a minute (its process then runs the job itself), or
    none at all (a process that only asked whether the server runs)."""
    streams = []
    try:
        connection.settimeout(60)
        header, streams, _, _ = socket.recv_fds(connection, LENGTH.size, 3)
        if not header:
            return None
        request = pickle.loads(receive_exactly(connection, LENGTH.unpack(header)[0]))
        connection.settimeout(None)
        return request, streams
    except Exception:
        traceback.print_exc()
        for stream in streams:
            os.close(stream)
        return None


def close_job(connection: socket.socket, job) -> None:
    """The server's copies of a job's connection and streams (its child has its own)."""
    for stream in job[1] if job else ():
        os.close(stream)
    connection.close()


def prepare_for(request: dict) -> bool:
    """The modules the job asks the server to import (``server_imports``), imported once for
    every later child; whether the server may still fork (``refuses_to_fork``)."""
    name = request.get("server_imports")
    if name:
        try:
            for module in resolve(name)(request["snakemake"], request["cwd"]):
                import_once(module)
        except Exception:  # the job imports for itself, as without the server
            traceback.print_exc()
    return not refuses_to_fork()


def import_architectures(model_dirs) -> None:
    """The module of each model's architecture (glueperf.models.modeling_module)."""
    try:
        from glueperf.models import modeling_module

        for directory in model_dirs:
            module = modeling_module(directory)
            if module:
                import_once(module)
    except Exception:  # each evaluation imports its own, as without the server
        traceback.print_exc()


def import_once(module: str) -> None:
    if module not in sys.modules:
        import_module(module)
        print(f"fork server: imported {module}", flush=True)


def refuses_to_fork() -> bool:
    if gpu_driver_initialized():
        print(
            "fork server: the GPU driver is initialized in this process (an import started "
            "CUDA?): a child could not use CUDA, so every job runs in its own process",
            flush=True,
        )
        return True
    return False


# The CUDA driver's library, and what its functions answer before cuInit.
DRIVER_LIBRARIES = ("libcuda.so",)
CUDA_ERROR_NOT_INITIALIZED = 3


def mapped_driver(process: Path = Path("/proc/self")) -> str | None:
    """The file of the CUDA driver's library where the process has it mapped (Linux: its
    memory maps say), else None."""
    try:
        maps = (process / "maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if any(library in Path(path).name for library in DRIVER_LIBRARIES):
            return path
    return None


def gpu_driver_initialized(process: Path = Path("/proc/self"), driver=None) -> bool:
    """Whether the CUDA driver has been initialized (cuInit) in the process, which a forked
    child could not use. Mapped is not enough: importing torch 2.11 and transformers on an
    H200 host mapped the library without initializing it, and refusing then sent every job
    to a process of its own. cuDeviceGetCount answers CUDA_ERROR_NOT_INITIALIZED before cuInit
    and initializes nothing; where it cannot be asked, the driver counts as initialized.
    ``driver``: the library to ask (tests give a stand-in)."""
    path = mapped_driver(process)
    if path is None:
        return False
    try:
        driver = driver or ctypes.CDLL(path)  # mapped already: the same library, not a new load
        count = ctypes.c_int()
        return driver.cuDeviceGetCount(ctypes.byref(count)) != CUDA_ERROR_NOT_INITIALIZED
    except (OSError, AttributeError):
        return True


def qualified_name(function) -> str:
    return f"{function.__module__}:{function.__qualname__}"


def resolve(name: str):
    """The function of a ``qualified_name``."""
    module, _, function = name.partition(":")
    return getattr(import_module(module), function)


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


def run_child(connection: socket.socket, request: dict, streams: list[int]) -> None:
    """In the child: become the job (its streams, directory, environment), run its function as
    its script would, send the exit status and exit."""
    status = 1
    try:
        for target, stream in zip((0, 1, 2), streams, strict=True):
            os.dup2(stream, target)
            os.close(stream)
        connection.sendall(STATUS.pack(os.getpid()))
        # The job's process gone (Snakemake cancelled the job): this one goes too.
        threading.Thread(target=die_with_job, args=(connection,), daemon=True).start()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        status = run_as_script(resolve(request["function"]), request["snakemake"], request["log"])
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
