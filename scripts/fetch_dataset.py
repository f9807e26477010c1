"""Rule fetch_dataset: download a Hub dataset file at a pinned commit into resources/datasets/."""

from pathlib import Path

from glueperf.fetch import fetch_dataset_file
from glueperf.infra.script import run_script
from glueperf.outputs import write_json


def main(snakemake):
    params = snakemake.params
    provenance = fetch_dataset_file(params.url, params.revision, Path(snakemake.output.data))
    write_json(provenance, snakemake.output.provenance)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
