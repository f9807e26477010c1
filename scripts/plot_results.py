"""Rule plot_results: every figure in one process, the bar charts of the performance table
(score, accuracy, time, memory, throughput) and the GLUE summary, each as a PNG and in the
vector formats of the config (its outputs say which)."""

from glueperf.aggregate import read_glue_summary, read_performance_table
from glueperf.infra.script import run_script
from glueperf.plotting import plot_all


def main(snakemake):
    table = read_performance_table(snakemake.input.table)
    summary = read_glue_summary(snakemake.input.summary)
    plot_all(table, summary, dict(snakemake.output.items()))


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
