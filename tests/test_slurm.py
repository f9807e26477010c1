"""The pipeline on a real SLURM cluster, through snakemake-executor-plugin-slurm and
profiles/slurm: a one-node cluster (munged, slurmctld and slurmd from Debian's munge and
slurm-wlm) is started on this machine, the tiny workflow runs on it, and its predictions and
metrics must equal those of a local run of the same workflow.

What the SLURM run changes in profiles/slurm, and why (see `slurm_test_profile`):
- evaluate_model asks for gpu=0 instead of 1: this node has no GPU (and no GPU gres), so a
  GPU job could never be scheduled. It asks for 1 CPU, 1000 MB and 10 minutes, and runs with
  1 thread, like the local run with --cores 1, so that both compute the same floats.
- The partition and account placeholders are filled in, as a user would.
- slurm-status-command: squeue. No accounting daemon runs here (slurmdbd, which needs a
  MySQL/MariaDB server): with AccountingStorageType=accounting_storage/none, `sacct` answers
  "Slurm accounting storage is disabled", and the plugin, which asks sacct whenever the program
  is installed, then never learns that a job ended (tried: the run hangs). squeue is the
  plugin's own mode for clusters without slurmdbd; it sees finished jobs while slurmctld keeps
  them, MinJobAge=600 s here (the plugin wants at least 3 x the first status-check delay).
- A wrapper `srun` first on PATH sets SLURM_CONF again: inside a job, the slurm-jobstep plugin
  starts the rule with `srun` after removing every SLURM_* variable, SLURM_CONF included. A real
  cluster's slurm.conf sits in /etc/slurm or comes from slurmctld (configless); this test
  leaves /etc alone.

The cluster lives in the test's temporary directory (its logs stay there for a look after a
failure; only munged's socket needs a directory of its own that every user may enter) and is
stopped at the end, whatever happens: its jobs are cancelled and the three daemons killed.
Without the SLURM and munge programs the test is skipped, except under CI=true, where it fails.
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

import pandas as pd
import pytest
import yaml

from conftest import QUALITY_FIELDS, REPO, Workflow, write_dataset

DAEMONS = ["munged", "slurmctld", "slurmd"]
CLIENTS = ["sbatch", "srun", "squeue", "sinfo", "scancel"]
SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"]  # daemons live there, often not on PATH

PARTITION = "glueperf"
ACCOUNT = "glueperf-test"
MEM_MB = 1000
QUALITY = ["n_rows", "n_labeled", *QUALITY_FIELDS, "device"]


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


@pytest.fixture
def slurm_cluster(tmp_path, monkeypatch):
    programs = find_programs()
    cluster = Cluster(tmp_path / "slurm", programs)
    try:
        cluster.start()
        # Snakemake and everything it starts (sbatch, squeue; the jobs, which inherit the
        # environment) talk to this cluster.
        monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
        monkeypatch.setenv("PATH", f"{cluster.bin}{os.pathsep}{os.environ['PATH']}")
        yield cluster
    finally:
        cluster.stop()


def slurm_test_profile(workflow: Workflow) -> Path:
    """profiles/slurm of the workflow copy with this machine's overrides (module docstring)."""
    profile = yaml.safe_load((workflow.root / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    profile["default-resources"].update(slurm_partition=PARTITION, slurm_account=ACCOUNT)
    evaluate = profile["set-resources"]["evaluate_model"]
    assert evaluate["gpu"] == 1
    evaluate.update(gpu=0, cpus_per_task=1, mem_mb=MEM_MB, runtime=10)
    profile["set-threads"] = {"evaluate_model": 1}
    profile["slurm-status-command"] = "squeue"
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["slurm-keep-successful-logs"] = True
    path = workflow.root / "profiles" / "slurm-test" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path.parent


def test_pipeline_on_slurm_equals_local_run(slurm_cluster, workflow, tiny_model, tmp_path):
    data = tmp_path / "data"
    config = {
        "models": {"tiny": {"source": str(tiny_model)}},
        "datasets": {
            "labeled": {
                "path": str(write_dataset(data / "labeled.parquet", n=40, seed=1)),
                "task": "Sentiment analysis",
            },
            "hidden": {
                "path": str(write_dataset(data / "hidden.parquet", n=24, seed=2, labeled=False)),
                "task": "Sentiment analysis",
            },
        },
        "evaluation": {"device": "cpu"},
    }
    local = Workflow(tmp_path / "local")
    local.write_config(config)
    local.snakemake()

    workflow.write_config(config)
    profile = slurm_test_profile(workflow)
    try:
        run = workflow.snakemake("--workflow-profile", str(profile), timeout=400)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{slurm_cluster.log_tail()}") from None
    assert "has been submitted with SLURM jobid" in run.stdout + run.stderr

    # One SLURM job per evaluation, with the profile's requests; the local rules stayed local.
    jobs = slurm_cluster.jobs()
    assert sorted(job["comment"] for job in jobs) == [
        "rule_evaluate_model_wildcards_tiny_hidden",
        "rule_evaluate_model_wildcards_tiny_labeled",
    ], jobs
    for job in jobs:
        assert job["state"] == "COMPLETED", jobs
        assert (job["partition"], job["account"]) == (PARTITION, ACCOUNT), jobs
        assert (job["memory"], job["cpus"]) == (f"{MEM_MB}M", "1"), jobs

    for dataset in config["datasets"]:
        name = f"tiny/{dataset}"
        pd.testing.assert_frame_equal(
            pd.read_parquet(workflow.root / f"results/predictions/{name}.parquet"),
            pd.read_parquet(local.root / f"results/predictions/{name}.parquet"),
            check_exact=False,
            rtol=1e-6,
            obj=f"predictions {name}",
        )
        pd.testing.assert_frame_equal(
            pd.read_csv(workflow.root / f"results/metrics/{name}.csv")[QUALITY],
            pd.read_csv(local.root / f"results/metrics/{name}.csv")[QUALITY],
            obj=f"metrics {name}",
        )
    table = "results/model_performance.csv"
    columns = ["Dataset", "Accuracy (%)"]
    pd.testing.assert_frame_equal(
        pd.read_csv(workflow.root / table)[columns], pd.read_csv(local.root / table)[columns]
    )
    for plot in ("accuracy", "inference_time", "memory_usage"):
        assert (workflow.root / f"results/plots/{plot}.png").stat().st_size > 0


# --- the profiles themselves (no cluster needed) ------------------------------------------------


def read_profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def test_default_profile_leaves_the_gpus_to_the_device_locks():
    # No global gpu limit: each evaluation takes a free device itself (glueperf/devices.py),
    # so `--cores N` uses every GPU of the host (tests/test_devices.py).
    assert "gpu" not in read_profile("default").get("resources", {})


def test_slurm_profile_asks_for_one_gpu_and_the_rules_threads():
    profile = read_profile("slurm")
    assert profile["executor"] == "slurm"
    evaluate = profile["set-resources"]["evaluate_model"]
    assert (evaluate["gpu"], evaluate["gpu_manufacturer"]) == (1, "nvidia")
    threads = re.search(
        r"^    threads: (\d+)$", (REPO / "rules" / "evaluate.smk").read_text(), re.M
    )
    assert evaluate["cpus_per_task"] == int(threads.group(1))
    assert evaluate["mem_mb"] > 0 and evaluate["runtime"] > 0
    # a global `resources: gpu=...` would cap the GPU jobs of the whole cluster
    assert "resources" not in profile


def test_cheap_rules_run_on_the_submit_host_and_evaluations_on_the_cluster():
    text = (REPO / "Snakefile").read_text()
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", text, re.M)
    assert block, "the Snakefile has no localrules: block"
    local = set(re.findall(r"\w+", block.group(1)))
    assert {"validate_dataset", "aggregate_metrics", "plot_metric"} <= local
    assert "evaluate_model" not in local
