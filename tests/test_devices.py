"""One device per measurement (glueperf/infra/devices.py): the pool of GPUs, the per-device locks,
and the pipeline's evaluations that wait for each other.

No CUDA is needed: GPUs are a fake pool (tests/device_claimer.py in other processes), nvidia-smi
a script that prints what a real one does. Each test sets its own lock directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from datetime import datetime
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import REPO, Workflow, planned_threads, tiny_workflow
from glueperf import GlueperfError
from glueperf.infra.devices import (
    HELD,
    LOCK_DIR_VARIABLE,
    Device,
    Gpu,
    candidates,
    claim_device,
    foreseen_gpu,
    hold_job,
    host_gpus,
    lock_directory,
    parse_nvidia_smi,
    try_lock,
    visible_gpus,
    waited_s,
)
from glueperf.infra.evaluate_job import StartedAhead, runs_off_the_cpu

CLAIMER = REPO / "tests" / "device_claimer.py"

# What `nvidia-smi --query-gpu=index,uuid,name,pci.bus_id --format=csv,noheader` prints.
NVIDIA_SMI = """\
0, GPU-3f1c6a2e-52b1-5a4c-9d1e-0c8a1b2c3d4e, NVIDIA H100 80GB HBM3, 00000000:18:00.0
2, GPU-9b8e7d6c-1111-2222-3333-444455556666, NVIDIA A100-SXM4-40GB, 00000000:9A:00.0
1, GPU-7a2b3c4d-aaaa-bbbb-cccc-ddddeeeeffff, NVIDIA H100 80GB HBM3, 00000000:3B:00.0

"""
HOST = parse_nvidia_smi(NVIDIA_SMI)
H100_0, H100_1, A100 = HOST


def fake_pool(n: int) -> list[Gpu]:
    return [Gpu(i, f"GPU-fake-{i:04d}", "Fake GPU") for i in range(n)]


@pytest.fixture(autouse=True)
def locks(tmp_path, monkeypatch) -> Path:
    """A lock directory of this test's own; every lock the test took is given back after it."""
    directory = tmp_path / "locks"
    monkeypatch.setenv(LOCK_DIR_VARIABLE, str(directory))
    yield directory
    for held in list(HELD):
        held.release()


class Messages(list):
    """A report callback that keeps (message, console) pairs."""

    def __call__(self, message: str, console: bool) -> None:
        self.append((message, console))

    def text(self) -> str:
        return "\n".join(message for message, _ in self)


# --- nvidia-smi and CUDA_VISIBLE_DEVICES ---------------------------------------------------


def test_nvidia_smi_output_is_read_in_its_numbering():
    assert [gpu.index for gpu in HOST] == [0, 1, 2]
    assert H100_0.uuid == "GPU-3f1c6a2e-52b1-5a4c-9d1e-0c8a1b2c3d4e"
    assert (H100_0.name, H100_0.pci_bus_id) == ("NVIDIA H100 80GB HBM3", "00000000:18:00.0")
    assert A100.name == "NVIDIA A100-SXM4-40GB" and A100.pci_bus_id == "00000000:9A:00.0"
    assert parse_nvidia_smi("No devices were found\n") == []


def test_the_host_gpus_come_from_nvidia_smi(tmp_path, monkeypatch):
    program = tmp_path / "bin" / "nvidia-smi"
    program.parent.mkdir()
    program.write_text(
        f"#!/bin/sh\necho \"$*\" > {tmp_path / 'args'}\ncat <<'END'\n{NVIDIA_SMI}END\n"
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{program.parent}{os.pathsep}{os.environ['PATH']}")
    assert host_gpus() == HOST
    assert (tmp_path / "args").read_text().split() == [
        "--query-gpu=index,uuid,name,pci.bus_id",
        "--format=csv,noheader",
    ]


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [H100_0, H100_1, A100]),  # not set: every GPU of the host
        ("2,0", [A100, H100_0]),  # indices in nvidia-smi's (PCI bus) numbering, in this order
        ("GPU-7a2b3c4d-aaaa-bbbb-cccc-ddddeeeeffff", [H100_1]),
        ("GPU-9b8e, 1", [A100, H100_1]),  # a unique prefix of a UUID, as CUDA accepts
        ("", []),
        ("-1", []),
        ("1,-1,0", [H100_1]),  # CUDA ignores an invalid entry and all after it
        ("0,7", [H100_0]),  # and an index it does not have
        ("MIG-1a2b3c4d", None),  # MIG instances: not told apart, all GPUs are one device
        ("GPU-0000dead", None),  # a GPU that nvidia-smi does not list
        ("GPU-", None),  # ambiguous prefix
    ],
)
def test_cuda_visible_devices_restricts_the_pool(visible, expected):
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert visible_gpus(env, HOST) == expected


