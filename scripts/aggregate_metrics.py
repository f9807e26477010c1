"""Rule aggregate_metrics: merge the one-row metrics files into model_performance.csv and the
GLUE summary, each also as an HTML page for the report (glueperf/infra/aggregate_job.py), forked
from this run's results server when there is one."""

from glueperf.infra.aggregate_job import aggregate_job
from glueperf.infra.forkclient import run_post_job

if __name__ == "__main__":
    run_post_job(aggregate_job, snakemake, snakemake.log[0])  # noqa: F821 (injected by Snakemake)
