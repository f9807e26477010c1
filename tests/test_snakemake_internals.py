"""glueperf.infra.snakemake_internals: Snakemake hashes params as before, without importing
pandas until something else has (tests/test_reruns.py checks a whole no-op rerun); and every
Snakemake internal the module relies on is as it was written against (Snakemake 9.27.1)."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from glueperf.infra.snakemake_internals import (
    DELETING,
    NOT_EXECUTING,
    SNAKEMAKE_LOCKS,
    cancel_scheduler_timers,
)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

# In a fresh interpreter: the serialized params with the patch against Snakemake's own
# serializers, whether that imported pandas, then the same for pandas objects once it is imported.
PROBE = f"""
import json, sys
sys.path.insert(0, {str(SCRIPTS)!r})
from snakemake.persistence.file import FilePersistence
from glueperf.infra.snakemake_internals import hash_params_without_importing_pandas

applied = hash_params_without_importing_pandas()
persistence = FilePersistence.__new__(FilePersistence)  # serializers only, no files
values = [3, 2.5, "cuda", None, True, [1, "a"], {{"k": (1, 2)}}, b"x", object()]
patched = [persistence._serialize_param(value) for value in values]
builtin = [persistence._serialize_param_builtin(value) for value in values]
report = {{
    "applied": applied,
    "same_as_builtin": patched == builtin,
    "pandas_imported": "pandas" in sys.modules,
}}
import pandas as pd

objects = [pd.DataFrame({{"a": [1, 2]}}), pd.Series([1.5, 2.5]), pd.Index(["x"]), 7]
report["same_as_pandas_once_imported"] = [
    persistence._serialize_param(value) for value in objects
] == [persistence._serialize_param_pandas(value) for value in objects]
report["frame_hashed_by_pandas"] = (
    persistence._serialize_param(objects[0]) != persistence._serialize_param_builtin(objects[0])
)
print(json.dumps(report))
"""


def test_params_serialize_as_snakemake_does_without_importing_pandas():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "applied": True,
        "same_as_builtin": True,
        "pandas_imported": False,
        "same_as_pandas_once_imported": True,
        "frame_hashed_by_pandas": True,
    }


# --- guards: each internal that glueperf/infra/snakemake_internals.py relies on, as Snakemake
# 9.27.1 has it. A failure here after a Snakemake upgrade means: review what the message names.


def function_source(module, qualified_name: str) -> str:
    """The source of a function of ``module`` (Class.method or function), normalized by the
    parser: comments and layout do not count."""
    node = ast.parse(inspect.getsource(module))
    for part in qualified_name.split("."):
        node = next(
            child
            for child in node.body
            if isinstance(child, ast.ClassDef | ast.FunctionDef) and child.name == part
        )
    return ast.unparse(node)


# PersistenceBase's serializers as Snakemake 9.27.1 has them: the patch replaces
# _serialize_param by a choice between the other two.
SERIALIZERS_9_27_1 = {
    "PersistenceBase._serialize_param": "12c58b42e539d5e5",
    "PersistenceBase._serialize_param_pandas": "f1828c28469d6be6",
    "PersistenceBase._serialize_param_builtin": "685da92c976f04dd",
}


def test_the_serializers_that_the_params_patch_replaces_are_unchanged():
    import snakemake.persistence

    found = {
        name: hashlib.sha256(function_source(snakemake.persistence, name).encode()).hexdigest()[:16]
        for name in SERIALIZERS_9_27_1
    }
    assert found == SERIALIZERS_9_27_1, (
        "Snakemake's params serializers changed: check that hash_params_without_importing_pandas "
        "(glueperf/infra/snakemake_internals.py) still gives Snakemake's own hashes, then "
        "update SERIALIZERS_9_27_1"
    )


def snakemake_dispatch() -> tuple[set[str], set[str]]:
    """From ``snakemake.cli.args_to_api``: the options whose branch calls another API method
    than execute_workflow, and those that make execute_workflow a dry run."""
    import snakemake.cli

    function = ast.parse(function_source(snakemake.cli, "args_to_api"))
    other_method, dry = set(), set()
    for node in ast.walk(function):
        if not isinstance(node, ast.If):
            continue
        options = {
            part.attr
            for part in ast.walk(node.test)
            if isinstance(part, ast.Attribute) and getattr(part.value, "id", None) == "args"
        }
        for statement in node.body:
            for call in ast.walk(statement):
                api = isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                if api and getattr(call.func.value, "id", None) in ("dag_api", "workflow_api"):
                    other_method |= options
            if isinstance(statement, ast.Assign) and ast.unparse(statement) == (
                "pseudo_executor = 'dryrun'"
            ):
                dry |= options
    return other_method, dry


def test_the_options_that_run_no_job_are_those_snakemake_dispatches_on():
    other_method, dry = snakemake_dispatch()
    # --report runs no job unless --report-after-run: executes_jobs reads both itself.
    assert other_method - {"report_after_run"} == set(NOT_EXECUTING) - dry | set(DELETING), (
        "snakemake.cli.args_to_api dispatches on other options than NOT_EXECUTING and DELETING "
        "(glueperf/infra/snakemake_internals.py) list: update them"
    )
    assert dry == {"dryrun"} and "report_after_run" in other_method


def test_snakemakes_lock_files_are_where_remove_stale_lock_looks(tmp_path):
    """A run's lock, as Snakemake writes it, is what remove_stale_lock finds (and removes once
    the run's recorded owner is gone: tests/test_faults.py)."""
    (tmp_path / "Snakefile").write_text('rule slow:\n    output: "a"\n    shell: "sleep 60"\n')
    run = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    locks = tmp_path / ".snakemake" / SNAKEMAKE_LOCKS
    try:
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and any(locks.iterdir())) and time.monotonic() < deadline:
            assert run.poll() is None, "snakemake ended before it locked"
            time.sleep(0.05)
        written = sorted(path.name for path in locks.iterdir())
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert written and written == sorted(path.name for path in locks.glob("*.lock"))


