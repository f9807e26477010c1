"""Rule evaluate_model as a function of its job (glueperf/infra/job.py); scripts/evaluate_model.py
runs it through the fork server (glueperf/infra/forkserver.py). The metrics row is assembled here
from the groups each part fills (glueperf/results.py): the evaluation's measurements, who and
what was evaluated, the device claim, and the inputs' provenance.

The device is claimed (glueperf/infra/devices.py) after what needs none: the imports, reading the
dataset, working out provenance and, for an evaluation on a GPU, loading the model on the CPU (it
is moved to the GPU once held); the tokenizer's process of a large run in 16 bits starts before
that load (glueperf/engine.py, ``start_tokenizer_early``). CUDA starts after the claim, which
picks the GPU, except where there is one GPU to pick (``foreseen_gpu``): then it starts in a
thread as the job begins, with a warm-up of a one-layer stand-in of the model (``EarlyStart``),
and that work (0.3-1 s on an H100 host) overlaps the job's preparation and wait. The device is
held for the measurement alone and let go before the predictions are scored and the results
written: with --cores N, a job waiting for the device has done its work by the time it is free,
and the one before it scores, writes its files and exits while the next one measures. An
evaluation on the CPU loads its model after the claim: loading is work on the device another
evaluation may be measuring.
The heavy modules are imported inside the function: the job's own process, which only asks the
fork server for a child, imports none of them.
"""

import os

from glueperf.clock import JOB_STARTED


def evaluate_job(job):
    """One model in one dtype on one dataset -> a one-row metrics CSV and the predictions."""
    import torch

    from glueperf import results
    from glueperf.engine import start_tokenizer_early
    from glueperf.evaluation import (
        EarlyStart,
        ModelHandle,
        Settings,
        StandIn,
        check_task_fits_before_loading,
        evaluate,
        read_data,
        write_predictions,
    )
    from glueperf.fetch import provenance_fields
    from glueperf.infra.devices import claim_device, foreseen_gpu, host_gpus, narrow_to
    from glueperf.infra.forkclient import forked
    from glueperf.infra.script import tell
    from glueperf.models import load_on_cpu
    from glueperf.outputs import read_json, write_row
    from glueperf.tasks import DatasetSpec

    params, settings, wildcards = job.params, job.params.settings, job.wildcards
    name = f"{wildcards.model}/{wildcards.dtype}/{wildcards.dataset}"
    ahead = STARTED_AHEAD[0] if STARTED_AHEAD else None  # this process was forked ahead
    gpus = ahead.gpus if ahead else host_gpus()  # once: the claim asks again
    started, foreseen = None, foreseen_gpu(settings["device"], gpus)
    if foreseen is not None:  # CUDA starts meanwhile (see EarlyStart), or has started
        narrow_to(foreseen)
        stand_in = StandIn(
            os.path.abspath(params.model["model_dir"]),
            settings["dtype"],
            params.model["trust_remote_code"],
        )
        started = EarlyStart("cuda", stand_in, after=ahead and ahead.started)
    read = read_data(job.input.data, DatasetSpec(**params.dataset), wildcards.dataset)
    off_the_cpu = runs_off_the_cpu(settings["device"], gpus)
    if off_the_cpu:  # the tokenizer's process, where a run this large takes one
        device = "cuda" if settings["device"] == "auto" else settings["device"]
        start_tokenizer_early(device, settings["dtype"], len(read.data.texts))
    model = ModelHandle(params.model["model_dir"], wildcards.model)
    # A model that does not fit the dataset holds no device.
    check_task_fits_before_loading(model, read)
    provenance = results.Provenance(
        model_source=params.model["source"],
        model_revision=params.model["revision"] or "",
        dataset_path=str(params.path),
        **provenance_fields(
            read_json(job.input.summary),
            params.model["model_dir"],
            read_json(job.input.model_provenance),  # fetched, or hashed once by hash_model
        ),
    )
    loaded_on_cpu = None
    if off_the_cpu:
        loaded_on_cpu = load_on_cpu(
            params.model["model_dir"], settings["dtype"], params.model["trust_remote_code"]
        )
    model = ModelHandle(
        params.model["model_dir"], wildcards.model, params.model["trust_remote_code"], loaded_on_cpu
    )
    claim = claim_device(
        settings["device"],
        job=f"evaluate_model {name} in {os.getcwd()}",
        report=tell,
        gpus=lambda: gpus,
        started_on=foreseen,
    )
    use_threads(settings.get("threads"), job.threads, claim.device)
    # torch reads CUDA_VISIBLE_DEVICES only when CUDA starts: after the claim, which narrows it,
    # or before it, narrowed to the foreseen GPU.
    held = {}

    def let_go() -> None:
        """Measured: the next evaluation may take the device, without this one's cached GPU
        memory, while this one scores its predictions and writes its files."""
        held.update(claim.fields())  # the wait and the hold, recorded before the lock goes
        if claim.gpu is not None:
            torch.cuda.empty_cache()
        claim.release()
        tell(f"glueperf: measured; {claim.held_label()} released", console=False)

    measured = evaluate(
        read, model, Settings.of({**settings, "device": claim.device}), started, let_go
    )
    process = "ahead" if ahead else ("forked" if forked() else "own")
    held_job = results.Job(job_process=process, **held)
    subject = results.Subject(
        model=wildcards.model,
        dtype=settings["dtype"],
        dataset=wildcards.dataset,
        glue_task=params.dataset["glue_task"],
    )
    row = results.metrics_row(subject, *measured.groups(), held_job, provenance)
    # Predictions first: the metrics file is the rule's sign that the job finished.
    write_predictions(measured.predictions, job.output.predictions)
    write_row(row, job.output.metrics)
    tell("glueperf: results written", console=False)


