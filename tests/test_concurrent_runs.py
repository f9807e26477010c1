"""Exactly one run executes jobs in a directory at a time: of runs started together, one proceeds
and the others stop at once, before any job, naming the process of the run in progress; dry runs
still work while it runs; the lock dies with its process (also on SIGKILL), so it never goes
stale. (Snakemake's own lock let two of nine simultaneous starts through.)"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, Workflow, write_dataset
from glueperf.infra.snakemake_internals import executes_jobs
from glueperf.plotting import PLOTS

STARTS = 4
MESSAGE = re.compile(r"another glueperf run \(process (\d+) on [^)]*\) is in progress in this")


def start(workflow: Workflow, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args],
        cwd=workflow.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def together(tmp_path_factory, tiny_model):
    """STARTS runs started at once; while the one that proceeds evaluates, a dry run and one
    more run."""
    base = tmp_path_factory.mktemp("concurrent")
    data = write_dataset(base / "data" / "alpha.parquet", n=2500, seed=3)
    workflow = Workflow(base / "workflow")
    workflow.write_config(
        {
            # One sentence per batch: the evaluation runs for some seconds.
            "models": {"tiny": {"source": str(tiny_model), "evaluation": {"max_batch_size": 1}}},
            "datasets": {"alpha": {"path": str(data), "task": "Sentiment analysis"}},
            "evaluation": {"device": "cpu"},
        }
    )
    runs = [start(workflow) for _ in range(STARTS)]
    losers, winner = [], None
    deadline = time.monotonic() + 300
    while len(losers) < STARTS - 1 and time.monotonic() < deadline:
        for run in runs:
            if run not in losers and run.poll() is not None and run.returncode != 0:
                losers.append(run)
        time.sleep(0.1)
    others = [run for run in runs if run not in losers]
    assert len(others) == 1, "not exactly one run went on"
    winner = others[0]
    log = workflow.root / "results" / "logs" / "evaluate_model" / "tiny" / "float32" / "alpha.log"
    while winner.poll() is None and time.monotonic() < deadline:
        if log.is_file() and " sentences" in log.read_text(errors="replace"):
            break  # inference has begun
        time.sleep(0.05)
    during = {
        "dry_run": subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1", "-n"],
            cwd=workflow.root,
            capture_output=True,
            text=True,
            timeout=300,
        ),
        "run": subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1"],
            cwd=workflow.root,
            capture_output=True,
            text=True,
            timeout=300,
        ),
        "winner_running": winner.poll() is None,
    }
    winner_output = winner.communicate(timeout=600)[0]
    return {
        "workflow": workflow,
        "winner": winner,
        "winner_output": winner_output,
        "losers": [(run.returncode, run.communicate()[0]) for run in losers],
        "during": during,
    }


def test_exactly_one_of_the_runs_started_together_proceeds_and_finishes(together):
    assert together["winner"].returncode == 0, together["winner_output"]


def test_the_others_stop_before_any_job_naming_the_run_in_progress(together):
    for returncode, output in together["losers"]:
        assert returncode != 0
        found = MESSAGE.search(output)
        assert found, output
        assert int(found.group(1)) == together["winner"].pid
        assert "rule " not in output and "Traceback" not in output, output


def test_outputs_are_complete_and_nothing_is_left_half_written(together):
    root = together["workflow"].root
    assert (root / "results" / "model_performance.csv").is_file()
    for plot in PLOTS:
        assert (root / "results" / "plots" / f"{plot}.png").is_file()
    assert not [p for p in root.rglob("*.tmp") if ".snakemake" not in p.parts]
    assert together["winner_output"].count("rule evaluate_model:") == 1


def test_while_a_run_is_in_progress_a_dry_run_works_and_another_run_is_refused(together):
    during = together["during"]
    assert during["winner_running"], "the run ended before the checks: make it longer"
    assert during["dry_run"].returncode == 0, during["dry_run"].stderr
    refused = during["run"]
    assert refused.returncode != 0
    found = MESSAGE.search(refused.stdout + refused.stderr)
    assert found and int(found.group(1)) == together["winner"].pid, refused.stderr


# --- the lock itself, without Snakemake ---------------------------------------------------

HOLD = """
import sys
sys.path.insert(0, {scripts!r})
from glueperf.infra.locks import RunInProgress, hold_run_lock
try:
    hold_run_lock({directory!r})
except RunInProgress as error:
    print(error, flush=True)
    sys.exit(3)
print("held", flush=True)
sys.stdin.read()  # until killed
"""


def holder(directory) -> subprocess.Popen:
    code = HOLD.format(scripts=str(REPO / "scripts"), directory=str(directory))
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_the_lock_is_refused_while_held_and_free_once_its_holder_is_killed(tmp_path):
    first = holder(tmp_path)
    assert first.stdout.readline().strip() == "held"
    second = holder(tmp_path)
    assert second.wait(timeout=60) == 3
    assert f"process {first.pid} on " in second.stdout.read()
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    third = holder(tmp_path)
    assert third.stdout.readline().strip() == "held"
    third.kill()
    third.wait(timeout=60)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["snakemake", "--cores", "1"], True),
        (["/venv/bin/snakemake", "--cores", "2", "--keep-going", "results/x.csv"], True),
        (["/lib/snakemake/__main__.py", "--touch"], True),
        (["snakemake", "-n"], False),
        (["snakemake", "-np", "--cores", "1"], False),
        (["snakemake", "--lint"], False),
        (["snakemake", "--report", "report.html"], False),
        (["snakemake", "--unlock"], False),
        (["snakemake", "--rulegraph"], False),
        (["pytest", "tests"], None),
    ],
)
def test_which_command_lines_run_jobs(argv, expected):
    assert executes_jobs(argv) is expected
