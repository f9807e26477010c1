"""Jobs for tests/test_forkserver.py, run through glueperf.infra.forkserver as the pipeline's are.

    python tests/forked_jobs.py FUNCTION OUT LOG [light | post | ahead | IMPORTS]
    python tests/forked_jobs.py start_post

Runs ``run_job(FUNCTION, job, LOG)`` as a rule's script does, ``job.output.out`` being OUT; with
``light``, ``run_light_job`` instead; with ``post``, ``run_post_job``; with ``ahead``, ``run_job``
for a job that a child forked ahead may run (the server asks ``fits``), the server's children
ahead starting what ``start_for_tests`` starts; with the name of a function of this module,
``run_job`` with it as ``server_imports``. ``start_post`` starts the run's results' server alone,
in the background, as the evaluations' server would. The environment decides, as in a pipeline
run, whether a fork server is used (GLUEPERF_SNAKEMAKE_PID, GLUEPERF_FORK_SERVER,
GLUEPERF_GPU_JOBS_HERE); MODEL_DIR, when set, is the one model of the job's config;
EVALUATION_DEVICE, when set, the config's evaluation.device (a server that such a job starts
forks a child ahead once ready, starting ``start_for_tests``).
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from glueperf import GlueperfError  # noqa: E402
from glueperf.infra import forkclient, startup  # noqa: E402
from glueperf.infra.forkclient import forked, run_post_job, start_in_background  # noqa: E402
from glueperf.infra.job import Job  # noqa: E402
from glueperf.infra.jobs_client import run_job, run_light_job  # noqa: E402

# A module that the fork server does not import by itself; a BERT model's architecture.
NOT_PRELOADED = "xml.dom.minidom"
BERT = "transformers.models.bert.modeling_bert"
from glueperf.clock import job_age_s  # noqa: E402


def describe(job) -> None:
    """Record where and how it ran, and write to both standard streams."""
    record = {
        "pid": os.getpid(),
        "parent": os.getppid(),
        "cwd": os.getcwd(),
        "probe": os.environ.get("PROBE"),
        "forked": forked(),
        "age_s": job_age_s(),
        "has_module": NOT_PRELOADED in sys.modules,
        "has_bert": BERT in sys.modules,
        "loading_prepared": loading_prepared(),
        "has_pyplot": "matplotlib.pyplot" in sys.modules,
        "started_ahead_at": STARTED_AHEAD_AT[0] if STARTED_AHEAD_AT else None,
        "ahead_environ_nvml": STARTED_AHEAD_NVML[0] if STARTED_AHEAD_NVML else None,
    }
    Path(job.output.out).write_text(json.dumps(record))
    print("a line on standard output", flush=True)
    print("a line on standard error", file=sys.stderr, flush=True)


def loading_prepared() -> bool:
    """Whether transformers' table of checkpoint conversions is built in this process
    (glueperf.models.prepare_loading)."""
    table = sys.modules.get("transformers.conversion_mapping")
    return getattr(table, "_checkpoint_conversion_mapping_cache", None) is not None


def one_more_module(job, cwd) -> list[str]:
    """server_imports: a module for the server to import before forking."""
    return [NOT_PRELOADED]


def gpu_driver_loaded(job, cwd) -> list[str]:
    """server_imports that make the server find "the GPU driver" loaded: libc, which every
    process has, stands in for it."""
    from glueperf.infra import forkserver

    forkserver.DRIVER_LIBRARIES = ("libc.so",)
    return []


# When a child forked ahead started (``start_for_tests``), in that child, and its environment's
# value of the server's NVML switch then (forkclient.NVML_CHECK).
STARTED_AHEAD_AT: list = []
STARTED_AHEAD_NVML: list = []


class StartedForTests:
    """What ``start_for_tests`` started: as an evaluation's child ahead, it takes a job of its
    own environment (but for what differs from job to job)."""

    def __init__(self):
        self.environ = dict(os.environ)

    def accepts(self, request) -> bool:
        from glueperf.infra.evaluate_job import same_environment

        return same_environment(request["environ"], self.environ)


def start_for_tests(model_dirs):
    """What the children forked ahead start in these tests (forkclient.AHEAD): the time, or
    nothing where NOTHING_AHEAD is set."""
    from glueperf.infra.forkclient import NVML_CHECK

    if os.environ.get("NOTHING_AHEAD"):
        return None
    STARTED_AHEAD_AT.append(time.time())
    STARTED_AHEAD_NVML.append(os.environ.get(NVML_CHECK, "unset"))
    return StartedForTests()


def fits(job) -> bool:
    """Whether a child forked ahead may run the job, as the server asks it of the job it is
    sent (an evaluation's: glueperf.infra.evaluate_job.may_run_ahead)."""
    return bool(job.output.out)


def ahead_for_tests(job, cwd) -> list[str]:
    """server_imports that make the server's children ahead start ``start_for_tests``."""
    forkclient.AHEAD[forkclient.JOBS] = "forked_jobs:start_for_tests"
    return []


def fail(job) -> None:
    raise GlueperfError(f"nothing good in {job.output.out}")


def linger(job) -> None:
    """Say who it is, then wait to be killed."""
    Path(job.output.out).write_text(json.dumps({"pid": os.getpid()}))
    time.sleep(300)


if __name__ == "__main__":
    import forked_jobs  # by its module name, as the fork server imports it

    # A test's stand-in for another system (the fork server is for Linux alone).
    sys.platform = os.environ.get("FAKE_PLATFORM", sys.platform)
    if sys.argv[1:] == ["start_post"]:
        start_in_background(forkclient.server_address(forkclient.POST), forkclient.POST)
        sys.exit(0)
    function, out, log, how = (sys.argv[1:5] + [""])[:4]
    # As a rule's command gives it: the description's JSON text, which the job's process
    # passes on unread.
    description = {"input": {}, "output": {"out": out}, "params": {}, "wildcards": {}}
    job = Job(json.dumps(description), [log], 1)
    # What the workflow tells a run's jobs of their server (glueperf.infra.startup), for a
    # config of MODEL_DIR and EVALUATION_DEVICE.
    config = {
        "models": {"m": {"source": os.environ.get("MODEL_DIR", "no/such/model")}},
        "evaluation": {"device": os.environ.get("EVALUATION_DEVICE", "cpu")},
    }
    os.environ[forkclient.SERVER_START] = json.dumps(startup.server_start(config))
    if os.environ.get("EVALUATION_DEVICE"):  # a run's config, whose server forks a child ahead
        forkclient.AHEAD[forkclient.JOBS] = "forked_jobs:start_for_tests"
    if how == "light":
        run_light_job(getattr(forked_jobs, function), job, log)
    elif how == "post":
        run_post_job(getattr(forked_jobs, function), job, log)
    elif how == "ahead":
        run_job(
            getattr(forked_jobs, function), job, log, forked_jobs.ahead_for_tests, forked_jobs.fits
        )
    else:
        run_job(getattr(forked_jobs, function), job, log, how and getattr(forked_jobs, how))
