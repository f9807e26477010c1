"""Rule prepare_model: trace a model once, on the device kind its evaluations run on, so that
each evaluation loads it with torch alone (glueperf/prepared.py)."""

import os

from glueperf.devices import claim_device
from glueperf.outputs import run_script, tell


def main(snakemake):
    params, settings = snakemake.params, snakemake.params.settings
    claim = claim_device(
        settings["device"],
        job=f"prepare_model {snakemake.wildcards.model} in {os.getcwd()}",
        report=tell,
    )
    # Only now: torch reads CUDA_VISIBLE_DEVICES, as narrowed by the claim, when CUDA starts.
    import torch

    from glueperf.evaluation import resolve_device
    from glueperf.prepared import prepare

    torch.set_num_threads(snakemake.threads)
    meta = prepare(
        params.model["model_dir"],
        settings["dtype"],
        resolve_device(claim.device),
        snakemake.output.prepared,
        trust_remote_code=params.model["trust_remote_code"],
        max_length=settings["max_length"],
    )
    tell(f"glueperf: prepared as {meta['format_used']}", console=False)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
