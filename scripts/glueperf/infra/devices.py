"""One device per measurement: exclusive per-device locks, and the pool of GPUs they choose from.

Snakemake's ``gpu`` resource counts GPUs but never says which one a job may use, cannot see a job
left running by a Snakemake that was killed, nor a second clone of the pipeline on the same host. So
every evaluation takes a device through a lock that the kernel holds for it
(glueperf/infra/locks.py: a file in ``lock_directory()``), from before it measures (before CUDA
starts, except on a GPU known in advance: ``foreseen_gpu``) until its measurements are done (it then
writes its results with the device free for the next one), or until the process ends, however it
ends (a killed job frees its device at once); a live process whose Snakemake is gone keeps it (an
orphan keeps measuring alone, and the next run's job waits for it).
A job that finds its device taken waits, says so on the console and in its log, and records
the seconds it waited.

The devices:
- Every NVIDIA GPU visible to the job, listed by ``nvidia-smi`` without starting CUDA (which
  must start on the chosen GPU alone) and numbered as nvidia-smi numbers them (PCI bus
  order). A set ``CUDA_VISIBLE_DEVICES`` (a SLURM allocation, or the user) restricts the pool to
  those GPUs. The chosen GPU is then the only one the process sees: ``CUDA_VISIBLE_DEVICES`` is
  set to its UUID and ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so torch calls it ``cuda`` (index 0).
  Its lock is named by the UUID, which does not change with any renumbering.
- The CPU, one device: two CPU evaluations must not share the cores either. Inside a SLURM job
  its lock is the allocation's own (SLURM already gives each job its own cores; a host-wide CPU
  lock would serialize jobs that the scheduler placed side by side); GPUs are locked by UUID
  everywhere, which never fights the scheduler since its allocations do not overlap.

``evaluation.device``: ``auto`` takes the first free GPU of the pool, or the CPU on a host
without GPUs; ``cuda`` the first free GPU (an error without one); ``cuda:N`` GPU N of the pool
and no other; ``cpu`` and ``mps`` that device. When GPUs exist but cannot be listed
(no nvidia-smi, MIG devices in ``CUDA_VISIBLE_DEVICES``), all of them are one device: one lock,
nothing narrowed, the device passed to torch as configured.

Besides the device, ``hold_job`` locks one job's outputs (see ``glueperf.infra.script.run_script``):
a job left running by a killed Snakemake still writes them, and the next run's job for the same
outputs must wait until it has ended instead of writing the same files at the same time.

Importable without torch: nothing here starts CUDA.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from glueperf import GlueperfError
from glueperf.infra.locks import LockError, directory_problem, lock_file, read_note

LOCK_DIR_VARIABLE = "GLUEPERF_LOCK_DIR"
# How often a waiting job tries the locks again: the device passes from one evaluation to the
# next within this time (a non-blocking flock is a cheap system call; 50 ms cost a GLUE run of
# nine evaluations on one GPU about 0.2 s).
POLL_S = 0.01
LOG_EVERY_S = 30.0  # how often a waiting job repeats its message in its log
CONSOLE_EVERY_S = 300.0  # ... and on the console, where every waiting job's lines add up
NVIDIA_SMI_QUERY = ["--query-gpu=index,uuid,name,pci.bus_id", "--format=csv,noheader"]

# report(message, console): a line for the job's log, and for the console too when console.
Report = Callable[[str, bool], None]


def print_report(message: str, console: bool) -> None:
    print(message, file=sys.stderr, flush=True)


def lock_directory(env: Mapping[str, str] | None = None) -> Path:
    """Where the locks live: $GLUEPERF_LOCK_DIR, else ``default_lock_directory()``."""
    env = os.environ if env is None else env
    configured = env.get(LOCK_DIR_VARIABLE)
    return Path(configured) if configured else default_lock_directory()


def default_lock_directory() -> Path:
    """/tmp/glueperf-locks-UID, shared by every clone of the pipeline this user runs on this
    host (/tmp, not $TMPDIR, which may differ between shells and jobs). Used only when it is
    this user's alone (mode 0700): anyone can make a directory of that name in /tmp first."""
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    return base / f"glueperf-locks-{os.getuid()}"


