"""Rule fetch_model: download a Hub model at a pinned commit into resources/models/{model}."""

from pathlib import Path

from glueperf.fetch import fetch_model
from glueperf.infra.script import run_script
from glueperf.outputs import write_json


def main(snakemake):
    params = snakemake.params
    provenance = fetch_model(params.source, params.revision, Path(snakemake.output.model))
    write_json(provenance, snakemake.output.provenance)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
