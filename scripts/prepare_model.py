"""Rule prepare_model: trace a model once, on the device kind its evaluations run on, so that
each evaluation loads it with torch alone (glueperf/prepared.py).

As in evaluate_model.py, what needs no device comes before the claim: the imports, and loading
the model with transformers on the CPU. The device is held for tracing and checking alone, so
that with several models and --cores N the GPUs are not left idle while transformers imports."""

import json
import os
from pathlib import Path

import torch

from glueperf import GlueperfError
from glueperf.devices import claim_device
from glueperf.evaluation import resolve_device
from glueperf.outputs import run_script, tell
from glueperf.prepared import load_source, record_not_prepared, trace_source


def main(snakemake):
    params, settings = snakemake.params, snakemake.params.settings
    output = snakemake.output.prepared
    torch.set_num_threads(snakemake.threads)
    provenance = snakemake.input.model_provenance  # a fetched model's: its checksums
    source = load_source(
        params.model["model_dir"],
        settings["dtype"],
        trust_remote_code=params.model["trust_remote_code"],
        max_length=settings["max_length"],
        checksums=json.loads(Path(provenance).read_text())["sha256"] if provenance else None,
    )
    try:
        claim = claim_device(
            settings["device"],
            job=f"prepare_model {snakemake.wildcards.model} in {os.getcwd()}",
            report=tell,
        )
        device = resolve_device(claim.device)
    except GlueperfError as error:
        # A device this machine lacks is named by each evaluation, in its own log, with the
        # rest of the errors about a model or setting: nothing to prepare here.
        record_not_prepared(output, str(error))
        return
    meta = trace_source(source, device, output)
    seconds = ", ".join(f"{k} {v:.2f}" for k, v in meta.get("seconds", {}).items())
    tell(f"glueperf: prepared as {meta['format_used']} ({seconds})", console=False)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
