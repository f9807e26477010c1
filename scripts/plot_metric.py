"""Rule plot_metric: one bar chart of the performance table (score, accuracy, time, memory...)."""

from glueperf.aggregate import read_performance_table
from glueperf.outputs import run_script
from glueperf.plotting import plot_one


def main(snakemake):
    table = read_performance_table(snakemake.input.table)
    plot_one(table, snakemake.wildcards.plot, snakemake.output.plot)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