def test_without_nvidia_smi_listing_the_gpus_cannot_be_restricted():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0"}, None) is None


# --- which devices a configured device may take ----------------------------------------------


def locks_of(requested, pool, env=None) -> list[str]:
    return [device.lock for device in candidates(requested, pool, env or {})[0]]


def test_auto_takes_any_gpu_of_the_pool_else_the_cpu():
    assert locks_of("auto", HOST) == [gpu.uuid for gpu in HOST]
    assert locks_of("cuda", HOST) == [gpu.uuid for gpu in HOST]
    assert locks_of("auto", []) == ["cpu"]
    assert locks_of("cpu", HOST) == ["cpu"]
    assert locks_of("mps", []) == ["mps"]


def test_cuda_n_is_that_gpu_of_the_pool_and_no_other():
    assert locks_of("cuda:1", HOST) == [H100_1.uuid]
    restricted = visible_gpus({"CUDA_VISIBLE_DEVICES": "2,1"}, HOST)
    assert locks_of("cuda:0", restricted) == [A100.uuid]  # numbered within the visible GPUs


@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:3"])
def test_asking_for_a_gpu_that_is_not_there_is_an_error(requested):
    pool = [] if requested != "cuda:3" else HOST
    with pytest.raises(GlueperfError, match=f"evaluation.device is '{requested}'"):
        candidates(requested, pool, {})


def test_gpus_that_cannot_be_listed_are_one_device():
    assert locks_of("auto", None) == locks_of("cuda:1", None) == ["gpus"]
    assert locks_of("cpu", None) == ["cpu"]