def check_lock_directory(directory: Path) -> Path:
    """``directory``, made if missing, once it is fit for locks (glueperf/infra/locks.py:
    directory_problem): the default one private, one set by $GLUEPERF_LOCK_DIR private or, for
    several users, sticky. A LockError saying what to do otherwise."""
    if directory == default_lock_directory():
        problem = directory_problem(directory, private=True)
        remedy = (
            "it must be yours alone (mode 0700), or another user could forge or redirect its "
            f"locks: remove it if it is yours, or set {LOCK_DIR_VARIABLE} to a directory of "
            "your own"
        )
    else:
        problem = directory_problem(directory, private=False)
        remedy = (
            f"set {LOCK_DIR_VARIABLE} to a directory you can write, yours alone (chmod 700) "
            "or sticky for several users (chmod 1777)"
        )
    if problem:
        raise LockError(f"the lock directory {directory} {problem}: {remedy}")
    return directory


@dataclass(frozen=True)
class Gpu:
    """An NVIDIA GPU as nvidia-smi lists it; ``index`` in PCI bus order, as nvidia-smi numbers."""

    index: int
    uuid: str
    name: str
    pci_bus_id: str = ""


# --- locks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """Something a job holds alone: ``lock`` names its lock file, ``label`` is for people."""

    lock: str
    label: str
    gpu: Gpu | None = None


@dataclass
class Held:
    """A lock this process holds until it ends or releases it (the open descriptor is the
    lock)."""

    device: Device
    wait_s: float
    descriptor: int
    since: float = field(default_factory=time.time)  # Unix time when it was taken

    def release(self) -> None:
        """Give the lock back before the process ends."""
        if self in HELD:
            HELD.remove(self)
            os.close(self.descriptor)


# Every lock taken by this process, kept open (and so held) until the process ends.
HELD: list[Held] = []


def waited_s() -> float:
    """Seconds this process has waited for its locks (outputs and device) in all."""
    return sum(held.wait_s for held in HELD)


def try_lock(directory: Path, device: Device, job: str) -> int | None:
    """The descriptor of ``device``'s lock file, locked, or None while another process holds it.

    The holder writes who it is into the file, for the messages of those who wait (a lock file
    that another user made, in a shared $GLUEPERF_LOCK_DIR, is locked without that note).
    """
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "job": job,
        "since": datetime.now().isoformat(sep=" ", timespec="seconds"),
        "device": device.label,
    }
    path = check_lock_directory(directory) / f"{device.lock}.lock"
    return lock_file(path, note=json.dumps(holder) + "\n")


def holder_of(directory: Path, device: Device) -> str:
    """Who holds ``device``'s lock, as the holder wrote it: 'process 1234 (job) since ...'; in
    a lock file of another user, whose that is."""
    note, owner = read_note(directory / f"{device.lock}.lock") or ("", None)
    try:
        holder = json.loads(note)
        said = f"process {holder['pid']} ({holder['job']}) since {holder['since']}"
    except (ValueError, KeyError, TypeError):  # being written this very moment, or by another
        said = "another process"
    return said if owner is None else f"{said}, by a lock file of user {owner}"


def hold_first_free(
    devices: list[Device],
    job: str,
    wanted: str,
    report: Report = print_report,
    directory: Path | None = None,
    poll_s: float = POLL_S,
    log_every_s: float = LOG_EVERY_S,
    console_every_s: float = CONSOLE_EVERY_S,
) -> Held:
    """Lock the first of ``devices`` that no other process holds, waiting until one is free.

    ``job`` says who waits (and is written into the lock for whoever waits next), ``wanted``
    what for. While it waits, ``report`` gets a line naming each holder: for the log at once
    and every ``log_every_s``, for the console at once and every ``console_every_s``.
    """
    directory = lock_directory() if directory is None else directory
    start = time.monotonic()
    next_log = next_console = start
    attempts = 0
    while True:
        for device in devices:
            descriptor = try_lock(directory, device, job)
            if descriptor is not None:
                waited = time.monotonic() - start if attempts else 0.0
                held = Held(device, waited, descriptor)
                HELD.append(held)
                return held
        attempts += 1
        now = time.monotonic()
        if now >= next_log:
            holders = "; ".join(f"{d.label} is held by {holder_of(directory, d)}" for d in devices)
            so_far = f" (waiting for {now - start:.0f} s)" if now - start >= 1 else ""
            message = (
                f"glueperf: {job} (process {os.getpid()}) waits for {wanted}{so_far}: "
                f"{holders} [locks in {directory}]"
            )
            console = now >= next_console
            report(message, console)
            next_log = now + log_every_s
            if console:
                next_console = now + console_every_s
        time.sleep(poll_s)


