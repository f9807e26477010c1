"""Jobs for tests/test_forkserver.py, run through glueperf.infra.forkserver as the pipeline's are.

    python tests/forked_jobs.py FUNCTION OUT LOG

Runs ``run_job(FUNCTION, job, LOG)`` as a rule's script does, ``job.out`` being OUT. The
environment decides, as in a pipeline run, whether a fork server is used (GLUEPERF_SNAKEMAKE_PID,
GLUEPERF_FORK_SERVER).
"""

import json
import os
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from glueperf import GlueperfError  # noqa: E402
from glueperf.infra.forkserver import forked, run_job  # noqa: E402
from glueperf.measure import job_age_s  # noqa: E402


def describe(job) -> None:
    """Record where and how it ran, and write to both standard streams."""
    record = {
        "pid": os.getpid(),
        "parent": os.getppid(),
        "cwd": os.getcwd(),
        "probe": os.environ.get("PROBE"),
        "forked": forked(),
        "age_s": job_age_s(),
    }
    Path(job.out).write_text(json.dumps(record))
    print("a line on standard output", flush=True)
    print("a line on standard error", file=sys.stderr, flush=True)


def fail(job) -> None:
    raise GlueperfError(f"nothing good in {job.out}")


def linger(job) -> None:
    """Say who it is, then wait to be killed."""
    Path(job.out).write_text(json.dumps({"pid": os.getpid()}))
    time.sleep(300)


if __name__ == "__main__":
    import forked_jobs  # by its module name, as the fork server imports it

    # A test's stand-in for another system (the fork server is for Linux alone).
    sys.platform = os.environ.get("FAKE_PLATFORM", sys.platform)
    function, out, log = sys.argv[1:4]
    run_job(getattr(forked_jobs, function), types.SimpleNamespace(out=out), log)
