"""The lock directory trusts nothing it finds (issue 22): the default one is used only when it is
the user's own with mode 0700, a lock file is never followed through a link nor written when it
is not the user's alone, a shared directory must be sticky, and a directory that cannot be used
is one line saying what to do, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from glueperf.infra import devices
from glueperf.infra.devices import (
    HELD,
    LOCK_DIR_VARIABLE,
    Device,
    claim_device,
    holder_of,
    try_lock,
)
from glueperf.infra.locks import LockError, hold_run_lock

VICTIM_TEXT = "the victim's own file\n"
as_root = pytest.mark.skipif(os.getuid() != 0, reason="making another user's file needs root")
NOBODY = 65534


@pytest.fixture(autouse=True)
def release_locks():
    yield
    for held in list(HELD):
        held.release()


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file of the user's that a planted lock file points at."""
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


@pytest.fixture
def default_directory(tmp_path, monkeypatch) -> Path:
    """The default lock directory (as /tmp/glueperf-locks-UID is), in this test's own place."""
    directory = tmp_path / "glueperf-locks"
    monkeypatch.delenv(LOCK_DIR_VARIABLE, raising=False)
    monkeypatch.setattr(devices, "default_lock_directory", lambda: directory)
    return directory


@pytest.fixture
def shared_directory(tmp_path, monkeypatch) -> Path:
    """A directory set by $GLUEPERF_LOCK_DIR, sticky and writable by all, as for several users."""
    directory = tmp_path / "shared-locks"
    directory.mkdir()
    directory.chmod(0o1777)
    monkeypatch.setenv(LOCK_DIR_VARIABLE, str(directory))
    return directory


def claim_cpu():
    return claim_device("cpu", gpus=lambda: [], env={}, report=lambda *_: None)


def made_by_another(directory: Path, mode: int) -> None:
    """As another user would leave it: theirs (as root), else at least open to them."""
    directory.mkdir()
    directory.chmod(mode)
    if os.getuid() == 0:
        os.chown(directory, NOBODY, NOBODY)


@pytest.mark.parametrize(("mode", "expected"), [(0o777, "has mode 0777"), (0o755, "has mode 0755")])
def test_a_default_directory_made_by_someone_else_is_refused(
    default_directory, victim, mode, expected
):
    made_by_another(default_directory, mode)
    (default_directory / "cpu.lock").symlink_to(victim)
    with pytest.raises(LockError) as refused:
        claim_cpu()
    message = str(refused.value)
    if os.getuid() == 0:
        expected = "belongs to user"
    assert expected in message and f"set {LOCK_DIR_VARIABLE} to a directory of your own" in message
    assert "\n" not in message
    assert victim.read_text() == VICTIM_TEXT


def test_a_default_directory_that_is_a_link_is_refused(default_directory, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    default_directory.symlink_to(elsewhere)
    with pytest.raises(LockError, match="is a symbolic link"):
        claim_cpu()
    assert list(elsewhere.iterdir()) == []


def test_a_default_directory_of_ones_own_is_made_private_and_used(default_directory):
    previous = os.umask(0)  # what the directory's mode would be without its own chmod
    try:
        claim = claim_cpu()
    finally:
        os.umask(previous)
    assert (default_directory.stat().st_mode & 0o7777) == 0o700
    assert claim.held is not None and (default_directory / "cpu.lock").is_file()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_file_that_is_a_link_is_never_followed(shared_directory, victim, dangling):
    target = victim.with_name("not-there.txt") if dangling else victim
    (shared_directory / "cpu.lock").symlink_to(target)
    with pytest.raises(LockError, match="cpu.lock is a symbolic link, which glueperf never"):
        claim_cpu()
    assert victim.read_text() == VICTIM_TEXT and not victim.with_name("not-there.txt").exists()


def test_a_lock_file_with_another_name_is_locked_but_never_written(shared_directory, victim):
    os.link(victim, shared_directory / "cpu.lock")  # a hard link: the same file
    claim = claim_cpu()
    assert claim.held is not None
    assert victim.read_text() == VICTIM_TEXT


@as_root
def test_another_users_lock_file_is_locked_unwritten_and_its_holder_named_as_theirs(
    shared_directory,
):
    planted = shared_directory / "cpu.lock"
    forged = '{"pid": 1, "job": "a job that does not exist", "since": "2020-01-01"}\n'
    planted.write_text(forged)
    planted.chmod(0o666)
    os.chown(planted, NOBODY, NOBODY)
    claim = claim_cpu()
    assert claim.held is not None and planted.read_text() == forged
    claim.release()
    other = try_lock(shared_directory, Device("cpu", "the CPU"), "someone")
    assert try_lock(shared_directory, Device("cpu", "the CPU"), "me") is None
    assert holder_of(shared_directory, Device("cpu", "the CPU")).endswith(
        ", by a lock file of user nobody"
    )
    os.close(other)


def test_a_shared_directory_must_be_sticky(shared_directory):
    shared_directory.chmod(0o777)
    with pytest.raises(LockError, match=r"is writable by others \(mode 0777\) and not sticky"):
        claim_cpu()


def test_a_run_lock_file_that_is_a_link_is_never_followed(tmp_path, victim):
    snakemake_dir = tmp_path / ".snakemake"
    snakemake_dir.mkdir()
    (snakemake_dir / "glueperf-run.lock").symlink_to(victim)
    with pytest.raises(LockError, match="is a symbolic link"):
        hold_run_lock(snakemake_dir)
    assert victim.read_text() == VICTIM_TEXT


# A job's script, run as the pipeline runs it (run_script), whose lock directory is unusable.
JOB = """
import sys
sys.path.insert(0, {scripts!r})
from glueperf.infra.script import run_script
run_script(lambda: print("the job ran", file=sys.stderr), {log!r})
"""


@pytest.mark.parametrize("case", ["under-a-file", "not-writable"])
def test_a_lock_directory_that_cannot_be_used_is_one_line_not_a_traceback(tmp_path, case):
    if case == "not-writable" and os.getuid() == 0:
        pytest.skip("root may write in any directory")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "read-only").mkdir(mode=0o500)
    directory = tmp_path / ("a-file/locks" if case == "under-a-file" else "read-only")
    log = tmp_path / "job.log"
    result = subprocess.run(
        [sys.executable, "-c", JOB.format(scripts=str(REPO / "scripts"), log=str(log))],
        env={**os.environ, LOCK_DIR_VARIABLE: str(directory)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("glueperf error: "), result.stderr
    assert f"the lock directory {directory} " in lines[0] and "the job ran" not in result.stderr
    assert f"set {LOCK_DIR_VARIABLE} to a directory you can write" in lines[0]
    assert log.read_text().strip() == lines[0]
