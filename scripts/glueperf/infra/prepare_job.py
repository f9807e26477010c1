"""Rule prepare_model as a function of the job's ``snakemake`` object; scripts/prepare_model.py
runs it through the fork server (glueperf/infra/forkserver.py).

What needs no device comes before the device is claimed (glueperf/infra/devices.py), while CUDA is
not started: the imports, and loading the model with transformers on the CPU. The device is then
held for tracing and checking alone, so that with several models and --cores N the GPUs are not
left idle while transformers imports. The heavy modules are imported inside the function: the
job's own process, which only asks the fork server for a child, imports none of them.
"""

import os

from glueperf.outputs import read_json


def prepare_job(snakemake):
    """Trace a model once, on the device kind its evaluations run on, so that each evaluation
    loads it with torch alone (glueperf/prepared.py)."""
    import torch

    from glueperf import GlueperfError
    from glueperf.evaluation import resolve_device
    from glueperf.infra.devices import claim_device
    from glueperf.infra.locks import LockError
    from glueperf.infra.script import tell
    from glueperf.preflight import check_model
    from glueperf.prepared import load_source, record_not_prepared, trace_source

    params, settings = snakemake.params, snakemake.params.settings
    output = snakemake.output.prepared
    # A Hub model, fetched since start-up: its classes against its datasets, before tracing.
    check_model(snakemake.config, snakemake.wildcards.model)
    torch.set_num_threads(snakemake.threads)
    provenance = read_json(snakemake.input.model_provenance)  # a fetched model's checksums
    source = load_source(
        params.model["model_dir"],
        settings["dtype"],
        trust_remote_code=params.model["trust_remote_code"],
        max_length=settings["max_length"],
        checksums=provenance["sha256"] if provenance else None,
    )
    try:
        claim = claim_device(
            settings["device"],
            job=f"prepare_model {snakemake.wildcards.model} in {os.getcwd()}",
            report=tell,
        )
        device = resolve_device(claim.device)
    except LockError:
        raise  # the locks' directory, not the device: the job fails naming it
    except GlueperfError as error:
        # A device this machine lacks is named by each evaluation, in its own log, with the
        # rest of the errors about a model or setting: nothing to prepare here.
        record_not_prepared(output, str(error))
        return
    meta = trace_source(source, device, output)
    seconds = ", ".join(f"{k} {v:.2f}" for k, v in meta.get("seconds", {}).items())
    tell(f"glueperf: prepared as {meta['format_used']} ({seconds})", console=False)
