"""Rule prepare_model: trace a model once, on the device kind its evaluations run on, so that
each evaluation loads it with torch alone (glueperf/prepared.py).

As in evaluate_model.py, torch is imported before the device is claimed (CUDA starts after)."""

import json
import os
from pathlib import Path

import torch

from glueperf import GlueperfError
from glueperf.devices import claim_device
from glueperf.evaluation import resolve_device
from glueperf.outputs import run_script, tell
from glueperf.prepared import prepare, record_not_prepared


def main(snakemake):
    params, settings = snakemake.params, snakemake.params.settings
    output = snakemake.output.prepared
    try:
        claim = claim_device(
            settings["device"],
            job=f"prepare_model {snakemake.wildcards.model} in {os.getcwd()}",
            report=tell,
        )
        torch.set_num_threads(snakemake.threads)
        device = resolve_device(claim.device)
    except GlueperfError as error:
        # A device this machine lacks is named by each evaluation, in its own log, with the
        # rest of the errors about a model or setting: nothing to prepare here.
        record_not_prepared(output, str(error))
        return
    provenance = snakemake.input.model_provenance  # a fetched model's: its checksums
    meta = prepare(
        params.model["model_dir"],
        settings["dtype"],
        device,
        output,
        trust_remote_code=params.model["trust_remote_code"],
        max_length=settings["max_length"],
        checksums=json.loads(Path(provenance).read_text())["sha256"] if provenance else None,
    )
    seconds = ", ".join(f"{k} {v:.2f}" for k, v in meta.get("seconds", {}).items())
    tell(f"glueperf: prepared as {meta['format_used']} ({seconds})", console=False)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
