"""tests/run.sh, the README's test command, as root: it installs the missing Debian packages of
tests/apt-packages.txt without recommends and never upgrades a package the system already has.
apt-get, dpkg and id are stand-ins that record what they were asked; nothing is installed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

APT_PACKAGES = (REPO / "tests" / "apt-packages.txt").read_text().splitlines()
PACKAGES = [line.strip() for line in APT_PACKAGES if line.strip() and not line.startswith("#")]
NEW = "Inst munge (0.5.15-2 Debian:12/stable [amd64])"
UPGRADE = "Inst libsystemd0 [252.30-1~deb12u2] (252.38-1~deb12u1 Debian:12/stable [amd64])"


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_as_root(tmp_path: Path, simulation: str) -> tuple[subprocess.CompletedProcess, list]:
    """tests/run.sh in a copy of the repository whose .venv only echoes, with every package of
    apt-packages.txt missing and apt-get's dry run printing ``simulation``."""
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    shutil.copy2(REPO / "tests" / "run.sh", root / "tests" / "run.sh")
    shutil.copy2(REPO / "tests" / "apt-packages.txt", root / "tests" / "apt-packages.txt")
    (root / "requirements-dev.txt").write_text("")
    executable(root / ".venv" / "bin" / "python", 'echo "pytest $*"\n')
    executable(root / ".venv" / "bin" / "pip", "exit 0\n")
    calls = tmp_path / "apt-get.calls"
    stubs = tmp_path / "stubs"
    executable(stubs / "id", "echo 0\n")
    executable(stubs / "dpkg", "exit 1\n")  # nothing installed
    executable(
        stubs / "apt-get",
        f'echo "$*" >> {calls}\ncase " $* " in *" -s "*) printf "%s\\n" "$SIMULATION";; esac\n',
    )
    env = {**os.environ, "PATH": f"{stubs}:/usr/bin:/bin", "SIMULATION": simulation}
    result = subprocess.run(
        ["bash", "tests/run.sh", "-q"], cwd=root, env=env, capture_output=True, text=True
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result, [line.split() for line in lines]


def installs(calls: list) -> list:
    return [args for args in calls if "install" in args and "-s" not in args]


def test_missing_packages_are_installed_without_recommends_or_upgrades(tmp_path):
    result, calls = run_as_root(tmp_path, NEW)
    assert result.returncode == 0, result.stderr
    (install,) = installs(calls)
    assert {"--no-install-recommends", "--no-upgrade"} <= set(install)
    assert install[-len(PACKAGES) :] == PACKAGES
    assert "installing Debian packages (and what they need, nothing upgraded): " in result.stdout
    assert "pytest -m pytest -q" in result.stdout  # then the tests run


def test_nothing_is_installed_when_apt_would_upgrade_an_installed_package(tmp_path):
    result, calls = run_as_root(tmp_path, f"{NEW}\n{UPGRADE}")
    assert result.returncode == 0, result.stderr
    assert [args for args in calls if "-s" in args], "apt-get's dry run was not asked"
    assert installs(calls) == []
    assert "apt-get would upgrade installed packages (libsystemd0)" in result.stderr
    assert "pytest -m pytest -q" in result.stdout  # the tests still run; those that need them skip


@pytest.mark.parametrize("package", PACKAGES)
def test_the_docs_say_what_it_installs(package):
    assert f"`{package}`" in (REPO / "docs" / "development.md").read_text()