def test_under_slurm_the_allocation_decides():
    slurm = {"SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "1"}
    assert locks_of("auto", visible_gpus(slurm, HOST), slurm) == [H100_1.uuid]
    assert locks_of("cpu", HOST, slurm) == ["cpu-slurm-4242"]  # the job's cores are its own
    assert locks_of("auto", None, slurm) == []  # GPUs not told apart: no host-wide lock


# --- claiming in this process ----------------------------------------------------------------


def test_a_claim_narrows_cuda_to_the_gpu_it_holds_and_records_it(locks):
    env = {"CUDA_VISIBLE_DEVICES": "2,1"}
    before = time.time()
    claim = claim_device("auto", job="test", gpus=lambda: HOST, env=env, report=Messages())
    assert claim.device == "cuda"
    assert env == {"CUDA_VISIBLE_DEVICES": A100.uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    fields = claim.fields()
    held = fields.pop("device_held_from"), fields.pop("device_held_until")
    assert fields == {"gpu_index": 2, "gpu_uuid": A100.uuid, "device_wait_s": 0.0}
    assert before <= held[0] <= held[1] <= time.time()
    assert json.loads((locks / f"{A100.uuid}.lock").read_text())["pid"] == os.getpid()


def test_the_first_free_gpu_is_taken_without_waiting(locks):
    taken = try_lock(locks, Device(H100_0.uuid, "GPU 0"), "someone else")
    assert taken is not None
    try:
        claim = claim_device("auto", gpus=lambda: HOST, env={}, report=Messages())
    finally:
        os.close(taken)
    assert claim.gpu == H100_1 and claim.fields()["device_wait_s"] == 0.0


def test_the_gpu_is_foreseen_only_where_the_claim_has_one_to_choose():
    """CUDA may start before the claim only on the GPU the claim cannot but take."""
    assert foreseen_gpu("auto", [H100_1], {}) == foreseen_gpu("cuda", [H100_1], {}) == H100_1
    assert foreseen_gpu("cuda:2", HOST, {}) == A100
    assert foreseen_gpu("auto", HOST, {"CUDA_VISIBLE_DEVICES": "1"}) == H100_1
    assert foreseen_gpu("auto", HOST, {}) is None  # the first free one of three
    assert foreseen_gpu("cpu", [H100_1], {}) is None and foreseen_gpu("auto", [], {}) is None
    assert foreseen_gpu("auto", None, {}) is None  # GPUs not told apart: CUDA sees them all
    assert foreseen_gpu("cuda:3", HOST, {}) is None  # no such GPU: the claim's error, later


def test_cuda_started_on_the_foreseen_gpu_may_claim_it_and_no_other(locks, monkeypatch):
    started = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", started)
    env = {"CUDA_VISIBLE_DEVICES": H100_1.uuid}
    claim = claim_device("auto", gpus=lambda: HOST, env=env, report=Messages(), started_on=H100_1)
    assert claim.gpu == H100_1 and env["CUDA_VISIBLE_DEVICES"] == H100_1.uuid
    claim.release()
    with pytest.raises(RuntimeError, match="before CUDA starts"):
        claim_device("cuda:0", gpus=lambda: HOST, env={}, report=Messages(), started_on=H100_1)


def test_a_cpu_claim_leaves_cuda_alone(locks):
    env = {}
    claim = claim_device("auto", gpus=lambda: [], env=env, report=Messages())
    assert (claim.device, claim.held.device.lock) == ("auto", "cpu")
    assert "CUDA_VISIBLE_DEVICES" not in env
    fields = claim.fields()
    assert {key: fields[key] for key in ("gpu_index", "gpu_uuid", "device_wait_s")} == {
        "gpu_index": None,
        "gpu_uuid": None,
        "device_wait_s": 0.0,
    }
    assert fields["device_held_from"] <= fields["device_held_until"]


def test_an_evaluation_has_done_its_imports_but_not_started_cuda_when_it_claims(tmp_path):
    """A job that waits for its device has already paid its start-up (imports) and read its
    data, so with --cores N it overlaps the running evaluation; CUDA must still be off, as the
    claim decides which GPU torch sees."""
    probe = f"""
import json, sys, types
sys.path.insert(0, {str(REPO / "scripts")!r})
from glueperf import evaluation, fetch
from glueperf.infra import devices, evaluate_job

def claim_device(requested, job, report, gpus, started_on=None):
    torch = sys.modules.get("torch")
    print(json.dumps({{
        "torch": torch is not None,
        "cuda_started": bool(torch and torch.cuda.is_initialized()),
        "engine": "glueperf.evaluation" in sys.modules,
        "read": read,
    }}))
    raise SystemExit(0)

devices.claim_device = claim_device
fetch.provenance_fields = lambda *inputs: dict.fromkeys(
    ["model_commit", "model_weights_sha256", "dataset_commit", "dataset_sha256"], ""
)
read = []
evaluation.read_data = lambda path, *spec: read.append(path) or types.SimpleNamespace(
    data=types.SimpleNamespace(texts=[])
)
evaluation.check_task_fits_before_loading = lambda *args: None  # tests/test_preflight.py
model = {{"model_dir": "m", "source": "m", "revision": None, "trust_remote_code": False}}
job = types.SimpleNamespace(
    params=types.SimpleNamespace(
        settings={{"device": "auto"}}, model=model, dataset={{}}, path="d.parquet"
    ),
    wildcards=types.SimpleNamespace(model="m", dtype="float32", dataset="d"),
    input=types.SimpleNamespace(data="d.parquet", summary=None, model_provenance=None),
)
evaluate_job.evaluate_job(job)
"""
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert json.loads(run.stdout) == {
        "torch": True,
        "cuda_started": False,
        "engine": True,
        "read": ["d.parquet"],  # the dataset too is read before the claim
    }


def test_an_evaluation_on_a_gpu_has_loaded_its_model_on_the_cpu_when_it_claims(
    tmp_path, tiny_model
):
    """Reading the model's files and building it need no device: an evaluation on a GPU does it
    before the claim, so that with --cores N it overlaps the running evaluation, and holds the
    GPU only to move the model there (CUDA still off at the claim, which picks the GPU). The
    tokenizer's process of a large run in 16 bits starts before that load."""
    probe = f"""
import json, sys, types
sys.path.insert(0, {str(REPO / "scripts")!r})
from glueperf import engine, evaluation, fetch, models
from glueperf.infra import devices, evaluate_job

def claim_device(requested, job, report, gpus, started_on=None):
    torch = sys.modules["torch"]
    model = loaded[0].model
    print(json.dumps({{
        "cuda_started": torch.cuda.is_initialized(),
        "loaded": [type(model).__name__, str(next(model.parameters()).device)],
        "load_s": loaded[0].load_s > 0,
        "tokenizer_early": early,
    }}))
    raise SystemExit(0)

early = []
engine.start_tokenizer_early = lambda *args: early.append([*args, len(loaded)])
real_load_on_cpu = models.load_on_cpu
loaded = []
models.load_on_cpu = lambda *args: loaded.append(real_load_on_cpu(*args)) or loaded[0]
devices.claim_device = claim_device
fetch.provenance_fields = lambda *inputs: dict.fromkeys(
    ["model_commit", "model_weights_sha256", "dataset_commit", "dataset_sha256"], ""
)
evaluation.read_data = lambda path, *spec: types.SimpleNamespace(
    data=types.SimpleNamespace(texts=[])
)
evaluation.check_task_fits_before_loading = lambda *args: None  # tests/test_preflight.py
model = {{"model_dir": {str(tiny_model)!r}, "trust_remote_code": False}}
job = types.SimpleNamespace(
    params=types.SimpleNamespace(
        settings={{"device": "cuda", "dtype": "float32"}},
        model={{**model, "source": "m", "revision": None}},
        dataset={{}},
        path="d.parquet",
    ),
    wildcards=types.SimpleNamespace(model="m", dtype="float32", dataset="d"),
    input=types.SimpleNamespace(data="d.parquet", summary=None, model_provenance=None),
)
evaluate_job.evaluate_job(job)
"""
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert json.loads(run.stdout.splitlines()[-1]) == {
        "cuda_started": False,
        "loaded": ["BertForSequenceClassification", "cpu"],
        "load_s": True,
        "tokenizer_early": [["cuda", "float32", 0, 0]],  # device, dtype, texts; nothing loaded
    }


@pytest.mark.parametrize("n_gpus, ahead", [(1, False), (2, False), (1, True), (2, True)])
def test_with_one_gpu_to_claim_cuda_starts_in_a_thread_as_the_job_begins(tmp_path, n_gpus, ahead):
    """One GPU to choose from: CUDA's start (start_device) overlaps the job's preparation and its
    wait, on that GPU alone, and the claim knows it; with two, it waits for the claim. In a
    child forked ahead (``start_ahead``, before the job), CUDA has started there already: the
    job does not start it again. With two GPUs nothing is started ahead."""
    probe = f"""
import json, sys, threading, time, types
sys.path.insert(0, {str(REPO / "scripts")!r})
from glueperf import evaluation, fetch, models
from glueperf.infra import devices, evaluate_job

events, finished = [], []
def start_device(device):
    events.append(["start", device, os.environ.get("CUDA_VISIBLE_DEVICES"),
                   threading.current_thread() is threading.main_thread()])
    time.sleep(1.0)
    finished.append(True)
    return 1.0

def claim_device(requested, job, report, gpus, started_on):
    events.append(["claim", started_on and started_on.uuid])
    raise SystemExit(0)

import os
pool = devices.parse_nvidia_smi({NVIDIA_SMI!r})[:{n_gpus}]
devices.host_gpus = lambda: pool
devices.claim_device = claim_device
evaluation.start_device = start_device
models.load_on_cpu = lambda *args: events.append(["load", bool(finished)])
fetch.provenance_fields = lambda *inputs: dict.fromkeys(
    ["model_commit", "model_weights_sha256", "dataset_commit", "dataset_sha256"], ""
)
evaluation.read_data = lambda path, *spec: types.SimpleNamespace(
    data=types.SimpleNamespace(texts=[])
)
evaluation.check_task_fits_before_loading = lambda *args: None
model = {{"model_dir": "m", "source": "m", "revision": None, "trust_remote_code": False}}
job = types.SimpleNamespace(
    params=types.SimpleNamespace(
        settings={{"device": "auto", "dtype": "float32"}}, model=model, dataset={{}},
        path="d.parquet",
    ),
    wildcards=types.SimpleNamespace(model="m", dtype="float32", dataset="d"),
    input=types.SimpleNamespace(data="d.parquet", summary=None, model_provenance=None),
)
if {ahead!r}:
    found = evaluate_job.start_ahead([])
    events.append(["ahead", found is not None and found.gpu.uuid])
    if found:
        found.started.seconds()
try:
    evaluate_job.evaluate_job(job)
finally:
    print(json.dumps(events))
"""
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    events = json.loads(run.stdout.splitlines()[-1])
    if ahead and n_gpus == 1:  # started before the job, not again; the load found it done
        start = ["start", "cuda", H100_0.uuid, False]
        assert events == [start, ["ahead", H100_0.uuid], ["load", True], ["claim", H100_0.uuid]]
    elif ahead:
        assert events == [["ahead", False], ["load", False], ["claim", None]]
    elif n_gpus == 1:  # begun at once, in a thread, on the GPU's UUID: the load ran meanwhile
        assert sorted(events[:2]) == [["load", False], ["start", "cuda", H100_0.uuid, False]]
        assert events[2:] == [["claim", H100_0.uuid]]
    else:
        assert events == [["load", False], ["claim", None]]


def test_an_evaluation_set_to_run_on_the_cpu_asks_for_no_child_ahead():
    """A run that evaluates on the CPU alone then forks none, and starts no CUDA."""
    from glueperf.infra.evaluate_job import may_run_ahead

    def job(device):
        return types.SimpleNamespace(params=types.SimpleNamespace(settings={"device": device}))

    assert not may_run_ahead(job("cpu"))
    assert may_run_ahead(job("auto")) and may_run_ahead(job("cuda:1"))


def ahead_request(device="auto", **environ) -> dict:
    """What the fork server hands a child forked ahead: an evaluation's request."""
    job = types.SimpleNamespace(params=types.SimpleNamespace(settings={"device": device}))
    return {"job": job, "environ": {"PATH": "/usr/bin", **environ}}


def test_a_child_ahead_takes_only_an_evaluation_that_would_claim_its_gpu_in_its_environment():
    started = StartedAhead([H100_0], H100_0, {"PATH": "/usr/bin", "OMP_NUM_THREADS": "1"}, None)
    # What Snakemake sets for each job, and the job's start, may differ.
    assert started.accepts(ahead_request(OMP_NUM_THREADS="16", GLUEPERF_JOB_STARTED="12.5"))
    assert started.accepts(ahead_request("cuda:0"))
    assert not started.accepts(ahead_request("cpu"))
    assert not started.accepts(ahead_request("cuda:1"))  # not on this host
    assert not started.accepts(ahead_request(CUDA_MODULE_LOADING="EAGER"))  # CUDA would differ
    assert not started.accepts(ahead_request(CUDA_VISIBLE_DEVICES=H100_1.uuid))
    not_an_evaluation = {"job": types.SimpleNamespace(), "environ": {"PATH": "/usr/bin"}}
    assert not started.accepts(not_an_evaluation)


def test_an_early_start_hands_its_seconds_or_its_error_to_the_evaluation(monkeypatch):
    from glueperf import evaluation

    monkeypatch.setattr(evaluation, "start_device", lambda device: 0.25)
    assert evaluation.EarlyStart("cuda").seconds() == 0.25

    def fails(device):
        raise RuntimeError("CUDA error: no CUDA-capable device is detected")

    monkeypatch.setattr(evaluation, "start_device", fails)
    with pytest.raises(RuntimeError, match="no CUDA-capable device"):
        evaluation.EarlyStart("cuda").seconds()


def test_an_evaluation_loads_its_model_before_the_claim_only_where_it_runs_off_the_cpu():
    """On the CPU, loading is work on the device another evaluation may be measuring: after."""
    gpu = [Gpu(0, "GPU-1", "H100", "00000000:01:00.0")]
    assert runs_off_the_cpu("cuda", []) and runs_off_the_cpu("cuda:1", gpu)
    assert runs_off_the_cpu("auto", gpu) and runs_off_the_cpu("auto", None)  # GPUs, unlisted
    assert runs_off_the_cpu("mps", [])
    assert not runs_off_the_cpu("auto", []) and not runs_off_the_cpu("cpu", gpu)


def hold_for(directory: Path, lock: str, seconds: float) -> threading.Thread:
    """Hold a lock as another evaluation would (``job`` 'evaluate_model other/one'), then let
    it go after ``seconds``."""
    descriptor = try_lock(directory, Device(lock, lock), "evaluate_model other/one")
    assert descriptor is not None

    def release():
        time.sleep(seconds)
        os.close(descriptor)

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_a_busy_device_is_waited_for_visibly_and_the_wait_recorded(locks):
    holder = hold_for(locks, H100_1.uuid, 0.6)
    messages = Messages()
    claim = claim_device(
        "cuda:1", job="evaluate_model m/d", gpus=lambda: HOST, env={}, report=messages, poll_s=0.05
    )
    holder.join()
    assert claim.gpu == H100_1  # not GPU 0, free all along: cuda:1 is that GPU
    assert 0.5 < claim.fields()["device_wait_s"] < 5
    (waiting, loud), *_, (ran, ran_loud) = messages
    assert loud and ran_loud  # both on the console
    assert waiting.startswith(f"glueperf: evaluate_model m/d (process {os.getpid()}) waits for")
    assert (
        f"GPU 1 (NVIDIA H100 80GB HBM3, {H100_1.uuid}) is held by process {os.getpid()}" in waiting
    )
    assert "(evaluate_model other/one) since 20" in waiting and str(locks) in waiting
    assert ran.startswith("glueperf: evaluate_model m/d runs on GPU 1") and "after waiting" in ran


def test_the_waiting_message_is_repeated_in_the_log_more_often_than_on_the_console(locks):
    from glueperf.infra.devices import hold_first_free

    holder = hold_for(locks, "cpu", 0.5)
    messages = Messages()
    hold_first_free([Device("cpu", "the CPU")], "job", "the CPU", messages, locks, 0.02, 0.1, 0.3)
    holder.join()
    consoles = [loud for _, loud in messages]
    assert consoles[0] and 3 <= len(consoles) <= 8 and not all(consoles)


def test_waits_add_up_and_the_job_lock_is_per_log(locks, tmp_path):
    holder = hold_for(locks, "cpu", 0.4)
    claim_device("cpu", gpus=lambda: [], env={}, report=Messages(), poll_s=0.05)
    holder.join()
    log = tmp_path / "results" / "logs" / "a.log"
    first = hold_job(log, report=Messages())
    assert hold_job(tmp_path / "results" / "logs" / "b.log", report=Messages()).wait_s == 0.0
    waiter = threading.Thread(target=hold_job, args=(log,), kwargs={"report": Messages()})
    waiter.start()
    time.sleep(0.8)
    assert waiter.is_alive()  # the same job: it waits
    first.release()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert 0.4 + 0.7 < waited_s() < 10


def test_the_default_lock_directory_is_per_user_and_host_wide(monkeypatch):
    assert lock_directory({}) == Path(f"/tmp/glueperf-locks-{os.getuid()}")
    assert lock_directory({LOCK_DIR_VARIABLE: "/shared/locks"}) == Path("/shared/locks")


# --- several processes -----------------------------------------------------------------------


def start_claimer(record: Path, n_gpus: int, seconds: float, device="auto") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CLAIMER), str(record), str(n_gpus), str(seconds), device],
        stderr=subprocess.PIPE,
        text=True,
    )


