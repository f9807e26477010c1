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
  core meanwhile). Until it is ready, they are forked from the results' server (below) once
  that one is, a second or so after the start: a process of their own imports pyarrow and the
  validation anew, 0.1-0.3 s a job, and the light jobs all run before the first evaluation
  (glueperf/infra/plan.py, ``LIGHT_JOBS_FIRST``), while the server imports.
- The table's and the plots' jobs (``run_post_job``, glueperf/infra/forkclient.py) have a server
  of their own (``POST``) that imports pandas and matplotlib, which no evaluation imports (so no
  evaluation's memory peak holds them). The evaluations' server starts it before its own imports,
  while no evaluation runs; those jobs are forked from it when it runs or is starting, and
  otherwise run in their own process.
- The server also imports the module of each of the run's models' architectures (transformers
  imports it on a model's first load: two seconds for BERT's on a CPU), once for all their
  evaluations: those whose directory exists when it starts (``run_models``), and any other that
  a job names (``server_imports``) before it is forked; every later child has them. With
  models, it also builds what transformers builds on any process's first load (0.05 s a job on
  a CPU: glueperf.models.prepare_loading).
- The server never touches the GPU: nothing it imports may start CUDA, whose state a forked
  child cannot use. torch's CUDA check uses NVML in it (``PYTORCH_NVML_BASED_CUDA_CHECK``), and
  should the GPU driver be initialized all the same (``gpu_driver_initialized``), the server
  stops serving and the jobs run in their own processes.
- A child forked ahead: with one GPU to claim, the evaluations' server keeps a child forked
  before the next evaluation comes (``ChildAhead``), which has started CUDA on that GPU and
  warmed up a stand-in of one of the run's models (forkclient's ``AHEAD``:
  glueperf/infra/evaluate_job.py, ``start_ahead``). An evaluation whose environment and device
  it fits is handed to it instead of a new child: its CUDA start is done (``job_process``
  ``ahead``). One at a time, forked again once taken or declined (then in that job's
  environment), never waited for (a job that comes while it starts gets a new child); the first
  as soon as the server is ready where the run's config may evaluate off the CPU
  (``ahead_at_start``), else after the first evaluation; ``GLUEPERF_FORK_AHEAD=0`` turns it off.
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
import marshal
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from importlib import import_module
from pathlib import Path

from glueperf.clock import JOB_STARTED
from glueperf.infra.forkclient import (
    AHEAD,
    AHEAD_SWITCH,
    JOBS,
    LENGTH,
    POST,
    STATUS,
    server_address,
    start_in_background,
)
from glueperf.infra.job import Job

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
    "glueperf.infra.job",  # the job's description is read with it
)
# What the results' jobs import (glueperf/infra/aggregate_job.py and plot_job.py):
# a second server, ``POST``, holds these for them, apart from the evaluations' server, so that no
# evaluation's memory figure includes pandas and matplotlib.
POST_PRELOAD = (
    "pandas",
    "matplotlib",
    "pyarrow.parquet",
    "glueperf.validation",  # the light jobs', until the evaluations' server is ready
    "glueperf.infra.validate_job",
    "glueperf.infra.hash_job",
    "matplotlib.pyplot",
    "glueperf.aggregate",
    "glueperf.plotting",
    "glueperf.report_tables",
    "glueperf.infra.script",
    "glueperf.infra.aggregate_job",
    "glueperf.infra.plot_job",
    "glueperf.infra.job",  # the job's description is read with it
)
# What each of a run's servers imports (glueperf/infra/forkclient.py: JOBS, POST).
ROLES = {JOBS: PRELOAD, POST: POST_PRELOAD}
# What a child forked ahead tells the server: started, nothing to start here, job taken, declined.
READY, NOTHING, TAKEN, DECLINED = b"R", b"X", b"Y", b"N"
IDLE_S = 3600.0
# How long a server that has just become ready looks for jobs already waiting to connect (they
# connect within milliseconds of the start lock's release) before it forks a child ahead.
WAITING_JOBS_S = 0.05


# --- the server ------------------------------------------------------------------------------