def test_runs_jobs_here_reads_the_executor_and_the_dag_at_onstart(tmp_path):
    """The fork server is started early only for a run that evaluates on this host."""
    (tmp_path / "Snakefile").write_text(
        f"""import sys
sys.path.insert(0, {str(SCRIPTS)!r})
from glueperf.infra.snakemake_internals import runs_jobs_here

rule all:
    input: "made"

rule make:
    output: "made"
    shell: "touch made"

rule other:
    output: "other"
    shell: "touch other"

onstart:
    print("jobs here:", runs_jobs_here(workflow, "make"), runs_jobs_here(workflow, "other"))
"""
    )
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "jobs here: True False" in run.stdout + run.stderr


def test_the_schedulers_timer_is_found_and_cancelled_at_the_end_of_a_run():
    """Snakemake 9.27.1's scheduler arms a Timer (not a daemon) after each pass, which kept
    every run alive about a second after its last job: the one cancel_scheduler_timers
    cancels, and no other."""
    import threading

    from snakemake.scheduling.job_scheduler import JobScheduler

    scheduler = JobScheduler.__new__(JobScheduler)  # the timer needs its semaphore alone
    scheduler._open_jobs = threading.Semaphore(0)
    before = set(threading.enumerate())
    JobScheduler._schedule_reevalutation(scheduler, 60)
    (armed,) = set(threading.enumerate()) - before
    other = threading.Timer(60, lambda: None)
    other.start()
    try:
        # not a daemon: what the interpreter waits for at exit
        assert isinstance(armed, threading.Timer) and not armed.daemon
        assert cancel_scheduler_timers() == 1
        armed.join(timeout=5)
        assert not armed.is_alive() and other.is_alive()
        assert not scheduler._open_jobs.acquire(blocking=False)  # cancelled, never fired
    finally:
        other.cancel()
