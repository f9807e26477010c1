"""The fork server (glueperf/infra/forkserver.py): the GPU-side jobs of a Snakemake run are
children of one server that has done their imports, each with the job's own streams, directory,
environment, exit status and life."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest

from conftest import REPO, tiny_workflow

sys.path.insert(0, str(REPO / "scripts"))
from glueperf.clock import now_s, process_start_s  # noqa: E402
from glueperf.infra.forkclient import (  # noqa: E402
    GPU_JOBS_HERE,
    SNAKEMAKE_PID,
    SWITCH,
    socket_directory,
)
from glueperf.infra.forkserver import (  # noqa: E402
    AHEAD_SWITCH,
    CUDA_ERROR_NOT_INITIALIZED,
    gpu_driver_initialized,
    mapped_driver,
)

JOBS = REPO / "tests" / "forked_jobs.py"


@pytest.fixture
def owner():
    """A process standing in for the Snakemake run that owns the server; ended after the test."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def job_env(owner=None, **extra) -> dict:
    ours = (SNAKEMAKE_PID, SWITCH, GPU_JOBS_HERE)
    env = {key: value for key, value in os.environ.items() if key not in ours}
    if owner is not None:
        env[SNAKEMAKE_PID] = str(owner.pid)
    return {**env, "PROBE": "from the job's environment", **extra}