def read_spans(record: Path) -> dict[int, dict]:
    """pid -> {device, start, end} from a claimers' record."""
    spans: dict[int, dict] = {}
    for line in record.read_text().splitlines():
        event = json.loads(line)
        spans.setdefault(event.pop("pid"), {}).update(event)
    return spans


def overlaps(spans: dict[int, dict]) -> list[tuple[int, int]]:
    """Pairs of processes that held the same device at the same time."""
    found = []
    for a, first in spans.items():
        for b, second in spans.items():
            same = a < b and first["device"] == second["device"]
            if same and first["start"] < second["end"] and second["start"] < first["end"]:
                found.append((a, b))
    return found


@pytest.mark.parametrize("n_gpus", [2, 0])
def test_processes_never_share_a_device(tmp_path, n_gpus):
    record = tmp_path / "record.jsonl"
    processes = [start_claimer(record, n_gpus, 0.6) for _ in range(5)]
    for process in processes:
        assert process.wait(timeout=60) == 0, process.stderr.read()
    spans = read_spans(record)
    assert len(spans) == 5 and all("end" in span for span in spans.values())
    assert overlaps(spans) == []
    expected = {f"GPU-fake-{i:04d}" for i in range(n_gpus)} or {"cpu"}
    assert {span["device"] for span in spans.values()} == expected  # every device was used
    if n_gpus:
        assert all(span["visible"] == span["device"] for span in spans.values())


