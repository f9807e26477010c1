"""Rule summarize_glue: models x GLUE tasks, official scores and each model's GLUE average."""

from glueperf.aggregate import glue_summary, read_performance_table
from glueperf.outputs import run_script, write_csv


def main(snakemake):
    write_csv(glue_summary(read_performance_table(snakemake.input.table)), snakemake.output.summary)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
