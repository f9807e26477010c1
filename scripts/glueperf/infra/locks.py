"""Locks that the kernel holds for a process: one primitive (``lock_file``) for the devices and
jobs (glueperf/infra/devices.py), the fork server's start (glueperf/infra/forkserver.py) and the
run (``hold_run_lock``), and the checks of a directory to lock in.

An ``flock`` is atomic, and the kernel drops it when its process ends, however it ends (also
SIGKILL), so it never goes stale. A lock file is never removed: a process that removed it could
leave the next one locking a new file beside a live process that holds the old one.

Lock files may live in a directory that other users can write (a shared $GLUEPERF_LOCK_DIR), so
none is trusted: it is never followed through a symbolic link, never opened unless it is a plain
file, and written (who holds it, for those who wait) only when it is this user's and has no
other name (a hard link). So a lock file that another user planted can make a run wait, never
write anyone's file.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import socket
import stat

from glueperf import GlueperfError

OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a FIFO cannot hang it
NOTE_BYTES = 1000  # the most of a note that is read


class LockError(GlueperfError):
    """A lock directory or file that cannot be used safely; the message says what to do."""


def lock_file(path, note: str = "", wait: bool = False) -> int | None:
    """Lock ``path`` (a plain file, made if missing) for this process: the open descriptor, which
    holds the lock until it is closed or the process ends. None while another process holds it,
    or with ``wait``, wait until it is free. ``note`` (who holds it) is written into a file of
    this user's; another user's is locked without it (read-only where it is not writable)."""
    path = os.fspath(path)  # no pathlib: every job's own process imports this (forkclient.py)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | OPEN_FLAGS, 0o644)
    except PermissionError as error:  # another user's file, in a shared directory: read it
        try:
            descriptor = os.open(path, os.O_RDONLY | OPEN_FLAGS)
        except OSError:
            raise _unusable(path, error) from None
    except OSError as error:
        raise _unusable(path, error) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise LockError(f"the lock file {path} is not a plain file: remove it")
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    if note and is_mine(info):
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, note.encode(), 0)
    return descriptor


def _unusable(path: str, error: OSError) -> LockError:
    if os.path.islink(path):
        return LockError(
            f"the lock file {path} is a symbolic link, which glueperf never follows (it could "
            "make a run write whatever file it points to): remove it"
        )
    return LockError(
        f"cannot open the lock file {path} ({error.strerror}): the locks need a directory in "
        "which you can make files"
    )


def is_mine(info: os.stat_result) -> bool:
    """Whether a file is this user's and has one name only (not a hard link to another file)."""
    return info.st_uid == os.getuid() and info.st_nlink == 1


def read_note(path) -> tuple[str, str | None] | None:
    """The note in lock file ``path``, and the file's owner where that is another user (whose
    note says whatever they wrote); None when there is no plain file to read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | OPEN_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return None
        note = os.pread(descriptor, NOTE_BYTES, 0).decode(errors="replace").strip()
    finally:
        os.close(descriptor)
    return note, None if info.st_uid == os.getuid() else user_name(info.st_uid)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def directory_problem(path, private: bool) -> str | None:
    """What makes directory ``path`` unfit to lock in, or None; made if missing (mode 0700).

    ``private``: it must be this user's alone, mode 0700, and not a symbolic link (a directory
    named for this user in /tmp, which anyone could have made first). Otherwise (a directory
    several users share) others may write in it only if it is sticky (chmod +t, as /tmp is),
    so that none can remove or replace another's lock files.
    """
    try:
        if private:
            os.mkdir(path, mode=0o700)
        else:
            os.makedirs(path, mode=0o700)
        os.chmod(path, 0o700)  # whatever the umask
    except FileExistsError:
        pass
    except OSError as error:
        return f"cannot be made ({error.strerror})"
    try:
        info = os.lstat(path) if private else os.stat(path)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if private and info.st_uid != os.getuid():
        return f"belongs to user {user_name(info.st_uid)}"
    if private and mode & 0o777 != 0o700:
        return f"has mode {mode & 0o777:04o}"
    if not private and mode & 0o022 and not mode & stat.S_ISVTX:
        return (
            f"is writable by others (mode {mode:04o}) and not sticky, so they could remove or "
            "replace your lock files"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable by you"
    return None


# --- the run lock ------------------------------------------------------------------------------

RUN_LOCK_FILE = "glueperf-run.lock"
# The open lock file of this process's run, held until the process ends.
_held: list[int] = []


class RunInProgress(GlueperfError):
    """Another run executes jobs in this directory."""


def hold_run_lock(snakemake_dir=".snakemake") -> None:
    """Take the directory's run lock for the rest of this process's life, or raise
    RunInProgress naming the run that holds it.

    Snakemake's own lock is a set of files, checked and then written: runs started together
    can all pass it and then run the same jobs and delete each other's temporaries.
    """
    if _held:
        return
    os.makedirs(snakemake_dir, exist_ok=True)
    path = os.path.join(snakemake_dir, RUN_LOCK_FILE)
    descriptor = lock_file(path, note=f"{os.getpid()} on {socket.gethostname()}\n")
    if descriptor is None:
        note, owner = read_note(path) or ("unknown", None)
        holder = note if owner is None else f"{note}, by a lock file of user {owner}"
        raise RunInProgress(
            f"another glueperf run (process {holder}) is in progress in this directory "
            f"({os.getcwd()}); wait for it to end, or run in another directory"
        )
    _held.append(descriptor)
