"""Rule plot_metric: one bar chart (accuracy, inference time or memory usage)."""

from glueperf.outputs import run_script
from glueperf.plotting import plot_one, read_performance_table


def main(snakemake):
    table = read_performance_table(snakemake.input.table)
    plot_one(table, snakemake.wildcards.plot, snakemake.output.plot)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