def hold_job(
    log_path,
    report: Report = print_report,
    directory: Path | None = None,
    poll_s: float = POLL_S,
) -> Held:
    """Lock the job that writes ``log_path`` (and the outputs beside it) for this process's
    life; wait while another process still runs the same job, e.g. one left running by a
    Snakemake run that was killed. The log names the job: every rule has one log per job."""
    path = Path(log_path).resolve()
    key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return hold_first_free(
        [Device(lock=f"job-{key}", label="the job")],
        job=f"the job of {log_path}",
        wanted=(
            "an earlier run of the same job to end (left running by a Snakemake that was "
            "killed?), so that the two never write the same outputs at once"
        ),
        report=report,
        directory=directory,
        poll_s=poll_s,
    )


# --- the GPUs of this host ------------------------------------------------------------------


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """The output of ``nvidia-smi --query-gpu=index,uuid,name,pci.bus_id --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        gpus.append(Gpu(int(parts[0]), parts[1], ", ".join(parts[2:-1]), parts[-1]))
    return sorted(gpus, key=lambda gpu: gpu.index)


def host_gpus() -> list[Gpu] | None:
    """Every NVIDIA GPU of the host, from nvidia-smi; [] on a host without NVIDIA GPUs; None
    when there are some but nvidia-smi cannot list them."""
    program = shutil.which("nvidia-smi")
    if program:
        try:
            result = subprocess.run(
                [program, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=60
            )
            if result.returncode == 0:
                return parse_nvidia_smi(result.stdout)
        except (OSError, subprocess.SubprocessError):
            pass
    has_gpus = Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))
    return None if has_gpus else []


def visible_gpus(env: Mapping[str, str], gpus: list[Gpu] | None) -> list[Gpu] | None:
    """The GPUs of ``gpus`` (the host's) that ``CUDA_VISIBLE_DEVICES`` lets this job use, in its
    order; None when its entries cannot be matched (MIG devices, an unknown UUID)."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if gpus is None or visible is None:
        return gpus
    chosen: list[Gpu] = []
    for entry in (part.strip() for part in visible.split(",")):
        if entry.isdigit():
            found = [gpu for gpu in gpus if gpu.index == int(entry)]
        elif entry.startswith("GPU-"):  # CUDA accepts any unique prefix of a UUID
            found = [gpu for gpu in gpus if gpu.uuid.startswith(entry)]
        elif entry.startswith("MIG-"):
            return None
        else:  # CUDA ignores an invalid entry and every entry after it ("-1", "")
            break
        if len(found) != 1:
            if entry.isdigit() and int(entry) >= len(gpus):
                break  # as CUDA does with an index it does not have
            return None
        if found[0] not in chosen:
            chosen.append(found[0])
    return chosen


# --- claiming a device ----------------------------------------------------------------------


@dataclass
class Claim:
    """The device this evaluation holds: ``device`` is what to give torch."""

    device: str
    held: Held | None  # None only inside a SLURM job whose GPUs could not be told apart

    @property
    def gpu(self) -> Gpu | None:
        return self.held.device.gpu if self.held else None

    def held_label(self) -> str:
        return self.held.device.label if self.held else self.device

    def release(self) -> None:
        """Let the next evaluation take the device: this one has measured (call ``fields()``
        first: the wait is recorded with the lock)."""
        if self.held:
            self.held.release()

    def fields(self) -> dict:
        """The metrics row's record of the device, of the wait for it, and of when it was held:
        from the claim to now, the end of the measurement (call it just before ``release()``),
        so that a run's rows show which jobs shared a device at once (none should)."""
        gpu = self.gpu
        return {
            "gpu_index": gpu.index if gpu else None,
            "gpu_uuid": gpu.uuid if gpu else None,
            "device_wait_s": waited_s(),
            "device_held_from": self.held.since if self.held else None,
            "device_held_until": time.time(),
        }


def gpu_device(gpu: Gpu) -> Device:
    return Device(lock=gpu.uuid, label=f"GPU {gpu.index} ({gpu.name}, {gpu.uuid})", gpu=gpu)


def candidates(
    requested: str, pool: list[Gpu] | None, env: Mapping[str, str]
) -> tuple[list[Device], str]:
    """The devices that may serve ``requested`` (the first free one is taken) and what a waiting
    message calls them; [] when nothing is to be locked (SLURM's allocation decides alone)."""
    slurm_job = env.get("SLURM_JOB_ID")
    scope = f"-slurm-{slurm_job}" if slurm_job else ""
    kind = requested.split(":", 1)[0]
    if kind in ("auto", "cuda") and pool is None:  # GPUs that cannot be told apart: one lock
        if slurm_job:
            return [], "the GPUs"
        return [Device(lock="gpus", label="the GPUs (not listed by nvidia-smi)")], "the GPUs"
    if requested == "cpu" or (requested == "auto" and not pool):
        return [Device(lock=f"cpu{scope}", label="the CPU")], "the CPU"
    restricted = env.get("CUDA_VISIBLE_DEVICES")
    visible = f" (CUDA_VISIBLE_DEVICES={restricted})" if restricted else ""
    if requested in ("auto", "cuda"):
        if not pool:
            raise GlueperfError(
                f"evaluation.device is '{requested}' but no CUDA device is visible{visible}"
            )
        devices = [gpu_device(gpu) for gpu in pool]
        return devices, devices[0].label if len(pool) == 1 else f"one of {len(pool)} GPUs"
    if kind == "cuda":
        number = requested.split(":", 1)[1]
        if not number.isdigit() or int(number) >= len(pool):
            raise GlueperfError(
                f"evaluation.device is '{requested}' but {len(pool)} CUDA device(s) are "
                f"visible{visible}"
            )
        device = gpu_device(pool[int(number)])
        return [device], device.label
    other = Device(lock=f"{kind}{scope}", label=f"the {kind} device")
    return [other], other.label


def foreseen_gpu(
    requested: str, gpus: list[Gpu] | None, env: MutableMapping[str, str] | None = None
) -> Gpu | None:
    """The GPU that a claim of ``requested`` can only end up holding (one GPU to choose from: a
    host or allocation with one, or ``cuda:N``), else None. Its evaluation may start CUDA there
    before the claim (``narrow_to``), while it waits: CUDA's start is the driver's work on the
    host, not work on the device that another evaluation may be measuring."""
    env = os.environ if env is None else env
    try:
        devices, _ = candidates(requested, visible_gpus(env, gpus), env)
    except GlueperfError:  # the claim says so, in its place
        return None
    return devices[0].gpu if len(devices) == 1 else None


def narrow_to(gpu: Gpu, env: MutableMapping[str, str] | None = None) -> None:
    """Make ``gpu`` the only GPU that CUDA, once started, sees (torch's "cuda"), as a claim of
    it does."""
    env = os.environ if env is None else env
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # torch numbers GPUs as nvidia-smi does
    env["CUDA_VISIBLE_DEVICES"] = gpu.uuid


def claim_device(
    requested: str = "auto",
    job: str = "",
    report: Report = print_report,
    gpus: Callable[[], list[Gpu] | None] = host_gpus,
    env: MutableMapping[str, str] | None = None,
    directory: Path | None = None,
    poll_s: float = POLL_S,
    started_on: Gpu | None = None,
) -> Claim:
    """Take the device for this process's evaluation, waiting until one is free; call it before
    torch starts CUDA, or once it has started on ``started_on`` (``foreseen_gpu``, made the
    only one visible by ``narrow_to``). ``gpus`` lists the host's GPUs (nvidia-smi; tests give
    a fake pool). ``env`` (os.environ by default) is read for CUDA_VISIBLE_DEVICES and
    SLURM_JOB_ID, and narrowed to the chosen GPU."""
    env = os.environ if env is None else env
    job = job or f"{Path(sys.argv[0]).name} in {Path.cwd()}"
    pool = visible_gpus(env, gpus())
    devices, wanted = candidates(requested, pool, env)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # torch numbers GPUs as nvidia-smi does
    if not devices:
        report(
            f"glueperf: the GPUs of this SLURM job (CUDA_VISIBLE_DEVICES="
            f"{env.get('CUDA_VISIBLE_DEVICES')}) are not in nvidia-smi's list; no device lock, "
            "SLURM's allocation alone keeps jobs apart",
            False,
        )
        return Claim(requested, None)
    held = hold_first_free(devices, job, wanted, report, directory, poll_s=poll_s)
    gpu = held.device.gpu
    if gpu is not None:
        if gpu != started_on:
            _check_cuda_not_started()
        narrow_to(gpu, env)
    waited = f", after waiting {held.wait_s:.1f} s" if held.wait_s else ""
    report(f"glueperf: {job} runs on {held.device.label}{waited}", bool(waited))
    # One visible GPU: torch's "cuda" is it. Anything else goes to torch as configured.
    return Claim("cuda" if gpu else requested, held)


def _check_cuda_not_started() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("claim_device must run before CUDA starts: it chooses the visible GPU")