def may_run_ahead(job) -> bool:
    """Whether a child forked ahead of this evaluation, CUDA started, may run it: one not set to
    run on the CPU (its ``accepts`` decides the rest)."""
    return job.params.settings["device"] != "cpu"


def use_threads(configured: int | None, job_threads: int, device: str = "cpu") -> None:
    """The CPU threads of the evaluation: ``evaluation.threads`` where the config pins them, for
    torch and the Rust tokenizer alike (whose pool is sized from RAYON_NUM_THREADS when it is
    first used, after this); else torch takes the job's threads (the rule's ``threads:``, which
    Snakemake caps at --cores) and the tokenizer its default: one thread per core, or on a GPU
    one fewer (``gpu_tokenizer_threads``), unless RAYON_NUM_THREADS says. The row records both."""
    import torch

    from glueperf.evaluation import cores_available

    if configured:
        os.environ["RAYON_NUM_THREADS"] = str(configured)
        # Exactly that many, also where the job inherited TOKENIZERS_PARALLELISM=false (the
        # tokenizers library sets it in every process forked by one that has used its pool;
        # this one has not: it is a fresh process or a child of a server that never tokenizes).
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if configured > 1 else "false"
    elif device.startswith("cuda") and not os.environ.get("RAYON_NUM_THREADS", "").strip():
        os.environ["RAYON_NUM_THREADS"] = str(gpu_tokenizer_threads(cores_available()))
    torch.set_num_threads(configured or job_threads)


def gpu_tokenizer_threads(cores: int) -> int:
    """The tokenizer's threads by default on a GPU: every core but one. The engine tokenizes the
    next chunk while the main thread feeds the GPU the current one; with a thread per core the
    pool starved that thread. bfloat16 on SST-2 train, one H100 host of 16 cores (BENCHMARKS.md,
    session 9): the GPU waited 0.196 s between passes with 16 threads, 0.113 s with 15."""
    return max(1, cores - 1)


def runs_off_the_cpu(requested: str, gpus) -> bool:
    """Whether an evaluation of ``evaluation.device`` ``requested`` will run on another device
    than the CPU, given the host's GPUs (``host_gpus()``: [] for none, None for GPUs that
    nvidia-smi cannot list): then its model is loaded on the CPU before the claim."""
    if requested == "auto":
        return gpus != []
    return requested != "cpu"


def server_imports(job, cwd: str) -> list[str]:
    """What the fork server imports for this job before forking it, once for every job after
    it: the module of the model's architecture (transformers imports it on the first load, a
    second or more on a GPU host)."""
    from glueperf.models import modeling_module

    module = modeling_module(os.path.join(cwd, job.params.model["model_dir"]))
    return [module] if module else []


# What a child forked ahead of its evaluation started (``start_ahead``), in that child alone.
STARTED_AHEAD: list = []
# What Snakemake sets for each job (its threads for the linear algebra libraries, its temporary
# directory), our job's start, and what ``narrow_to`` sets: where a job's environment may differ
# from the one a child forked ahead started CUDA in (the GPU is compared instead).
PER_JOB_VARIABLES = frozenset(
    {
        JOB_STARTED,
        "OMP_NUM_THREADS",
        "GOTO_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "TMPDIR",
        "TMP",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
    }
)


class StartedAhead:
    """CUDA started on ``gpu``, and a stand-in warmed up (``started``), in a child of the fork
    server forked before its evaluation came (glueperf/infra/forkclient.py: AHEAD), in the jobs'
    ``environ``; ``gpus``: the host's, as nvidia-smi listed them then."""

    def __init__(self, gpus, gpu, environ: dict, started):
        self.gpus, self.gpu, self.environ, self.started = gpus, gpu, environ, started

    def accepts(self, request: dict) -> bool:
        """Whether the job of ``request`` may run here: an evaluation whose claim can only end
        on this GPU, in the same environment but for what differs from job to job."""
        from glueperf.infra.devices import foreseen_gpu

        environ = request["environ"]
        try:
            device = request["job"].params.settings["device"]
        except (AttributeError, KeyError, TypeError):  # not an evaluation
            return False
        return same_environment(environ, self.environ) and (
            foreseen_gpu(device, self.gpus, dict(environ)) == self.gpu
        )


def same_environment(one: dict, other: dict) -> bool:
    """Equal but for PER_JOB_VARIABLES."""

    def kept(environ):
        return {k: v for k, v in environ.items() if k not in PER_JOB_VARIABLES}

    return kept(one) == kept(other)


def start_ahead(model_dirs) -> StartedAhead | None:
    """In a child forked ahead of the next evaluation (glueperf/infra/forkserver.py): on a host
    with one GPU to claim, start CUDA on it and, in a thread, warm up a stand-in of the run's
    first model in float32 (``EarlyStart``), while the job before runs; None on any other host.
    Returns once CUDA has started, before the job's environment replaces this one."""
    from glueperf.evaluation import EarlyStart, StandIn
    from glueperf.infra.devices import foreseen_gpu, host_gpus, narrow_to

    environ = dict(os.environ)
    gpus = host_gpus()
    gpu = foreseen_gpu("auto", gpus)
    if gpu is None:
        return None
    narrow_to(gpu)
    started = EarlyStart("cuda", StandIn(model_dirs[0]) if model_dirs else None)
    if not started.device_started():  # the evaluation starts CUDA itself, and says why not
        return None
    STARTED_AHEAD.append(StartedAhead(gpus, gpu, environ, started))
    return STARTED_AHEAD[0]
