"""The sha256 of a run's local model files, taken once per run by whichever comes first: the
run's fork server, which forks a process to hash them as it starts, beside its imports
(``start_hashing_ahead``), or the model's ``hash_model`` job (``run_sha256``).

Why: rule hash_model reads every byte of a local model (BERT-base's 440 MB take a third of a
second). With ``--cores 1`` the GLUE twins' eight models took 3.75 s of a 19.65 s run, one job
after the other, while the server spent its first seconds importing torch on another core
(BENCHMARKS.md, session 14). Hashed ahead, most jobs find their digests taken.

What is shared: one file per model file in the run's store, a directory beside the server's
socket (``store``: this user's private directory, per Snakemake process, Python and module path,
removed with the socket when the server ends). An entry holds the file's sha256 and what
``os.stat`` said of the file before and after it was read (device, inode, size, modification
and change times in ns); it is used only while the file still says the same, so a file changed
since is hashed again. A lock per entry (``glueperf.infra.locks.lock_file``) keeps two
processes from reading the same file at once: a job waits for the server's hashing process, which
skips a file that a job is reading. Without a store (no fork server: outside Snakemake, turned
off, not Linux), a job hashes its files itself, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import signal
from pathlib import Path

from glueperf import GlueperfError
from glueperf.checksums import model_files, sha256_file
from glueperf.infra.forkclient import server_address
from glueperf.infra.locks import lock_file

STORE_SUFFIX = ".sha256"
PR_SET_PDEATHSIG = 1


def store() -> Path | None:
    """This run's store of digests (made if missing), or None where jobs are not forked."""
    address = server_address()
    if address is None:
        return None
    directory = Path(f"{address}{STORE_SUFFIX}")
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def signature(path) -> list[int]:
    info = os.stat(path)
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def entry_of(directory: Path, path) -> Path:
    name = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:32]
    return directory / f"{name}.json"


def known(entry: Path, path) -> str | None:
    """The digest that ``entry`` holds for ``path``, if the file has not changed since."""
    try:
        record = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    return record["sha256"] if record.get("stat") == signature(path) else None


def hashed(entry: Path, path) -> str:
    """Hash ``path`` and record it in ``entry`` where the file did not change meanwhile."""
    before = signature(path)
    digest = sha256_file(path)
    if signature(path) == before:
        staging = entry.with_name(f"{entry.name}.{os.getpid()}")
        record = {"path": os.path.abspath(path), "stat": before, "sha256": digest}
        staging.write_text(json.dumps(record))
        os.replace(staging, entry)
    return digest


@contextlib.contextmanager
def entry_lock(entry: Path, wait: bool):
    """The entry's lock (None where another process holds it and ``wait`` is off). Unlocked
    before it is closed: a child forked from the server meanwhile shares the descriptor, and
    would otherwise keep the lock until it ends."""
    descriptor = lock_file(entry.with_suffix(".lock"), wait=wait)
    try:
        yield descriptor
    finally:
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)


def run_sha256(path, directory: Path | None) -> str:
    """``path``'s sha256: from this run's store where the server (or another job) took it of
    the file as it is, else read here and recorded."""
    if directory is None:
        return sha256_file(path)
    entry = entry_of(directory, path)
    with entry_lock(entry, wait=True):
        return known(entry, path) or hashed(entry, path)


def hash_ahead(model_dirs, directory: Path) -> None:
    """Record the sha256 of every file of the run's local models (``model_dirs``) in the store,
    skipping what a job is reading or has recorded."""
    for model_dir in model_dirs:
        try:
            paths = model_files(model_dir)
        except Exception:  # its hash_model job reports it
            continue
        for path in paths:
            entry = entry_of(directory, path)
            # A file that cannot be read or locked is left to its job, which says why.
            with (
                contextlib.suppress(OSError, GlueperfError),
                entry_lock(entry, wait=False) as locked,
            ):
                if locked is not None and known(entry, path) is None:
                    hashed(entry, path)


def start_hashing_ahead(model_dirs, directory: Path | None, inherited=()) -> int | None:
    """Fork a process that runs ``hash_ahead`` and ends with this one (Linux's parent-death
    signal): its pid, or None where there is nothing to hash. The fork server forks it as it
    starts, before its imports: a thread of the server would wait for the imports' hold on the
    GIL between blocks (on an H100 host the eight GLUE twins took longer that way than in their
    jobs). ``inherited``: descriptors the child closes at once (the server's start lock, which
    must be let go when the server is ready, not when this child ends)."""
    if directory is None or not model_dirs:
        return None
    parent = os.getpid()
    child = os.fork()
    if child:
        return child
    status = 1
    try:
        for descriptor in inherited:
            os.close(descriptor)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == parent:  # not ended before the signal was set
            hash_ahead(model_dirs, directory)
        status = 0
    finally:
        os._exit(status)