def gone(process: psutil.Process) -> bool:
    """Ended: no such process, or a zombie that nobody has reaped yet (its locks are free)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition, timeout: float = 30, what: str = "", running=None, console=None):
    """Poll ``condition`` until it holds; fail after ``timeout`` or as soon as the process
    ``running`` has ended, with its ``console`` output."""
    deadline = time.monotonic() + timeout
    while not condition():
        ended = running is not None and running.poll() is not None
        if ended or time.monotonic() > deadline:
            output = console.read_text(errors="replace") if console else ""
            why = "the process ended" if ended else f"timed out after {timeout} s"
            raise AssertionError(f"{why} waiting for {what}\n{output}")
        time.sleep(0.05)


def test_a_killed_holder_frees_its_gpu_for_a_waiting_process(tmp_path):
    record = tmp_path / "record.jsonl"
    holder = start_claimer(record, 1, 60)
    wait_until(lambda: record.is_file() and record.read_text(), what="the first claim")
    waiter = start_claimer(record, 1, 0)
    time.sleep(1.0)
    assert waiter.poll() is None and len(read_spans(record)) == 1  # it waits
    killed_at = time.time()
    holder.send_signal(signal.SIGKILL)
    assert waiter.wait(timeout=30) == 0
    spans = read_spans(record)
    assert spans[waiter.pid]["device"] == spans[holder.pid]["device"] == "GPU-fake-0000"
    assert killed_at < spans[waiter.pid]["start"] < killed_at + 5
    assert "waits for GPU 0 (Fake GPU, GPU-fake-0000)" in waiter.stderr.read()
    holder.wait()


def test_an_orphan_keeps_its_gpu_until_it_ends(tmp_path):
    record = tmp_path / "record.jsonl"
    # The shell starts the claimer in the background and exits: its parent is gone at once.
    shell = subprocess.run(
        ["sh", "-c", f"'{sys.executable}' '{CLAIMER}' '{record}' 1 2.5 2>/dev/null & echo $!"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    orphan = int(shell.stdout.split()[-1])
    wait_until(lambda: record.is_file() and record.read_text(), what="the orphan's claim")
    waiter = start_claimer(record, 1, 0)
    assert waiter.wait(timeout=60) == 0
    spans = read_spans(record)
    assert spans[orphan]["end"] <= spans[waiter.pid]["start"]
    assert gone(psutil.Process(orphan)) if psutil.pid_exists(orphan) else True


# --- through the pipeline --------------------------------------------------------------------


def log_time(log: Path, text: str) -> float:
    """The time of the first line of a job's log that contains ``text``."""
    for line in log.read_text(errors="replace").splitlines():
        if text in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    raise AssertionError(f"no line with {text!r} in {log}:\n{log.read_text(errors='replace')}")


