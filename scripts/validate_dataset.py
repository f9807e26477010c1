"""Rule validate_dataset: check one parquet file and describe it in a JSON summary."""

import json
from pathlib import Path

from glueperf.infra.script import run_script
from glueperf.outputs import write_json
from glueperf.tasks import DatasetSpec
from glueperf.validation import summarize


def main(snakemake):
    params = snakemake.params
    # No input file when the configured local file is missing: summarize names it.
    data = snakemake.input.data or params.path
    summary = summarize(data, DatasetSpec(**params.dataset), params.sha256)
    summary["source"] = params.path
    if snakemake.input.provenance:  # fetched from the Hub: which commit
        summary["commit"] = json.loads(Path(snakemake.input.provenance).read_text())["commit"]
    write_json(summary, snakemake.output.summary)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
