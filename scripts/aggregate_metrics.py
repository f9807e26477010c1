"""Rule aggregate_metrics: merge the one-row metrics files into model_performance.csv and the
GLUE summary, each also as an HTML page for the report (glueperf/infra/aggregate_job.py), forked
from this run's results server when there is one."""

from glueperf.infra.aggregate_job import aggregate_job
from glueperf.infra.forkclient import run_post_job
from glueperf.infra.job import job_from_command_line

if __name__ == "__main__":
    job = job_from_command_line()
    run_post_job(aggregate_job, job, job.log[0])
