"""Rule validate_dataset: check one parquet file and describe it in a JSON summary."""

from glueperf.outputs import run_script, write_json
from glueperf.validation import summarize


def main(snakemake):
    columns = snakemake.params.columns
    summary = summarize(snakemake.params.path, columns["text"], columns["label"])
    write_json(summary, snakemake.output.summary)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