@pytest.fixture
def start_snakemake():
    """Start Snakemake in a workflow, in a process group of its own (killed with all its jobs
    at the end of the test, whatever happened); returns the process and its console file."""
    started = []

    def start(workflow: Workflow, *args) -> tuple[subprocess.Popen, Path]:
        console = workflow.root / f"console-{time.monotonic_ns()}.txt"
        with open(console, "w") as stream:
            process = subprocess.Popen(
                [sys.executable, "-m", "snakemake", *args],
                cwd=workflow.root,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        return process, console

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_two_evaluations_started_together_measure_one_after_the_other(
    tmp_path, tiny_model, locks, start_snakemake
):
    """Snakemake starts both evaluations at once (2 cores, 1 thread each, no gpu limit in the
    profile); while this test holds the CPU both wait, and once it lets go they run in turn."""
    workflow = tiny_workflow(tmp_path, tiny_model, {"alpha": 200, "beta": 200})
    logs = {
        name: workflow.root / f"results/logs/evaluate_model/tiny/float32/{name}.log"
        for name in ("alpha", "beta")
    }
    test_holds_the_cpu = try_lock(locks, Device("cpu", "the CPU"), "the test")
    process, console = start_snakemake(
        workflow, "--cores", "2", "--set-threads", "evaluate_model=1"
    )
    try:
        wait_until(
            lambda: all(
                log.is_file() and "waits for the CPU" in log.read_text() for log in logs.values()
            ),
            timeout=300,
            what="both evaluations to wait for the CPU",
            running=process,
            console=console,
        )
    finally:
        os.close(test_holds_the_cpu)
    assert process.wait(timeout=600) == 0, console.read_text()
    output = console.read_text()
    assert output.count("waits for the CPU") >= 2 and "is held by process" in output
    spans, held = {}, []
    for name, log in logs.items():
        row = pd.read_csv(workflow.root / f"results/metrics/tiny/float32/{name}.csv").iloc[0]
        assert row["device_wait_s"] > 0 and row["device"] == "cpu"
        held.append((row["device_held_from"], row["device_held_until"]))
        assert pd.isna(row["gpu_index"]) and pd.isna(row["gpu_uuid"])
        assert row["startup_s"] > 0
        # From the job's own log: Snakemake touches the outputs after the job, so their mtimes
        # may be later than the job's end.
        spans[name] = (log_time(log, "runs on the CPU"), log_time(log, "the CPU released"))
        # the results are written after the device is let go
        assert log_time(log, "results written") >= spans[name][1]
    (first_start, first_end), (second_start, second_end) = sorted(spans.values())
    assert first_end <= second_start  # the second began only after the first had measured
    (first_from, first_until), (second_from, second_until) = sorted(held)
    assert first_from < first_until <= second_from < second_until  # the rows say so too


def job_files(process: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return [file.path for file in process.open_files()]
    return []


def test_a_job_left_running_by_a_killed_snakemake_is_waited_for(
    tmp_path, tiny_model, start_snakemake
):
    """Issue 12: Snakemake killed outright, its evaluation runs on; the next run (which removes
    the stale Snakemake lock) must not start the same evaluation beside it."""
    workflow = tiny_workflow(tmp_path, tiny_model, {"alpha": 200})
    log = workflow.root / "results/logs/evaluate_model/tiny/float32/alpha.log"
    first, first_console = start_snakemake(workflow, "--cores", "1")
    wait_until(
        lambda: log.is_file() and "runs on the CPU" in log.read_text(),
        timeout=300,
        what="the first evaluation to take the CPU",
        running=first,
        console=first_console,
    )
    # The process that runs the job (a child of the fork server, not of Snakemake) has its log
    # open.
    job = [p for p in psutil.process_iter() if str(log) in job_files(p)]
    assert len(job) == 1
    orphan = job[0]
    orphan.suspend()  # it stays where it is, holding its locks, until the second run waits
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    second, console = start_snakemake(workflow, "--cores", "1")
    try:
        wait_until(
            lambda: f"is held by process {orphan.pid}" in console.read_text(),
            timeout=300,
            what="the second run's evaluation to wait for the first one",
            running=second,
            console=console,
        )
        assert "an earlier run of the same job to end" in console.read_text()
    finally:
        orphan.resume()
    wait_until(lambda: gone(orphan), timeout=300, what="the orphan to end")
    orphan_ended = time.time()
    assert second.wait(timeout=600) == 0, console.read_text()
    assert "removed the Snakemake lock of an earlier run" in console.read_text()
    assert "waited" in log.read_text() and "\0" not in log.read_text()
    assert log_time(log, "runs on the CPU") >= orphan_ended - 0.5  # not before it had ended
    row = pd.read_csv(workflow.root / "results/metrics/tiny/float32/alpha.csv").iloc[0]
    assert row["device_wait_s"] > 0


def test_an_evaluation_takes_fewer_cores_on_a_gpu_than_on_the_cpu(tmp_path, tiny_model):
    """On a GPU the CPU only feeds the model: four jobs fit in 16 cores, so on a one-GPU host
    the waiting ones do their imports while one measures. On the CPU the model uses them."""
    workflow = tiny_workflow(tmp_path, tiny_model, {"alpha": 5})
    assert planned_threads(workflow, "cpu") == {"evaluate_model=8"}
    assert planned_threads(workflow, "cuda") == {"evaluate_model=4"}
    # auto: as the host has GPUs or not (none here: this machine has no nvidia-smi)
    auto = planned_threads(workflow, "auto")
    assert auto == planned_threads(workflow, "cuda" if host_gpus() != [] else "cpu")