def start_job(function, tmp_path, env, name="job", how="") -> tuple[subprocess.Popen, dict]:
    paths = {"out": tmp_path / f"{name}.json", "log": tmp_path / f"{name}.log"}
    process = subprocess.Popen(
        [sys.executable, str(JOBS), function, str(paths["out"]), str(paths["log"]), how],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, paths


def run_job(function, tmp_path, env, name="job", how=""):
    process, paths = start_job(function, tmp_path, env, name, how)
    stdout, stderr = process.communicate(timeout=300)
    record = json.loads(paths["out"].read_text()) if paths["out"].exists() else None
    return process, stdout, stderr, record, paths["log"]


def wait_until(condition, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_jobs_run_in_children_of_one_server_with_their_streams_directory_and_environment(
    tmp_path, owner
):
    records = []
    for name in ("first", "second"):
        process, stdout, stderr, record, log = run_job("describe", tmp_path, job_env(owner), name)
        assert process.returncode == 0, stderr
        assert record["forked"] and record["pid"] != process.pid
        assert record["cwd"] == str(tmp_path)
        assert record["probe"] == "from the job's environment"
        assert "a line on standard output" in stdout  # the job's own stdout
        assert "a line on standard error" in log.read_text()  # stderr goes to the job's log
        assert record["age_s"] > 0  # counted from the job's own process
        records.append(record)
    server = records[0]["parent"]
    assert records[1]["parent"] == server  # one server for both jobs, started by the first
    assert "forkserver" in " ".join(psutil.Process(server).cmdline())


def test_a_failing_forked_job_exits_with_its_error(tmp_path, owner):
    process, _, stderr, _, log = run_job("fail", tmp_path, job_env(owner))
    assert process.returncode == 1
    assert "glueperf error: nothing good in" in stderr
    assert "nothing good in" in log.read_text()


def test_killing_the_job_kills_its_forked_child(tmp_path, owner):
    process, paths = start_job("linger", tmp_path, job_env(owner))
    assert wait_until(paths["out"].exists), process.stderr.read()
    child = json.loads(paths["out"].read_text())["pid"]
    assert child != process.pid and not ended(child)
    process.send_signal(signal.SIGTERM)  # as Snakemake cancels a job
    process.wait(timeout=30)
    assert wait_until(lambda: ended(child), timeout=30)


def test_the_server_ends_with_its_snakemake(tmp_path, owner):
    process, _, stderr, record, _ = run_job("describe", tmp_path, job_env(owner))
    assert process.returncode == 0, stderr
    server = record["parent"]
    assert not ended(server)
    owner.kill()
    owner.wait()
    assert wait_until(lambda: ended(server), timeout=30)
    # its socket, start lock and log are gone with it
    assert not list(Path(socket_directory()).glob(f"{owner.pid}-*"))


@pytest.mark.parametrize("how", ["outside snakemake", "turned off", "snakemake gone", "macOS"])
def test_without_a_server_a_job_runs_in_its_own_process(tmp_path, owner, how):
    env = {
        "outside snakemake": job_env(),
        "turned off": job_env(owner, **{SWITCH: "0"}),
        "snakemake gone": job_env(owner),
        "macOS": job_env(owner, FAKE_PLATFORM="darwin"),
    }[how]
    if how == "snakemake gone":
        owner.kill()
        owner.wait()
    process, _, stderr, record, _ = run_job("describe", tmp_path, env)
    assert process.returncode == 0, stderr
    assert record["pid"] == process.pid and not record["forked"]
    if how == "snakemake gone":
        assert "the fork server did not start" in stderr


def test_a_process_start_is_read_to_the_kernels_tick():
    """psutil's create_time() was up to a second early (the boot time in whole seconds): every
    startup_s was that much too long."""
    before = now_s()
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); "
            "from glueperf.clock import process_start_s; print(process_start_s())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    after = now_s()
    assert before - 0.02 <= float(run.stdout) <= after
    assert process_start_s() <= before


def test_forked_and_own_evaluations_predict_the_same(tmp_path, tiny_model, monkeypatch):
    workflow = tiny_workflow(tmp_path, tiny_model, {"alpha": 60})
    metrics = workflow.root / "results/metrics/tiny/float32/alpha.csv"
    predictions = workflow.root / "results/predictions/tiny/float32/alpha.parquet"
    workflow.snakemake()
    forked = pq.read_table(predictions)
    assert pd.read_csv(metrics)["job_process"].tolist() == ["forked"]
    monkeypatch.setenv(SWITCH, "0")
    workflow.snakemake("--forcerun", "evaluate_model")
    assert pd.read_csv(metrics)["job_process"].tolist() == ["own"]
    assert pq.read_table(predictions).equals(forked)


def test_a_job_without_standard_input_is_forked_all_the_same(tmp_path, owner):
    """Snakemake run with its standard input closed: the child gets /dev/null instead."""
    paths = {"out": tmp_path / "job.json", "log": tmp_path / "job.log"}
    run = subprocess.run(
        [sys.executable, str(JOBS), "describe", str(paths["out"]), str(paths["log"])],
        cwd=tmp_path,
        env=job_env(owner),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.close(0),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(paths["out"].read_text())["forked"]


def servers_of(owner) -> list:
    return list(Path(socket_directory()).glob(f"{owner.pid}-*.sock"))


def test_a_light_job_never_waits_for_the_server_and_starts_it_for_the_evaluations(tmp_path, owner):
    """Validation and a model's checksums need none of the server's imports: without a ready
    server they run at once in their own process; in a run that evaluates on this host the
    first of them starts the server in the background, and later ones are forked from it."""
    env = job_env(owner, **{GPU_JOBS_HERE: "1"})
    process, _, stderr, record, _ = run_job("describe", tmp_path, env, "first", "light")
    assert process.returncode == 0, stderr
    assert record["pid"] == process.pid and not record["forked"]
    assert wait_until(lambda: servers_of(owner), timeout=120)  # started, in the background
    process, _, stderr, record, _ = run_job("describe", tmp_path, env, "evaluation")
    assert process.returncode == 0, stderr
    server = record["parent"]  # the evaluation waited for that server: no second one
    assert record["forked"] and "forkserver" in " ".join(psutil.Process(server).cmdline())
    process, _, stderr, record, _ = run_job("describe", tmp_path, env, "later", "light")
    assert process.returncode == 0, stderr
    assert record["forked"] and record["parent"] == server


def test_until_the_server_is_ready_a_light_job_is_forked_from_the_results_server(tmp_path, owner):
    """The evaluations' server imports for seconds, the results' server for about one: the light
    jobs, which all run before the first evaluation, are forked from that one meanwhile."""
    env = job_env(owner, **{GPU_JOBS_HERE: "1"})
    started = [sys.executable, str(JOBS), "start_post"]
    subprocess.run(started, cwd=tmp_path, env=env, check=True, timeout=60)
    assert wait_until(lambda: any(path.name.endswith("-post.sock") for path in servers_of(owner)))
    process, _, stderr, record, _ = run_job("describe", tmp_path, env, "light", "light")
    assert process.returncode == 0, stderr
    assert record["forked"] and record["has_pyplot"]  # the results' server's imports
    assert "post" in psutil.Process(record["parent"]).cmdline()
    # and it started the evaluations' server, for the evaluations
    assert wait_until(lambda: len(servers_of(owner)) == 2, timeout=120)


def test_the_results_jobs_are_children_of_a_server_of_their_own(tmp_path, owner):
    """aggregate_metrics and plot_results import pandas and matplotlib, which no evaluation
    imports: the evaluations' server starts a second server for them as it starts itself, and
    no evaluation's process holds those imports."""
    process, _, stderr, evaluation, _ = run_job("describe", tmp_path, job_env(owner), "evaluation")
    assert process.returncode == 0, stderr
    assert evaluation["forked"] and not evaluation["has_pyplot"]
    assert wait_until(lambda: any(path.name.endswith("-post.sock") for path in servers_of(owner)))
    process, _, stderr, record, _ = run_job("describe", tmp_path, job_env(owner), "plots", "post")
    assert process.returncode == 0, stderr
    assert record["forked"] and record["has_pyplot"]
    assert record["parent"] != evaluation["parent"]
    assert "post" in psutil.Process(record["parent"]).cmdline()


def test_without_a_results_server_a_results_job_runs_in_its_own_process(tmp_path, owner):
    """No evaluation ran here (they ran on a cluster's nodes): nothing is started for the
    table and the plots, which are made at once."""
    process, _, stderr, record, _ = run_job("describe", tmp_path, job_env(owner), how="post")
    assert process.returncode == 0, stderr
    assert record["pid"] == process.pid and not record["forked"]
    time.sleep(1)
    assert not servers_of(owner)


def test_without_evaluations_here_a_light_job_starts_no_server(tmp_path, owner):
    """A cluster's login node runs the light jobs, and the evaluations run elsewhere."""
    process, _, stderr, record, _ = run_job("describe", tmp_path, job_env(owner), how="light")
    assert process.returncode == 0, stderr
    assert not record["forked"]
    time.sleep(1)
    assert not servers_of(owner)


def test_the_server_imports_what_a_job_asks_for_every_later_child(tmp_path, owner):
    process, _, stderr, first, _ = run_job(
        "describe", tmp_path, job_env(owner), "first", "one_more_module"
    )
    assert process.returncode == 0, stderr
    process, _, stderr, second, _ = run_job("describe", tmp_path, job_env(owner), "second")
    assert process.returncode == 0, stderr
    assert first["forked"] and second["forked"] and first["has_module"] and second["has_module"]


def test_the_server_imports_the_architectures_of_the_runs_models(tmp_path, owner, tiny_model):
    """transformers imports a model's architecture on its first load (seconds): the server
    does it once, as it starts, for the models of the job's config."""
    process, _, stderr, record, _ = run_job(
        "describe", tmp_path, job_env(owner, MODEL_DIR=str(tiny_model))
    )
    assert process.returncode == 0, stderr
    assert record["forked"] and record["has_bert"]
    process, _, stderr, record, _ = run_job("describe", tmp_path, job_env(owner), "other")
    assert record["has_bert"]  # a later job of another config is given it too


def test_the_server_builds_what_transformers_builds_on_a_first_load(tmp_path, owner, tiny_model):
    """transformers builds its table of checkpoint conversions on a process's first load (0.05 s
    on a CPU): the children of a run with models find it built, once, by the server."""
    process, _, stderr, record, _ = run_job(
        "describe", tmp_path, job_env(owner, MODEL_DIR=str(tiny_model))
    )
    assert process.returncode == 0, stderr
    assert record["forked"] and record["loading_prepared"]


def test_without_models_the_server_imports_no_architecture(tmp_path, owner):
    process, _, stderr, record, _ = run_job("describe", tmp_path, job_env(owner))
    assert process.returncode == 0, stderr
    assert record["forked"] and not record["has_bert"] and not record["loading_prepared"]


def test_a_server_with_the_gpu_driver_loaded_forks_no_job(tmp_path, owner):
    """A child of a process that has started CUDA could not use it: each job runs in its own
    process instead, this one and every later one."""
    for name, how in (("first", "gpu_driver_loaded"), ("second", "")):
        process, _, stderr, record, _ = run_job("describe", tmp_path, job_env(owner), name, how)
        assert process.returncode == 0, stderr
        assert record["pid"] == process.pid and not record["forked"]
        assert "the fork server forked no child" in stderr


def test_the_gpu_driver_is_found_in_a_process_memory_maps(tmp_path):
    maps = "7f0000000000-7f0000001000 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/{}\n"
    (tmp_path / "maps").write_text(maps.format("libc.so.6"))
    assert mapped_driver(tmp_path) is None and not gpu_driver_initialized(tmp_path)
    (tmp_path / "maps").write_text(maps.format("libc.so.6") + maps.format("libcuda.so.580.1"))
    assert mapped_driver(tmp_path) == "/usr/lib/x86_64-linux-gnu/libcuda.so.580.1"
    assert not gpu_driver_initialized()  # this process (no GPU here, or none used)


class StandInDriver:
    """libcuda's cuDeviceGetCount, answering as the driver does before or after cuInit."""

    def __init__(self, initialized: bool):
        self.answer = 0 if initialized else CUDA_ERROR_NOT_INITIALIZED

    def cuDeviceGetCount(self, count):  # noqa: N802 (the driver's name)
        return self.answer


def test_a_driver_mapped_but_not_initialized_lets_the_server_fork(tmp_path):
    """Imports may map libcuda without cuInit (torch 2.11 and transformers on an H200 host did):
    only an initialized driver makes the children's CUDA unusable."""
    maps = "7f0000000000-7f0000001000 r-xp 00000000 08:01 1 /usr/lib/libcuda.so.1\n"
    (tmp_path / "maps").write_text(maps)
    assert not gpu_driver_initialized(tmp_path, StandInDriver(initialized=False))
    assert gpu_driver_initialized(tmp_path, StandInDriver(initialized=True))
    assert gpu_driver_initialized(tmp_path)  # a driver that cannot be asked counts as started


def server_children(server: int) -> list[psutil.Process]:
    """The server's forked children that run (not the results' server it started)."""
    found = []
    for child in psutil.Process(server).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if not ended(child.pid) and role_of(child) != "post":
                found.append(child)
    return found


def run_after_child_ahead(tmp_path, env, server, name, how="ahead"):
    """A job run once the server has a child forked ahead that has started (at most 5 s); the
    job's record says when it was launched (``launched_at``)."""
    wait_until(lambda: server_children(server), timeout=5)
    time.sleep(0.3)  # it says it started at once (start_for_tests)
    launched_at = time.time()
    process, stdout, stderr, record, log = run_job("describe", tmp_path, env, name, how)
    return process, stdout, stderr, {**(record or {}), "launched_at": launched_at}, log


def test_a_child_forked_ahead_runs_the_next_job_that_asks_for_it(tmp_path, owner):
    """The evaluations' server forks a child before the next job comes, which starts what
    takes time (CUDA, on a GPU host) in the jobs' environment: the next evaluation is handed to
    it, with its own streams, directory and environment; other jobs get new children."""
    process, _, stderr, first, _ = run_job("describe", tmp_path, job_env(owner), "first", "ahead")
    assert process.returncode == 0, stderr
    assert first["forked"] and first["started_ahead_at"] is None  # none was there yet
    server = first["parent"]
    process, stdout, stderr, second, log = run_after_child_ahead(
        tmp_path, job_env(owner), server, "second"
    )
    assert process.returncode == 0, stderr
    assert second["forked"] and second["parent"] == server
    assert second["started_ahead_at"] < second["launched_at"]  # before the job's process
    assert second["probe"] == "from the job's environment" and second["cwd"] == str(tmp_path)
    assert "a line on standard output" in stdout and "a line on standard error" in log.read_text()
    process, _, stderr, light, _ = run_after_child_ahead(
        tmp_path, job_env(owner), server, "light", how="light"
    )
    assert light["forked"] and light["started_ahead_at"] is None  # not one that asks for it
    process, _, stderr, third, _ = run_job("describe", tmp_path, job_env(owner), "third", "ahead")
    assert third["started_ahead_at"] is not None  # the one kept for it, the light job's aside
    assert third["started_ahead_at"] != second["started_ahead_at"]  # a new child ahead


def test_a_child_ahead_that_does_not_fit_a_job_is_replaced_by_one_in_its_environment(
    tmp_path, owner
):
    """A job whose environment or device the child ahead's start does not fit (here: another
    PROBE) is given a new child, and the child ahead gives way to one started in that job's
    environment, which the next job of that environment finds."""
    process, _, stderr, first, _ = run_job("describe", tmp_path, job_env(owner), "first", "ahead")
    assert process.returncode == 0, stderr
    server = first["parent"]
    other = job_env(owner, PROBE="another environment")
    process, _, stderr, declined, _ = run_after_child_ahead(tmp_path, other, server, "declined")
    assert process.returncode == 0, stderr
    assert declined["forked"] and declined["started_ahead_at"] is None
    assert declined["probe"] == "another environment"
    process, _, stderr, taken, _ = run_after_child_ahead(tmp_path, other, server, "taken")
    assert process.returncode == 0, stderr
    assert taken["started_ahead_at"] is not None and taken["probe"] == "another environment"


@pytest.mark.parametrize("how", ["nothing to start", "turned off"])
def test_without_anything_to_start_ahead_every_job_gets_a_new_child(tmp_path, owner, how):
    """A host with nothing to start ahead (no single GPU to claim) or GLUEPERF_FORK_AHEAD=0:
    the jobs are forked as they come, and no child is left waiting."""
    extra = {"NOTHING_AHEAD": "1"} if how == "nothing to start" else {AHEAD_SWITCH: "0"}
    env = job_env(owner, **extra)
    process, _, stderr, first, _ = run_job("describe", tmp_path, env, "first", "ahead")
    assert process.returncode == 0, stderr
    server = first["parent"]
    process, _, stderr, second, _ = run_after_child_ahead(tmp_path, env, server, "second")
    assert process.returncode == 0, stderr
    assert second["forked"] and second["started_ahead_at"] is None
    assert wait_until(lambda: not server_children(server), timeout=10)


def test_a_child_ahead_ends_with_its_server(tmp_path, owner):
    process, _, stderr, first, _ = run_job("describe", tmp_path, job_env(owner), "first", "ahead")
    assert process.returncode == 0, stderr
    server = first["parent"]
    assert wait_until(lambda: server_children(server), timeout=5)
    child = server_children(server)[0].pid
    owner.kill()
    owner.wait()
    assert wait_until(lambda: ended(server) and ended(child), timeout=30)


def test_killing_the_job_kills_the_child_ahead_that_runs_it(tmp_path, owner):
    process, _, stderr, first, _ = run_job("describe", tmp_path, job_env(owner), "first", "ahead")
    assert process.returncode == 0, stderr
    assert wait_until(lambda: server_children(first["parent"]), timeout=5)
    time.sleep(0.3)
    process, paths = start_job("linger", tmp_path, job_env(owner), "lingering", "ahead")
    assert wait_until(lambda: paths["out"].exists())
    child = json.loads(paths["out"].read_text())["pid"]
    assert child != process.pid and psutil.Process(child).ppid() == first["parent"]
    process.kill()
    process.wait()
    assert wait_until(lambda: ended(child), timeout=30)


def listening(owner) -> bool:
    """Whether the evaluations' server of ``owner``'s run accepts jobs (its socket is there)."""
    return any(not path.name.endswith("-post.sock") for path in servers_of(owner))


def role_of(process: psutil.Process) -> str | None:
    """The role of a fork server's process (forkclient.spawn_server's arguments), else None."""
    command = process.cmdline()
    return command[-2] if any("forkserver import serve" in part for part in command) else None


def server_of(owner) -> int | None:
    """The pid of the evaluations' server of ``owner``'s run (started by it, or a job of it)."""
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, IndexError):
            if role_of(process) == "jobs" and str(owner.pid) in process.cmdline():
                return process.pid
    return None


def test_a_run_that_evaluates_on_a_gpu_has_a_child_ahead_as_soon_as_its_server_is_ready(
    tmp_path, owner, tiny_model
):
    """The light job that starts the server tells it that the run's evaluations may run off the
    CPU (its config's evaluation.device): the server forks a child ahead once ready, before any
    evaluation came, in the jobs' environment: without the NVML switch the server's own has, nor
    what its imports set (BERT's module sets TORCHINDUCTOR_CACHE_DIR), or the child would take
    no evaluation. So the first evaluation finds its start done too."""
    extra = {GPU_JOBS_HERE: "1", "EVALUATION_DEVICE": "auto", "MODEL_DIR": str(tiny_model)}
    env = job_env(owner, **extra)
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)  # set in this process by its imports, not a job's
    process, _, stderr, light, _ = run_job("describe", tmp_path, env, "light", "light")
    assert process.returncode == 0, stderr
    assert not light["forked"]  # the server it started was not ready yet
    assert wait_until(lambda: server_of(owner), timeout=120)
    server = server_of(owner)
    assert wait_until(lambda: server_children(server), timeout=60)  # no evaluation came yet
    time.sleep(0.3)  # it says it started at once (start_for_tests)
    launched_at = time.time()
    process, _, stderr, first, _ = run_job("describe", tmp_path, env, "first", "ahead")
    assert process.returncode == 0, stderr
    assert first["parent"] == server and first["started_ahead_at"] < launched_at
    assert first["ahead_environ_nvml"] == "unset"  # as the jobs have it
    assert first["probe"] == "from the job's environment"


def test_a_run_that_evaluates_on_the_cpu_alone_has_no_child_ahead_at_its_start(tmp_path, owner):
    env = job_env(owner, **{GPU_JOBS_HERE: "1", "EVALUATION_DEVICE": "cpu"})
    process, _, stderr, light, _ = run_job("describe", tmp_path, env, "light", "light")
    assert process.returncode == 0, stderr
    assert wait_until(lambda: listening(owner), timeout=120)
    process, _, stderr, later, _ = run_job("describe", tmp_path, env, "later", "light")
    assert later["forked"] and later["parent"] == server_of(owner)
    time.sleep(1)
    assert not server_children(later["parent"])


def test_no_child_is_forked_ahead_until_a_job_asks_for_one(tmp_path, owner):
    """Light jobs and evaluations set to run on the CPU ask for none: a run made of them alone
    has no child ahead (no CUDA started for it)."""
    process, _, stderr, first, _ = run_job("describe", tmp_path, job_env(owner), "first")
    assert process.returncode == 0, stderr
    time.sleep(1)
    assert not server_children(first["parent"])
