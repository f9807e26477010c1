"""Rule plot_glue_summary: the GLUE summary table as a figure."""

from glueperf.aggregate import read_glue_summary
from glueperf.outputs import run_script
from glueperf.plotting import plot_glue_summary


def main(snakemake):
    plot_glue_summary(read_glue_summary(snakemake.input.summary), snakemake.output.plot)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
