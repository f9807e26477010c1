"""Faults: an evaluation killed halfway (SIGKILL) leaves no partial output, and the next plain
`snakemake --cores 1` finishes the work, also after the whole Snakemake run was killed.

A CUDA out-of-memory during evaluation (the engine halves its token budget and finishes) is
covered by the engine's unit tests (tests/test_engine.py); two evaluations never running at once
on one device, also when Snakemake alone was killed and its evaluation runs on, by
tests/test_devices.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import Workflow, write_dataset
from glueperf.infra.snakemake_internals import OWNER_FILE, record_lock_owner, remove_stale_lock
from glueperf.outputs import write_csv

# Enough sentences, one per batch, for the evaluation to run for some seconds on a CPU.
N_ROWS = 2500
STARTED = " sentences"  # the evaluation's progress bar is in its log: inference has begun


class SnakemakeProcess:
    """A snakemake process in its own process group, with its output in a file."""

    def __init__(self, workflow: Workflow, *args):
        self.workflow = workflow
        self.console = workflow.root / f"console-{time.monotonic_ns()}.txt"
        with open(self.console, "w") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "snakemake", "--cores", "1", *args],
                cwd=workflow.root,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for_inference(self, log: Path, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.is_file() and STARTED in log.read_text(errors="replace"):
                return
            assert self.process.poll() is None, self.output()
            time.sleep(0.05)
        raise AssertionError(f"the evaluation did not start within {timeout} s:\n{self.output()}")

    def evaluation_script(self) -> psutil.Process:
        children = psutil.Process(self.process.pid).children(recursive=True)
        found = [p for p in children if any("evaluate_model" in part for part in p.cmdline())]
        assert len(found) == 1, [p.cmdline() for p in children]
        return found[0]

    def finish(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.console.read_text(errors="replace")


def outputs_left(results: Path) -> list[str]:
    """Metrics, predictions and temporaries of interrupted writes present under results/."""
    found = list(results.glob("metrics/**/*")) + list(results.glob("predictions/**/*"))
    found += list(results.rglob("*.tmp"))
    return sorted(str(p.relative_to(results)) for p in found if p.is_file())


@pytest.fixture(scope="module")
def killed(tmp_path_factory, tiny_model) -> dict:
    """Kill the evaluation script, then the whole run, then run once more; what each left."""
    base = tmp_path_factory.mktemp("faults")
    data = write_dataset(base / "data" / "big.parquet", n=N_ROWS, seed=3)
    workflow = Workflow(base / "workflow")
    workflow.write_config(
        {
            "models": {"tiny": {"source": str(tiny_model), "evaluation": {"max_batch_size": 1}}},
            "datasets": {"big": {"path": str(data), "task": "Sentiment analysis"}},
            "evaluation": {"device": "cpu"},
        }
    )
    results = workflow.root / "results"
    log = results / "logs" / "evaluate_model" / "tiny" / "float32" / "big.log"
    found = {"workflow": workflow, "results": results}

    # 1. SIGKILL the evaluation script only: Snakemake sees its job fail.
    run = SnakemakeProcess(workflow)
    run.wait_for_inference(log)
    run.evaluation_script().send_signal(signal.SIGKILL)
    found["script"] = {"rc": run.finish(), "output": run.output(), "left": outputs_left(results)}

    # 2. SIGKILL Snakemake and its job together (the whole process group), as a power loss would.
    log.unlink()
    run = SnakemakeProcess(workflow)
    run.wait_for_inference(log)
    os.killpg(run.process.pid, signal.SIGKILL)
    found["group"] = {
        "rc": run.finish(),
        "left": outputs_left(results),
        "locks": sorted(p.name for p in (workflow.root / ".snakemake" / "locks").iterdir()),
    }

    # 3. The next plain run.
    run = SnakemakeProcess(workflow)
    found["next"] = {"rc": run.finish(timeout=600), "output": run.output()}
    return found


def test_killing_the_evaluation_script_fails_its_job_and_leaves_no_output(killed):
    step = killed["script"]
    assert step["rc"] != 0
    assert "Error in rule evaluate_model" in step["output"]
    assert "results/logs/evaluate_model/tiny/float32/big.log" in step["output"]
    assert step["left"] == []


def test_killing_the_whole_run_leaves_no_output_only_snakemakes_lock(killed):
    step = killed["group"]
    assert step["rc"] == -signal.SIGKILL
    assert step["left"] == []
    assert step["locks"]  # what would stop the next run without glueperf's stale-lock check


def test_the_next_run_removes_the_stale_lock_and_finishes(killed):
    step = killed["next"]
    assert step["rc"] == 0, step["output"]
    assert "removed the Snakemake lock of an earlier run" in step["output"]
    results = killed["results"]
    assert (results / "model_performance.csv").is_file()
    metrics = pd.read_csv(results / "metrics" / "tiny" / "float32" / "big.csv")
    predictions = pd.read_parquet(results / "predictions" / "tiny" / "float32" / "big.parquet")
    assert metrics["n_rows"].tolist() == [N_ROWS]
    assert predictions["idx"].tolist() == list(range(N_ROWS))
    assert not list(results.rglob("*.tmp"))
    assert not list((killed["workflow"].root / ".snakemake").glob("locks/*"))


# --- the stale-lock check and temporaries, without Snakemake -------------------------------


def make_lock(directory: Path) -> Path:
    (directory / "locks").mkdir(parents=True, exist_ok=True)
    lock = directory / "locks" / "0.output.lock"
    lock.write_text("results/x.csv\n")
    return lock


def write_owner(directory: Path, **owner) -> None:
    (directory / OWNER_FILE).write_text(json.dumps(owner))


def dead_process() -> tuple[int, float]:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(process.pid).create_time()
    process.wait()
    return process.pid, started


def test_a_lock_whose_owner_is_gone_is_removed(tmp_path):
    lock = make_lock(tmp_path)
    pid, started = dead_process()
    write_owner(tmp_path, host=socket.gethostname(), pid=pid, started=started)
    os.utime(lock, (time.time() - 60, time.time() - 60))
    assert "removed the Snakemake lock" in remove_stale_lock(tmp_path)
    assert not lock.exists() and not (tmp_path / OWNER_FILE).exists()


def test_a_lock_of_a_live_run_is_kept(tmp_path):
    lock = make_lock(tmp_path)
    os.utime(lock, (time.time() - 60, time.time() - 60))
    record_lock_owner(tmp_path)  # this very process
    assert remove_stale_lock(tmp_path) is None and lock.exists()


def test_a_lock_whose_pid_now_belongs_to_another_process_is_removed(tmp_path):
    lock = make_lock(tmp_path)
    os.utime(lock, (time.time() - 60, time.time() - 60))
    me = psutil.Process()
    write_owner(tmp_path, host=socket.gethostname(), pid=me.pid, started=me.create_time() - 999)
    assert remove_stale_lock(tmp_path) is not None and not lock.exists()


@pytest.mark.parametrize("case", ["other-host", "lock-newer-than-record", "no-record"])
def test_a_lock_of_unknown_or_foreign_owner_is_kept(tmp_path, case):
    lock = make_lock(tmp_path)
    pid, started = dead_process()
    if case != "no-record":
        host = "another-login-node" if case == "other-host" else socket.gethostname()
        write_owner(tmp_path, host=host, pid=pid, started=started)
    old = time.time() - 60
    if case == "lock-newer-than-record":  # locked by a run that has not recorded itself yet
        os.utime(tmp_path / OWNER_FILE, (old, old))
    else:
        os.utime(lock, (old, old))
    assert remove_stale_lock(tmp_path) is None
    assert lock.exists()


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "results" / "metrics.csv"
    target.parent.mkdir()
    stale = target.parent / ".metrics.csv.abc123.tmp"
    stale.write_text("half a fi")
    other = target.parent / ".other.csv.abc123.tmp"
    other.write_text("another target's")
    write_csv(pd.DataFrame({"a": [1]}), target)
    assert target.read_text() == "a\n1\n"
    assert not stale.exists() and other.exists()
