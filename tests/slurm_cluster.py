"""A one-node SLURM cluster on this machine for tests/test_slurm.py: munged, slurmctld and slurmd
(Debian's munge and slurm-wlm) with their own munge key, slurm.conf, free ports and state, no
accounting database (squeue reports job states), and a wrapper `srun` that sets SLURM_CONF
again inside jobs (see tests/test_slurm.py for why).

The cluster lives in the test's temporary directory (its logs stay there for a look after a
failure; only munged's socket needs a directory of its own that every user may enter) and is
stopped at the end, whatever happens: its jobs are cancelled and the three daemons killed.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

DAEMONS = ["munged", "slurmctld", "slurmd"]
CLIENTS = ["sbatch", "srun", "squeue", "sinfo", "scancel"]
SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"]  # daemons live there, often not on PATH

PARTITION = "glueperf"


def find_programs() -> dict[str, str]:
    """Paths of the SLURM and munge programs; skip (fail under CI=true) when one is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    paths = {name: shutil.which(name, path=search) for name in DAEMONS + CLIENTS}
    missing = sorted(name for name, path in paths.items() if path is None)
    if missing:
        reason = (
            f"SLURM/munge programs not found: {', '.join(missing)} (Debian packages in "
            "tests/apt-packages.txt; tests/run.sh installs them when run as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so the SLURM test must run, but {reason}")
        pytest.skip(reason)
    return paths


def free_ports(count: int) -> list[int]:
    """Ports free right now, all different (the sockets stay open until all are picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    """A one-node SLURM cluster on localhost: its own munge key, slurm.conf, ports and state."""

    def __init__(self, root: Path, programs: dict[str, str]):
        self.root = root
        self.programs = programs
        self.conf = root / "slurm.conf"
        self.logs = root / "logs"
        self.bin = root / "bin"
        self.processes: dict[str, subprocess.Popen] = {}
        self.socket_dir: Path | None = None
        self.user = getpass.getuser()
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # --- start ------------------------------------------------------------------------------

    def start(self) -> None:
        for sub in ("munge", "state", "spool", "logs", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged insists that every directory above its socket may be entered by all users;
        # pytest's temporary directories may not, so the socket gets a directory of its own.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="glueperf-munge-"))
        self.socket_dir.chmod(0o755)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munge_socket = self.socket_dir / "munge.socket"
        self._spawn(
            "munged",
            "--foreground",
            f"--socket={munge_socket}",
            f"--key-file={key}",
            f"--log-file={self.logs / 'munged.log'}",
            f"--pid-file={self.root / 'munge' / 'munged.pid'}",
            f"--seed-file={self.root / 'munge' / 'munged.seed'}",
        )
        self._wait(lambda: munge_socket.exists(), "munged to open its socket")
        self.conf.write_text(self._slurm_conf(munge_socket))
        self._write_srun_wrapper()
        self._spawn("slurmctld", "-D", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-f", str(self.conf), "-N", self.node)
        self._wait(lambda: self.client("sinfo", "-h", "-N", "-o", "%T") == "idle", "an idle node")

    def _slurm_conf(self, munge_socket: Path) -> str:
        # `slurmd -C`: this machine's CPUs, sockets, cores and memory, as slurmd will register.
        hardware = subprocess.run(
            [self.programs["slurmd"], "-C"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[0]
        self.node = re.match(r"NodeName=(\S+)", hardware).group(1)
        slurmctld_port, slurmd_port = free_ports(2)
        return f"""\
ClusterName=glueperftest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={slurmctld_port}
SlurmdPort={slurmd_port}
SlurmUser={self.user}
SlurmdUser={self.user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={self.root / "state"}
SlurmdSpoolDir={self.root / "spool"}
SlurmctldPidFile={self.root / "slurmctld.pid"}
SlurmdPidFile={self.root / "slurmd.pid"}
SlurmctldLogFile={self.logs / "slurmctld.log"}
SlurmdLogFile={self.logs / "slurmd.log"}
# no cgroups: processes are tracked through /proc, tasks are not bound to CPUs
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
# no job accounting database (see the module docstring); squeue reports job states
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
ReturnToService=2
KillWait=5
{hardware} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""

    def _write_srun_wrapper(self) -> None:
        srun = self.bin / "srun"
        srun.write_text(
            "#!/bin/sh\n"
            "# Stand-in for a cluster-wide slurm.conf (see tests/test_slurm.py).\n"
            f"SLURM_CONF={shlex.quote(str(self.conf))}; export SLURM_CONF\n"
            f'exec {shlex.quote(self.programs["srun"])} "$@"\n'
        )
        srun.chmod(0o755)

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.logs / f"{name}.out", "w") as out:
            self.processes[name] = subprocess.Popen(
                [self.programs[name], *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited ({process.returncode})\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"no {what} after {timeout} s\n{self.log_tail()}")

    # --- use --------------------------------------------------------------------------------

    def client(self, name: str, *args: str, timeout: float = 30) -> str:
        result = subprocess.run(
            [self.programs[name], *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld knows of (finished ones included, for MinJobAge)."""
        fields = {"id": "%i", "state": "%T", "comment": "%k", "partition": "%P"}
        fields |= {"account": "%a", "memory": "%m", "cpus": "%C"}
        out = self.client("squeue", "-h", "--states=all", "-o", "|".join(fields.values()))
        return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for log in sorted(self.logs.glob("*")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # --- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        try:
            if self._alive("slurmctld"):
                self.client("scancel", f"--user={self.user}", timeout=15)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and self.client(
                    "squeue", "-h", "--states=PENDING,RUNNING,COMPLETING,SUSPENDED"
                ):
                    time.sleep(0.5)
        except (OSError, subprocess.SubprocessError):
            pass
        finally:
            for name in ("slurmd", "slurmctld", "munged"):
                process = self.processes.get(name)
                if process is None or process.poll() is not None:
                    continue
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self.socket_dir is not None:
                shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None