def serve(
    address: str,
    owner: int,
    start_lock: int | None = None,
    model_dirs: tuple[str, ...] = (),
    role: str = JOBS,
    start: dict | None = None,
) -> None:
    """Import what the jobs of ``role`` need (and the architectures of the models in
    ``model_dirs``), then fork a child for each connection until the owning Snakemake has ended
    (or nothing came for IDLE_S); ``start_lock`` is let go once jobs are accepted. A server that
    finds the GPU driver initialized in its process declines every job from then on (each runs
    in its own process): a child could not use CUDA. The evaluations' server first starts the
    results' server (``POST``), whose imports are done before its own: no evaluation runs
    meanwhile, so they time none of its work. ``start`` (``spawn_server``'s): what a child
    forked ahead as soon as the server is ready starts, if any, and the values that the jobs
    have of what the server's environment sets."""
    start = start or {}
    # The environment as the job that started the server gave it, before the imports set theirs
    # (BERT's module has torch set TORCHINDUCTOR_CACHE_DIR), for a child ahead forked before any
    # job came.
    environ_at_start = dict(os.environ)
    if role == JOBS:
        results_server = server_address(POST)
        if results_server:
            start_in_background(results_server, POST)
    for name in ROLES[role]:
        began = time.perf_counter()
        try:
            import_module(name)
        except ImportError as error:
            print(f"fork server: {name} not preloaded: {error}", flush=True)
        print(f"fork server: {name} {time.perf_counter() - began:.3f} s", flush=True)
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
    print(f"fork server {os.getpid()} ready at {address}, {age_s():.2f} s old", flush=True)
    last_job = time.monotonic()
    ahead = ChildAhead(role, model_dirs, start.get("ahead"))
    if start.get("ahead") and not declining:
        jobs_environ = jobs_environment(environ_at_start, start.get("jobs_values", {}))
        ahead.fork_at_start(jobs_environ, listener)
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
            if not ahead.hand_over(connection, *job):
                sys.stdout.flush()
                child = os.fork()
                if child == 0:
                    listener.close()
                    ahead.forget()
                    run_child(connection, *job)  # never returns
            close_job(connection, job)
            ahead.fork(job[0], listener)
    finally:
        ahead.forget()  # its child ahead ends with it
        remove_files(address)


def jobs_environment(server_environ: dict, jobs_values: dict) -> dict:
    """The jobs' environment: the server's as it started (``server_environ``) but for what it
    sets over theirs (forkclient.server_settings), which the job that started the server had as
    ``jobs_values`` (None: unset)."""
    environ = dict(server_environ)
    for name, value in jobs_values.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


