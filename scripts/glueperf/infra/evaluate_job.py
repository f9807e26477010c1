"""Rule evaluate_model as a function of the job's ``snakemake`` object; scripts/evaluate_model.py
runs it through the fork server (glueperf/infra/forkserver.py).

The device is claimed (glueperf/infra/devices.py) after what needs none, while CUDA is not started:
the imports, reading the dataset, working out provenance and, for an evaluation on a GPU, loading
the model on the CPU (it is moved to the GPU once held). The device is held for the measurement
alone and let go before the results are written: with --cores N, a job waiting for the device has
done its work by the time it is free, and the one before it writes its files and exits while the
next one measures. An evaluation on the CPU loads its model after the claim: loading is work on
the device another evaluation may be measuring. The heavy modules are imported inside the
function: the job's own process, which only asks the fork server for a child, imports none of
them.
"""

import os

from glueperf.outputs import read_json


def evaluate_job(snakemake):
    """One model on one dataset -> a one-row metrics CSV and the predictions."""
    import torch

    from glueperf.engine import Batching
    from glueperf.evaluation import (
        check_task_fits_before_loading,
        evaluate,
        read_data,
        write_predictions,
    )
    from glueperf.fetch import provenance_fields
    from glueperf.infra.devices import claim_device, host_gpus
    from glueperf.infra.forkserver import forked
    from glueperf.infra.script import tell
    from glueperf.models import load_on_cpu
    from glueperf.outputs import write_row
    from glueperf.tasks import DatasetSpec

    params, settings = snakemake.params, snakemake.params.settings
    model, dataset = snakemake.wildcards.model, snakemake.wildcards.dataset
    spec = DatasetSpec(**params.dataset)
    read = read_data(snakemake.input.data, spec)
    # A model that does not fit the dataset holds no device.
    check_task_fits_before_loading(
        params.model["model_dir"], read.data, spec, snakemake.input.data, (model, dataset)
    )
    provenance = provenance_fields(
        read_json(snakemake.input.summary),
        params.model["model_dir"],
        read_json(snakemake.input.model_provenance),  # fetched, or hashed once by hash_model
    )
    gpus = host_gpus()  # once: the claim asks again
    loaded_on_cpu = None
    if runs_off_the_cpu(settings["device"], gpus):
        loaded_on_cpu = load_on_cpu(
            params.model["model_dir"], settings["dtype"], params.model["trust_remote_code"]
        )
    claim = claim_device(
        settings["device"],
        job=f"evaluate_model {model}/{dataset} in {os.getcwd()}",
        report=tell,
        gpus=lambda: gpus,
    )
    # torch reads CUDA_VISIBLE_DEVICES, as narrowed by the claim, only when CUDA starts: after it.
    torch.set_num_threads(snakemake.threads)
    measured, predictions = evaluate(
        model_dir=params.model["model_dir"],
        data_file=snakemake.input.data,
        spec=spec,
        device=claim.device,
        dtype=settings["dtype"],
        batching=Batching(
            batch_tokens=settings["batch_tokens"],
            max_batch_size=settings["max_batch_size"],
            max_length=settings["max_length"],
        ),
        names=(model, dataset),
        trust_remote_code=params.model["trust_remote_code"],
        read=read,
        job_process="forked" if forked() else "own",
        loaded_on_cpu=loaded_on_cpu,
    )
    device_fields = claim.fields()
    # Measured: the next evaluation may take the device, without this one's cached GPU memory.
    if claim.gpu is not None:
        torch.cuda.empty_cache()
    claim.release()
    tell(f"glueperf: measured; {claim.held_label()} released", console=False)
    row = {
        "model": model,
        "dataset": dataset,
        "glue_task": params.dataset["glue_task"],
        **measured,
        **device_fields,
        "model_source": params.model["source"],
        "model_revision": params.model["revision"] or "",
        "dataset_path": str(params.path),
        **provenance,
    }
    # Predictions first: the metrics file is the rule's sign that the job finished.
    write_predictions(predictions, snakemake.output.predictions)
    write_row(row, snakemake.output.metrics)
    tell("glueperf: results written", console=False)


def runs_off_the_cpu(requested: str, gpus) -> bool:
    """Whether an evaluation of ``evaluation.device`` ``requested`` will run on another device
    than the CPU, given the host's GPUs (``host_gpus()``: [] for none, None for GPUs that
    nvidia-smi cannot list): then its model is loaded on the CPU before the claim."""
    if requested == "auto":
        return gpus != []
    return requested != "cpu"


def server_imports(snakemake, cwd: str) -> list[str]:
    """What the fork server imports for this job before forking it, once for every job after
    it: the module of the model's architecture (transformers imports it on the first load, a
    second or more on a GPU host)."""
    from glueperf.models import modeling_module

    module = modeling_module(os.path.join(cwd, snakemake.params.model["model_dir"]))
    return [module] if module else []
