"""Rule aggregate_metrics: merge the one-row metrics files into model_performance.csv, and
summarize its GLUE tasks into glue_summary.csv."""

from glueperf.aggregate import glue_summary, performance_table, read_metrics
from glueperf.infra.script import run_script
from glueperf.outputs import write_csv


def main(snakemake):
    labels = snakemake.params.labels
    table = performance_table(
        read_metrics(snakemake.input.metrics), labels["tasks"], labels["families"]
    )
    write_csv(table, snakemake.output.table)
    write_csv(glue_summary(table), snakemake.output.summary)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