class ChildAhead:
    """The server's side of its child forked ahead of the next job, at most one at a time
    (``wait_for_job`` is the child's side), for a server of ``role``; what it starts: ``start``,
    named by the job that started the server, else AHEAD's."""

    def __init__(self, role: str, model_dirs=(), start: str | None = None):
        self.role, self.model_dirs = role, list(model_dirs)
        self.named = start
        self.channel: socket.socket | None = None
        self.ready = False
        self.asked = False  # whether a job has asked for a child ahead yet
        self.stopped = False  # one had nothing to start, or failed: no other is forked

    @property
    def start(self) -> str | None:
        return None if self.stopped else self.named or AHEAD.get(self.role)

    def fork_at_start(self, environ: dict, listener: socket.socket) -> None:
        """A child ahead as soon as the server is ready, in the jobs' ``environ``, for a run
        whose evaluations may run off the CPU; unless jobs are already waiting (--cores N): they
        get new children first, and a child ahead follows the first evaluation, as it would."""
        self.asked = True
        waiting, _, _ = select.select([listener], [], [], WAITING_JOBS_S)
        if not waiting:
            self.fork_in(environ, listener)

    def fork(self, request: dict, listener: socket.socket) -> None:
        """A child ahead, in the environment of the jobs (the last job's ``request``'s), once a
        job has asked for one (a run that evaluates on the CPU alone starts no CUDA), unless
        there is one, or the jobs turn it off."""
        self.asked = self.asked or bool(request.get("ahead"))
        self.fork_in(request["environ"], listener)

    def fork_in(self, environ: dict, listener: socket.socket) -> None:
        if not self.asked or self.start is None or self.channel is not None:
            return
        if environ.get(AHEAD_SWITCH) == "0":  # turned off for this job: none for now
            return
        ours, theirs = socket.socketpair()
        sys.stdout.flush()
        if os.fork() == 0:
            listener.close()
            ours.close()
            jobs_environ = {key: value for key, value in environ.items() if key != JOB_STARTED}
            wait_for_job(theirs, self.start, jobs_environ, self.model_dirs)  # never returns
        theirs.close()
        self.channel, self.ready = ours, False

    def hand_over(self, connection: socket.socket, request: dict, streams: list[int]) -> bool:
        """Whether the child ahead took the job (it runs it from then on). Only a job that
        asks for one (``forked_job``'s ``ahead``), and only once the child has started: a job
        never waits for it. A child that declines the job (another environment or GPU) ends:
        the next one is forked in the environment of this job, the jobs' from then on."""
        if self.channel is None or not request.get("ahead") or not self.has_started():
            return False
        payload = marshal.dumps({**request, "job": request["job"].message()})
        try:
            socket.send_fds(
                self.channel, [LENGTH.pack(len(payload))], [connection.fileno(), *streams]
            )
            self.channel.sendall(payload)
            answer = self.channel.recv(1)
        except OSError:
            answer = b""
        self.forget()  # taken, or replaced by one in this job's environment (``fork``)
        if answer == DECLINED:
            return False
        if answer != TAKEN:  # it ended: no more children ahead
            self.stopped = True
        return answer == TAKEN

    def has_started(self) -> bool:
        """Whether the child has started what it starts; one that had nothing to start, or
        failed to, ends, and no other is forked."""
        if not self.ready:
            readable, _, _ = select.select([self.channel], [], [], 0)
            if readable:
                self.ready = self.channel.recv(1) == READY
                if not self.ready:
                    self.forget()
                    self.stopped = True
        return self.ready

    def forget(self) -> None:
        """This process's end of the channel (the child ahead ends once no process has it)."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None


def wait_for_job(channel: socket.socket, start: str, environ: dict, model_dirs: list) -> None:
    """In a child forked ahead: start what ``start`` starts, in the jobs' environment, say so,
    then run the first job that what it started accepts, as any child runs its job (never
    returns); exit when the server ends (its end of ``channel`` closes)."""
    try:
        os.environ.clear()
        os.environ.update(environ)
        started = resolve(start)(model_dirs)
        channel.sendall(NOTHING if started is None else READY)
        while started is not None:
            job = receive_job(channel, descriptors=4, timeout=None)
            if job is None:
                break
            request, (connection, *streams) = job
            connection = socket.socket(fileno=connection)
            if started.accepts(request):
                channel.sendall(TAKEN)
                channel.close()
                run_child(connection, request, streams)  # never returns
            channel.sendall(DECLINED)
            close_job(connection, (request, streams))
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def receive_job(
    connection: socket.socket, descriptors: int = 3, timeout: float | None = 60
) -> tuple[dict, list[int]] | None:
    """The job's request and its standard streams, as ``forked_job`` sends them (a child ahead
    is sent the job's connection before them: ``descriptors``); None for a connection that sends
    none within ``timeout`` seconds (its process then runs the job itself), or none at all (a
    process that only asked whether the server runs)."""
    streams = []
    try:
        connection.settimeout(timeout)
        header, streams, _, _ = socket.recv_fds(connection, LENGTH.size, descriptors)
        if not header:
            return None
        request = marshal.loads(receive_exactly(connection, LENGTH.unpack(header)[0]))
        request["job"] = Job.from_message(request["job"])
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
    every later child, and whether a child forked ahead may run it, where a function of the job
    says (``ahead``: the job's process never reads its description); whether the server may
    still fork (``refuses_to_fork``)."""
    name = request.get("server_imports")
    if name:
        try:
            for module in resolve(name)(request["job"], request["cwd"]):
                import_once(module)
        except Exception:  # the job imports for itself, as without the server
            traceback.print_exc()
    if isinstance(request.get("ahead"), str):
        try:
            request["ahead"] = bool(resolve(request["ahead"])(request["job"]))
        except Exception:  # a new child runs it, as without one ahead
            traceback.print_exc()
            request["ahead"] = False
    return not refuses_to_fork()


def import_architectures(model_dirs) -> None:
    """The module of each model's architecture (glueperf.models.modeling_module), and, for a
    run with models, what transformers builds on any first load (``prepare_loading``)."""
    try:
        from glueperf.models import modeling_module, prepare_loading

        for directory in model_dirs:
            module = modeling_module(directory)
            if module:
                import_once(module)
        if model_dirs:
            began = time.perf_counter()
            prepare_loading()
            print(f"fork server: prepared loading {time.perf_counter() - began:.3f} s", flush=True)
    except Exception:  # each evaluation imports and prepares its own, as without the server
        traceback.print_exc()


def import_once(module: str) -> None:
    if module not in sys.modules:
        began = time.perf_counter()
        import_module(module)
        print(f"fork server: imported {module} {time.perf_counter() - began:.3f} s", flush=True)


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


def age_s() -> float:
    """Seconds since this process started (the log tells how long the server took to start)."""
    from glueperf.clock import now_s, process_start_s

    return now_s() - process_start_s()


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

    from glueperf.clock import process_start_s

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
        status = run_as_script(resolve(request["function"]), request["job"], request["log"])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            connection.sendall(STATUS.pack(status))
        finally:
            os._exit(status)


def run_as_script(function, job, log_path) -> int:
    from glueperf.infra.script import run_script

    try:
        run_script(lambda: function(job), log_path)
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
