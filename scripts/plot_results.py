"""Rule plot_results: every figure in one process (glueperf/infra/plot_job.py), forked from this
run's results server when there is one."""

from glueperf.infra.forkclient import run_post_job
from glueperf.infra.plot_job import plot_job

if __name__ == "__main__":
    run_post_job(plot_job, snakemake, snakemake.log[0])  # noqa: F821 (injected by Snakemake)
